"""Inputs at their edges: images of every size (one pixel, thin, large), arrays of every shape, headers that lie,
options without bound, photos of the other channel count. Each works, or is one line and exit status 2 before
anything large is allocated; and a structure-aware fuzzer of image files finds no traceback."""

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit import limits
from aekit._export import Graph
from aekit.apps.compress import compress_file, decompress_file
from aekit.cli import main
from aekit.codec.aez import FITTED, MAGIC, U32
from aekit.codec.rans import RANS_L
from aekit.disk import MANIFEST
from aekit.errors import AekitError
from aekit.frequencies import PROB_SCALE
from conftest import RESNET, fails, run_cli, succeeds

TINY = [(1, 1), (1, 2), (2, 1), (3, 3), (4, 4), (5, 7), (8, 8)]


@pytest.fixture(scope="module")
def runs(shared_runs) -> dict[str, Path]:
    """Tiny resnet runs, RGB and grey: a dae and a compressor of each entropy model (stages on 2x2 cells, one stage
    of 8 channels: a code of one position would be too small for GroupNorm, so small images are padded)."""
    photos = {
        colour: shared_runs.photos([(20, 24), (24, 20)], mode) for colour, mode in (("rgb", "RGB"), ("grey", "L"))
    }
    codec = {"epochs": 1, "crop": (8, 8), "rate_lambda": 300.0, "patch": 2, **RESNET}
    found = {}
    for colour in ("rgb", "grey"):
        found[f"dae-{colour}"] = shared_runs(photos[colour], "dae", epochs=1, crop=(8, 8), **RESNET)
        found[f"codec-{colour}"] = shared_runs(photos[colour], "ae", entropy="hyperprior", **codec)
    for entropy in ("factorized", "meanscale"):
        found[entropy] = shared_runs(photos["rgb"], "ae", entropy=entropy, **codec)
    found["hyperprior"] = found["codec-rgb"]
    return found


def image(path: Path, h: int, w: int, mode: str = "RGB") -> Path:
    pixels = np.random.default_rng(h * 1000 + w).integers(0, 256, (h, w, 3), np.uint8)
    Image.fromarray(pixels if mode == "RGB" else pixels[..., 0]).save(path)
    return path


# ---------------------------------------------------------------- every image size works or says why


@pytest.mark.parametrize("entropy", ["factorized", "hyperprior", "meanscale"])
def test_photos_of_a_few_pixels_compress_and_decode_at_their_size(runs, tmp_path, entropy):
    for h, w in TINY:
        photo = image(tmp_path / f"{h}x{w}.png", h, w)
        report = compress_file(runs[entropy], str(photo), tmp_path / f"{h}x{w}.aez")
        assert report["items"] == 1 and np.isfinite(report["psnr_db"])
        decompress_file(tmp_path / f"{h}x{w}.aez", tmp_path / f"{h}x{w}-back.png")
        assert Image.open(tmp_path / f"{h}x{w}-back.png").size == (w, h)


def test_an_exported_resnet_runs_on_images_of_one_pixel(runs, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    succeeds(capsys, ["export", runs["dae-rgb"], "-o", tmp_path / "dae.onnx"])
    session = ort.InferenceSession(str(tmp_path / "dae.onnx"), providers=["CPUExecutionProvider"])
    graph = Graph(aekit.Run.open(runs["dae-rgb"]), "reconstruct", None)  # what was exported, in PyTorch
    for h, w in TINY:
        x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(h + w))
        (got,) = session.run(None, {"x": x.numpy()})
        with torch.no_grad():
            want = graph(x).numpy()
        # GroupNorm over the few values of a tiny image magnifies float rounding: within 1e-4 of the range (0..255)
        assert got.shape == (2, 3, h, w) and np.abs(got - want).max() / float(graph.span.max()) < 1e-4


def test_uses_over_large_images_are_refused_before_allocating_with_what_fits(runs, tmp_path, capsys, monkeypatch):
    thin, square = image(tmp_path / "thin.png", 1, 200_000), image(tmp_path / "square.png", 600, 600)
    monkeypatch.setenv("AEKIT_MAX_LOAD_BYTES", str(8 << 20))  # 8 MB: the images load (4 and 7.6 MB with copies)
    dae, codec = runs["dae-rgb"], runs["codec-rgb"]
    for photo in (thin, square):
        for args in (
            ["denoise", dae, photo, "-o", tmp_path / "out"],
            ["reconstruct", dae, photo, "-o", tmp_path / "r.png"],
            ["evaluate", dae, photo, "--no-save"],
            ["anomaly", dae, photo, "--maps", tmp_path / "m.npz"],
            ["compress", codec, photo, "-o", tmp_path / "c.aez"],
        ):
            fails(capsys, args, "over the", "pixels fit")
        code = main([str(a) for a in ["features", dae, photo, "-o", tmp_path / f"{photo.stem}.npy"]])
        assert code == 0 or "pixels fit" in capsys.readouterr().err  # a pooled code: little to hold, it may fit
    assert {p.name for p in tmp_path.iterdir()} <= {MANIFEST, "square.png", "thin.png", "square.npy", "thin.npy"}


