"""The lock of a folder one aekit process writes at a time (a run folder): flock on FOLDER/.lock."""

from __future__ import annotations

import os
from pathlib import Path

from .disk import flock
from .errors import AekitError

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
        if not flock(fd, wait=False):
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
