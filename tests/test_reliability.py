"""The promises of docs/reliability.md: killed runs resume exactly, run folders are locked, divergence stops
cleanly, and no input file (random, truncated, bit-flipped or crafted to exhaust memory) gets past a one-line
AekitError."""

import gzip
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import load_file

import aekit
from aekit import AekitError, checkpoint, datasets, disk
from aekit.cli import main as cli_main
from aekit.data.idx import idx_bytes
from aekit.disk import MANIFEST
from aekit.runfiles import read_tensors
from conftest import FUZZ, fork_cli, reap, run_cli, start_cli

SMALL = {"hidden": [32], "latent_dim": 8, "batch_size": 64, "quiet": True, "device": "cpu"}
# dae + cosine schedule: a resume must restore the noise RNG and the scheduler, not just the weights
KILL_TRAIN = ["train", "--data", "digits", "--model", "dae", "--hidden", "32", "--latent-dim", "8"]
KILL_TRAIN += ["--batch-size", "8", "--epochs", "6", "--schedule", "cosine", "--device", "cpu", "--quiet"]


def _epochs_done(run_dir: Path) -> int:
    try:
        return len(json.loads((run_dir / "metrics.json").read_text())["history"])
    except (OSError, ValueError, KeyError):
        return -1


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _history(run_dir: Path) -> list[dict]:
    history = json.loads((run_dir / "metrics.json").read_text())["history"]
    return [{k: v for k, v in r.items() if k != "time_s"} for r in history]


