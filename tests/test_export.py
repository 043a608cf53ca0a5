"""aekit export: ONNX graphs that give PyTorch's outputs (onnxruntime), for every type and backbone."""

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from aekit._export import Graph, export
from aekit.apps.anomaly import scores
from aekit.errors import AekitError
from aekit.run import Run
from conftest import assert_clean_error, run_cli

SIZES = {"mlp": {"hidden": [16]}, "conv": {"hidden": [8, 16]}, "resnet": {"hidden": [8], "latent_channels": 2}}
OWN = {"ae": {}, "dae": {}, "sae": {"sparsity": "topk", "k": 3}, "vae": {}}
SPAN = 16.0  # the digits' values run from 0 to 16: the graphs take and give them so
FAST = {("ae", "mlp"), ("sae", "conv")}  # an export takes seconds: the rest (resnet: below) run with make test
EVERY = [
    pytest.param(model, backbone, {}, marks=() if (model, backbone) in FAST else pytest.mark.slow)
    for model in OWN
    for backbone in SIZES
]


@pytest.fixture(scope="module")
def trained(shared_runs):
    """A tiny run of each type on each backbone (one epoch on the digits), made when a test first asks; on the CPU
    wherever the tests run (they compare with PyTorch on CPU tensors; a run on a GPU: its own test below)."""

    def get(model: str, backbone: str, **extra) -> Run:
        options = {**SIZES[backbone], **OWN[model], **extra}
        if backbone != "resnet":
            options["latent_dim"] = 6
        return Run.open(shared_runs("digits", model, backbone=backbone, epochs=1, batch_size=64, **options))

    return get


def held_out(run: Run, n: int = 16) -> torch.Tensor:
    return run.load_data().test.floats()[:n]


def onnx_run(path, **inputs) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {k: v.numpy() for k, v in inputs.items()})


@pytest.mark.parametrize(
    "model, backbone, extra", [*EVERY, pytest.param("dae", "resnet", {"skips": True}, marks=pytest.mark.slow)]
)
def test_reconstruct_graph_gives_pytorchs_reconstructions_of_held_out(trained, tmp_path, model, backbone, extra):
    run = trained(model, backbone, **extra)
    report = export(run, tmp_path / "m.onnx")
    assert report["max_difference"] <= 1e-5
    x = held_out(run)
    (got,) = onnx_run(tmp_path / "m.onnx", x=x * SPAN)  # the data as it is on disk: 0 to 16
    want = run.model.reconstruct(x).numpy() * SPAN
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-5 * SPAN


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("part", ["reconstruct", "scorer"])
def test_a_run_opened_on_a_gpu_exports_on_the_cpu(trained, tmp_path, part):
    """The graph is traced on a CPU copy (the file does not depend on the device); the caller's run stays put."""
    run = trained("ae", "mlp")
    gpu = Run.open(run.path, device="cuda")
    export(gpu, tmp_path / "gpu.onnx", part=part)
    export(run, tmp_path / "cpu.onnx", part=part)
    x = held_out(run) * SPAN
    for got, want in zip(onnx_run(tmp_path / "gpu.onnx", x=x), onnx_run(tmp_path / "cpu.onnx", x=x), strict=True):
        assert np.array_equal(got, want)
    assert gpu.model.device.type == "cuda"


@pytest.mark.slow  # an export of a resnet takes several seconds: under make test
@pytest.mark.parametrize("model", ["ae", "dae", "sae", "vae"])
def test_resnet_graphs_take_any_image_size_whole(trained, tmp_path, model):
    """Every part of a fully convolutional run at a size it never saw (13x22, not a multiple of 2**stages), the
    batch of another size too, equal to the same modules run by PyTorch."""
    run = trained(model, "resnet")
    x = torch.rand(3, 1, 13, 22, generator=torch.Generator().manual_seed(0)) * SPAN
    for part in ("reconstruct", "encoder", "decoder"):
        export(run, tmp_path / f"{part}.onnx", part=part)
        graph = Graph(run, part)
        given = graph.example(batch=3, grow=5) if part == "decoder" else x
        (got,) = onnx_run(tmp_path / f"{part}.onnx", **{graph.names()[0][0]: given})
        with torch.no_grad():
            want = graph(given).numpy()
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1e-5 * (SPAN if part != "encoder" else 1), part
    code = onnx_run(tmp_path / "encoder.onnx", x=x)[0]
    assert code.shape == (3, 2, 7, 11)  # latent_channels x ceil(13 / 2) x ceil(22 / 2)
    test = held_out(run, 4)
    (code,) = onnx_run(tmp_path / "encoder.onnx", x=test * SPAN)
    assert np.abs(code.reshape(4, -1) - run.model.encode(test).numpy()).max() <= 1e-5


@pytest.mark.parametrize("backbone", ["mlp", pytest.param("resnet", marks=pytest.mark.slow)])
def test_scorer_gives_aekits_anomaly_scores_and_its_threshold(trained, tmp_path, backbone):
    run = trained("ae", backbone)
    report = export(run, tmp_path / "s.onnx", part="scorer")
    assert report["threshold_from"] == "99th percentile of the run's training data"
    x = held_out(run)
    outputs = onnx_run(tmp_path / "s.onnx", x=x * SPAN)
    want = scores(run, x).numpy()
    assert np.allclose(outputs[0], want, rtol=1e-5, atol=1e-6)
    assert (outputs[1] == (outputs[0] > report["threshold"])).all()
    assert len(outputs) == (3 if backbone == "resnet" else 2)  # a resnet's anomaly maps too
    meta = {p.key: p.value for p in onnx.load(tmp_path / "s.onnx").metadata_props}
    assert meta["part"] == "scorer" and float(meta["threshold"]) == report["threshold"]
    export(run, tmp_path / "t.onnx", part="scorer", threshold=0.5)
    assert (onnx_run(tmp_path / "t.onnx", x=x * SPAN)[1] == (want > 0.5)).all()


def test_parts_a_model_cannot_give_are_refused(trained, tmp_path):
    with pytest.raises(AekitError, match="vae's score"):
        export(trained("vae", "mlp"), tmp_path / "v.onnx", part="scorer")
    with pytest.raises(AekitError, match="U-Net skips"):  # the reconstruct part takes them along (test above)
        export(trained("dae", "resnet", skips=True), tmp_path / "d.onnx", part="encoder")
    assert not (tmp_path / "v.onnx").exists() and not (tmp_path / "d.onnx").exists()


@pytest.mark.slow  # real subprocesses or several trainings: under make test
def test_cli_export_and_its_errors(trained, tmp_path, monkeypatch):
    run = trained("ae", "mlp")
    out = tmp_path / "m.onnx"
    result = run_cli("export", run.path, "-o", out, "--part", "encoder")
    assert result.returncode == 0, result.stderr
    assert '"part": "encoder"' in result.stdout and out.stat().st_size > 0
    assert_clean_error(run_cli("export", run.path, "-o", out), "exists; pass --force")
    assert_clean_error(run_cli("export", run.path, "-o", tmp_path / "m.txt"), "name this output .onnx")
    assert run_cli("export", run.path, "-o", out, "--part", "everything").returncode == 2
    monkeypatch.setitem(__import__("sys").modules, "onnxscript", None)  # as if the onnx extra were missing
    with pytest.raises(AekitError, match=r"pip install 'aekit\[onnx\]'"):
        export(run, tmp_path / "n.onnx")
