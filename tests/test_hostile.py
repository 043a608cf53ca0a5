"""Hostile and careless input, case by case. Each promise: a one-line error naming the user's path
with exit status 2 (AekitError in Python), or the correct output; nothing lost, nothing half-written."""

import dataclasses
import errno
import io
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import load_file, save_file
from safetensors.torch import save as safetensors_bytes

import aekit
from aekit import AekitError, datasets, disk, progress
from aekit.apps.compress import compress_file
from aekit.codec.aez import FITTED, MAGIC, MAX_BITS, U32, parse
from aekit.config import DataConfig, TrainConfig
from aekit.data.splits import Splits
from aekit.disk import MANIFEST
from aekit.folder import RunFolder, SaveRun
from aekit.lock import FolderLock
from aekit.outputs import OutputPath
from aekit.run import make_config
from aekit.runfiles import CHECKPOINT, CONFIG, WEIGHTS, read_tensors
from aekit.trainer import Trainer
from conftest import FUZZ, fails, fork_cli, reap, run_cli, start_cli, succeeds

SMALL = {"hidden": [16], "latent_dim": 4, "batch_size": 64, "quiet": True, "device": "cpu"}


@pytest.fixture(scope="module")
def runs(shared_runs) -> dict[str, Path]:
    """Small digits runs of three types, for the tests that only read them."""
    return {m: shared_runs("digits", m, epochs=2, **SMALL) for m in ("ae", "dae", "vae")}


def copy_run(run: Path, where: Path) -> Path:
    shutil.copytree(run, where)
    return where