@pytest.fixture(scope="module")
def vae(shared_runs) -> Path:
    return shared_runs(shared_runs.photos([(20, 24)]), "vae", epochs=1, crop=(8, 8), **RESNET)


def test_samples_of_any_size_are_sized_before_they_are_made(vae, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AEKIT_MAX_LOAD_BYTES", str(2 << 30))  # 2 GB
    for size in ("8192,8192", "1,67108864"):
        fails(capsys, ["generate", vae, "--size", size, "-n", "1", "-o", tmp_path / "g.npy"], "over the", "fit")
    succeeds(capsys, ["generate", vae, "--size", "1,1", "-n", "2", "-o", tmp_path / "g.npy"])
    assert np.load(tmp_path / "g.npy").shape == (2, 3, 1, 1)


MEASURE = """
import sys
from aekit.cli import main
from aekit.limits import peak_memory_mb
warm, measured = sys.argv[1].split("|"), sys.argv[2].split("|")
main(warm)  # the same command on a small photo first: imports and caches are not what the limit is for
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak resident memory starts again from now
base = peak_memory_mb()
code = main(measured)
print("measured", code, round(peak_memory_mb() - base), file=sys.stderr)
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="resets the peak memory through /proc")
def test_what_a_use_takes_over_a_large_photo_stays_within_the_load_limit(runs, tmp_path):
    """Each use in a fresh process over a thin and a square photo under a load limit of 60 MB: refused in one
    line, or done with its resident memory grown by no more than the limit."""
    limit = 60 << 20
    dae, codec = runs["dae-rgb"], runs["codec-rgb"]
    small = image(tmp_path / "small.png", 20, 30)
    env = {**os.environ, "AEKIT_MAX_LOAD_BYTES": str(limit)}
    for photo in (image(tmp_path / "thin.png", 1, 100_000), image(tmp_path / "square.png", 600, 600)):
        for command in (
            "denoise|{dae}|{photo}|-o|{out}-den|--add-noise|gaussian|--force",
            "evaluate|{dae}|{photo}|--no-save",
            "anomaly|{dae}|{photo}|--maps|{out}-maps.npz|--force",
            "features|{dae}|{photo}|-o|{out}-f.npy|--force",
            "compress|{codec}|{photo}|-o|{out}.aez|--force",
        ):
            warm, measured = (
                command.format(dae=dae, codec=codec, photo=p, out=tmp_path / p.stem) for p in (small, photo)
            )
            done = subprocess.run(
                [sys.executable, "-c", MEASURE, warm, measured], capture_output=True, text=True, env=env
            )
            code, grown = map(int, done.stderr.strip().splitlines()[-1].split()[1:])
            assert code in (0, 2), (measured, done.stderr)
            assert grown * (1 << 20) <= limit, (measured, grown)  # refused, or done within the limit


def test_a_containers_memory_limit_bounds_the_load_limit(tmp_path, monkeypatch):
    machine = limits.physical_memory()
    given = tmp_path / "memory.max"
    monkeypatch.setattr(limits, "CGROUP_LIMITS", (str(tmp_path / "v2-missing"), str(given)))
    monkeypatch.delenv("AEKIT_MAX_LOAD_BYTES", raising=False)
    given.write_text("3000000000\n")  # a container of 3 GB: half of it by default
    assert limits.physical_memory() == min(machine, 3_000_000_000)
    assert limits.max_load_bytes() == min(machine, 3_000_000_000) // 2
    given.write_text("max\n")  # no limit
    assert limits.physical_memory() == machine


# ---------------------------------------------------------------- arrays, headers and options


@pytest.mark.parametrize("array", [np.float32(3), np.int64(3)])
def test_an_array_of_one_number_is_one_line(tmp_path, capsys, digits_run_dir, array):
    np.save(tmp_path / "one.npy", array)
    np.savez(tmp_path / "one.npz", x=array)
    for path in (tmp_path / "one.npy", tmp_path / "one.npz"):
        for args in (["data", "info", path], ["train", path, "--epochs", "1", "--quiet", "--out", tmp_path / "r"]):
            fails(capsys, args, "holds a single number")
        fails(capsys, ["features", digits_run_dir, path, "-o", tmp_path / "f.npy"], "holds a single number")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.npy", "one.npz"]


def test_an_unknown_matplotlib_backend_does_not_stop_a_figure(tmp_path, digits_run_dir, capsys, monkeypatch):
    """As in a fresh process: matplotlib not imported yet, $MPLBACKEND naming a backend it does not know."""
    imported = {name: module for name, module in sys.modules.items() if name.split(".")[0] == "matplotlib"}
    monkeypatch.setenv("MPLBACKEND", "bogus")
    try:
        for name in imported:
            del sys.modules[name]
        succeeds(capsys, ["reconstruct", digits_run_dir, "-o", tmp_path / "f.png"])
        assert sys.modules["matplotlib"] is not imported.get("matplotlib")  # imported anew, with the bogus name
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] == "matplotlib"]:
            del sys.modules[name]
        sys.modules.update(imported)
    assert Image.open(tmp_path / "f.png").format == "PNG"


def _sections(blob: bytes, count: int) -> tuple[dict, list[bytes]]:
    """An .aez file's header (parsed) and its coded sections."""
    parts, pos = [], 5
    for _ in range(1 + count):
        (n,) = U32.unpack_from(blob, pos)
        parts.append(blob[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return json.loads(parts[0]), parts[1:]


def _aez(version: int, header: dict, sections: list[bytes]) -> bytes:
    parts = [json.dumps(header).encode(), *sections]
    body = MAGIC + bytes([version]) + b"".join(U32.pack(len(p)) + p for p in parts)
    return body + U32.pack(zlib.crc32(body))


def test_aez_headers_that_claim_too_much_are_one_line_before_anything_is_allocated(runs, digits_run_dir, tmp_path):
    # version 1, every table one symbol with all of the probability: items cost no bits, so any number decodes
    blob = aekit.compress(digits_run_dir, aekit.data.load("digits").test.floats()[:5], bits=4)
    header, _ = _sections(blob, 2)
    freqs = np.zeros((header["latent_dim"], 16), "<u2")
    freqs[:, 3] = PROB_SCALE
    tables, stream = zlib.compress(freqs.tobytes()), RANS_L.to_bytes(4, "big")
    with pytest.raises(AekitError, match="needs .* over the"):
        aekit.decompress(_aez(FITTED, {**header, "items": 10**8}, [tables, stream]), digits_run_dir)
    back, _ = aekit.decompress(_aez(FITTED, {**header, "items": 3000}, [tables, stream]), digits_run_dir)
    assert back.shape == (3000, 1, 8, 8) and torch.equal(back[0], back[-1])  # within the limit: decoded

    # versions 2 to 4: a count of items no list can hold, and sizes that are not (height, width)
    photo = image(tmp_path / "p.png", 9, 11)
    blob = aekit.compress(runs["codec-rgb"], [torch.from_numpy(np.array(Image.open(photo))).permute(2, 0, 1)])
    header, sections = _sections(blob, 4)
    for change, message in (
        ({"items": 2**40, "sizes": None}, "needs .* over the"),
        ({"sizes": [[1, 2, 3]]}, r"sizes\[0\]: expected a list of 2 values"),
    ):
        with pytest.raises(AekitError, match=message):
            aekit.decompress(_aez(blob[4], {**header, **change}, sections), runs["codec-rgb"])


def test_refine_steps_are_bounded(runs, capsys, tmp_path):
    photo = image(tmp_path / "p.png", 9, 11)
    fails(
        capsys,
        ["compress", runs["codec-rgb"], photo, "-o", tmp_path / "c.aez", "--refine", "1000000000"],
        "0 to 100,000",
    )
    fails(capsys, ["evaluate", runs["dae-rgb"], photo, "--refine", "1000000000"], "0 to 100,000")


def test_a_jpeg_declaring_more_pixels_than_its_bytes_can_hold_and_a_float_tiff_with_infinity(tmp_path, capsys):
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 99, np.uint8)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 8000, 8000)  # height, width: a 631-byte "64-megapixel" photo
    (tmp_path / "lie.jpg").write_bytes(bytes(data))
    fails(capsys, ["data", "info", tmp_path / "lie.jpg"], "declares 8000x8000 pixels in only", "cut short or corrupt")
    flat = np.full((400, 400), 128, np.uint8)
    Image.fromarray(flat).save(tmp_path / "flat.jpg", quality=1, optimize=True, progressive=True)
    succeeds(capsys, ["data", "info", tmp_path / "flat.jpg"])  # the flattest real JPEG there is still loads
    values = np.ones((6, 7), np.float32)
    for bad in (np.inf, np.nan):
        values[2, 3] = bad
        Image.fromarray(values, "F").save(tmp_path / "f.tif")
        fails(capsys, ["data", "info", tmp_path / "f.tif"], "NaN or infinite values")


# ---------------------------------------------------------------- grey photos through RGB models, and back


@pytest.mark.parametrize(("run", "mode"), [("rgb", "L"), ("grey", "RGB")])
def test_a_photo_of_the_other_channel_count_is_used_with_a_note(runs, tmp_path, run, mode):
    photo = image(tmp_path / "photo.png", 13, 17, mode)
    dae, codec = runs[f"dae-{run}"], runs[f"codec-{run}"]
    made = "RGB" if mode == "L" else "grey"
    for args in (
        ["reconstruct", dae, photo, "-o", tmp_path / "r.png"],
        ["denoise", dae, photo, "-o", tmp_path / "clean"],
        ["anomaly", dae, photo, "--maps", tmp_path / "m.npz"],
        ["compress", codec, photo, "-o", tmp_path / "c.aez"],
    ):
        code = main([str(a) for a in args])
        assert code == 0, args
    done = run_cli("denoise", dae, photo, "-o", tmp_path / "clean2")
    assert done.returncode == 0 and f"images used as {made}" in done.stderr and len(done.stderr.splitlines()) == 1
    channels = 3 if run == "rgb" else 1
    assert np.asarray(Image.open(tmp_path / "clean" / "photo.png")).reshape(13, 17, -1).shape[2] == channels


# ---------------------------------------------------------------- image files of every structure


def fuzz_image(rng: np.random.Generator, path: Path) -> Path:
    """An image file of a random format, mode, size and EXIF orientation, sometimes cut short or with bytes
    changed: what a careless user's folder holds."""
    fmt = rng.choice(["PNG", "JPEG", "BMP", "WEBP", "TIFF", "GIF"])
    modes = {"PNG": ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"], "JPEG": ["L", "RGB", "CMYK"],
             "BMP": ["1", "L", "P", "RGB"], "WEBP": ["RGB", "RGBA"], "TIFF": ["1", "L", "RGB", "RGBA", "I;16", "F"],
             "GIF": ["L", "P"]}  # fmt: skip
    mode = str(rng.choice(modes[str(fmt)]))
    h, w = (int(rng.choice([1, 2, 3, 7, 16, 33, 64])) for _ in range(2))
    if rng.random() < 0.1:
        h, w = (1, 3000) if rng.random() < 0.5 else (3000, 1)
    if mode == "F":
        pixels = Image.fromarray(rng.normal(0, 100, (h, w)).astype(np.float32), "F")
    elif mode == "I;16":
        pixels = Image.fromarray(rng.integers(0, 65536, (h, w)).astype(np.uint16))
    else:
        pixels = Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).convert(mode)
    buf = io.BytesIO()
    options = {}
    if fmt in ("JPEG", "WEBP", "TIFF", "PNG") and rng.random() < 0.5:
        exif = Image.Exif()
        exif[0x0112] = int(rng.integers(0, 10))  # orientation, including values that mean nothing
        options["exif"] = exif.tobytes()
    try:
        pixels.save(buf, str(fmt), **options)
    except (OSError, ValueError, KeyError):
        pixels.convert("RGB").save(buf, str(fmt))
    data = bytearray(buf.getvalue())
    damage = rng.random()
    if damage < 0.2:  # cut short
        data = data[: int(rng.integers(0, len(data)))]
    elif damage < 0.4:  # bytes changed
        for i in rng.integers(0, len(data), int(rng.integers(1, 8))):
            data[i] = int(rng.integers(0, 256))
    path = path.with_suffix({"JPEG": ".jpg", "WEBP": ".webp", "TIFF": ".tif"}.get(str(fmt), "." + str(fmt).lower()))
    path.write_bytes(bytes(data))
    return path


