"""The README's code blocks run as written, in order, after `make demo`, so that they stay true.

The test runs make demo's steps (from the Makefile) in an empty folder, then every fenced bash and python block
of the README in order: bash a line at a time, python in one namespace shared by all blocks, as a reader pasting
them would. A line that is one `aekit` command runs through `cli.main` in this process (what the console script
calls), any other line in bash. A block is left out only where a comment just above it says `not run by
tests/test_readme.py` and why (GPUs, several machines).

What makes it a check of every block rather than a second training of every model (SMALLER): MNIST is fetched as
the README says, then read as its first TRAIN_ITEMS training and TEST_ITEMS test digits; a tenth of the epochs (at
least 1), 10 importance samples, 5 refinement steps, 200 generated items to score; the photos at a quarter of
their sides; the one line that starts several processes (which read MNIST themselves) trains on the bundled digits.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aekit.data import mnist
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
LEFT_OUT = "<!-- not run by tests/test_readme.py"
BLOCK = re.compile(r"(?P<note><!--[^\n]*-->\n)?```(?P<lang>\w+)\n(?P<code>.*?)```", re.S)
SMALLER = [  # (pattern, replacement), applied to every line
    (re.compile(r"(--epochs |\bepochs=)(\d+)"), lambda m: f"{m[1]}{max(1, int(m[2]) // 10)}"),
    (re.compile(r"--nll-k \d+"), lambda m: "--nll-k 10"),
    (re.compile(r"--samples \d+"), lambda m: "--samples 200"),
    (re.compile(r"(--refine |\brefine=)\d+"), lambda m: f"{m[1]}5"),
    (re.compile(r"(Image\.fromarray\(.*\))(\.save\()"), lambda m: f"{m[1]}.reduce(4){m[2]}"),
    (re.compile(r"^(aekit train) mnist (.*--nproc .*)$"), lambda m: f"{m[1]} digits {m[2]}"),
]
TRAIN_ITEMS, TEST_ITEMS = 2000, 500  # of MNIST's 60000 and 10000
DEFAULT_EPOCHS = 2  # for a train line that leaves the epochs to the data (MNIST: 20)


def readme_blocks() -> list[tuple[str, str]]:
    """(language, code) of the README's fenced blocks, in order, without the ones marked as left out."""
    found = [(m["lang"], m["code"], m["note"] or "") for m in BLOCK.finditer((ROOT / "README.md").read_text())]
    return [(lang, code) for lang, code, note in found if not note.startswith(LEFT_OUT)]


def demo_steps() -> list[str]:
    """The commands of the Makefile's demo target, as lines for a shell with aekit on its PATH."""
    recipe = (ROOT / "Makefile").read_text().split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    lines = recipe.replace("\\\n", " ").splitlines()[1:]
    steps = [line.strip().replace("$(BIN)/", "").replace("$(RUN)", "runs/classic") for line in lines]
    return [step for step in steps if step and not step.startswith("@")]


def _code_and_comment(line: str) -> tuple[str, str]:
    m = re.search(r"\s+#.*$", line)
    return (line[: m.start()], line[m.start() :]) if m else (line, "")


def smaller(line: str, language: str) -> str:
    """line with SMALLER's changes; a train call that leaves the epochs to the data gets DEFAULT_EPOCHS."""
    for pattern, replacement in SMALLER:
        line = pattern.sub(replacement, line)
    code, comment = _code_and_comment(line)
    if language == "bash" and re.search(r"\baekit train\b", code) and not re.search(r"--epochs|--resume", code):
        code += f" --epochs {DEFAULT_EPOCHS}"
    if language == "python" and "aekit.train(" in code and "epochs=" not in code:
        code = code.rstrip()[:-1] + f", epochs={DEFAULT_EPOCHS})"
    return code + comment


SHELL = set("|&;<>$`(){}*?")  # a line holding any of these runs in bash


def run_line(line: str, cwd: Path, env: dict, took: list) -> None:
    """One README line: `aekit ...` through cli.main in this process, anything else in bash; its time in took."""
    start = time.perf_counter()
    words = shlex.split(line, comments=True)
    if words and words[0] == "aekit" and not SHELL & set(_code_and_comment(line)[0]):
        done = run_cli(*words[1:], cwd=cwd)
    else:
        done = subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    took.append((time.perf_counter() - start, line))
    assert done.returncode == 0, f"README line failed ({done.returncode}): {line}\n{done.stdout}\n{done.stderr}"


@pytest.mark.slow
def test_the_readme_runs_in_order_after_make_demo(tmp_path, monkeypatch):
    data = Path(os.environ["AEKIT_DATA"])  # this session's own data folder; MNIST from the user's cache if there
    cached = Path.home() / ".cache" / "aekit" / "mnist"
    if cached.is_dir() and not (data / "mnist").exists():
        shutil.copytree(cached, data / "mnist")
    read_mnist = mnist.read_mnist

    def first_items(data_dir=None):  # the real files, checked as ever; only the first items used
        arrays = read_mnist(data_dir)
        return {k: a[: TRAIN_ITEMS if "train" in k else TEST_ITEMS] for k, a in arrays.items()}

    monkeypatch.setattr(mnist, "read_mnist", first_items)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHONWARNINGS"] = "ignore"
    took: list[tuple[float, str]] = []
    for step in demo_steps():
        run_line(smaller(step, "bash"), tmp_path, env, took)
    assert (tmp_path / "runs" / "classic" / "reconstructions.png").is_file()

    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme"}
    blocks = readme_blocks()
    assert [lang for lang, _ in blocks].count("python") >= 4 and [lang for lang, _ in blocks].count("bash") >= 3
    for number, (language, code) in enumerate(blocks, 1):
        assert language in ("bash", "python"), f"README block {number}: a {language} block the test cannot run"
        lines = [smaller(line, language) for line in code.splitlines()]
        if language == "python":
            start = time.perf_counter()
            exec(compile("\n".join(lines), f"README.md block {number}", "exec"), namespace)
            took.append((time.perf_counter() - start, f"python block {number}"))
            continue
        for line in lines:
            if line.strip() and not line.lstrip().startswith("#"):
                run_line(line, tmp_path, env, took)
    for seconds, line in sorted(took, reverse=True)[:10]:  # shown with -s or on a failure
        print(f"{seconds:6.1f} s  {line}")

    # What the README says the blocks make is there
    made = ["fig.png", "test.aez", "test.npz", "clean.npz", "denoise.png", "features.npz", "samples.png"]
    made += ["line.png", "manifold.png", "anomalies.png", "latent.png", "wine.csv"]
    assert all((tmp_path / name).stat().st_size > 0 for name in made)
    for run in ("mine", "classic", "dae", "conv-ae-30", "vae", "vae2d", "zeros", "ones", "again", "vae-ddp"):
        assert (tmp_path / "runs" / run / "model.safetensors").is_file(), run
    scores = (tmp_path / "scores.csv").read_text().splitlines()
    assert scores[0] == "index,score,flagged,file,label" and re.fullmatch(r"\d+,[\d.]+,[01],\d/\d+\.png,\d", scores[1])
    items = TRAIN_ITEMS + TEST_ITEMS
    assert namespace["z"].shape == (items, 32) and namespace["scores"].shape == (items,)