def hidden_files(folder: Path) -> list[str]:
    """The hidden entries of folder but the manifest of what aekit wrote there (temporaries, say)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name != MANIFEST)


# ---------------------------------------------------------------- the two defects that lost data


def test_a_fresh_run_whose_weights_file_starts_with_0x80_loads(tmp_path, capsys):
    run = aekit.train("digits", "sae", out=tmp_path / "S", epochs=1, hidden=[16], latent_dim=6, quiet=True)
    head = (run.path / WEIGHTS).read_bytes()[:8]
    assert head[0] == 0x80  # a header of 640 bytes: the byte a pickle starts with
    succeeds(capsys, ["evaluate", run.path])
    succeeds(capsys, ["reconstruct", run.path, "-o", tmp_path / "r.png"])
    succeeds(capsys, ["train", "--resume", run.path, "--epochs", "2", "--quiet"])
    torch.save({"w": torch.zeros(2)}, tmp_path / "S" / WEIGHTS)  # a real pickle is still named as one
    with pytest.raises(AekitError, match="is a pickle"):
        aekit.load(run.path)


def _header_length(path: Path) -> int:
    return struct.unpack("<Q", path.read_bytes()[:8])[0]


def test_safetensors_files_of_every_header_length_load(tmp_path):
    """Trained models whose weights and checkpoints cover every header length mod 256 the writer makes (it
    pads headers to 8 bytes), each loaded back; and valid files of all 256 lengths mod 256, unpadded."""
    tiny = Splits(datasets.load("digits").test.subset(torch.arange(4)), None)
    config = TrainConfig(epochs=1, batch_size=4, device="cpu")
    rng = random.Random(0)

    def random_model():
        options = {"hidden": [rng.randint(1, 300) for _ in range(rng.randint(1, 4))], "latent_dim": rng.randint(4, 40)}
        return rng.choice(["ae", "dae", "sae", "vae"]), options

    # Models for the weights files, chosen by the length of their header (computed in memory, no training)
    want_weights, chosen = set(range(0, 256, 8)), []
    while want_weights and len(chosen) < 400:
        name, options = random_model()
        state = aekit.create_model(name, (1, 8, 8), **options).state_dict()
        residue = struct.unpack("<Q", safetensors_bytes(state, metadata={"epoch": "1"})[:8])[0] % 256
        if residue in want_weights:
            want_weights.discard(residue)
            chosen.append((name, options))
    assert not want_weights, want_weights

    # Train each for real, then more random ones until the checkpoints cover every length too; load all
    seen = {WEIGHTS: set(), CHECKPOINT: set()}
    for attempt in range(1000):
        if seen[CHECKPOINT] == set(range(0, 256, 8)) and attempt >= len(chosen):
            break
        name, options = chosen[attempt] if attempt < len(chosen) else random_model()
        folder = tmp_path / f"m{attempt}"
        folder.mkdir()
        torch.manual_seed(0)
        net = aekit.create_model(name, (1, 8, 8), **options)
        Trainer(net, tiny, config, [SaveRun(RunFolder(folder, FolderLock(folder)))]).fit()
        (folder / CONFIG).write_text(json.dumps(make_config(net, config, DataConfig("digits"), tiny.train.scaling)))
        aekit.Run.open(folder)  # the weights load
        Trainer(aekit.create_model(name, (1, 8, 8), **options), tiny, config).load_checkpoint(folder / CHECKPOINT)
        for kind in seen:
            seen[kind].add(_header_length(folder / kind) % 256)
        shutil.rmtree(folder)
    assert seen[WEIGHTS] == seen[CHECKPOINT] == set(range(0, 256, 8)), seen

    # Every length mod 256, as another writer may make them (the format does not require padding)
    data = torch.arange(6, dtype=torch.float32)
    entry = {"w": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}, "__metadata__": {"epoch": "1"}}
    text = json.dumps(entry).encode()
    for pad in range(256):
        header = text + b" " * ((pad - len(text)) % 256)
        path = tmp_path / f"len{pad}.safetensors"
        path.write_bytes(struct.pack("<Q", len(header)) + header + data.numpy().tobytes())
        tensors, meta = read_tensors(path)
        assert torch.equal(tensors["w"], data) and meta == {"epoch": "1"} and len(header) % 256 == pad


@pytest.fixture(scope="module")
def aez(runs, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("aez") / "x.aez"
    compress_file(runs["ae"], "digits", path, bits=6, split="test")
    return path


def test_force_never_replaces_a_folder_aekit_did_not_write(tmp_path, runs, aez, capsys, monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    denoise = ["denoise", runs["dae"], "digits", "--split", "test"]
    for verb in (["decompress", aez], denoise):
        fails(capsys, [*verb, "-o", mine, "--force"], str(mine), "did not write")
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]

    # A folder aekit wrote is replaced, whole, with --force only; once the user adds a file, no more
    pngs = tmp_path / "pngs"
    succeeds(capsys, ["decompress", aez, "-o", pngs])
    assert len(list(pngs.glob("*.png"))) == 359 and (pngs / ".aekit-output").is_file()
    fails(capsys, [*denoise, "-o", pngs], "exists; pass --force")
    succeeds(capsys, [*denoise, "-o", pngs, "--force"])
    assert len(list(pngs.glob("*.png"))) == 359 and hidden_files(tmp_path) == []
    (pngs / "extra.txt").write_text("mine now")
    fails(capsys, ["decompress", aez, "-o", pngs, "--force"], "did not write")
    assert (pngs / "extra.txt").read_text() == "mine now"

    # Never the current folder or one above it, even one aekit wrote
    (pngs / "extra.txt").unlink()
    monkeypatch.chdir(pngs)
    fails(capsys, ["decompress", aez, "-o", ".", "--force"], "current folder")
    fails(capsys, ["decompress", aez, "-o", "..", "--force"], "current folder")
    assert len(list(pngs.glob("*.png"))) == 359

    # Never a run folder, trained or training (locked)
    run = copy_run(runs["ae"], tmp_path / "run")
    with FolderLock(run):
        fails(capsys, ["decompress", aez, "-o", run, "--force"], "did not write")
    fails(capsys, ["decompress", aez, "-o", run, "--force"], "did not write")
    aekit.Run.open(run)

    # A symbolic link is not replaced either (its target stays untouched)
    link = tmp_path / "link"
    link.symlink_to(pngs)
    fails(capsys, ["decompress", aez, "-o", link, "--force"], "symbolic link")
    assert link.is_symlink() and len(list(pngs.glob("*.png"))) == 359


def test_a_refused_output_leaves_no_other_output_behind(tmp_path, runs, capsys):
    out = tmp_path / "out"
    out.mkdir()
    dae = ["denoise", runs["dae"], "digits", "--split", "test", "--add-noise", "gaussian"]
    fails(capsys, [*dae, "-o", out / "clean.txt", "--figure", out / "f.png"], ".npy")
    fails(capsys, [*dae, "-o", out / "clean.npz", "--noisy-out", out / "noisy.txt", "--figure", out / "f.png"])
    fails(capsys, [*dae, "-o", out / "clean.npz", "--noisy-out", out / "n.npz", "--figure", out / "f.jpg"], "PNG")
    fails(capsys, [*dae, "-o", out / "same.npz", "--noisy-out", out / "same.npz"], "different files")
    anomaly = ["anomaly", runs["ae"], "digits", "--split", "test"]
    fails(capsys, [*anomaly, "-o", out / "s.csv", "--figure", out / "f.jpg"], "PNG")
    fails(capsys, ["compress", runs["ae"], "digits", "-o", out / "x.zip"], ".aez")
    assert list(out.iterdir()) == []


# ---------------------------------------------------------------- extreme options: one line, at once

HUGE_SEED = "1180591620717411303424"  # 2**70
EXTREME = {
    "train seed 2**70": (["train", "--data", "digits", "--seed", HUGE_SEED, "--out", "TMP/r"], ["seed"]),
    "generate seed 2**70": (["generate", "VAE", "--seed", HUGE_SEED, "-o", "TMP/g.png"], ["seed"]),
    "denoise seed 2**70": (
        ["denoise", "DAE", "digits", "--add-noise", "gaussian", "--seed", HUGE_SEED, "-o", "TMP/d.npz"],
        ["seed"],
    ),
    "latent dim 2**70": (["train", "--data", "digits", "--latent-dim", str(2**70), "--out", "TMP/r"], ["latent_dim"]),
    "latent dim 2**62": (["train", "--data", "digits", "--latent-dim", str(2**62), "--out", "TMP/r"], ["cannot be"]),
    "hidden 10**6,10**6": (["train", "--data", "digits", "--hidden", "1000000,1000000", "--out", "TMP/r"], ["fit"]),
    "batch of 10**9 huge items": (
        ["train", "--data", "digits", "--batch-size", "1000000000", "--hidden", "20000000", "--out", "TMP/r"],
        ["load limit"],
    ),
    "generate -n 10**12": (["generate", "VAE", "-n", str(10**12), "-o", "TMP/g.npz"], ["at most", "fit"]),
    "generate -n 10**8": (["generate", "AE", "-n", str(10**8), "-o", "TMP/g.npz"], ["at most", "fit"]),
    "generate -n 2000 as png": (["generate", "VAE", "-n", "2000", "-o", "TMP/g.png"], ["at most 1024"]),
    "interpolate 10**9 steps": (
        ["generate", "AE", "--interpolate", "0", "1", "--steps", str(10**9), "-o", "TMP/g.npz"],
        ["at most", "fit"],
    ),
    "nll-k 10**9": (["evaluate", "VAE", "--nll-k", str(10**9)], ["--nll-k", "100000"]),
    "temperature inf": (["generate", "VAE", "--temperature", "inf", "-o", "TMP/g.npz"], ["temperature"]),
    "temperature nan": (["generate", "VAE", "--temperature", "nan", "-o", "TMP/g.npz"], ["temperature"]),
    "temperature 1e308": (["generate", "VAE", "--temperature", "1e308", "-o", "TMP/g.npz"], ["temperature"]),
    "sigma inf": (
        ["denoise", "DAE", "digits", "--add-noise", "gaussian", "--sigma", "inf", "-o", "TMP/d.npz"],
        ["sigma"],
    ),
    "latent one item": None,  # not an error: a map of a single code
}


@pytest.mark.parametrize("name", [k for k, v in EXTREME.items() if v])
def test_extreme_options_are_one_line_at_once(name, tmp_path, runs, capsys):
    args, fragments = EXTREME[name]
    names = {"AE": runs["ae"], "DAE": runs["dae"], "VAE": runs["vae"]}
    args = [str(names.get(a, a)).replace("TMP", str(tmp_path)) for a in args]
    start = time.perf_counter()
    fails(capsys, args, *fragments)
    assert time.perf_counter() - start < 20
    assert list(tmp_path.iterdir()) == []


def test_a_latent_map_of_one_item(tmp_path, runs, capsys):
    succeeds(capsys, ["latent", runs["ae"], "digits", "--max-items", "1", "-o", tmp_path / "m.png"])
    assert Image.open(tmp_path / "m.png").size[0] > 100


def test_long_loops_work_in_chunks_and_show_progress_on_a_terminal(runs, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    x = aekit.generate(runs["vae"], n=5 * 1024 + 1, seed=3)
    assert x.shape == (5121, 1, 8, 8) and "generating" in terminal.getvalue()
    first = aekit.generate(runs["vae"], n=1024, seed=3)  # the chunks are one stream: a prefix is the same
    assert torch.equal(x[:1024], first)
    log = io.StringIO()  # no terminal: a line once a loop has run progress.INTERVAL seconds (here: at once)
    monkeypatch.setattr(sys, "stderr", log)
    monkeypatch.setattr(progress, "INTERVAL", 0.0)
    aekit.generate(runs["vae"], n=5 * 1024 + 1, seed=3)
    lines = log.getvalue().splitlines()
    assert len(lines) == 5 and lines[0].startswith("generating: 17% done") and lines[-1].startswith("generating: 83%")


@pytest.mark.parametrize(("key", "value"), [("latent_dim", 10**12), ("input_shape", [1, 100000, 100000])])
def test_a_config_asking_for_a_huge_model_is_refused_before_allocating(tmp_path, runs, key, value):
    run = copy_run(runs["ae"], tmp_path / "run")
    config = json.loads((run / CONFIG).read_text())
    config["model"][key] = value
    (run / CONFIG).write_text(json.dumps(config))
    with pytest.raises(AekitError, match=f"{run / CONFIG}: the ae model of .* weights needs .*load limit"):
        aekit.Run.open(run)


def test_small_images_that_decode_large_are_refused_by_the_model_size(tmp_path, monkeypatch):
    folder = tmp_path / "big"
    folder.mkdir()
    for i in range(3):
        Image.new("L", (3000, 3000), color=i).save(folder / f"{i}.png")  # 9 MP each, a few KB on disk
    monkeypatch.setenv("AEKIT_MAX_LOAD_BYTES", str(1 << 30))
    with pytest.raises(
        AekitError, match="the ae model of 2,313,008,480 weights needs 9.3 GB, over the 1.1 GB load limit"
    ):
        aekit.train(folder, "ae", out=tmp_path / "r", hidden=[128], quiet=True)
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------- crafted .aez files


def craft_aez(valid: bytes, header=None, freqs: bytes | None = None, raw_header=None, stream: bytes | None = None):
    """valid's .aez bytes with its header changed (keys of header set, or replaced by raw_header), its
    frequency tables or coded stream replaced, the CRC made right again: only the checks behind the CRC stand
    between it and the decoder."""
    parts, pos = [], 5
    for _ in range(3):
        (n,) = U32.unpack_from(valid, pos)
        parts.append(valid[pos + 4 : pos + 4 + n])
        pos += 4 + n
    if header is not None:
        parts[0] = json.dumps({**json.loads(parts[0]), **header}).encode()
    if raw_header is not None:
        parts[0] = raw_header
    if freqs is not None:
        parts[1] = zlib.compress(freqs)
    if stream is not None:
        parts[2] = stream
    body = MAGIC + bytes([FITTED]) + b"".join(U32.pack(len(p)) + p for p in parts)
    return body + U32.pack(zlib.crc32(body))


@pytest.fixture(scope="module")
def small_aez(runs) -> bytes:
    return aekit.compress(runs["ae"], datasets.load("digits").test.floats()[:5], bits=4)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"run": 5}, "header.run: expected a string"),
        ({"run": None}, "header.run: expected a string"),
        ({"run": []}, "header.run: expected a string"),
        ({"run": {}}, "header.run: expected a string"),
        ({"scaling": {"lo": [0.0] * 3, "hi": [1.0] * 3}}, "scaling of 3 features"),
        ({"scaling": {"lo": [0.0] * 64, "hi": [1.0] * 64}}, "scaling of 64 features"),
        ({"scaling": {"lo": 1.0, "hi": 1.0}}, "empty or reversed"),
        ({"lo": [3.5e38] * 4}, "beyond float32"),
        ({"step": [3e38] * 4}, "beyond float32"),
        ({"step": [0.0] * 4}, "step <= 0"),
        ({"lo": [0.0] * 3}, "lo and step must hold latent_dim"),
        ({"items": -1}, "items"),
        ({"items": 10**30}, "out of range"),
        ({"bits": 13}, "bits"),
        ({"item_shape": [1, 0, 8]}, "item_shape"),
        ({"coder": "zip"}, "coder"),
        ({"model_sha256": 7}, "model_sha256"),
        ({"extra": 1}, "unknown option 'extra'"),
    ],
)
def test_crafted_aez_headers_are_refused(runs, small_aez, change, fragment):
    with pytest.raises(AekitError, match=fragment.replace("(", "\\(")) as refused:
        aekit.decompress(craft_aez(small_aez, change), runs["ae"])
    assert str(refused.value).startswith("the .aez file's header"), refused.value  # names what is wrong


def test_header_fields_are_checked_at_their_limits(small_aez):
    """Each checked field of a version 1 header, at the last value it takes and the first it refuses."""
    header = parse(small_aez)[1]
    cases = [
        ({"latent_dim": 1, "lo": (0.0,), "step": (1.0,)}, None),
        ({"latent_dim": 0, "lo": (), "step": ()}, "latent_dim must be at least 1"),
        ({"bits": 1}, None),
        ({"bits": MAX_BITS}, None),
        ({"bits": 0}, "bits must be between 1 and 12, got 0"),
        ({"bits": MAX_BITS + 1}, "bits must be between 1 and 12, got 13"),
        ({"items": 1}, None),
        ({"items": 0}, "items must be at least 1"),
        ({"coder": "huffman"}, "unknown coder 'huffman'"),
        ({"coder": "x" * 30}, f"unknown coder '{'x' * 20}'"),  # a name cut to 20 characters
        ({"lo": (3e38,) * header.latent_dim, "step": (1e37,) * header.latent_dim}, "lo and step give code values"),
        (
            {"step": (1.0,) * (header.latent_dim - 1) + (0.0,)},
            "lo and step give code values beyond float32 (or a step <= 0)",
        ),
        ({"lo": (1e39,) * header.latent_dim}, "lo and step give code values beyond float32"),
    ]
    d, top = header.latent_dim, (1 << header.bits) - 1  # the highest code level
    big = float(np.finfo(np.float32).max)
    cases += [  # the highest code value, lo + step * top, at float32's limit and just past it
        ({"lo": (big,) * d, "step": (1e20,) * d}, None),  # lo + step == big in float64: allowed
        ({"lo": (0.0,) * d, "step": (big / top * (1 - 1e-12),) * d}, None),
        ({"lo": (0.0,) * d, "step": (big / (top - 0.5),) * d}, "lo and step give code values"),
    ]
    for change, refusal in cases:
        if refusal is None:
            dataclasses.replace(header, **change)
        else:
            with pytest.raises(AekitError, match=re.escape(f"the .aez file's header: {refusal}")):
                dataclasses.replace(header, **change)


def test_a_header_missing_a_field_or_nested_deep_is_refused(runs, small_aez):
    header = json.loads(craft_aez(small_aez)[9 : 9 + U32.unpack_from(small_aez, 5)[0]])
    del header["run"]
    with pytest.raises(AekitError, match="missing 'run'"):
        aekit.decompress(craft_aez(small_aez, raw_header=json.dumps(header).encode()), runs["ae"])
    for deep in (b"[" * 100000, b"[" * 40 + b"]" * 40):
        with pytest.raises(AekitError, match="nested deeper than 32"):
            aekit.decompress(craft_aez(small_aez, raw_header=deep), runs["ae"])


def test_scaling_that_overflows_the_output_writes_nothing(tmp_path, runs, small_aez, capsys):
    crafted = tmp_path / "c.aez"
    crafted.write_bytes(craft_aez(small_aez, {"scaling": {"lo": 0.0, "hi": 1e308}}))
    fails(capsys, ["decompress", crafted, "-o", tmp_path / "x.npz", "--run", runs["ae"]], "NaN or infinite")
    crafted.write_bytes(craft_aez(small_aez, {"scaling": {"lo": -1e308, "hi": 1e308}}))
    fails(capsys, ["decompress", crafted, "-o", tmp_path / "x.npz", "--run", runs["ae"]], "wider than a float")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.aez"]


def test_a_table_that_makes_every_symbol_free_cannot_make_a_decompression_bomb(runs, small_aez, monkeypatch):
    """One symbol with all 2**15 of a table costs 0 bits: a tiny file could claim any number of items. The
    items are bounded by the load limit, and such dimensions are filled without running the coder."""
    free = np.zeros((4, 16), "<u2")
    free[:, 3] = 1 << 15
    state = (1 << 23).to_bytes(4, "big")  # the coder's end state: a stream of free symbols only
    bomb = craft_aez(small_aez, {"items": 10**7}, freqs=free.tobytes(), stream=state)
    monkeypatch.setenv("AEKIT_MAX_LOAD_BYTES", str(256 << 20))
    start = time.perf_counter()
    with pytest.raises(AekitError, match="decoding 10,000,000 items .* load limit"):
        aekit.decompress(bomb, runs["ae"])
    small = craft_aez(
        small_aez, {"items": 10**5}, freqs=free.tobytes(), stream=state
    )  # under the limit: quick and right
    x, header = aekit.decompress(small, runs["ae"])
    assert header["items"] == 10**5 and x.shape == (10**5, 1, 8, 8) and torch.equal(x[0], x[-1])
    assert time.perf_counter() - start < 20


# ---------------------------------------------------------------- JSON nested deeper than any reader should go

DEEP = ["[" * 100000, "[" * 40 + "]" * 40, '{"a":' * 50 + "1" + "}" * 50]


@pytest.mark.parametrize("text", DEEP, ids=["unclosed 100000", "closed 40", "objects 50"])
def test_deep_json_is_one_line_in_every_reader(tmp_path, runs, capsys, text):
    for member in ("config.json", "metrics.json"):
        run = copy_run(runs["ae"], tmp_path / member)
        (run / member).write_text(text)
        with pytest.raises(AekitError, match=f"{run / member}: nested deeper than 32"):
            aekit.Run.open(run)
    (tmp_path / "c.json").write_text(text)
    fails(capsys, ["train", "--config", tmp_path / "c.json", "--out", tmp_path / "r"], "nested deeper than 32")
    run = copy_run(runs["ae"], tmp_path / "ckpt")
    tensors, meta = read_tensors(run / CHECKPOINT)
    save_file(tensors, run / CHECKPOINT, {**meta, "history": text})
    fails(capsys, ["train", "--resume", run, "--epochs", "3"], "history: nested deeper than 32")


# ---------------------------------------------------------------- tampered checkpoints


def _tamper(tensors: dict, meta: dict, case: str) -> None:
    if case == "history a string":
        meta["history"] = json.dumps("oops")
    elif case == "history a record short":
        meta["history"] = json.dumps(json.loads(meta["history"])[:1])
    elif case == "history of strings":
        meta["history"] = json.dumps([{"epoch": 1, "loss": "x"}, {"epoch": 2, "loss": 1.0}])
    elif case == "rng.order missing":
        del tensors["rng.order"]
    elif case == "rng.order float":
        tensors["rng.order"] = tensors["rng.order"].float()
    elif case == "rng.torch of 5 bytes":
        tensors["rng.torch"] = torch.zeros(5, dtype=torch.uint8)
    elif case == "rng.torch garbage":
        tensors["rng.torch"] = torch.full_like(tensors["rng.torch"], 255)
    elif case == "scheduler {}":
        meta["scheduler"] = "{}"
    elif case == "scheduler at another step":
        scheduler = json.loads(meta["scheduler"])
        meta["scheduler"] = json.dumps({**scheduler, "last_epoch": 3})
    elif case == "optim_scalars a list":
        meta["optim_scalars"] = "[]"
    elif case == "optim_scalars strings":
        meta["optim_scalars"] = json.dumps({"0": {"step": "x"}})
    elif case == "param_groups a number":
        meta["param_groups"] = "7"
    elif case == "param_groups other params":
        groups = json.loads(meta["param_groups"])
        meta["param_groups"] = json.dumps([{**groups[0], "params": [9, 8]}])
    elif case == "optim.x.exp_avg":
        tensors["optim.x.exp_avg"] = torch.zeros(1)
    elif case == "optim.0":
        tensors["optim.0"] = torch.zeros(1)
    elif case == "optim.99.exp_avg":
        tensors["optim.99.exp_avg"] = torch.zeros(1)
    elif case == "exp_avg of the wrong shape":
        tensors["optim.0.exp_avg"] = torch.zeros(3)
    elif case == "exp_avg NaN":
        tensors["optim.0.exp_avg"] = torch.full_like(tensors["optim.0.exp_avg"], float("nan"))
    elif case == "exp_avg_sq negative":
        tensors["optim.0.exp_avg_sq"] = -torch.ones_like(tensors["optim.0.exp_avg_sq"])
    elif case == "step missing":
        del tensors["optim.1.step"]
    elif case == "model weight NaN":
        name = next(k for k in tensors if k.startswith("model."))
        tensors[name] = torch.full_like(tensors[name], float("nan"))
    elif case == "unknown tensor":
        tensors["notes"] = torch.zeros(1)
    elif case == "epoch -5":
        meta["epoch"] = "-5"
    elif case == "epoch 7":
        meta["epoch"] = "7"
    elif case == "epoch 2.0":
        meta["epoch"] = "2.0"
    elif case == "metadata missing":
        del meta["scheduler"]
    else:  # pragma: no cover
        raise ValueError(case)


TAMPERED = [
    "history a string",
    "history a record short",
    "history of strings",
    "rng.order missing",
    "rng.order float",
    "rng.torch of 5 bytes",
    "rng.torch garbage",
    "scheduler {}",
    "scheduler at another step",
    "optim_scalars a list",
    "optim_scalars strings",
    "param_groups a number",
    "param_groups other params",
    "optim.x.exp_avg",
    "optim.0",
    "optim.99.exp_avg",
    "exp_avg of the wrong shape",
    "exp_avg NaN",
    "exp_avg_sq negative",
    "step missing",
    "model weight NaN",
    "unknown tensor",
    "epoch -5",
    "epoch 7",
    "epoch 2.0",
    "metadata missing",
]


@pytest.mark.parametrize("case", TAMPERED)
def test_a_tampered_checkpoint_is_refused_before_resuming(tmp_path, runs, capsys, case):
    run = copy_run(runs["ae"], tmp_path / "run")
    tensors, meta = read_tensors(run / CHECKPOINT)
    _tamper(tensors, meta, case)
    save_file(tensors, run / CHECKPOINT, meta)
    before = (run / WEIGHTS).read_bytes()
    err = fails(capsys, ["train", "--resume", run, "--epochs", "3"], str(run / CHECKPOINT))
    assert "lr" not in err.split(str(run / CHECKPOINT))[1][:40] or "lr" in case  # not blamed on the learning rate
    assert (run / WEIGHTS).read_bytes() == before


def test_an_untampered_checkpoint_resumes(tmp_path, runs, capsys):
    run = copy_run(runs["ae"], tmp_path / "run")
    tensors, meta = read_tensors(run / CHECKPOINT)
    save_file(tensors, run / CHECKPOINT, meta)  # rewritten, unchanged: the control for the cases above
    succeeds(capsys, ["train", "--resume", run, "--epochs", "3", "--quiet"])
    assert len(aekit.Run.open(run).metrics["history"]) == 3


# ---------------------------------------------------------------- damaged weights: refused, nothing written


@pytest.fixture(scope="module")
def nan_runs(runs, tmp_path_factory) -> dict[str, Path]:
    """Copies of the runs with one weight NaN (a disk error, a diverged run saved by another tool)."""
    root = tmp_path_factory.mktemp("nan-runs")
    out = {}
    for name, run in runs.items():
        out[name] = copy_run(run, root / name)
        weights = load_file(out[name] / WEIGHTS)
        weights["encoder.1.0.weight"][0, 0] = float("nan")
        save_file(weights, out[name] / WEIGHTS, {"epoch": "2"})
    return out


NAN_VERBS = [
    ["evaluate", "AE"],
    ["evaluate", "VAE", "--nll-k", "10"],
    ["latent", "AE", "digits", "-o", "TMP/m.png"],
    ["generate", "AE", "-o", "TMP/g.png"],
    ["generate", "VAE", "-o", "TMP/g.npz"],
    ["features", "AE", "digits", "-o", "TMP/f.npy"],
    ["anomaly", "AE", "digits", "-o", "TMP/s.csv"],
    ["denoise", "DAE", "digits", "-o", "TMP/d.npz"],
    ["reconstruct", "AE", "-o", "TMP/r.png"],
    ["compress", "AE", "digits", "-o", "TMP/c.aez"],
    ["train", "--resume", "AE", "--epochs", "3"],
]


@pytest.mark.parametrize("verb", NAN_VERBS, ids=lambda v: " ".join(v[:2]))
def test_nan_weights_are_refused_by_every_verb(tmp_path, nan_runs, capsys, verb):
    names = {"AE": nan_runs["ae"], "DAE": nan_runs["dae"], "VAE": nan_runs["vae"]}
    args = [str(names.get(a, a)).replace("TMP", str(tmp_path)) for a in verb]
    fails(capsys, args, "encoder.1.0.weight holds NaN or infinite values")
    assert list(tmp_path.iterdir()) == []


def test_outputs_that_overflow_are_refused_not_written(tmp_path, runs, capsys, monkeypatch):
    """Finite weights can still make non-finite outputs (codes far outside what the model saw): what the
    model gives is checked before anything is written."""
    from aekit.models.base import Autoencoder

    inf = float("inf")
    monkeypatch.setattr(Autoencoder, "decode", lambda self, z: torch.full((len(z), 1, 8, 8), inf))
    fails(capsys, ["generate", runs["ae"], "-o", tmp_path / "g.npz"], "model's outputs hold NaN or infinite")
    monkeypatch.setattr(Autoencoder, "encode", lambda self, x: torch.full((len(x), 4), inf))
    fails(capsys, ["features", runs["ae"], "digits", "-o", tmp_path / "f.npy"], "codes for this input hold NaN")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- data and config values out of range


def test_values_too_wide_for_a_float_are_refused(tmp_path, capsys):
    rows = "\n".join(f"{i},{1e308 if i % 2 else -1e308},{i % 3}" for i in range(20))
    (tmp_path / "wide.csv").write_text("a,b,c\n" + rows + "\n")
    x = np.zeros((20, 3))
    x[::2, 1], x[1::2, 1] = 1e308, -1e308
    np.save(tmp_path / "wide.npy", x)
    for name in ("wide.csv", "wide.npy"):
        fails(capsys, ["data", "info", tmp_path / name], name, "feature 1", "wider than a float")
        fails(capsys, ["train", "--data", tmp_path / name, "--out", tmp_path / "r"], "wider than a float")
    assert not (tmp_path / "r").exists() and hidden_files(tmp_path) == []


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [(["--size", "4,4"], "--size"), (["--label-column", "foo"], "--label-column")],
)
def test_data_options_a_builtin_cannot_take_are_refused(tmp_path, capsys, flags, fragment):
    fails(capsys, ["train", "--data", "digits", *flags, "--out", tmp_path / "r"], fragment, "digits")
    fails(capsys, ["data", "info", "digits", *flags], fragment)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"scaling": {"lo": 1.0, "hi": 0.0}}, "empty or reversed"),
        ({"scaling": {"lo": 1.0, "hi": 1.0}}, "empty or reversed"),
        ({"scaling": {"lo": -1e308, "hi": 1e308}}, "wider than a float"),
        ({"aekit_version": 7}, "aekit_version must be a version string"),
        ({"aekit_version": "7"}, "aekit_version must be a version string"),
        ({"aekit_version": "9.0.0"}, "newer than this aekit"),
        ({"train": {"epochs": 2**70}}, "out of range"),
        ({"train": {"seed": -1}}, "seed"),
    ],
)
def test_config_json_values_out_of_range_are_refused(tmp_path, runs, change, fragment):
    run = copy_run(runs["ae"], tmp_path / "run")
    config = json.loads((run / CONFIG).read_text())
    for key, value in change.items():
        config[key] = {**config[key], **value} if key == "train" else value
    (run / CONFIG).write_text(json.dumps(config))
    with pytest.raises(AekitError, match=fragment):
        aekit.Run.open(run)


# ---------------------------------------------------------------- memory: sized before it is allocated

TABLES = r"""
import sys, time
from pathlib import Path
import numpy as np
import aekit
from aekit.limits import peak_memory_mb

