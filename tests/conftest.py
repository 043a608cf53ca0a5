import contextlib
import gzip
import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings
from PIL import Image

import aekit
from aekit import callbacks
from aekit.cli import main
from aekit.data import idx, mnist

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


def fake_mnist_files(folder, n_train=60000, n_test=10000):
    """MNIST's four IDX files, gzipped, of random digits (n_train and n_test of them) in folder: (arrays, SHA-256
    of each uncompressed file by name)."""
    rng = np.random.default_rng(0)
    arrays = [
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_train, dtype=np.uint8),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_test, dtype=np.uint8),
    ]
    folder.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for (name, _), a in zip(mnist.MNIST_FILES.items(), arrays, strict=True):
        data = idx.idx_bytes(a)
        (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        hashes[name] = hashlib.sha256(data).hexdigest()
    return arrays, hashes


# hypothesis settings for fuzzing a loader: a fixed set of cases, whatever their speed
FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the same cases every run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


UNIT_MODULES = ("test_disk", "test_config", "test_checkpoint", "test_coding")  # no processes, one 2-epoch run


def pytest_collection_modifyitems(config, items):
    """Under mutation testing (`make mutation` sets MUTANT_UNDER_TEST to a mutant's name), the unit tests of the
    mutated modules first, so that a mutant they kill costs a second, not the fast CLI tests' shared runs."""
    if "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", ""):
        items.sort(key=lambda item: item.module.__name__.rpartition(".")[2] not in UNIT_MODULES)


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory, monkeypatch):
    """Tests never see the user's dataset cache: MNIST is "missing" unless a test provides it."""
    monkeypatch.setenv("AEKIT_DATA", str(tmp_path_factory.getbasetemp() / "aekit-data"))


@pytest.fixture(autouse=True)
def _no_run_figures(request, monkeypatch):
    """Training draws no figures into its run folder (about a second a run) unless the test is marked figures."""
    if request.node.get_closest_marker("figures") is None:
        monkeypatch.setattr(callbacks.RunFigures, "on_train_end", lambda self, trainer: None)


def run_cli(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    """`aekit ARGS` in this process (cli.main, as the console script calls it), with cwd and env as a process
    started there would have them (set while it runs, then restored): a CompletedProcess of its exit status and
    what it printed on stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    try:
        os.environ.update({k: str(v) for k, v in (env or {}).items()})
        os.chdir(cwd or saved_cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as e:  # argparse: --help, --version, a usage error
                code = e.code if isinstance(e.code, int) else int(e.code is not None)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(["aekit", *map(str, args)], code, out.getvalue(), err.getvalue())


def run_process(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    """Run `python -m aekit ARGS` in a real process (for what needs one: signals, a fresh process's memory or
    imports, torchrun); returns the CompletedProcess (text)."""
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "aekit", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=300,
    )


def fork_cli(*args, stderr: Path | None = None, before=None) -> int:
    """`aekit ARGS` (cli.main) in a child forked from this process, for races and kills: a second process without
    a second start-up (its imports are this one's). before(), if given, runs first in the child (to patch
    something); what the child prints on stderr goes to the file stderr (or nowhere). Returns the child's pid, for
    reap(); the child's exit status is main's."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 70
        try:
            torch.set_num_threads(1)  # OpenMP's worker threads are not in the child; one thread never needs them
            with open(stderr or os.devnull, "w") as err, contextlib.redirect_stderr(err):
                with contextlib.redirect_stdout(io.StringIO()):
                    if before is not None:
                        before()
                    code = main([str(a) for a in args])
        finally:
            os._exit(code)
    return pid


def reap(pid: int, timeout: float = 120) -> int:
    """The wait status of child pid (os.WIFSIGNALED, os.WEXITSTATUS...), killing it after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError(f"child {pid} still running after {timeout} s")


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


def refused(message, call, *args, **kwargs):
    """call(*args, **kwargs) raises AekitError with exactly message (the unit tests of the guarding modules)."""
    with pytest.raises(aekit.AekitError) as e:
        call(*args, **kwargs)
    assert str(e.value) == message


def assert_clean_error(result, *fragments):
    """Exit status 2, one line on stderr starting with 'aekit', naming each fragment, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("aekit")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


class SharedRuns:
    """The tiny runs that tests read, each trained once per test session (pytest's widest scope) by whichever test
    or module asks first, keyed by its data (a built-in's name or a path; photos() makes photo folders once too)
    and training options. Every request gets a copy of the run folder of its own: no test changes what another
    reads."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.trained: dict[tuple, Path] = {}
        self.folders: dict[tuple, Path] = {}
        self.copies = 0

    def photos(self, sizes=tuple(SIZES), mode: str = "RGB") -> Path:
        """A folder of photo_folder's photos of these sizes, made once."""
        key = (tuple(sizes), mode)
        if key not in self.folders:
            self.folders[key] = self.root / f"photos-{len(self.folders)}"
            photo_folder(self.folders[key], list(sizes), mode)
        return self.folders[key]

    def __call__(self, data, model: str = "ae", **options) -> Path:
        """A copy of the run trained (quietly, on the CPU unless options say otherwise) on data with options."""
        key = (str(data), model, *sorted((k, repr(v)) for k, v in options.items()))
        if key not in self.trained:
            out = self.root / "trained" / f"{len(self.trained)}-{model}"
            self.trained[key] = aekit.train(data, model, out=out, **{"quiet": True, "device": "cpu", **options}).path
        self.copies += 1
        return Path(shutil.copytree(self.trained[key], self.root / "copies" / f"{self.copies}-{model}"))


@pytest.fixture(scope="session")
def shared_runs(tmp_path_factory) -> SharedRuns:
    return SharedRuns(tmp_path_factory.mktemp("shared"))


@pytest.fixture(scope="session")
def digits_run(shared_runs) -> aekit.Run:
    """A small model trained on the bundled digits (with its figures: trained before any test turns them off)."""
    return aekit.Run.open(shared_runs("digits", "ae", epochs=30, hidden=[32], latent_dim=8, batch_size=64))


@pytest.fixture
def digits_run_dir(digits_run) -> Path:
    return digits_run.path
