"""Scaling out: DDP on gloo over loopback equals one process with the same global batch; a
memory-mapped .npy trains exactly like one read into memory."""

import subprocess
import sys

import numpy as np
import pytest
from safetensors.torch import load_file

import aekit
from aekit.data.datasets import MappedDataset
from conftest import run_cli, run_process

# 1438 training items in batches of 479: slices of 240 and 239, then a last batch of 1 item that leaves
# the second process with nothing (it takes part with a weight of 0)
OPTIONS = {"hidden": [32], "latent_dim": 8, "batch_size": 479, "lr": 1e-2, "device": "cpu", "seed": 4}
FLAGS = ["--data", "digits", "--hidden", "32", "--latent-dim", "8", "--batch-size", "479", "--lr", "1e-2"]
FLAGS += ["--device", "cpu", "--seed", "4", "--quiet"]
TOLERANCE = 1e-5  # float32 sums taken in another order


def _close(a, b) -> float:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


@pytest.mark.slow
def test_two_processes_give_one_process_weights_and_one_run_folder(tmp_path):
    single = aekit.train("digits", out=tmp_path / "single", epochs=6, quiet=True, **OPTIONS)
    (tmp_path / "ddp").mkdir()
    done = run_process("train", *FLAGS, "--epochs", "6", "--out", "run", "--nproc", "2", cwd=tmp_path / "ddp")
    assert done.returncode == 0, done.stderr
    assert [p.name for p in (tmp_path / "ddp").iterdir()] == ["run"]  # rank 1 wrote nothing
    assert done.stdout.count("run folder:") == 1
    assert _close(single.path, tmp_path / "ddp" / "run") < TOLERANCE
    history = aekit.Run.open(tmp_path / "ddp" / "run").metrics["history"]
    for mine, theirs in zip(history, single.metrics["history"], strict=True):
        assert abs(mine["train_loss"] - theirs["train_loss"]) < 1e-3 * theirs["train_loss"]


@pytest.mark.slow
def test_torchrun_then_resume_with_another_number_of_processes(tmp_path):
    single = aekit.train("digits", out=tmp_path / "single", epochs=6, quiet=True, **OPTIONS)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    first = subprocess.run(
        [*torchrun, "-m", "aekit", "train", *FLAGS, "--epochs", "3", "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stderr
    resumed = run_cli("train", "--resume", tmp_path / "run", "--epochs", "6", "--quiet")  # one process now
    assert resumed.returncode == 0, resumed.stderr
    assert [r["epoch"] for r in aekit.Run.open(tmp_path / "run").metrics["history"]] == list(range(1, 7))
    assert _close(single.path, tmp_path / "run") < TOLERANCE


def test_an_error_on_rank_0_stops_every_process_with_one_line(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("not a run")
    done = run_process("train", *FLAGS, "--epochs", "1", "--out", tmp_path / "run", "--nproc", "2")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"aekit: error: {tmp_path / 'run'} already exists"]


def test_a_memory_mapped_npy_trains_exactly_like_one_in_memory(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (300, 8, 8), dtype=np.uint8)
    table = rng.normal(size=(300, 5)).astype(np.float32)
    for name, data in (("images.npy", images), ("table.npy", table)):
        np.save(tmp_path / name, data)
        options = {"hidden": [16], "latent_dim": 4, "epochs": 2, "batch_size": 32, "quiet": True, "device": "cpu"}
        loaded = aekit.train(tmp_path / name, out=tmp_path / f"loaded-{name}", **options)
        monkeypatch.setenv("AEKIT_MMAP_BYTES", "0")  # every .npy is memory-mapped now
        splits = aekit.data.load(tmp_path / name)
        assert isinstance(splits.train, MappedDataset) and splits.train.scaling == loaded.scaling
        mapped = aekit.train(tmp_path / name, out=tmp_path / f"mapped-{name}", **options)
        assert _close(loaded.path, mapped.path) == 0
        pairs = zip(loaded.metrics["history"], mapped.metrics["history"], strict=True)
        assert all({**a, "time_s": 0} == {**b, "time_s": 0} for a, b in pairs)
        features = aekit.features(mapped, aekit.data.load(tmp_path / name).test.floats())
        assert features.shape == (30, 4)
        monkeypatch.delenv("AEKIT_MMAP_BYTES")


def test_a_damaged_large_npy_is_refused_cleanly(tmp_path, monkeypatch):
    monkeypatch.setenv("AEKIT_MMAP_BYTES", "0")
    np.save(tmp_path / "x.npy", np.zeros((50, 8, 8), np.uint8))
    data = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "x.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(aekit.AekitError, match="x.npy: truncated"):
        aekit.data.load(tmp_path / "x.npy")
    np.save(tmp_path / "o.npy", np.array([object()] * 3), allow_pickle=True)
    with pytest.raises(aekit.AekitError, match="does not unpickle"):
        aekit.data.load(tmp_path / "o.npy")


def test_gpu_options_are_no_ops_on_cpu_and_named(tmp_path, capsys):
    options = {"hidden": [16], "latent_dim": 4, "epochs": 2, "device": "cpu", "seed": 1}
    plain = aekit.train("digits", out=tmp_path / "plain", quiet=True, **options)
    fast = aekit.train("digits", out=tmp_path / "fast", precision="bf16", compile=True, **options)
    assert _close(plain.path, fast.path) == 0
    assert "note: bf16, compile apply on CUDA only" in capsys.readouterr().err
    with pytest.raises(aekit.AekitError, match="precision must be fp32 or bf16"):
        aekit.train("digits", out=tmp_path / "bad", precision="fp16", **options)
