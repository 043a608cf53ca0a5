import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import aekit
from aekit.cli import main

SIZES = [(40, 50), (36, 70), (32, 32), (64, 41), (45, 45), (50, 66), (33, 90), (48, 48), (70, 35), (40, 40)]
RESNET = {"backbone": "resnet", "hidden": (8,), "latent_channels": 2, "batch_size": 8, "quiet": True}


def photo_folder(folder, sizes=SIZES, mode="RGB"):
    """Photos of the given (height, width) sizes, smooth enough to learn; returns their pixels by file name."""
    folder.mkdir(parents=True, exist_ok=True)
    pixels = {}
    for k, (h, w) in enumerate(sizes):
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        wave = 128 + 100 * np.sin(rows / 6 + k) * np.cos(cols / 8)
        rgb = np.dstack([rows * 255 // h, cols * 255 // w, wave]).astype(np.uint8)
        image = rgb if mode == "RGB" else rgb[..., 0]
        Image.fromarray(image).save(folder / f"p{k}.png")
        pixels[f"p{k}.png"] = rgb if mode == "RGB" else rgb[..., :1]
    return pixels


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory, monkeypatch):
    """Tests never see the user's dataset cache: MNIST is "missing" unless a test provides it."""
    monkeypatch.setenv("AEKIT_DATA", str(tmp_path_factory.getbasetemp() / "aekit-data"))


def run_cli(*args, cwd=None, env=None):
    """Run `python -m aekit ARGS` in a subprocess; returns the CompletedProcess (text)."""
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "aekit", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=300,
    )


def start_cli(*args) -> subprocess.Popen:
    """Start `python -m aekit ARGS` in the background (stderr piped) with Ctrl-C's default action, as a terminal
    gives it: a test runner started in the background by a non-interactive shell has SIGINT ignored, and a child
    would inherit that and never stop on the test's SIGINT."""
    return subprocess.Popen(
        [sys.executable, "-m", "aekit", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def fails(capsys, args, *fragments) -> str:
    """The CLI (in process) exits 2 with one line on stderr holding every fragment; returns that line."""
    code = main([str(a) for a in args])
    err = capsys.readouterr().err.strip()
    assert code == 2, (code, err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def succeeds(capsys, args) -> str:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def assert_clean_error(result, *fragments):
    """Exit status 2, one line on stderr starting with 'aekit', naming each fragment, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("aekit")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """A small model trained on the bundled digits, shared by tests that only read it."""
    out = tmp_path_factory.mktemp("runs") / "digits"
    return aekit.train(
        "digits", "ae", out=out, epochs=30, hidden=[32], latent_dim=8, batch_size=64, quiet=True, device="cpu"
    )


@pytest.fixture
def digits_run_dir(digits_run) -> Path:
    return digits_run.path
