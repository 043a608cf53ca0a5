"""disk.py on its own: the JSON reader, the renames, temporaries and their clean-up, atomic writes, the manifest,
the checks on a user's output paths and the folder lock, each refusal in its exact words. Unit tests in
temporary folders; the races between real processes are in test_reliability.py."""

import errno
import fcntl
import hashlib
import json
import os
import re
import socket
import threading
from pathlib import Path

import pytest

from aekit import AekitError, disk, outputs
from aekit.disk import MANIFEST
from aekit.lock import LOCK, FolderLock
from aekit.outputs import PNG_FOLDER, OutputPath
from conftest import refused


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------- JSON


def test_parse_json():
    assert disk.parse_json('{"a": [1, {"b": null}]}', "w") == {"a": [1, {"b": None}]}
    refused("w: not valid JSON (Expecting value: line 1 column 2 (char 1))", disk.parse_json, "[", "w")
    with pytest.raises(AekitError, match=r"^w: not valid JSON \('utf-8' codec can't decode"):
        disk.parse_json(b'"\xff"', "w")


@pytest.mark.parametrize("depth, ok", [(32, True), (33, False), (100_000, False)])
def test_json_nesting_limit(depth, ok):
    for text in (
        "[" * depth + "]" * depth,
        '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1),
        "[" * (depth - 1) + "1" + "]" * (depth - 1),
    ):  # a number is a level too
        if ok:
            disk.parse_json(text, "w")
        else:
            refused("w: nested deeper than 32 levels", disk.parse_json, text, "w")


def test_read_json(tmp_path, monkeypatch):
    path = tmp_path / "a.json"
    refused(f"{path}: missing", disk.read_json, path)
    refused(f"{tmp_path}: cannot read (Is a directory)", disk.read_json, tmp_path)
    monkeypatch.setattr(disk, "MAX_JSON_BYTES", 3 << 20)
    path.write_text(" " * ((3 << 20) - 1) + "7")  # exactly the limit
    assert disk.read_json(str(path)) == 7
    path.write_text(" " * (3 << 20) + "7")
    refused(f"{path}: over 3 MB, too large for a JSON file of aekit's", disk.read_json, path)
    path.write_text("{")
    with pytest.raises(AekitError, match="^" + re.escape(f"{path}: not valid JSON (")):
        disk.read_json(path)


def test_to_json_and_dumps():
    value = {"a": float("nan"), "b": [1.5, float("inf"), (float("-inf"), "x")], "c": True}
    assert disk.to_json(value) == {"a": None, "b": [1.5, None, [None, "x"]], "c": True}
    assert disk.dumps({"a": [1, float("nan")]}) == '{\n  "a": [\n    1,\n    null\n  ]\n}'
    assert disk.dumps({"a": 1}, indent=None) == '{"a": 1}'


# ---------------------------------------------------------------- renames