@pytest.mark.slow
def test_sigkill_at_any_moment_then_resume_gives_the_uninterrupted_weights(tmp_path):
    done = run_cli(*KILL_TRAIN, "--out", tmp_path / "reference")
    assert done.returncode == 0, done.stderr
    rng = random.Random(5)
    # Kill while starting up, and at random moments after 0, 2 and 4 finished epochs (mid-epoch or mid-save).
    for i, after in enumerate([-1, 0, 2, 4]):
        out = tmp_path / f"killed-{i}"
        proc = start_cli(*KILL_TRAIN, "--out", out)
        deadline = time.monotonic() + 120
        while after >= 0 and _epochs_done(out) < after and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(1.0, 3.0) if after < 0 else rng.uniform(0.0, 0.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if out.exists():
            aekit.Run.open(out)  # whatever the moment, the folder loads: its last complete checkpoint
            if _epochs_done(out) < 6:
                resumed = run_cli("train", "--resume", out, "--quiet")
                assert resumed.returncode == 0, resumed.stderr
        else:  # killed before the folder was complete: nothing is there, so train again from scratch
            again = run_cli(*KILL_TRAIN, "--out", out)
            assert again.returncode == 0, again.stderr
        assert _same_weights(out, tmp_path / "reference"), f"kill point {i}"
        assert _history(out) == _history(tmp_path / "reference")
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
        leftovers += [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
        assert not leftovers, leftovers


def test_a_second_process_cannot_write_a_run_folder_that_is_training(tmp_path, capsys):
    out = tmp_path / "busy"
    long_run = [a if a != "6" else "1000" for a in KILL_TRAIN]  # --epochs 1000: it trains until stopped
    err = tmp_path / "first.err"
    first = fork_cli(*long_run, "--out", out, stderr=err)  # another process: a child of this one

    def running() -> bool:
        return os.waitpid(first, os.WNOHANG)[0] == 0

    deadline = time.monotonic() + 120
    while _epochs_done(out) < 1 and running() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert running(), err.read_text()
    for args in (
        [*KILL_TRAIN, "--out", out, "--force"],
        ["train", "--resume", out, "--epochs", "2000"],
        ["evaluate", out],
    ):
        assert cli_main(list(map(str, args))) == 2
        assert "is in use by another aekit process (pid" in capsys.readouterr().err
    assert running()  # unharmed: still training
    os.kill(first, signal.SIGINT)  # Ctrl-C: stops after writing nothing half-made
    assert os.waitstatus_to_exitcode(reap(first, 60)) == 130
    assert "continue with: aekit train --resume" in err.read_text()
    epochs = _epochs_done(out)
    assert epochs >= 1 and [r["epoch"] for r in _history(out)] == list(range(1, epochs + 1))
    assert cli_main(["train", "--resume", str(out), "--epochs", str(epochs + 1), "--quiet"]) == 0  # lock released


def test_a_ctrl_c_while_a_run_saves_an_epoch_waits_until_its_four_files_agree(tmp_path, monkeypatch):
    written = []
    with pytest.raises(KeyboardInterrupt):
        with disk.uninterrupted():
            os.kill(os.getpid(), signal.SIGINT)  # delivered at once, held until the block ends
            written.append("after the signal")
    assert written == ["after the signal"]
    saved = []

    def save_then_interrupt(path, trainer):  # Ctrl-C just after the checkpoint, before weights and metrics
        saved.append(path.name)
        os.kill(os.getpid(), signal.SIGINT)

    aekit.train("digits", out=tmp_path / "r", epochs=1, **SMALL)
    monkeypatch.setattr(checkpoint, "save", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        aekit.train(out=tmp_path / "r", resume=True, epochs=3, quiet=True)
    assert saved == ["checkpoint.safetensors"]  # the second epoch's save, whole; nothing after it
    assert _epochs_done(tmp_path / "r") == 2
    assert read_tensors(tmp_path / "r" / "model.safetensors")[1]["epoch"] == "2"


def test_force_replaces_a_finished_run_whole(tmp_path):
    aekit.train("digits", out=tmp_path / "r", epochs=2, **SMALL)
    aekit.train("digits", out=tmp_path / "r", epochs=1, force=True, **SMALL)
    assert _epochs_done(tmp_path / "r") == 1
    assert [p.name for p in tmp_path.iterdir()] == ["r"]


def test_training_stops_at_the_first_non_finite_loss_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    from aekit.models.vanilla import VanillaAutoencoder

    original, calls = VanillaAutoencoder.forward, [0]

    def poisoned(self, x):
        out = original(self, x)
        if self.training:
            calls[0] += 1
            if calls[0] >= 30:  # 23 steps per epoch: the 7th step of epoch 2
                out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(VanillaAutoencoder, "forward", poisoned)
    with pytest.raises(AekitError, match=r"loss became nan at epoch 2, step 7 of 23; .* checkpoint of epoch 1"):
        aekit.train("digits", out=tmp_path / "r", epochs=3, **SMALL)
    assert calls[0] == 30  # stopped at once
    run = aekit.Run.open(tmp_path / "r")
    assert len(run.metrics["history"]) == 1
    assert all(torch.isfinite(p).all() for p in run.model.parameters())

    calls[0] = 0
    args = ["train", "--data", "digits", "--hidden", "32", "--latent-dim", "8", "--batch-size", "64", "--quiet"]
    assert cli_main([*args, "--device", "cpu", "--out", str(tmp_path / "cli")]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("note: ")]
    assert len(err) == 1 and "likely causes" in err[0] and "--grad-clip" in err[0]


def test_grad_clip_limits_each_update(tmp_path):
    torch.manual_seed(0)  # the initial weights: the seed alone decides them
    start = aekit.create_model("ae", (1, 8, 8), hidden=[32], latent_dim=8).state_dict()
    free = aekit.train("digits", out=tmp_path / "free", epochs=2, seed=0, **SMALL)
    clipped = aekit.train("digits", out=tmp_path / "clipped", epochs=2, seed=0, grad_clip=1e-9, **SMALL)
    assert clipped.config["train"]["grad_clip"] == 1e-9

    def moved(run) -> float:
        return sum(float((v - start[k]).abs().sum()) for k, v in run.model.state_dict().items())

    # Adam divides by the gradient's size; at a norm of 1e-9 its epsilon (1e-8) dominates: tiny steps.
    assert 0 < moved(clipped) < 0.01 * moved(free)
    with pytest.raises(AekitError, match="grad_clip must be positive"):
        aekit.train("digits", out=tmp_path / "bad", grad_clip=0.0, **SMALL)


# ---------------------------------------------------------------- untrusted bytes, every loader


def damaged(valid: bytes):
    """Truncations, bit flips and plain garbage derived from a valid file's bytes."""

    def flip(flips):
        out = bytearray(valid)
        for pos, bit in flips:
            out[pos % len(out)] ^= 1 << bit
        return bytes(out)

    return st.one_of(
        st.integers(0, len(valid) - 1).map(lambda n: valid[:n]),
        st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 7)), min_size=1, max_size=6).map(flip),
        st.binary(max_size=256),
        st.binary(min_size=1, max_size=64).map(lambda extra: valid + extra),
    )


