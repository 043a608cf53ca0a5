"""What a command writes: only inside its -o, only over what aekit wrote there (the manifest), never over one of
its inputs, and nothing left behind when it fails. Each case is checked against a hash of the whole tree around
the command: the only change allowed is the output itself (and its folder's manifest)."""

import hashlib
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import aekit
from aekit import disk
from aekit.apps.denoise import denoise_file
from aekit.disk import MANIFEST, is_our_folder
from aekit.errors import AekitError
from aekit.outputs import OutputPath
from conftest import RESNET, fails, photo_folder, succeeds


def tree(root: Path) -> dict[str, str]:
    """Every entry under root (root itself included) and what it is: a file's SHA-256, a link's target, 'dir'."""
    state = {}
    for here, dirs, files in os.walk(root):
        for name in [*dirs, *files, *([] if here != str(root) else ["."])]:
            path = Path(here) / name if name != "." else Path(here)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                state[rel] = "-> " + os.readlink(path)
            elif path.is_dir():
                state[rel] = "dir"
            else:
                state[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


@pytest.fixture(scope="module")
def photo_runs(shared_runs, tmp_path_factory) -> dict[str, Path]:
    """A tiny resnet dae and a table ae: the uses below only read them."""
    root = tmp_path_factory.mktemp("output-runs")
    dae = shared_runs(shared_runs.photos([(16, 20), (20, 16)]), "dae", epochs=1, crop=(8, 8), **RESNET)
    rows = np.random.default_rng(0).normal(size=(60, 5))
    np.savetxt(root / "table.csv", rows, delimiter=",", header="a,b,c,d,e", comments="")
    table = shared_runs(root / "table.csv", "ae", epochs=1, latent_dim=2)
    return {"dae": dae, "table": table, "csv": root / "table.csv"}


# ---------------------------------------------------------------- --force replaces only what aekit wrote


def test_exchange_swaps_two_paths_without_renameat2_too(tmp_path, monkeypatch):
    """disk.exchange swaps a new output with the old one in one call (renameat2); where the system has no
    renameat2 it swaps them through a side name instead."""
    for system_has_it in (True, False):
        if not system_has_it:
            monkeypatch.setattr(disk, "_renameat2", lambda src, dst, flag: False)
        a, b = tmp_path / f"a{system_has_it}", tmp_path / f"b{system_has_it}"
        a.write_text("new")
        b.mkdir()
        (b / "old.txt").write_text("old")
        disk.exchange(a, b)
        assert b.read_text() == "new" and (a / "old.txt").read_text() == "old"
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(str(system_has_it))) == [a.name, b.name]


def test_a_folder_is_aekits_only_while_its_manifest_lists_exactly_its_files(tmp_path):
    """What `--force` may replace: every file listed with its digest, nothing else (no link, no other kind of
    entry, no empty folder); an empty folder, or one holding only an empty manifest, has nothing to lose."""
    empty = tmp_path / "empty"
    empty.mkdir()
    assert is_our_folder(empty)
    OutputPath(tmp_path / "none", ("",)).write_folder(lambda folder: None)  # a manifest listing nothing
    assert is_our_folder(tmp_path / "none")

    def fill(folder: Path) -> None:
        (folder / "a.png").write_bytes(b"a")
        (folder / "sub" / "deeper").mkdir(parents=True)  # sub holds a folder only, deeper the files
        (folder / "sub" / "deeper" / "b.png").write_bytes(b"b")

    out = OutputPath(tmp_path / "out", ("",)).write_folder(fill)
    assert is_our_folder(out)

    def fill_a() -> None:
        (out / "a.png").write_bytes(b"a")

    changes = [
        (lambda: (out / "new.txt").write_bytes(b"mine"), lambda: (out / "new.txt").unlink()),
        (lambda: (out / "a.png").write_bytes(b"changed"), lambda: (out / "a.png").write_bytes(b"a")),
        (lambda: (out / "a.png").unlink(), lambda: (out / "a.png").write_bytes(b"a")),
        (lambda: (out / "hollow").mkdir(), lambda: (out / "hollow").rmdir()),
        (lambda: (out / "link").symlink_to(tmp_path / "empty"), lambda: (out / "link").unlink()),
        (
            lambda: (out / "sub" / "dangling").symlink_to(tmp_path / "nowhere"),
            lambda: (out / "sub" / "dangling").unlink(),
        ),
        (lambda: os.mkfifo(out / "fifo"), lambda: (out / "fifo").unlink()),
        # a named pipe where a listed file was: refused before its digest, which would wait on it forever
        (lambda: ((out / "a.png").unlink(), os.mkfifo(out / "a.png")), lambda: (out / "a.png").unlink() or fill_a()),
    ]
    for number, (change, undo) in enumerate(changes):
        change()
        assert not is_our_folder(out), number
        undo()
        assert is_our_folder(out), number


