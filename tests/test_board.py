"""Watching a run: history.csv in every run folder, TensorBoard event files (aekit.board)."""

import csv
import math
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import aekit
from aekit.errors import AekitError
from conftest import assert_clean_error, run_cli

TINY = {"hidden": [16], "latent_dim": 4, "batch_size": 128, "quiet": True, "device": "cpu"}


def test_history_csv_holds_every_epoch_of_metrics_json(digits_run):
    with open(digits_run.path / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    history = digits_run.metrics["history"]
    assert len(rows) == len(history) == 30
    for row, record in zip(rows, history, strict=True):
        assert set(row) == set(record)
        for key, value in record.items():
            assert math.isclose(float(row[key]), value, rel_tol=1e-9), (key, row[key], value)


def read_events(folder):
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


def test_tensorboard_logs_every_epoch_as_metrics_json_and_goes_on_after_resume(tmp_path):
    run = aekit.train("digits", out=tmp_path / "run", epochs=2, tensorboard=tmp_path / "tb", **TINY)
    steps = math.ceil(len(run.load_data().train) / 128)
    run = aekit.train(out=run.path, resume=True, epochs=4, tensorboard=tmp_path / "tb", quiet=True)
    events = read_events(tmp_path / "tb")
    history = run.metrics["history"]
    for key in ("train_loss", "test_loss", "test_mse"):
        logged = events.Scalars(f"epoch/{key}")
        assert [e.step for e in logged] == [steps * r["epoch"] for r in history]
        for event, record in zip(logged, history, strict=True):
            assert math.isclose(event.value, record[key], rel_tol=1e-6), (key, event.value, record[key])
    for key in ("loss", "mse"):  # the loss and the model's own numbers of every step
        assert [e.step for e in events.Scalars(f"step/{key}")] == list(range(1, 4 * steps + 1))
    grids = events.Images("reconstructions")
    assert len(grids) == 4 and (grids[-1].width, grids[-1].height) == (8 * 8, 2 * 8)  # 8 digits over their rebuilds
    assert "config" in events.Tags()["tensors"][0]
    assert "hparam/test_loss" in events.Tags()["scalars"]


def test_tensorboard_without_its_package_is_one_clear_error_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    with pytest.raises(AekitError, match=r"pip install 'aekit\[tensorboard\]'"):
        aekit.train("digits", out=tmp_path / "run", epochs=1, tensorboard=tmp_path / "tb", **TINY)
    assert not (tmp_path / "run").exists()


def test_cli_tensorboard_folder_that_cannot_be_made_is_refused_before_the_run_starts(tmp_path):
    (tmp_path / "file").write_text("")
    out = tmp_path / "run"
    result = run_cli("train", "digits", "--epochs", "1", "--out", out, "--tensorboard", tmp_path / "file" / "tb")
    assert_clean_error(result, "--tensorboard", "cannot write there")
    assert not out.exists()
