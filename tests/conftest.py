import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import aekit


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