def test_train_force_replaces_only_an_aekit_run_never_the_current_folder(tmp_path, capsys, monkeypatch):
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "config.json").write_text("{}")
    (proj / "notes.txt").write_text("mine")
    (proj / "src" / "a.py").write_text("print(1)")
    train = ["train", "digits", "--epochs", "1", "--hidden", "8", "--latent-dim", "2", "--quiet"]
    before = tree(tmp_path)
    fails(capsys, [*train, "--out", proj, "--force"], "proj is not an aekit run folder")
    monkeypatch.chdir(proj)
    fails(capsys, [*train, "--out", proj, "--force"], "not an aekit run folder")
    fails(capsys, [*train, "--out", "..", "--force"], "not an aekit run folder")
    assert tree(tmp_path) == before  # nothing removed, no .lock left in the user's folders

    # a real run: replaced with --force, but never from inside it (the current folder) or above it
    run = tmp_path / "run"
    succeeds(capsys, [*train, "--out", run])
    monkeypatch.chdir(run)
    fails(capsys, [*train, "--out", run, "--force"], "never replaces the current folder")
    monkeypatch.chdir(tmp_path)
    (run / "notes.txt").write_text("the user's, inside the run")
    fails(capsys, [*train, "--out", run, "--force"], "holds files aekit did not write there")
    (run / "notes.txt").unlink()
    succeeds(capsys, [*train, "--out", tmp_path / "unrelated"])
    succeeds(capsys, ["reconstruct", run, "-o", run / "mine.png"])  # an output aekit wrote into the run: its own
    succeeds(capsys, [*train, "--out", run, "--force"])
    assert not (run / "mine.png").exists() and aekit.Run.open(run)


def test_hidden_neighbours_that_look_like_temporaries_are_never_removed(tmp_path, capsys, digits_run_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train = ["train", "digits", "--epochs", "1", "--hidden", "8", "--latent-dim", "2", "--quiet"]
    for name in (".keep.bak.old", ".fresh.mine.partial", ".fresh.aekit-notmine.partial"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f").write_text("x")
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "f").write_text("x")
    for name in (".feat.npz.draft.tmp", ".fig.png.mine.tmp", ".fig.png.aekit-1234567.tmp"):
        (tmp_path / name).write_text("the user's")
    (tmp_path / "fig.png").write_bytes(b"the user's figure")
    before = tree(tmp_path)
    fails(capsys, [*train, "--out", "keep"], "keep already exists")
    succeeds(capsys, [*train, "--out", "fresh"])
    succeeds(capsys, ["features", digits_run_dir, "digits", "-o", "feat.npz"])
    fails(capsys, ["reconstruct", digits_run_dir, "-o", "fig.png"], "exists")
    assert {k for k in changed(before, tree(tmp_path)) if not k.startswith("fresh/")} == {"fresh", "feat.npz", MANIFEST}


def test_force_replaces_no_file_that_merely_looks_like_the_output(tmp_path, capsys, photo_runs, digits_run_dir):
    dae, table = photo_runs["dae"], photo_runs["table"]
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((12, 14, 3), 90, np.uint8)).save(photo)
    (tmp_path / "table.csv").write_bytes(photo_runs["csv"].read_bytes())
    (tmp_path / "notes.html").write_text("<html>the user's page</html>")
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07 the user's bytes")
    figures = tmp_path / "userdir"
    figures.mkdir()
    (figures / "loss_curve.png").write_bytes(photo.read_bytes())
    fake = tmp_path / "pngs"
    fake.mkdir()
    (fake / "a.png").write_bytes(photo.read_bytes())
    (fake / MANIFEST).write_text('{"written_by": "aekit", "files": {}}')  # a manifest that lists nothing here
    before = tree(tmp_path)
    fails(capsys, ["denoise", dae, photo, "-o", photo, "--force"], "is an input of this command")
    fails(capsys, ["anomaly", table, tmp_path / "table.csv", "-o", tmp_path / "table.csv", "--force"], "an input")
    fails(capsys, ["report", digits_run_dir, "-o", tmp_path / "notes.html", "--force"], "not a file aekit wrote")
    fails(capsys, ["report", digits_run_dir, "-o", tmp_path / "r.html", "--figures", figures, "--force"], "did not")
    fails(capsys, ["export", dae, "-o", tmp_path / "model.onnx", "--force"], "not a file aekit wrote")
    fails(capsys, ["denoise", dae, photo, "-o", fake, "--force"], "did not write")
    fails(capsys, ["data", "export", "digits", "-o", fake, "--force"], "did not write")
    assert tree(tmp_path) == before

    # a folder aekit wrote, then a PNG the user added: no longer replaced
    out = tmp_path / "export"
    succeeds(capsys, ["data", "export", "digits", "-o", out, "--split", "test"])
    succeeds(capsys, ["data", "export", "digits", "-o", out, "--split", "test", "--force"])
    (out / "3" / "mine.png").write_bytes(photo.read_bytes())
    fails(capsys, ["data", "export", "digits", "-o", out, "--force"], "did not write")
    assert (out / "3" / "mine.png").read_bytes() == photo.read_bytes()
    # a folder that is an input is never an output, even one aekit wrote
    fails(capsys, ["denoise", dae, out, "-o", out, "--force"], "is an input of this command")