def test_an_error_naming_text_with_line_breaks_is_still_one_line(tmp_path, capsys):
    """A path or a file's content may hold line breaks; AekitError makes them spaces, so the CLI's error stays one
    line (fuzzed loaders below need only check that a refusal says something)."""
    assert str(AekitError("first\nsecond\r\n  third\tfourth")) == "first second third fourth"
    bad = tmp_path / "two\nlines.csv"
    bad.write_text("a,b\n1,x\n")
    code = cli_main(["data", "info", str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "two lines.csv" in err, err


def loads_or_refuses(load) -> None:
    """The only acceptable outcomes for damaged input: a result, or an AekitError (never another exception)."""
    try:
        load()
    except AekitError as e:
        assert str(e).strip(), "a refusal says what is wrong"


def _images() -> np.ndarray:
    return (np.arange(5 * 6 * 7) % 251).astype(np.uint8).reshape(5, 6, 7)


def _npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, _images())
    return buf.getvalue()


def _npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=_images(), y=np.arange(5))
    return buf.getvalue()


def _png(kind: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_images()[0]).save(buf, kind)
    return buf.getvalue()


CSV = b"a,b,label\n0.5,1,x\n2,3.25,y\n4,5,x\n6,7,y\n"


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("data.idx", idx_bytes(_images())),
        ("data-idx3-ubyte.gz", gzip.compress(idx_bytes(_images()), mtime=0)),
        ("data.npy", _npy()),
        ("data.npz", _npz()),
        ("data.csv", CSV),
    ],
)
def test_damaged_data_files_load_or_fail_cleanly(name, valid):
    @FUZZ
    @given(damaged(valid))
    def check(data):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_bytes(data)
            loads_or_refuses(lambda: datasets.load(path, label_column="label" if name.endswith("csv") else None))

    check()


@pytest.mark.parametrize("kind", ["PNG", "JPEG", "BMP"])
def test_damaged_images_load_or_fail_cleanly(kind):
    valid = _png(kind)

    @FUZZ
    @given(damaged(valid))
    def check(data):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / f"a.{kind.lower()}").write_bytes(valid)
            (folder / f"b.{kind.lower()}").write_bytes(data)
            loads_or_refuses(lambda: datasets.load(folder))

    check()


@pytest.mark.parametrize("member", ["config.json", "model.safetensors"])
def test_damaged_run_folders_load_or_fail_cleanly(digits_run_dir, member):
    valid = (digits_run_dir / member).read_bytes()

    @FUZZ
    @given(damaged(valid))
    def check(data):
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = Path(tmp) / "run"
            run_dir.mkdir()
            for name in ("config.json", "model.safetensors"):
                (run_dir / name).write_bytes(data if name == member else (digits_run_dir / name).read_bytes())
            loads_or_refuses(lambda: aekit.Run.open(run_dir).model.reconstruct(torch.rand(2, 1, 8, 8)))

    check()


@FUZZ
@given(st.data())
def test_config_json_values_are_validated(digits_run_dir, data):
    config = json.loads((digits_run_dir / "config.json").read_text())
    section = data.draw(st.sampled_from(["model", "train", "data"]))
    key = data.draw(st.sampled_from(sorted(config[section]) + ["no_such_option"]))
    value = data.draw(st.one_of(st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(), st.text()))
    config[section][key] = value
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        (run_dir / "config.json").write_text(json.dumps(config))
        (run_dir / "model.safetensors").write_bytes((digits_run_dir / "model.safetensors").read_bytes())
        loads_or_refuses(lambda: aekit.Run.open(run_dir))