tmp = Path(sys.argv[1])
rows = np.random.default_rng(0).random((200000, 8))
np.savetxt(tmp / "table.csv", rows, fmt="%.6f", delimiter=",")  # 14 MB
np.savetxt(tmp / "long.csv", np.tile(rows, (10, 1)), fmt="%.6f", delimiter=",")  # 140 MB
aekit.data.load("digits")  # everything imported and warmed up: the baseline
for name in ("table.csv", "long.csv"):
    base = peak_memory_mb()
    start = time.perf_counter()
    try:
        train, test = aekit.data.load(tmp / name)
        result = len(train) + len(test)
    except aekit.AekitError as e:
        result = e
    grown = peak_memory_mb() - base
    print(f"{name}\t{time.perf_counter() - start:.2f}\t{grown:.0f}\t{result}")
"""


@pytest.mark.slow
def test_tables_are_sized_before_they_are_read_and_parsed_into_one_array(tmp_path):
    """(Images: the crafted-bombs test of test_reliability.py, 20 PNGs declaring 8000 x 8000.)"""
    script = tmp_path / "tables.py"
    script.write_text(TABLES)
    limit = 64 << 20
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "AEKIT_MAX_LOAD_BYTES": str(limit)},
    )
    assert done.returncode == 0, done.stderr
    results = {line.split("\t")[0]: line.split("\t")[1:] for line in done.stdout.strip().splitlines()}
    seconds, grown, items = results["table.csv"]
    assert items == "200000" and float(grown) < limit / 2**20  # one array, never lists of strings
    seconds, grown, message = results["long.csv"]
    assert "2000001 rows and 8 columns needs" in message and "load limit" in message
    assert float(seconds) < 5 and float(grown) < 20  # refused from its line count, before parsing


# ---------------------------------------------------------------- races, kills and interrupts


def test_two_writers_of_one_output_cannot_both_win(tmp_path):
    first, second = (OutputPath(tmp_path / "x.aez", (".aez",)) for _ in range(2))  # both checked while it was free
    first.write_bytes(b"AEKZ first")
    with pytest.raises(AekitError, match="x.aez exists .it appeared while aekit was writing"):
        second.write_bytes(b"AEKZ second")
    folders = [OutputPath(tmp_path / "pngs", ("",)) for _ in range(2)]
    folders[0].write_folder(lambda f: (f / "0.png").write_bytes(b"first"))
    with pytest.raises(AekitError, match="pngs exists"):
        folders[1].write_folder(lambda f: (f / "0.png").write_bytes(b"second"))
    assert (tmp_path / "x.aez").read_bytes() == b"AEKZ first" and (tmp_path / "pngs" / "0.png").read_bytes() == b"first"
    assert hidden_files(tmp_path) == []


def test_two_compress_processes_racing_for_one_file(tmp_path, runs):
    args = ["compress", runs["ae"], "digits", "-o", tmp_path / "same.aez"]
    errs = [tmp_path.parent / f"{tmp_path.name}-err{k}" for k in range(2)]
    children = [fork_cli(*args, stderr=err) for err in errs]
    codes = [os.waitstatus_to_exitcode(reap(pid)) for pid in children]
    results = sorted(zip(codes, [err.read_text() for err in errs], strict=True))
    assert [code for code, _ in results] == [0, 2], results
    assert "same.aez exists" in results[1][1] and len(results[1][1].strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST, "same.aez"]


def _kill_at(point: str):
    """Make aekit.disk.POINT SIGKILL this process: just before (or, for exchange, just after) an output's rename."""
    original = getattr(disk, point)

    def killed(*args, **kwargs):
        if point == "exchange":
            original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    return lambda: setattr(disk, point, killed)


