"""aekit grows by registration: a new autoencoder type, file format or built-in dataset is one registered class
or function, written outside aekit, and every verb takes it (train, save, load, evaluate); a new verb is one
function, its flags beside its handler."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

import aekit
from aekit import plots
from aekit._report import FIGURES
from aekit.cli import main
from aekit.commands import VERBS, verb
from aekit.data import registry
from aekit.data.registry import BuiltinArrays, Raw
from aekit.models.base import Autoencoder, Output, sigmoid_squared_error
from aekit.models.types import _MODELS

SMALL = {"epochs": 2, "hidden": [16], "latent_dim": 4, "quiet": True, "device": "cpu"}


@pytest.fixture
def registered():
    """Forget what a test registered once it ends (the registries are the process's)."""
    tables = (_MODELS, registry.FORMATS, registry.BUILTINS, VERBS, FIGURES)
    before = [set(table) for table in tables]
    yield
    for table, names in zip(tables, before, strict=True):
        for name in set(table) - names:
            del table[name]


def test_a_new_autoencoder_type_is_one_class(tmp_path, registered):
    @aekit.register_model("shrink")
    class ShrinkingAutoencoder(Autoencoder):
        """An ae whose code is pulled towards 0 (an L2 penalty): a type written outside aekit."""

        def forward(self, x: torch.Tensor) -> Output:
            z = self.encode(x)
            error, x_hat = sigmoid_squared_error(self.decode_logits(z), x)
            return Output(x_hat, z, error + 0.01 * z.pow(2).sum(1).mean(), {"mse": error.detach() / x[0].numel()})

    assert "shrink" in aekit.list_models()
    run = aekit.train("digits", "shrink", out=tmp_path / "run", **SMALL)
    model = aekit.load(run.path)
    assert type(model) is ShrinkingAutoencoder and aekit.evaluate(run.path, save=False)["items"] == 359
    assert run.metrics["history"][-1]["train_loss"] < run.metrics["history"][0]["train_loss"]


def test_a_new_file_format_is_one_function(tmp_path, registered):
    @aekit.data.register_format(".tsv", options=("label_column",), what=".tsv tables")
    def read_tsv(path, options) -> Raw:
        rows = np.loadtxt(path, delimiter="\t", skiprows=1)
        if options.label_column is None:
            return Raw(rows)
        return Raw(rows[:, :-1], rows[:, -1].astype(np.int64), ["a", "b"])

    table = np.random.default_rng(0).random((60, 5))
    table[:, -1] = np.arange(60) % 2
    np.savetxt(tmp_path / "t.tsv", table, delimiter="\t", header="w\tx\ty\tz\tkind", comments="")
    run = aekit.train(tmp_path / "t.tsv", "ae", out=tmp_path / "run", label_column="kind", **SMALL)
    assert aekit.load(run.path).config.input_shape == (4,)
    assert aekit.evaluate(run.path, save=False)["items"] == 6
    with pytest.raises(aekit.AekitError, match="--size does not apply to t.tsv"):
        aekit.train(tmp_path / "t.tsv", out=tmp_path / "other", size=(4, 4), **SMALL)
    with pytest.raises(aekit.AekitError, match="unsupported file type; aekit reads .*.tsv tables"):
        (tmp_path / "t.xyz").write_text("1\t2\n")
        aekit.data.load(tmp_path / "t.xyz")


def test_a_new_builtin_dataset_is_one_function(tmp_path, registered, capsys):
    @aekit.data.register_dataset("bars", "horizontal and vertical bars, 4x4 (made in memory)")
    def bars(data_dir) -> BuiltinArrays:
        x = np.zeros((40, 4, 4), np.uint8)
        for i in range(40):
            (x[i, i % 4, :] if i % 2 else x[i, :, i % 4]).fill(255)
        y = np.arange(40) % 2
        return BuiltinArrays(x[:32], y[:32], x[32:], y[32:])

    run = aekit.train("bars", "ae", out=tmp_path / "run", **SMALL)
    assert aekit.evaluate(run.path, save=False)["items"] == 8
    assert main(["data", "list"]) == 0
    assert "bars     bundled" in capsys.readouterr().out


def test_a_new_verb_is_one_function(tmp_path, registered, capsys):
    @verb("codes", "the mean code of the items (a verb written outside aekit)")
    def _codes(p):
        p.add_argument("run")
        p.add_argument("input", metavar="INPUT")
        return lambda args: {"mean_code": aekit.features(args.run, args.input).mean(0).tolist()}

    run = aekit.train("digits", out=tmp_path / "run", **SMALL)
    assert main(["codes", str(run.path), "digits"]) == 0
    shown = capsys.readouterr().out
    expected = aekit.features(run, "digits").mean(0)
    assert torch.allclose(torch.tensor(json.loads(shown)["mean_code"]), expected, atol=1e-6)
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "codes" in capsys.readouterr().out  # listed with the others


def test_a_type_that_declares_a_prior_and_a_figure_gets_generate_and_its_figure(tmp_path, registered):
    @aekit.register_model("uniform")
    class UniformCodes(Autoencoder):
        """An ae whose codes are squashed into (-1, 1) by tanh, with a prior of its own: codes uniform in the square,
        and a report figure of its own (the codes of held-out items)."""

        @property
        def capabilities(self):
            return replace(super().capabilities, samples=True, figures=("code ranges",))

        def code_of(self, h: torch.Tensor) -> torch.Tensor:
            return torch.tanh(h)

        def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
            z = torch.rand(n, self.config.latent_dim, generator=generator, device=self.device) * 2 - 1
            return self.decode(z * temperature)

        def forward(self, x: torch.Tensor) -> Output:
            z = self.encode(x)
            error, x_hat = sigmoid_squared_error(self.decode_logits(z), x)
            return Output(x_hat, z, error, {"mse": error.detach() / x[0].numel()})

    @aekit.register_figure("code ranges", "Where the codes lie")
    def code_ranges(page) -> str:
        z = page.model.encode(page.test.floats()[:64])
        caption = f"codes of held-out items: from {float(z.min()):.2f} to {float(z.max()):.2f} (the prior: -1 to 1)"
        return page.figure(plots.image_grid(page.test.floats()[:8]), "code ranges", caption)

    run = aekit.train("digits", "uniform", out=tmp_path / "run", **SMALL)
    x = aekit.generate(run.path, 6, seed=3)
    generator = torch.Generator().manual_seed(3)
    expected = run.model.decode(torch.rand(6, 4, generator=generator) * 2 - 1)  # drawn from its prior, not a fit
    assert x.shape == (6, 1, 8, 8) and torch.allclose(x, expected)
    assert main(["generate", str(run.path), "-o", str(tmp_path / "new.png"), "-n", "6"]) == 0
    page = aekit.report(run.path, tmp_path / "report.html", figures=tmp_path / "figures")
    html = (tmp_path / "report.html").read_text()
    assert "<h2>Where the codes lie</h2>" in html and "(the prior: -1 to 1)" in html
    assert "<h2>Samples from the prior</h2>" in html  # every type with a prior gets the samples figure
    assert {"code-ranges.png", "samples.png"} <= set(p.name for p in (tmp_path / "figures").iterdir()), page
