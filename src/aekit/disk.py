"""Everything aekit puts on disk appears whole or not at all, and replaces only what it may replace.

- atomic_write: a temporary sibling, fsync, then a rename into place (os.replace when replacing is allowed,
  a rename that refuses to replace otherwise, so that two processes racing for one name cannot both win).
- Temporary siblings are named `.NAME.XXXXXXXX.tmp` and locked (flock) by the process writing them, so the
  next command writing NAME can tell the leftovers of a killed process (lock free: removed) from the work
  of a live one (lock held: left alone).
- Output: a user's output path (-o), checked before any work: without --force nothing existing is ever
  replaced; with it, only what aekit would write there (a file of the output's kind, or a folder of PNGs
  that aekit made and marked), never another folder, never the current folder or one above it.
- parse_json / read_json: the one JSON reader (a nesting limit; every error one line naming the file);
  to_json: the one writer's view of floats (NaN and infinities become null: they are not JSON).
"""

from __future__ import annotations

import ctypes
import errno
import glob
import json
import math
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from .errors import AekitError, check

TMP = ".tmp"
MARKER = ".aekit-output"  # in every folder of PNGs that aekit writes: what --force may replace
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
    side = a.with_name(a.name + ".swap")  # pragma: no cover - systems without renameat2: a short window
    os.rename(b, side)  # pragma: no cover
    os.rename(a, b)  # pragma: no cover
    os.rename(side, a)  # pragma: no cover


def _publish(tmp: Path, path: Path, replace: bool) -> None:
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


def _lock(fd: int, wait: bool) -> bool:
    """flock(fd) exclusively; False if another process holds it (and wait is False). Always True without flock."""
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError:
        return False
    return True


def _temp_sibling(path: Path, folder: bool = False) -> tuple[Path, int]:
    """A new `.NAME.XXXXXXXX.tmp` file or folder beside path and a descriptor holding its lock (dropped when
    the process ends, however it ends)."""
    while True:
        prefix, where = f".{path.name}.", path.parent
        try:
            if folder:
                tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=TMP, dir=where))
                fd = os.open(tmp, os.O_RDONLY)
            else:
                fd, name = tempfile.mkstemp(prefix=prefix, suffix=TMP, dir=where)
                tmp = Path(name)
        except OSError as e:  # named by the user's path, not the temporary's
            raise AekitError(f"{path}: cannot write ({e.strerror or e})") from None
        _lock(fd, wait=True)
        if os.fstat(fd).st_nlink > 0:
            return tmp, fd
        os.close(fd)  # another command took it for a leftover between its creation and our lock: again


def remove_abandoned(paths: Iterable[Path]) -> None:
    """Delete those of paths (temporaries) whose lock is free: their process died before finishing."""
    if fcntl is None:  # pragma: no cover - no way to tell a live temporary from an abandoned one
        return
    for tmp in paths:
        try:
            fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            if _lock(fd, wait=False):
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    shutil.rmtree(tmp, ignore_errors=True)
                else:
                    tmp.unlink(missing_ok=True)
        finally:
            os.close(fd)


def leftovers(path: Path) -> list[Path]:
    """The temporaries aekit makes while writing path (a killed process's included)."""
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*{TMP}"))