@pytest.mark.parametrize(
    ("verb", "output", "point"),
    [
        (["compress", "AE", "digits"], "x.aez", "publish"),
        (["features", "AE", "digits"], "f.npy", "publish"),
        (["denoise", "DAE", "digits", "--split", "test"], "pngs", "publish"),
        (["decompress", "AEZ", "--force"], "pngs", "exchange"),
        (
            ["train", "--data", "digits", "--hidden", "16", "--latent-dim", "4", "--epochs", "1", "--force"],
            "run",
            "exchange",
        ),
    ],
    ids=["compress", "features", "denoise to PNGs", "decompress --force", "train --force"],
)
def test_a_kill_at_the_last_moment_leaves_old_or_new_and_the_next_command_cleans_up(
    tmp_path, runs, aez, capsys, verb, output, point
):
    names = {"AE": runs["ae"], "DAE": runs["dae"], "AEZ": aez}
    args = [str(names.get(a, a)) for a in verb]
    out = tmp_path / output
    flag, quiet = ("--out", ["--quiet"]) if verb[0] == "train" else ("-o", [])
    if "--force" in args:  # something to replace: an earlier output of the same command
        succeeds(capsys, [*args, flag, out, *quiet])
        before = sorted(p.name for p in out.iterdir())
    status = reap(fork_cli(*args, flag, out, before=_kill_at(point)))
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    if point == "exchange":  # swapped: the new output is in place whole, the old one waits hidden
        assert out.exists() and hidden_files(tmp_path)
        if verb[0] == "train":
            aekit.Run.open(out)
    else:  # killed before the rename: no output, only a hidden temporary
        assert not out.exists() and hidden_files(tmp_path)
    succeeds(capsys, [*args, flag, out, *quiet])  # the next command writing there cleans what was left
    assert hidden_files(tmp_path) == [] and out.exists()
    if "--force" in args:
        assert sorted(p.name for p in out.iterdir()) == before