def test_damaged_aez_files_are_refused(digits_run):
    x = datasets.load("digits").test.floats()[:20]
    valid = aekit.compress(digits_run, x, bits=6)

    @FUZZ
    @given(damaged(valid))
    def check(data):
        if data == valid:
            return
        with pytest.raises(AekitError):  # the CRC-32 catches any change a loader could act on
            aekit.decompress(data, digits_run)

    check()


# ---------------------------------------------------------------- crafted bombs: bounded memory and time

BOMBS = r"""
import io, os, struct, sys, time, zipfile, zlib
from pathlib import Path
import numpy as np
import numpy.lib.format as fmt
import aekit
from aekit.runfiles import read_tensors

tmp = Path(sys.argv[1])
run = aekit.Run.open(sys.argv[2])
cases = {}

def case(name):
    def wrap(f):
        cases[name] = f
        return f
    return wrap

@case("IDX header claiming 2**96 bytes")
def _():
    (tmp / "big-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1))
    aekit.data.load(tmp / "big-idx3-ubyte")

def declared_png(width, height):
    # a PNG whose valid header declares width x height pixels, with a few bytes of data
    from PIL import Image
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # a valid IHDR: only the size is absurd
    return bytes(data)

@case("PNG declaring 100000 x 100000 pixels")
def _():
    folder = tmp / "png"
    folder.mkdir()
    (folder / "big.png").write_bytes(declared_png(100000, 100000))
    aekit.data.load(folder)

@case("20 PNGs declaring 8000 x 8000 pixels (each under the per-image limit)")
def _():
    folder = tmp / "pngs"
    folder.mkdir()
    for i in range(20):
        (folder / f"{i}.png").write_bytes(declared_png(8000, 8000))
    aekit.data.load(folder)  # refused from the headers, before one image is decoded

@case("npz zip bomb: 600 MB of zeros in 0.6 MB")
def _():
    with zipfile.ZipFile(tmp / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("x.npy", "w", force_zip64=True) as f:
            fmt.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": (600 << 20,)})
            for _ in range(600 >> 4):
                f.write(bytes(16 << 20))
    aekit.data.load(tmp / "bomb.npz")

@case("npz member whose header claims 10**10 items")
def _():
    buf = io.BytesIO()
    fmt.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": (10**10,)})
    with zipfile.ZipFile(tmp / "lie.npz", "w") as z:
        z.writestr("x.npy", buf.getvalue() + bytes(10))
    aekit.data.load(tmp / "lie.npz")

@case("npy header claiming 10**12 items")
def _():
    buf = io.BytesIO()
    fmt.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    (tmp / "lie.npy").write_bytes(buf.getvalue() + bytes(64))
    aekit.data.load(tmp / "lie.npy")

@case("safetensors header length of 2**40 bytes")
def _():
    head = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    (tmp / "h.safetensors").write_bytes(struct.pack("<Q", 2**40) + head)
    read_tensors(tmp / "h.safetensors")

@case("safetensors tensor claiming 400 GB")
def _():
    head = b'{"a":{"dtype":"F32","shape":[100000000000],"data_offsets":[0,400000000000]}}'
    (tmp / "t.safetensors").write_bytes(struct.pack("<Q", len(head)) + head + bytes(8))
    read_tensors(tmp / "t.safetensors")

def aez_claiming(items):
    from aekit.codec.aez import FITTED, MAGIC, U32
    import json
    x = aekit.data.load("digits").test.floats()[:5]
    blob = aekit.compress(run, x, bits=4)
    parts, pos = [], 5
    for _ in range(3):
        (n,) = U32.unpack_from(blob, pos)
        parts.append(blob[pos + 4 : pos + 4 + n])
        pos += 4 + n
    header = json.loads(parts[0])
    header["items"] = items
    parts[0] = json.dumps(header).encode()
    body = MAGIC + bytes([FITTED]) + b"".join(U32.pack(len(p)) + p for p in parts)
    aekit.decompress(body + U32.pack(zlib.crc32(body)), run)

@case(".aez claiming 10**9 items (over the load limit)")
def _():
    aez_claiming(10**9)

@case(".aez claiming 10**5 items in a 5-item stream (hours of decoding)")
def _():
    aez_claiming(10**5)

for name, make in cases.items():
    start = time.perf_counter()
    try:
        make()
    except aekit.AekitError as e:
        print(f"{name}\t{time.perf_counter() - start:.2f}\t{e}")
    else:
        print(f"{name}\tLOADED")
from aekit.limits import peak_memory_mb
print("peak_rss_mb", int(peak_memory_mb()))
"""


