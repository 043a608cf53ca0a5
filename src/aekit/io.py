"""Files that appear whole or not at all: write to a temporary sibling, fsync, rename."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call write(f) on a temporary file next to path, then move it into place atomically."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~current_umask())  # mkstemp makes 0600; give what open() would
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomically write bytes to path."""
    return atomic_write(path, lambda f: f.write(data))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write obj as indented JSON (NaN/inf refused: they are not JSON)."""
    text = json.dumps(obj, indent=2, allow_nan=False) + "\n"
    return write_bytes(path, text.encode())


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
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self
        from .errors import AekitError

        fd = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise AekitError(
                f"{self.folder} is in use by another aekit process{f' (pid {holder})' if holder else ''}; "
                "wait for it to finish"
            ) from None
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