def test_ctrl_c_at_start_up_is_one_line_and_status_130(tmp_path):
    """Start-up imports PyTorch, scikit-learn and SciPy: an interrupt inside their imports can come out as
    another exception, and one that passed through a library's exec() made CPython kill itself with SIGINT
    at exit (status -2). Both are handled, at each of six moments of start-up (a fresh process each)."""
    for delay in (0.05, 0.2, 0.4, 0.6, 0.8, 1.0):
        proc = start_cli("train", "--data", "digits", "--epochs", "50", "--quiet", "--out", tmp_path / f"r{delay}")
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=120)[1].strip()
        assert proc.returncode == 130, (delay, proc.returncode, err)
        assert len(err.splitlines()) == 1 and err.startswith("aekit: interrupted"), (delay, err)
        assert hidden_files(tmp_path) == [], delay


def test_a_full_disk_is_one_line_naming_the_output_and_leaves_nothing(tmp_path, runs, aez, capsys, monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", no_space)
        fails(capsys, ["features", runs["ae"], "digits", "-o", tmp_path / "f.npy"], "f.npy: cannot write (No space")
    with monkeypatch.context() as patch:
        patch.setattr(Image.Image, "save", no_space)
        fails(capsys, ["decompress", aez, "-o", tmp_path / "pngs"], "pngs: cannot write (No space left on device)")
    assert list(tmp_path.iterdir()) == []


def _child_with_rank(parent: int, rank: int) -> int | None:
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if f"PPid:\t{parent}\n" in status and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks' processes through /proc")
def test_a_killed_process_of_a_multi_process_job_is_one_line(tmp_path):
    out = tmp_path / "ddp"
    args = ["train", "--data", "digits", "--hidden", "16", "--latent-dim", "4", "--batch-size", "8"]
    args += ["--epochs", "1000", "--nproc", "2", "--quiet", "--out", str(out)]
    launcher = subprocess.Popen([sys.executable, "-m", "aekit", *args], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "metrics.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    rank1 = _child_with_rank(launcher.pid, 1)
    assert rank1 is not None and launcher.poll() is None
    os.kill(rank1, signal.SIGKILL)
    err = launcher.communicate(timeout=120)[1].strip()
    assert launcher.returncode == 2 and len(err.splitlines()) == 1, err
    assert "2-process job" in err and "Traceback" not in err
    run = aekit.Run.open(out)  # the run keeps its last finished epoch, and resumes
    done = run_cli("train", "--resume", out, "--epochs", str(len(run.metrics["history"]) + 1), "--quiet")
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- messages name the user's paths


def test_a_run_folder_that_appears_meanwhile_is_named_not_the_staging_folder(tmp_path, monkeypatch):
    out = tmp_path / "o" / "c2"
    original = RunFolder.save

    def someone_else_creates_it(self, state):
        original(self, state)
        out.mkdir(exist_ok=True)
        (out / "theirs.txt").write_text("theirs")

    monkeypatch.setattr(RunFolder, "save", someone_else_creates_it)
    with pytest.raises(AekitError) as caught:
        aekit.train("digits", out=out, epochs=1, **SMALL)
    assert str(out) in str(caught.value) and ".partial" not in str(caught.value)
    assert sorted(p.name for p in out.parent.iterdir()) == ["c2"] and (out / "theirs.txt").exists()


def test_force_on_a_symbolic_link_to_a_run_leaves_both_alone(tmp_path, runs, capsys):
    real = copy_run(runs["ae"], tmp_path / "real")
    (tmp_path / "link").symlink_to(real)
    args = ["train", "--data", "digits", "--hidden", "16", "--latent-dim", "4", "--epochs", "1", "--quiet"]
    fails(capsys, [*args, "--out", tmp_path / "link", "--force"], "link is a symbolic link")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"] and (tmp_path / "link").is_symlink()
    aekit.Run.open(real)


# ---------------------------------------------------------------- structure-aware fuzzing: valid JSON, wrong values

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
DEEP_FUZZ = settings(parent=FUZZ, max_examples=100)  # 1500 each passed by hand
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.uint8]


def _one_line_or_result(call):
    try:
        return call()
    except AekitError as e:
        assert str(e).strip(), "a refusal says what is wrong"
        return None


@DEEP_FUZZ
@given(data=st.data())
def test_fuzzed_config_json_values_load_or_are_refused(runs, tmp_path_factory, data):
    config = json.loads((runs["ae"] / CONFIG).read_text())
    section = data.draw(st.sampled_from(["model", "train", "data", "scaling", None]))
    value = data.draw(JSON_VALUES)
    if section is None:
        config[data.draw(st.sampled_from(["aekit_version", "model", "train", "data", "scaling", "other"]))] = value
    else:
        config[section][data.draw(st.sampled_from([*config[section], "other"]))] = value
    run = copy_run(runs["ae"], tmp_path_factory.mktemp("fuzz") / "run")
    (run / CONFIG).write_text(json.dumps(config))
    opened = _one_line_or_result(lambda: aekit.Run.open(run))
    if opened is not None:
        _one_line_or_result(lambda: opened.model.reconstruct(torch.rand(2, *opened.model.config.input_shape)))


@pytest.fixture(scope="module")
def resumable(runs):
    run = aekit.Run.open(runs["ae"])
    return run, run.load_data()


def _fresh_trainer(resumable) -> Trainer:
    run, splits = resumable
    model = aekit.create_model("ae", (1, 8, 8), hidden=[16], latent_dim=4)
    return Trainer(model, splits, TrainConfig(**{**run.config["train"], "epochs": 3, "device": "cpu"}))


@DEEP_FUZZ
@given(data=st.data())
def test_fuzzed_checkpoint_metadata_loads_or_is_refused(runs, resumable, tmp_path_factory, data):
    tensors, meta = read_tensors(runs["ae"] / CHECKPOINT)
    key = data.draw(st.sampled_from(sorted(meta)))
    meta[key] = json.dumps(data.draw(JSON_VALUES))
    folder = tmp_path_factory.mktemp("ckpt")
    save_file(tensors, folder / CHECKPOINT, meta)
    trainer = _fresh_trainer(resumable)
    if _one_line_or_result(lambda: trainer.load_checkpoint(folder / CHECKPOINT)) is None and key in (
        "epoch",
        "history",
    ):
        assert trainer.epoch == 0  # refused before anything was restored


@DEEP_FUZZ
@given(data=st.data())
def test_fuzzed_tensors_in_weights_and_checkpoints_load_or_are_refused(runs, resumable, tmp_path_factory, data):
    member = data.draw(st.sampled_from([WEIGHTS, CHECKPOINT]))
    tensors, meta = read_tensors(runs["ae"] / member)
    name = data.draw(st.sampled_from([*sorted(tensors), "extra"]))
    action = data.draw(st.sampled_from(["replace", "delete", "nan"]))
    if action == "delete":
        tensors.pop(name, None)
    elif action == "nan" and name in tensors and tensors[name].is_floating_point():
        tensors[name] = torch.full_like(tensors[name], float("nan"))
    else:
        shape = data.draw(st.lists(st.integers(0, 5), max_size=3))
        tensors[name] = torch.zeros(shape, dtype=data.draw(st.sampled_from(DTYPES)))
    run = copy_run(runs["ae"], tmp_path_factory.mktemp("tensors") / "run")
    save_file(tensors, run / member, meta)
    if member == WEIGHTS:
        _one_line_or_result(lambda: aekit.Run.open(run))
    else:
        _one_line_or_result(lambda: _fresh_trainer(resumable).load_checkpoint(run / CHECKPOINT))


@DEEP_FUZZ
@given(data=st.data())
def test_fuzzed_aez_headers_decode_or_are_refused(runs, small_aez, data):
    key = data.draw(
        st.sampled_from(
            [
                "model",
                "model_sha256",
                "run",
                "items",
                "item_shape",
                "scaling",
                "latent_dim",
                "bits",
                "lo",
                "step",
                "coder",
                "other",
            ]
        )
    )
    crafted = craft_aez(small_aez, {key: data.draw(JSON_VALUES)})
    result = _one_line_or_result(lambda: aekit.decompress(crafted, runs["ae"]))
    if result is not None:
        assert bool(torch.isfinite(result[0]).all())