def test_the_manifest_names_what_aekit_wrote_with_its_content(tmp_path):
    out = OutputPath(tmp_path / "x.npy", (".npy",))
    out.write(lambda f: np.save(f, np.arange(3)))
    again = OutputPath(tmp_path / "x.npy", (".npy",), force=True)  # its own, unchanged: replaced
    again.write(lambda f: np.save(f, np.arange(4)))
    assert np.load(tmp_path / "x.npy").tolist() == [0, 1, 2, 3]
    with open(tmp_path / "x.npy", "r+b") as f:  # changed in place by the user: theirs now
        f.seek(-1, 2)
        f.write(b"\x01")
    with pytest.raises(AekitError, match="not a file aekit wrote"):
        OutputPath(tmp_path / "x.npy", (".npy",), force=True)
    (tmp_path / MANIFEST).write_text("not json")  # a damaged manifest lists nothing: nothing is replaced
    (tmp_path / "y.npy").write_bytes(b"")
    OutputPath(tmp_path / "y.npy", (".npy",), force=True)  # an empty file holds nothing to lose
    with pytest.raises(AekitError, match="manifest"):
        OutputPath(tmp_path / MANIFEST, ("",), force=True)


# ---------------------------------------------------------------- outputs stay inside -o


def test_a_pattern_through_dotdot_never_writes_outside_the_output_folder(tmp_path, capsys, photo_runs, monkeypatch):
    monkeypatch.chdir(tmp_path)
    photo_folder(tmp_path / "in" / "photos", [(12, 14)])
    photo_folder(tmp_path / "victim", [(10, 11)])
    before = tree(tmp_path)
    succeeds(capsys, ["denoise", photo_runs["dae"], "in/*/../../victim/p0.png", "-o", "out"])
    succeeds(capsys, ["denoise", photo_runs["dae"], "in/*/../../*/p0.png", "-o", "out2"])
    after = tree(tmp_path)
    assert {k for k in changed(before, after) if not k.startswith(("out/", "out2/"))} == {"out", "out2"}
    assert sorted(p.relative_to(tmp_path / "out2").as_posix() for p in (tmp_path / "out2").rglob("*.png")) == [
        "out/p0.png",  # the first command's output is a match too
        "victim/p0.png",
    ]


SEGMENTS = st.sampled_from(["*", "**", "..", "a", "b", "link", "x.png", "*.png", "."])


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(SEGMENTS, min_size=1, max_size=6), absolute=st.booleans())
def test_random_patterns_never_write_outside_the_output_folder_nor_touch_an_input(
    tmp_path_factory, photo_runs, parts, absolute
):
    root = tmp_path_factory.mktemp("globs")
    for folder in ("a", "a/b", "b", "out"):
        (root / folder).mkdir(exist_ok=True)
    for folder in ("a", "a/b", "b", "."):
        Image.fromarray(np.full((9, 10, 3), 120, np.uint8)).save(root / folder / "x.png")
    (root / "a" / "link").symlink_to(root / "b")
    (root / "out" / "mine.txt").write_text("the user's, beside the output")
    pattern = "/".join(["a", *parts])
    pattern = str(root / pattern) if absolute else pattern
    before = tree(root)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        denoise_file(photo_runs["dae"], pattern, "out/cleaned")
    except AekitError:
        pass  # no match, say: refused in one line, nothing written
    finally:
        os.chdir(cwd)
    assert all(k.startswith("out/cleaned") for k in changed(before, tree(root))), pattern


# ---------------------------------------------------------------- nothing left behind


def _small_disk(path: Path) -> bool:
    """Mount a 100 KB tmpfs at path (root only); whether it is there."""
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100k", "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs (root only)")
def test_a_really_full_disk_leaves_nothing_behind(tmp_path, capsys, photo_runs, digits_run_dir):
    disk = tmp_path / "disk"
    if not _small_disk(disk):
        pytest.skip("mount is not allowed here")
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 300, 3), np.uint8)).save(big)
    try:
        for args, name in (
            (["report", digits_run_dir, "-o", disk / "r.html"], "r.html"),
            (["report", digits_run_dir, "-o", tmp_path / "r.html", "--figures", disk / "figs"], "figs"),
            (["export", photo_runs["dae"], "-o", disk / "m.onnx"], "m.onnx"),
            (["data", "export", "digits", "-o", disk / "digits"], "digits"),
            (["anomaly", photo_runs["dae"], big, "--maps", disk / "maps.npz"], "maps.npz"),
            (["denoise", photo_runs["dae"], big, "-o", disk / "clean"], "clean"),
            (["train", "digits", "--epochs", "1", "--quiet", "--out", disk / "run"], "run"),
        ):
            fails(capsys, args, str(disk / name), "cannot write (No space left on device)")
            assert list(disk.iterdir()) == [], args
        assert not (tmp_path / "r.html").exists()  # the report is written only once its figures are
    finally:
        subprocess.run(["umount", str(disk)], check=True)
