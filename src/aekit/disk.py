"""Everything aekit puts on disk appears whole or not at all, and replaces only what it may replace.

- atomic_write: a temporary sibling, fsync, then a rename into place (os.replace when replacing is allowed,
  a rename that refuses to replace otherwise, so that two processes racing for one name cannot both win).
- Temporary siblings are named `.NAME.aekit-XXXXXXXX.tmp` (8 characters of [a-z0-9_]) and locked (flock) by
  the process writing them, so the next command writing NAME can tell the leftovers of a killed process (lock
  free: removed) from the work of a live one (lock held: left alone). Nothing but that exact pattern is ever
  taken for a temporary.
- The manifest: a folder aekit writes outputs into holds `.aekit-output`, the SHA-256 of each file aekit wrote
  there (a folder of PNGs holds its own, listing every file in it). It is how --force knows what aekit wrote.
- The checks of a user's output path (-o) are outputs.OutputPath's; the lock of a run folder is folder.FolderLock.
- parse_json / read_json: the one JSON reader (a nesting limit; every error one line naming the file);
  to_json: the one writer's view of floats (NaN and infinities become null: they are not JSON).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import glob
import hashlib
import json
import math
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from .errors import AekitError, check

TMP = ".tmp"
MAX_JSON_DEPTH = 32
MAX_JSON_BYTES = 64 << 20

# ---------------------------------------------------------------- JSON


def parse_json(text: str | bytes, where: str) -> Any:
    """Parse JSON text; AekitError naming `where` if it is not JSON or nests deeper than MAX_JSON_DEPTH."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise AekitError(f"{where}: nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError is a ValueError
        raise AekitError(f"{where}: not valid JSON ({e})") from None
    stack = [(value, 1)]
    while stack:  # iteratively: a recursive walk is what deep nesting is meant to break
        item, depth = stack.pop()
        check(depth <= MAX_JSON_DEPTH, f"{where}: nested deeper than {MAX_JSON_DEPTH} levels")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return value


def read_json(path: Path) -> Any:
    """Parse a JSON file; AekitError naming the file if it is missing, too large or not JSON."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise AekitError(f"{path}: missing") from None
    except OSError as e:
        raise AekitError(f"{path}: cannot read ({e.strerror or e})") from None
    check(len(data) <= MAX_JSON_BYTES, f"{path}: over {MAX_JSON_BYTES >> 20} MB, too large for a JSON file of aekit's")
    return parse_json(data, str(path))


def to_json(value: Any) -> Any:
    """value with every non-finite float replaced by None (JSON has no NaN or infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def dumps(value: Any, indent: int | None = 2) -> str:
    """JSON text of value (non-finite floats as null)."""
    return json.dumps(to_json(value), indent=indent, allow_nan=False)


# ---------------------------------------------------------------- renames


def _renameat2(src: Path, dst: Path, flag: int) -> bool:
    """Linux's renameat2 with flag (1: no-replace, 2: exchange); False where the system lacks it."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_cwd = -100
    if fn(at_cwd, os.fsencode(src), at_cwd, os.fsencode(dst), flag) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # an old kernel, or a file system without it
        return False
    raise OSError(code, os.strerror(code), str(dst))


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename src to dst, failing with FileExistsError if dst exists, even if it appears meanwhile."""
    if _renameat2(src, dst, 1):
        return
    if not src.is_dir():  # a hard link is created only where nothing is: POSIX's no-replace for files
        os.link(src, dst)
        os.unlink(src)
        return
    if os.path.lexists(dst):  # pragma: no cover - systems without renameat2 only
        raise FileExistsError(errno.EEXIST, "File exists", str(dst))
    os.rename(src, dst)  # pragma: no cover


def exchange(a: Path, b: Path) -> None:
    """Swap the entries a and b in one step (so a kill leaves one or the other at b, never neither)."""
    if _renameat2(a, b, 2):
        return
    side = a.with_name(a.name + ".swap")  # systems without renameat2: three renames, a short window
    os.rename(b, side)
    os.rename(a, b)
    os.rename(side, a)


def publish(tmp: Path, path: Path, replace: bool) -> None:
    """Move the finished temporary tmp to path; errors name path, not the temporary."""
    try:
        if replace and not tmp.is_dir():
            os.replace(tmp, path)
        else:
            rename_noreplace(tmp, path)
    except FileExistsError:
        raise AekitError(f"{path} exists (it appeared while aekit was writing); pass --force to replace it") from None
    except OSError as e:
        raise AekitError(f"{path}: cannot write ({e.strerror or e})") from None
    _fsync_dir(path.parent)


# ---------------------------------------------------------------- temporaries that a later command can clean


try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locks, and so no leftovers are ever cleaned
    fcntl = None

TAG = "aekit-"  # in every temporary's name: .NAME.aekit-XXXXXXXX.tmp (tempfile's 8 characters of [a-z0-9_])


def flock(fd: int, wait: bool) -> bool:
    """flock(fd) exclusively; False if another process holds it (and wait is False). Always True without flock."""
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError:
        return False
    return True


def temporary_pattern(name: str | None = None, suffix: str = TMP) -> re.Pattern:
    """The names aekit gives temporaries of the entry called name (None: of any entry) ending in suffix."""
    entry = re.escape(name) if name is not None else r".+"
    return re.compile(rf"\.{entry}\.{TAG}[a-z0-9_]{{8}}" + re.escape(suffix))


def temporary(path: Path, folder: bool = False, suffix: str = TMP) -> tuple[Path, int]:
    """A new temporary file (or folder) beside path, named by temporary_pattern, and a descriptor holding its
    lock (dropped when the process ends, however it ends)."""
    while True:
        prefix, where = f".{path.name}.{TAG}", path.parent
        try:
            if folder:
                tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=where))
                fd = os.open(tmp, os.O_RDONLY)
            else:
                fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=where)
                tmp = Path(name)
        except OSError as e:  # named by the user's path, not the temporary's
            raise AekitError(f"{path}: cannot write ({e.strerror or e})") from None
        flock(fd, wait=True)
        if os.fstat(fd).st_nlink > 0:
            return tmp, fd
        os.close(fd)  # another command took it for a leftover between its creation and our lock: again