def test_crafted_bombs_end_in_clean_errors_with_bounded_memory_and_time(tmp_path, digits_run_dir):
    script = tmp_path / "bombs.py"
    script.write_text(BOMBS)
    env_limit = str(256 << 20)  # the load limit for this run: 256 MB
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(digits_run_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "AEKIT_MAX_LOAD_BYTES": env_limit},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    results = [line.split("\t") for line in lines[:-1]]
    assert len(results) == 10
    for name, seconds, *message in results:
        assert seconds != "LOADED", name
        assert message and message[0].strip(), name  # the error says what is wrong
        assert float(seconds) < 10, (name, seconds)
        assert "20 PNGs" not in name or "20 images of 8000x8000x1 needs" in message[0]
    peak = int(lines[-1].split()[1])
    assert peak < 1024, f"peak resident memory {peak} MB"  # torch and numpy themselves take ~300 MB


# ---------------------------------------------------------------- outputs: never clobbered without --force


def _file_of_kind(suffix: str) -> bytes:
    """Bytes of a small real file of the output kind with that suffix (what --force may replace)."""
    buf = io.BytesIO()
    if suffix == ".png":
        Image.new("L", (2, 2)).save(buf, "PNG")
    elif suffix == ".npy":
        np.save(buf, np.zeros(3))
    elif suffix == ".npz":
        np.savez(buf, x=np.zeros(3))
    elif suffix == ".aez":
        buf.write(b"AEKZ\x01 an older file")
    else:
        buf.write(b"index,score,flagged\n0,1.5,0\n")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("verb", "name"),
    [
        (["reconstruct", "{run}", "-n", "4"], "fig.png"),
        (["compress", "{run}", "digits", "--split", "test"], "codes.aez"),
        (["features", "{run}", "digits"], "codes.npy"),
        (["denoise", "{run}", "digits", "--split", "test"], "clean.npz"),
        (["generate", "{run}", "-n", "4"], "samples.png"),
        (["anomaly", "{run}", "digits", "--split", "test"], "scores.csv"),
        (["latent", "{run}", "digits", "--split", "test"], "map.png"),
    ],
)
def test_no_verb_overwrites_an_existing_output_without_force(tmp_path, digits_run_dir, capsys, verb, name):
    out = tmp_path / name
    precious = _file_of_kind(out.suffix)  # the user's own file of the output's kind
    out.write_bytes(precious)
    args = [a.format(run=digits_run_dir) for a in verb] + ["-o", str(out)]
    assert cli_main(args) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert cli_main([*args, "--force"]) == 2  # --force replaces what aekit wrote, not what merely looks like it
    assert "is not a file aekit wrote" in capsys.readouterr().err
    assert out.read_bytes() == precious
    out.unlink()
    assert cli_main(args) == 0
    assert cli_main(args) == 2 and "exists; pass --force" in capsys.readouterr().err
    assert cli_main([*args, "--force"]) == 0  # its own output: replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST, name]  # no temporary files left beside it
    out.write_bytes(out.read_bytes() + b"\0")  # changed since aekit wrote it: the user's now
    assert cli_main([*args, "--force"]) == 2
    assert "is not a file aekit wrote (or it changed since)" in capsys.readouterr().err
    assert out.read_bytes().endswith(b"\0")