# ---------------------------------------------------------------- writing files


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any], replace: bool = True) -> Path:
    """Call write(f) on a locked temporary file next to path, then move it into place.

    replace: whether an existing path may be replaced; when False the final rename refuses to replace
    (FileExistsError becomes a one-line AekitError), even if path appeared while writing.
    """
    path = Path(path)
    tmp, fd = _temp_sibling(path)
    try:
        with os.fdopen(os.dup(fd), "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~current_umask())  # mkstemp makes 0600; give what open() would
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, path, replace)
    except OSError as e:  # a full disk, say: named by the user's path, not the temporary's
        tmp.unlink(missing_ok=True)
        raise AekitError(f"{path}: cannot write ({e.strerror or e})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    return path


def write_bytes(path: str | os.PathLike, data: bytes, replace: bool = True) -> Path:
    """Atomically write bytes to path."""
    return atomic_write(path, lambda f: f.write(data), replace)


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


# ---------------------------------------------------------------- the user's outputs

FOLDER = ""  # the kind of an output named without a suffix: a folder of PNG images
_SIGNATURES = {  # how a file of each kind begins: --force replaces only files that do (or empty ones)
    ".png": (b"\x89PNG\r\n\x1a\n",),
    ".npy": (b"\x93NUMPY",),
    ".npz": (b"PK\x03\x04", b"PK\x05\x06"),
    ".aez": (b"AEKZ",),
    ".onnx": (b"\x08",),  # a ModelProto's first field, its IR version
}


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:  # a character cut at the end of the sample is fine
        if e.start < len(head) - 4:
            return False
    return b"\0" not in head


_KIND_NAMES = {
    ".png": ".png (a PNG image)",
    ".npy": ".npy",
    ".npz": ".npz",
    ".aez": ".aez",
    ".csv": ".csv",
    ".onnx": ".onnx",
    ".html": ".html",
    FOLDER: "a name without a suffix (a folder of PNG images)",
}


def _pngs(entry: Path, subfolders: bool) -> bool:
    """Whether entry is a PNG file, or (with subfolders) a real folder of nothing but PNG files."""
    if entry.is_symlink():
        return False
    if entry.is_dir():
        return subfolders and all(_pngs(e, subfolders=False) for e in entry.iterdir())
    return entry.suffix == ".png" and entry.is_file()


def _describe(kinds: tuple[str, ...]) -> str:
    names = [_KIND_NAMES[k] for k in kinds]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


class Output:
    """An output path, checked before any work, then written whole.

    kinds: the suffixes it may have (".png", ".npz", ...; FOLDER for a folder of PNGs). Without force an
    existing path is refused, now and at the moment of writing. With force, only a file of the same kind
    (judged by its first bytes) or a folder that aekit wrote for such an output is replaced.
    """

    def __init__(self, path: str | os.PathLike, kinds: Iterable[str], force: bool = False) -> None:
        self.path, self.force = Path(path), force
        kinds = tuple(kinds)
        self.kind = self.path.suffix.lower()
        check(self.kind in kinds, f"{self.path}: name this output {_describe(kinds)}")
        check(self.path.parent.is_dir(), f"{self.path.parent}: no such folder for the output")
        remove_abandoned(leftovers(self.path))  # what a killed command left while writing this output
        self.check_replaceable()

    def check_replaceable(self) -> None:
        """AekitError unless path is free, or force is given and what is there is aekit's to replace."""
        path = self.path
        if not os.path.lexists(path):
            return
        check(self.force, f"{path} exists; pass --force to replace it")
        info = os.lstat(path)
        check(not stat.S_ISLNK(info.st_mode), f"{path} is a symbolic link; aekit replaces only what it wrote")
        if self.kind == FOLDER:
            here = Path.cwd().resolve()
            target = path.resolve()
            check(target != here and target not in here.parents, f"{path}: aekit never replaces the current folder")
            check(stat.S_ISDIR(info.st_mode), f"{path} is a file; the output is a folder of PNGs")
            entries = list(path.iterdir())
            ours = (path / MARKER).is_file() or not entries
            ours = ours and all(e.name == MARKER or _pngs(e, subfolders=True) for e in entries)
            check(ours, f"{path} is a folder aekit did not write (or holds other files); aekit replaces only its own")
        else:
            check(stat.S_ISREG(info.st_mode), f"{path} is not a file; give another output name")
            with open(path, "rb") as f:
                head = f.read(4096)
            signatures = _SIGNATURES.get(self.kind)
            ours = not head or (head.startswith(signatures) if signatures else _is_text(head))
            check(ours, f"{path} does not hold {self.kind} data; aekit replaces only a file of the output's kind")

    def write(self, fill: Callable[[IO[bytes]], Any]) -> Path:
        """Write a file through fill(f), whole or not at all."""
        return atomic_write(self.path, fill, replace=self.force)

    def write_bytes(self, data: bytes) -> Path:
        return self.write(lambda f: f.write(data))

    def write_folder(self, fill: Callable[[Path], Any]) -> Path:
        """Make a folder through fill(folder) and put it at path in one rename (replacing the old one whole)."""
        tmp, fd = _temp_sibling(self.path, folder=True)
        try:
            try:
                fill(tmp)
            except OSError as e:
                raise AekitError(f"{self.path}: cannot write ({e.strerror or e})") from None
            (tmp / MARKER).write_text('{"written_by": "aekit", "kind": "png folder"}\n')
            tmp.chmod(0o777 & ~current_umask())
            if self.force and os.path.lexists(self.path):
                self.check_replaceable()  # again: it may have changed since the command started
                try:
                    exchange(tmp, self.path)
                except OSError as e:
                    raise AekitError(f"{self.path}: cannot replace it ({e.strerror or e})") from None
            else:
                _publish(tmp, self.path, replace=False)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            os.close(fd)
        shutil.rmtree(tmp, ignore_errors=True)  # after an exchange: the old folder
        return self.path


def distinct(*outputs: Output | None) -> list[Output]:
    """The given outputs (None dropped); AekitError if two name the same file."""
    given = [o for o in outputs if o is not None]
    check(len({o.path.resolve() for o in given}) == len(given), "the outputs must be different files")
    return given


LOCK = ".lock"


class FolderLock:
    """An exclusive lock on a folder (flock on FOLDER/.lock): one aekit process writes a run folder at a time.

    The operating system drops the lock when its process ends, however it ends (SIGKILL included), so a
    stale lock file never blocks anyone. Where flock does not exist (Windows) this is a no-op.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.fd: int | None = None

    def acquire(self) -> FolderLock:
        fd = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        if not _lock(fd, wait=False):
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise AekitError(
                f"{self.folder} is in use by another aekit process{f' (pid {holder})' if holder else ''}; "
                "wait for it to finish"
            )
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    def __enter__(self) -> FolderLock:
        return self if self.fd is not None else self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