def remove_abandoned(paths: Iterable[Path]) -> None:
    """Delete those of paths (aekit's temporaries) whose lock is free: their process died before finishing."""
    if fcntl is None:  # pragma: no cover - no way to tell a live temporary from an abandoned one
        return
    for tmp in paths:
        try:
            fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            if flock(fd, wait=False):
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    shutil.rmtree(tmp, ignore_errors=True)
                else:
                    tmp.unlink(missing_ok=True)
        finally:
            os.close(fd)


def leftovers(path: Path, suffix: str = TMP) -> list[Path]:
    """The temporaries aekit makes while writing path (a killed process's included): nothing else matches."""
    pattern = temporary_pattern(path.name, suffix)
    found = path.parent.glob(glob.escape(f".{path.name}.{TAG}") + "*" + glob.escape(suffix))
    return sorted(p for p in found if pattern.fullmatch(p.name))


def temporaries(folder: Path) -> list[Path]:
    """Every temporary file aekit makes in folder (of any output's name)."""
    pattern = temporary_pattern()
    return sorted(p for p in folder.glob(f".*.{TAG}*{TMP}") if pattern.fullmatch(p.name))


# ---------------------------------------------------------------- writing files


def atomic_write(
    path: str | os.PathLike, write: Callable[[IO[bytes]], Any], replace: bool = True, record: bool = False
) -> Path:
    """Call write(f) on a locked temporary file next to path, then move it into place.

    replace: whether an existing path may be replaced; when False the final rename refuses to replace
    (FileExistsError becomes a one-line AekitError), even if path appeared while writing. record: list the file
    in its folder's manifest (an output of aekit's that a later --force may replace).
    """
    path = Path(path)
    tmp, fd = temporary(path)
    try:
        with os.fdopen(os.dup(fd), "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~current_umask())  # mkstemp makes 0600; give what open() would
            write(f)
            f.flush()
            os.fsync(f.fileno())
        sha = digest(tmp) if record else None
        publish(tmp, path, replace)
        if sha is not None:
            _record(path.parent, {path.name: sha})
    except OSError as e:  # a full disk, say: named by the user's path, not the temporary's
        tmp.unlink(missing_ok=True)
        raise AekitError(f"{path}: cannot write ({e.strerror or e})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    return path


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Writes that belong together (a run's checkpoint, weights and metrics of one epoch): a Ctrl-C during the block
    takes effect when it ends, so that the files never disagree about how far training got. (Each file is atomic
    on its own; SIGKILL can still land between them, which loading from the checkpoint allows for.)"""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield  # only the main thread receives signals; None: a handler set outside Python, left alone
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        signal.raise_signal(signal.SIGINT)  # now, to whatever handled it before (KeyboardInterrupt, aekit's CLI)


def write_bytes(path: str | os.PathLike, data: bytes, replace: bool = True, record: bool = False) -> Path:
    """Atomically write bytes to path (see atomic_write)."""
    return atomic_write(path, lambda f: f.write(data), replace, record)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write obj as indented JSON (non-finite floats as null)."""
    return write_bytes(path, (dumps(obj) + "\n").encode())


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the directory entry is on disk (POSIX; a no-op elsewhere).
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------- the manifest: what aekit wrote

MANIFEST = ".aekit-output"  # in a folder: {"written_by": "aekit", "files": {relative path: sha256}}
MAX_MANIFEST_BYTES = 16 << 20


def digest(path: Path) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def read_manifest(folder: Path) -> dict[str, str]:
    """What folder's manifest says aekit wrote there ({relative path: sha256}); {} if it has none that aekit wrote
    (a missing, unreadable or malformed one, or a link)."""
    path = folder / MANIFEST
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode) or os.lstat(path).st_size > MAX_MANIFEST_BYTES:
            return {}
        value = parse_json(path.read_bytes(), str(path))
    except (OSError, AekitError):
        return {}
    files = value.get("files") if isinstance(value, dict) and value.get("written_by") == "aekit" else None
    if not isinstance(files, dict):
        return {}
    return {k: v for k, v in files.items() if isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v)}


def write_manifest(folder: Path, files: dict[str, str]) -> None:
    manifest = {"written_by": "aekit", "files": dict(sorted(files.items()))}
    write_bytes(folder / MANIFEST, (dumps(manifest) + "\n").encode())


def _record(folder: Path, written: dict[str, str]) -> None:
    """Add written ({name: sha256}) to folder's manifest, holding a lock on it (so that two aekit commands writing
    outputs into one folder keep both); entries whose file is gone are dropped. Where the manifest cannot be
    written (a full disk), the outputs stay, only not replaceable by a later --force."""
    path = folder / MANIFEST
    while True:  # lock the manifest that is at path (a writer that replaced it meanwhile made a new one)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666 & ~current_umask())
        except OSError:
            return
        try:
            flock(fd, wait=True)
            if os.fstat(fd).st_ino == os.lstat(path).st_ino:
                files = {k: v for k, v in read_manifest(folder).items() if os.path.lexists(folder / k)}
                write_manifest(folder, {**files, **written})
                return
        except (OSError, AekitError):
            return
        finally:
            os.close(fd)  # drops the lock


def is_ours(path: Path) -> bool:
    """Whether the regular file path is listed in its folder's manifest with the digest of what it holds now (an
    output aekit wrote and nobody changed since)."""
    listed = read_manifest(path.parent).get(path.name)
    return listed is not None and stat.S_ISREG(os.lstat(path).st_mode) and digest(path) == listed


def is_our_folder(path: Path) -> bool:
    """Whether every file under folder path is one its manifest lists, with that digest, and it holds nothing
    else (no link, no other entry, no folder without such files). An empty folder holds nothing to lose: True."""
    listed = read_manifest(path)
    found: dict[str, Path] = {}
    for root, dirs, files in os.walk(path):
        here = Path(root)
        if not files and not dirs and here != path:
            return False  # an empty subfolder: not something aekit writes
        for name in [*dirs, *files]:
            entry = here / name
            info = os.lstat(entry)
            if stat.S_ISLNK(info.st_mode) or not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
                return False
        for name in files:
            rel = (here / name).relative_to(path).as_posix()
            if rel != MANIFEST:
                found[rel] = here / name
    if not found:
        return True  # nothing in it to lose
    return set(found) == set(listed) and all(digest(p) == listed[rel] for rel, p in found.items())