FUZZ_CASES = int(os.environ.get("AEKIT_FUZZ_CASES", "200"))


def test_fuzzed_image_files_are_read_or_refused_in_one_line(runs, tmp_path, capsys):
    """FUZZ_CASES image files ($AEKIT_FUZZ_CASES; seeded, so a failure repeats), each read by `data info` and,
    where that works, denoised whole by a resnet: exit 0 with an output of the image's size, or one line and 2."""
    rng = np.random.default_rng(0)
    outcomes = {0: 0, 2: 0}
    for case in range(FUZZ_CASES):
        path = fuzz_image(rng, tmp_path / f"case{case}")
        code = main(["data", "info", str(path)])
        out, err = capsys.readouterr()
        assert code in (0, 2) and "Traceback" not in err, (case, path.name, err)
        assert code == 0 or len(err.strip().splitlines()) == 1, (case, err)
        outcomes[code] += 1
        if code == 0:
            clean = tmp_path / f"clean{case}"
            code = main(["denoise", str(runs["dae-rgb"]), str(path), "-o", str(clean)])
            err = capsys.readouterr().err
            assert code == 0, (case, path.name, err)
            info = json.loads(out)
            assert Image.open(next(clean.glob("*.png"))).size[::-1] == tuple(info["item_shape"][1:]), case
        path.unlink()
    assert outcomes[0] and outcomes[2]  # both kinds of file were made