def test_renameat2_no_replace_and_exchange(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("A")
    assert disk._renameat2(a, b, 1) is True and b.read_text() == "A" and not a.exists()
    a.write_text("A2")
    with pytest.raises(FileExistsError) as e:
        disk._renameat2(a, b, 1)
    assert (e.value.errno, e.value.strerror, e.value.filename) == (errno.EEXIST, "File exists", str(b))
    assert disk._renameat2(a, b, 2) is True and (a.read_text(), b.read_text()) == ("A", "A2")
    assert disk._renameat2(a, b, 3) is False  # a flag the kernel refuses (EINVAL): as if it had no renameat2
    assert (a.read_text(), b.read_text()) == ("A", "A2")


@pytest.mark.parametrize("error", [OSError, AttributeError])
def test_a_system_without_renameat2(tmp_path, monkeypatch, error):
    def no_library(*args, **kwargs):
        raise error("no renameat2")

    monkeypatch.setattr(disk.ctypes, "CDLL", no_library)
    (tmp_path / "a").write_text("A")
    assert disk._renameat2(tmp_path / "a", tmp_path / "b", 1) is False and os.listdir(tmp_path) == ["a"]


@pytest.mark.parametrize("native", [True, False])
def test_rename_noreplace(tmp_path, monkeypatch, native):
    if not native:  # a system without renameat2: a hard link for files
        monkeypatch.setattr(disk, "_renameat2", lambda src, dst, flag: False)
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("A")
    disk.rename_noreplace(a, b)
    assert b.read_text() == "A" and not a.exists()
    a.write_text("A2")
    with pytest.raises(FileExistsError):
        disk.rename_noreplace(a, b)
    assert (a.read_text(), b.read_text()) == ("A2", "A")
    (tmp_path / "d").mkdir()
    disk.rename_noreplace(tmp_path / "d", tmp_path / "e")
    assert (tmp_path / "e").is_dir() and not (tmp_path / "d").exists()
    (tmp_path / "d").mkdir()
    with pytest.raises(FileExistsError) as e:
        disk.rename_noreplace(tmp_path / "d", tmp_path / "e")
    assert (e.value.errno, e.value.strerror, e.value.filename) == (errno.EEXIST, "File exists", str(tmp_path / "e"))


@pytest.mark.parametrize("native", [True, False])
def test_exchange_swaps(tmp_path, monkeypatch, native):
    if not native:  # a system without renameat2: three renames through a side name
        monkeypatch.setattr(disk, "_renameat2", lambda src, dst, flag: False)
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("A")
    b.mkdir()
    disk.exchange(a, b)
    assert a.is_dir() and b.read_text() == "A" and sorted(os.listdir(tmp_path)) == ["a", "b"]


def test_publish(tmp_path):
    path = tmp_path / "out"
    path.write_text("old")
    tmp = tmp_path / "t1"
    tmp.write_text("new")
    disk.publish(tmp, path, replace=True)
    assert path.read_text() == "new" and not tmp.exists()
    tmp.write_text("newer")
    refused(
        f"{path} exists (it appeared while aekit was writing); pass --force to replace it",
        disk.publish,
        tmp,
        path,
        False,
    )
    assert path.read_text() == "new" and tmp.read_text() == "newer"
    refused(
        f"{tmp_path / 'no' / 'out'}: cannot write (No such file or directory)",
        disk.publish,
        tmp,
        tmp_path / "no" / "out",
        True,
    )
    (tmp_path / "d").mkdir()
    refused(
        f"{path} exists (it appeared while aekit was writing); pass --force to replace it",
        disk.publish,
        tmp_path / "d",
        path,
        True,
    )  # a folder never replaces a file


# ---------------------------------------------------------------- temporaries


def test_temporary_pattern():
    pattern = disk.temporary_pattern("a.png")
    assert pattern.fullmatch(".a.png.aekit-ab_d1234.tmp")
    for other in (
        ".a.png.aekit-abcd123.tmp",
        ".a.png.aekit-abcd12345.tmp",
        ".a.png.aekit-ABCD1234.tmp",
        ".aXpng.aekit-abcd1234.tmp",
        "a.png.aekit-abcd1234.tmp",
        ".a.png.aekit-abcd1234.tmp2",
        ".a.png.aekit-abcd1234Xtmp",
        ".b.png.aekit-abcd1234.tmp",
    ):
        assert not pattern.fullmatch(other), other
    assert disk.temporary_pattern().fullmatch(".b.png.aekit-abcd1234.tmp")
    assert disk.temporary_pattern("a", ".x").fullmatch(".a.aekit-abcd1234.x")
    assert not disk.temporary_pattern("a", ".x").fullmatch(".a.aekit-abcd1234.tmp")


def locked_elsewhere(path: Path) -> bool:
    """Whether another open file description holds path's lock (what another process would find)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return not disk.flock(fd, wait=False)
    finally:
        os.close(fd)


@pytest.mark.parametrize("folder", [False, True])
def test_temporary_is_named_and_locked(tmp_path, folder):
    tmp, fd = disk.temporary(tmp_path / "out.npz", folder=folder)
    try:
        assert disk.temporary_pattern("out.npz").fullmatch(tmp.name) and tmp.parent == tmp_path
        assert tmp.is_dir() == folder and locked_elsewhere(tmp)
    finally:
        os.close(fd)
    assert not locked_elsewhere(tmp)
    tmp2, fd = disk.temporary(tmp_path / "out.npz", suffix=".part")
    os.close(fd)
    assert tmp2.name.endswith(".part") and disk.temporary_pattern("out.npz", ".part").fullmatch(tmp2.name)


def test_temporary_in_a_missing_folder(tmp_path):
    refused(f"{tmp_path / 'no' / 'x'}: cannot write (No such file or directory)", disk.temporary, tmp_path / "no" / "x")


def test_only_abandoned_temporaries_are_removed(tmp_path):
    path = tmp_path / "out.png"
    live, fd = disk.temporary(path)
    dead, dead_fd = disk.temporary(path)
    os.close(dead_fd)
    folder, folder_fd = disk.temporary(path, folder=True)
    (folder / "inside").write_text("x")
    os.close(folder_fd)
    target = tmp_path / "keep"
    target.write_text("mine")
    link = tmp_path / ".out.png.aekit-linklink.tmp"
    link.symlink_to(target)
    other = tmp_path / ".out.png.aekit-abcd1234.tmp2"
    other.write_text("not ours")
    another = tmp_path / ".out.png.aekit-x.aekit-abcd1234.tmp"  # a temporary of "out.png.aekit-x", not of out.png
    another.write_text("not out.png's")
    part, part_fd = disk.temporary(path, suffix=".part")
    os.close(part_fd)
    try:
        assert disk.leftovers(path) == sorted([live, dead, folder, link])
        assert disk.leftovers(path, ".part") == [part]
        assert disk.temporaries(tmp_path) == sorted([live, dead, folder, link, another])
        disk.remove_abandoned([*disk.leftovers(path), tmp_path / ".gone.aekit-abcd1234.tmp"])
        assert live.exists() and not dead.exists() and not folder.exists()
        assert link.is_symlink() and target.read_text() == "mine" and other.exists() and another.exists()
    finally:
        os.close(fd)


# ---------------------------------------------------------------- atomic writes


def test_atomic_write(tmp_path):
    old = os.umask(0o002)
    try:
        path = disk.atomic_write(str(tmp_path / "a.bin"), lambda f: f.write(b"abc"))
        assert disk.current_umask() == 0o002
    finally:
        os.umask(old)
    assert path == tmp_path / "a.bin" and path.read_bytes() == b"abc"
    assert path.stat().st_mode & 0o777 == 0o664
    disk.atomic_write(path, lambda f: f.write(b"replaced"))  # replacing is the default
    assert path.read_bytes() == b"replaced"
    disk.write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and disk.read_manifest(tmp_path) == {}
    refused(
        f"{path} exists (it appeared while aekit was writing); pass --force to replace it",
        disk.write_bytes,
        path,
        b"x",
        replace=False,
    )
    assert path.read_bytes() == b"new" and os.listdir(tmp_path) == ["a.bin"]


def test_a_failed_write_leaves_nothing(tmp_path):
    def fail(f):
        f.write(b"half")
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        disk.atomic_write(tmp_path / "a", fail)

    def full(f):
        raise OSError(errno.ENOSPC, "No space left on device")

    refused(f"{tmp_path / 'a'}: cannot write (No space left on device)", disk.atomic_write, tmp_path / "a", full)
    assert os.listdir(tmp_path) == []


def test_recorded_writes_and_write_json(tmp_path):
    path = disk.write_bytes(tmp_path / "a.npz", b"abc", record=True)
    assert disk.read_manifest(tmp_path) == {"a.npz": hashlib.sha256(b"abc").hexdigest()}
    disk.write_json(tmp_path / "m.json", {"x": float("nan")})
    assert (tmp_path / "m.json").read_text() == '{\n  "x": null\n}\n'
    assert disk.is_ours(path) and not disk.is_ours(tmp_path / "m.json")
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest == {"written_by": "aekit", "files": {"a.npz": hashlib.sha256(b"abc").hexdigest()}}


# ---------------------------------------------------------------- the manifest


def test_digest(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 3_000_000)
    assert disk.digest(tmp_path / "a") == hashlib.sha256(b"x" * 3_000_000).hexdigest()


SHA = "0" * 64


@pytest.mark.parametrize(
    "content, found",
    [
        ({"written_by": "aekit", "files": {"a": SHA, "b": "x", "c": 1, "d": "A" * 64, "e": SHA + "0"}}, {"a": SHA}),
        ({"written_by": "someone", "files": {"a": SHA}}, {}),
        ({"files": {"a": SHA}}, {}),
        ({"written_by": "aekit", "files": ["a"]}, {}),
        ([1], {}),
        ("{", {}),
    ],
)
def test_read_manifest(tmp_path, content, found):
    (tmp_path / MANIFEST).write_text(content if isinstance(content, str) else json.dumps(content))
    assert disk.read_manifest(tmp_path) == found


def test_a_manifest_that_is_a_link_or_too_big_lists_nothing(tmp_path, monkeypatch):
    good = json.dumps({"written_by": "aekit", "files": {"a": SHA}})
    (tmp_path / "real").write_text(good)
    (tmp_path / MANIFEST).symlink_to(tmp_path / "real")
    assert disk.read_manifest(tmp_path) == {}
    (tmp_path / MANIFEST).unlink()
    (tmp_path / MANIFEST).write_text(good)
    monkeypatch.setattr(disk, "MAX_MANIFEST_BYTES", len(good))
    assert disk.read_manifest(tmp_path) == {"a": SHA}
    monkeypatch.setattr(disk, "MAX_MANIFEST_BYTES", len(good) - 1)
    assert disk.read_manifest(tmp_path) == {}
    assert disk.read_manifest(tmp_path / "missing") == {}


def test_record_keeps_what_exists(tmp_path):
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    disk._record(tmp_path, {"a": "1" * 64, "gone": "2" * 64})
    assert disk.read_manifest(tmp_path) == {"a": "1" * 64, "gone": "2" * 64}
    disk._record(tmp_path, {"b": "3" * 64})
    assert disk.read_manifest(tmp_path) == {"a": "1" * 64, "b": "3" * 64}  # an entry whose file is gone: dropped
    assert list(json.loads((tmp_path / MANIFEST).read_text())["files"]) == ["a", "b"]
    disk._record(tmp_path / "missing", {"a": SHA})  # nowhere to record: nothing happens
    assert not (tmp_path / "missing").exists()


def test_record_never_follows_a_link(tmp_path):
    (tmp_path / MANIFEST).symlink_to(tmp_path / "elsewhere")
    (tmp_path / "a").write_text("a")
    disk._record(tmp_path, {"a": SHA})
    assert not (tmp_path / "elsewhere").exists() and (tmp_path / MANIFEST).is_symlink()


def test_record_waits_for_the_manifest_lock(tmp_path):
    """Two commands recording outputs into one folder: the second waits for the first's lock on the manifest."""
    (tmp_path / "a").write_text("a")
    fd = os.open(tmp_path / MANIFEST, os.O_RDONLY | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    thread = threading.Thread(target=disk._record, args=(tmp_path, {"a": SHA}))
    thread.start()
    thread.join(0.5)
    assert thread.is_alive() and disk.read_manifest(tmp_path) == {}  # waiting, nothing written
    os.close(fd)
    thread.join(10)
    assert disk.read_manifest(tmp_path) == {"a": SHA}


def test_is_ours(tmp_path):
    path = disk.write_bytes(tmp_path / "a.png", b"png", record=True)
    assert disk.is_ours(path)
    path.write_bytes(b"changed")
    assert not disk.is_ours(path)
    (tmp_path / "b.png").write_bytes(b"png")
    assert not disk.is_ours(tmp_path / "b.png")


def our_folder(tmp_path) -> Path:
    folder = tmp_path / "pngs"
    OutputPath(folder, [PNG_FOLDER]).write_folder(
        lambda f: ((f / "a.png").write_bytes(b"a"), (f / "s").mkdir(), (f / "s" / "b.png").write_bytes(b"b"))
    )
    return folder


def test_is_our_folder(tmp_path):
    folder = our_folder(tmp_path)
    assert disk.read_manifest(folder) == {
        "a.png": disk.digest(folder / "a.png"),
        "s/b.png": disk.digest(folder / "s/b.png"),
    }
    assert disk.is_our_folder(folder)
    (tmp_path / "empty").mkdir()
    assert disk.is_our_folder(tmp_path / "empty")
    (folder / "e").mkdir()
    assert not disk.is_our_folder(folder)  # an empty subfolder
    (folder / "e").rmdir()
    (folder / "l").symlink_to(folder / "a.png")
    assert not disk.is_our_folder(folder)
    (folder / "l").unlink()
    (tmp_path / "copy").write_bytes(b"a")
    (folder / "a.png").unlink()
    (folder / "a.png").symlink_to(tmp_path / "copy")  # a link in a listed file's place, to the same bytes
    assert not disk.is_our_folder(folder)
    (folder / "a.png").unlink()
    (folder / "a.png").write_bytes(b"a")
    assert disk.is_our_folder(folder)
    os.mkfifo(folder / "f")
    assert not disk.is_our_folder(folder)
    (folder / "f").unlink()
    (folder / "a.png").unlink()
    with socket.socket(socket.AF_UNIX) as s:  # a socket in a listed file's place: refused before it is read
        s.bind(str(folder / "a.png"))
        assert not disk.is_our_folder(folder)
    (folder / "a.png").unlink()
    (folder / "a.png").write_bytes(b"a")
    (folder / "s" / "b.png").write_bytes(b"B")
    assert not disk.is_our_folder(folder)
    (folder / "s" / "b.png").write_bytes(b"b")
    (folder / "c.png").write_bytes(b"c")
    assert not disk.is_our_folder(folder)
    (folder / "c.png").unlink()
    (folder / "a.png").unlink()
    assert not disk.is_our_folder(folder)  # a listed file gone: not what aekit left


# ---------------------------------------------------------------- outputs


@pytest.mark.parametrize(
    "kinds, description",
    [
        ([".png"], ".png (a PNG image)"),
        ([".npy", ".npz"], ".npy or .npz"),
        ([".csv", ".onnx", ".html", ".aez"], ".csv, .onnx, .html or .aez"),
        ([PNG_FOLDER], "a name without a suffix (a folder of PNG images)"),
    ],
)
def test_an_output_of_another_kind(here, kinds, description):
    refused(f"x.txt: name this output {description}", OutputPath, "x.txt", kinds)


def test_output_names(here):
    assert OutputPath("A.PNG", [".png"]).kind == ".png"
    refused(f"{MANIFEST}: that name is aekit's manifest; give another output name", OutputPath, MANIFEST, [PNG_FOLDER])
    refused("no: no such folder for the output", OutputPath, "no/x.png", [".png"])
    (here / "f.png").write_text("x")
    refused("f.png: no such folder for the output", OutputPath, "f.png/x.png", [".png"])


def test_an_output_is_never_an_input(here):
    (here / "in").mkdir()
    (here / "in" / "a.png").write_bytes(b"a")
    refused(
        "in/a.png is an input of this command; aekit never writes over its input: give another output name",
        OutputPath,
        "in/a.png",
        [".png"],
        force=True,
        inputs=[here / "in" / "a.png"],
    )
    refused(
        "in is a folder holding an input of this command; aekit never writes over its input: give another output name",
        OutputPath,
        "in",
        [PNG_FOLDER],
        force=True,
        inputs=[Path("in/a.png")],
    )
    OutputPath("in/b.png", [".png"], inputs=[here / "in" / "a.png"])  # beside an input: fine


def test_existing_outputs(here):
    (here / "a.png").write_bytes(b"user's")
    refused("a.png exists; pass --force to replace it", OutputPath, "a.png", [".png"])
    refused(
        "a.png is not a file aekit wrote (or it changed since); aekit replaces only its own outputs: give another name",
        OutputPath,
        "a.png",
        [".png"],
        force=True,
    )
    (here / "empty.png").write_bytes(b"")
    OutputPath("empty.png", [".png"], force=True)  # an empty file holds nothing to lose
    (here / "l.png").symlink_to(here / "a.png")
    refused("l.png is a symbolic link; aekit replaces only what it wrote", OutputPath, "l.png", [".png"], force=True)
    (here / "d.png").mkdir()
    refused("d.png is not a file; give another output name", OutputPath, "d.png", [".png"], force=True)
    (here / "plain").write_text("x")
    refused("plain is a file; the output is a folder of PNGs", OutputPath, "plain", [".png", PNG_FOLDER], force=True)
    (here / "user").mkdir()
    (here / "user" / "x").write_text("x")
    refused(
        "user is a folder aekit did not write (or it holds files aekit did not write there); aekit replaces "
        "only its own outputs: give another name",
        OutputPath,
        "user",
        [PNG_FOLDER],
        force=True,
    )
    OutputPath(Path.cwd() / "new", [PNG_FOLDER])


def test_an_output_of_ours_is_replaced_with_force(here):
    out = OutputPath("a.png", [".png"])
    out.write_bytes(b"one")
    refused("a.png exists; pass --force to replace it", OutputPath, "a.png", [".png"])
    OutputPath("a.png", [".png"], force=True).write_bytes(b"two")
    assert (here / "a.png").read_bytes() == b"two" and disk.is_ours(here / "a.png")
    refused(
        "a.png exists (it appeared while aekit was writing); pass --force to replace it",
        out.write,
        lambda f: f.write(b"three"),
    )  # checked when made, taken meanwhile: refused when written
    assert (here / "a.png").read_bytes() == b"two"


def test_the_current_folder_is_never_replaced(here):
    (here / "sub").mkdir()
    os.chdir(here / "sub")
    for name in (".", "..", str(here)):
        message = f"{name}: aekit never replaces the current folder or one above it"
        refused(message, OutputPath, name, [PNG_FOLDER], force=True)
    outputs.check_not_here(here / "sub" / "x")
    refused(
        f"{here}: aekit never replaces the current folder or one above it (its parent)",
        outputs.check_not_here,
        here,
        " (its parent)",
    )


def test_output_clears_its_own_leftovers(here):
    dead, fd = disk.temporary(here / "a.png")
    os.close(fd)
    other, fd2 = disk.temporary(here / "b.png")
    os.close(fd2)
    OutputPath("a.png", [".png"])
    assert not dead.exists() and other.exists()


def test_write_folder_replaces_only_with_force(here):
    folder = our_folder(here)
    refused("pngs exists; pass --force to replace it", OutputPath, "pngs", [PNG_FOLDER])
    out = OutputPath("pngs", [PNG_FOLDER], force=True)
    assert out.write_folder(lambda f: (f / "new.png").write_bytes(b"n")) == Path("pngs")
    assert sorted(os.listdir(folder)) == [MANIFEST, "new.png"] and disk.is_our_folder(folder)
    assert disk.leftovers(Path("pngs")) == [] and sorted(os.listdir(here)) == ["pngs"]
    assert folder.stat().st_mode & 0o777 == 0o777 & ~disk.current_umask()
    (folder / "new.png").write_bytes(b"user's now")
    refused(
        "pngs is a folder aekit did not write (or it holds files aekit did not write there); aekit replaces "
        "only its own outputs: give another name",
        out.write_folder,
        lambda f: None,
    )
    assert (folder / "new.png").read_bytes() == b"user's now" and sorted(os.listdir(here)) == ["pngs"]


def test_a_folder_that_cannot_be_swapped_in(here, monkeypatch):
    our_folder(here)

    def cross_device(a, b):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(disk, "exchange", cross_device)
    refused(
        "pngs: cannot replace it (Invalid cross-device link)",
        OutputPath("pngs", [PNG_FOLDER], force=True).write_folder,
        lambda f: (f / "new.png").write_bytes(b"n"),
    )
    assert sorted(os.listdir(here)) == ["pngs"] and "new.png" not in os.listdir(here / "pngs")


def test_write_folder_failures_leave_nothing(here):
    def fail(f):
        (f / "a.png").write_bytes(b"a")
        raise OSError(errno.ENOSPC, "No space left on device")

    refused("out: cannot write (No space left on device)", OutputPath("out", [PNG_FOLDER]).write_folder, fail)
    assert os.listdir(here) == []
    out = OutputPath("out", [PNG_FOLDER])
    (here / "out").mkdir()  # appeared meanwhile
    refused(
        "out exists (it appeared while aekit was writing); pass --force to replace it", out.write_folder, lambda f: None
    )
    assert os.listdir(here) == ["out"] and os.listdir(here / "out") == []


def test_distinct(here):
    a, b = OutputPath("a.png", [".png"]), OutputPath("b.png", [".png"])
    assert outputs.distinct(a, None, b) == [a, b]
    refused("the outputs must be different files", outputs.distinct, a, OutputPath(here / "a.png", [".png"]))


# ---------------------------------------------------------------- the folder lock


def test_folder_lock(tmp_path):
    lock = FolderLock(tmp_path)
    with lock as held:
        assert held is lock and (tmp_path / LOCK).read_text() == f"{os.getpid()}\n"
        assert (tmp_path / LOCK).stat().st_mode & 0o777 == 0o666 & ~disk.current_umask()
        assert lock.__enter__() is lock  # already held: the same lock
        refused(
            f"{tmp_path} is in use by another aekit process (pid {os.getpid()}); wait for it to finish",
            FolderLock(tmp_path).acquire,
        )
    assert lock.fd is None
    lock.release()  # twice: nothing to do
    other = FolderLock(str(tmp_path)).acquire()
    other.release()
    fd = os.open(tmp_path / LOCK, os.O_RDWR | os.O_TRUNC)
    fcntl.flock(fd, fcntl.LOCK_EX)  # held by someone who wrote no pid
    try:
        refused(f"{tmp_path} is in use by another aekit process; wait for it to finish", FolderLock(tmp_path).acquire)
        os.write(fd, b"\xff" + b"9" * 40)  # not a pid: shown as far as 32 bytes, undecodable bytes replaced
        refused(
            f"{tmp_path} is in use by another aekit process (pid \ufffd{'9' * 31}); wait for it to finish",
            FolderLock(tmp_path).acquire,
        )
    finally:
        os.close(fd)
