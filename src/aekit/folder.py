"""A run folder while it is written: built under a hidden name and put in place whole, locked while in use,
saved after every epoch.

    with RunFolder.stage(out, "ae-mnist", force, config) as folder:   # .NAME.XXXX.partial, locked, config.json
        trainer = Trainer(model, data, train_config, folder)
        folder.save(trainer)                                         # the epoch-0 checkpoint
        folder.place()                                               # renamed to NAME in one step
        trainer.fit()                                                # folder.save after every epoch

A kill at any moment leaves no folder, or one that loads and resumes; with --force the old run is swapped
out in one step (renameat2), so a kill leaves the old run or the new one. Staging folders that a killed
process left are deleted by the next run into the same name (their lock is free).
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from . import checkpoint, disk
from .errors import AekitError, check
from .run import CHECKPOINT, CONFIG, WEIGHTS, save_tensors, update_metrics, write_history


class RunFolder:
    """A run folder being written by this process (holding its lock). path is where it is now: the hidden
    staging name until place(), then its own name."""

    def __init__(self, path: Path, lock: disk.FolderLock, target: Path | None = None, replaced=None) -> None:
        self.path, self.lock = path, lock
        self._target, self._replaced = target, replaced  # where place() puts it; the old run's lock (--force)

    @classmethod
    def stage(cls, out: str | os.PathLike | None, default_name: str, force: bool, config: dict[str, Any]) -> RunFolder:
        """A new run folder for out (default runs/DEFAULT_NAME, numbered if taken), built under a hidden name
        next to it and holding config.json. Refuses an existing folder unless force replaces a run."""
        run_dir, replaced = _reserve(out, default_name, force)
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.", suffix=".partial", dir=run_dir.parent))
        except OSError as e:
            if replaced is not None:
                replaced.release()
            raise AekitError(f"{run_dir}: cannot create the run folder ({e.strerror or e})") from None
        folder = cls(staging, disk.FolderLock(staging), run_dir, replaced)
        try:
            staging.chmod(0o777 & ~disk.current_umask())
            folder.lock.acquire()  # moves with the folder: held until training ends
            disk.write_json(staging / CONFIG, config)
        except BaseException:
            folder.__exit__(None, None, None)
            raise
        return folder

    @classmethod
    def reopen(cls, run_dir: Path) -> RunFolder:
        """An existing run folder to train further (--resume): locked, a killed process's temporaries gone."""
        lock = disk.FolderLock(run_dir).acquire()
        disk.remove_abandoned(run_dir.glob(f".*{disk.TMP}"))
        return cls(run_dir, lock)

    def save(self, trainer) -> None:
        """The resume point (checkpoint.safetensors, atomic), then model.safetensors, metrics.json and history.csv."""
        checkpoint.save(self.path / CHECKPOINT, trainer)
        save_tensors(self.path / WEIGHTS, trainer.model.state_dict(), {"epoch": str(trainer.epoch)})
        history = trainer.history
        update_metrics(self.path, history=history, **({"final": history[-1]} if history else {}))
        write_history(self.path, history)

    def write_config(self, config: dict[str, Any]) -> None:
        disk.write_json(self.path / CONFIG, config)

    def place(self) -> None:
        """Rename the staging folder to its name; with --force swap it with the old run in one step (then
        delete the old run), so that a kill at any moment leaves the old run or the new one there."""
        target, staging = self._target, self.path
        try:
            if self._replaced is None:
                disk.rename_noreplace(staging, target)
            else:
                disk.exchange(staging, target)
        except FileExistsError:
            raise AekitError(f"{target} appeared while this run was being set up; choose another --out") from None
        except OSError as e:
            raise AekitError(f"{target}: cannot create the run folder ({e.strerror or e})") from None
        self.path, self._target = target, None
        if self._replaced is not None:
            shutil.rmtree(staging, ignore_errors=True)  # the old run, swapped out
            self._replaced.release()
            self._replaced = None

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        """Release the lock; a folder never placed (an error, Ctrl-C) is deleted."""
        self.lock.release()
        if self._replaced is not None:
            self._replaced.release()
        if self._target is not None:
            shutil.rmtree(self.path, ignore_errors=True)


def _reserve(out: str | os.PathLike | None, default_name: str, force: bool) -> tuple[Path, disk.FolderLock | None]:
    """(the run folder to create, the lock on the old run there if force replaces one)."""
    if out is None:
        base = Path("runs") / default_name
        run_dir, n = base, 1
        while run_dir.exists():
            n += 1
            run_dir = base.with_name(f"{base.name}-{n}")
    else:
        run_dir = Path(out)
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AekitError(f"cannot create {run_dir.parent}: {e.strerror or e}") from None
    _remove_abandoned(run_dir)
    if not os.path.lexists(run_dir):
        return run_dir, None
    check(not run_dir.is_symlink(), f"{run_dir} is a symbolic link; give the folder it points to, or another --out")
    is_run = run_dir.is_dir() and (run_dir / CONFIG).exists()
    if run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()
        return run_dir, None
    if force and is_run:
        return run_dir, disk.FolderLock(run_dir).acquire()  # refuses while another process trains it
    hint = "; use --resume to continue it or --force to replace it" if is_run else ""
    raise AekitError(f"{run_dir} already exists{hint}")


def _remove_abandoned(run_dir: Path) -> None:
    """Delete staging folders for run_dir left by killed processes (their lock is free): a run being built, or
    after a --force swap the old run. (Earlier builds of aekit moved an old run to .NAME.XXXX.old before
    renaming the new one in: such a folder goes only once a run is in place, else it may be the only copy.)"""
    kinds = (".partial", ".old") if os.path.lexists(run_dir) else (".partial",)
    for path in run_dir.parent.glob(f".{glob.escape(run_dir.name)}.*"):
        if path.suffix not in kinds or not path.is_dir() or path.is_symlink():
            continue
        try:
            lock = disk.FolderLock(path).acquire()
        except (AekitError, OSError):
            continue  # another process is building it
        lock.release()
        shutil.rmtree(path, ignore_errors=True)
