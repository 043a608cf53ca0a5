"""aekit grows by registration: a new autoencoder type, file format or built-in dataset is one registered class
or function, written outside aekit, and every verb takes it (train, save, load, evaluate); a new verb is one
function, its flags beside its handler."""

import json

import numpy as np
import pytest
import torch

import aekit
from aekit.cli import main
from aekit.data import registry
from aekit.data.registry import BuiltinArrays, Raw
from aekit.models.base import Autoencoder, Output, sigmoid_squared_error
from aekit.registry import _MODELS
from aekit.verbs import VERBS, verb

SMALL = {"epochs": 2, "hidden": [16], "latent_dim": 4, "quiet": True, "device": "cpu"}


@pytest.fixture
def registered():
    """Forget what a test registered once it ends (the registries are the process's)."""
    tables = (_MODELS, registry.FORMATS, registry.BUILTINS, VERBS)
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
