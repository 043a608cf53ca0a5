"""A run folder while it is written: built under a hidden name and put in place whole, locked while in use,
saved after every epoch.

    with RunFolder.stage(out, "ae-mnist", force, config) as folder:   # .NAME.aekit-XXXXXXXX.partial, locked
        trainer = Trainer(model, data, train_config, [SaveRun(folder)])
        folder.save(trainer.state_dict())                            # the epoch-0 checkpoint
        folder.place()                                               # renamed to NAME in one step
        trainer.fit()                                                # SaveRun: folder.save after every epoch

A kill at any moment leaves no folder, or one that loads and resumes; with --force the old run is swapped
out in one step (renameat2), so a kill leaves the old run or the new one. Staging folders that a killed
process left are deleted by the next run into the same name (their lock is free). --force replaces only a
folder that is an aekit run: its config.json reads as a run's and it holds nothing but a run's files and
outputs aekit wrote there (the manifest, disk.is_ours).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import checkpoint, disk, outputs
from .errors import AekitError, check
from .lock import FolderLock
from .runfiles import CHECKPOINT, CONFIG, RUN_FILES, WEIGHTS, read_config, save_tensors, update_metrics, write_history
from .trainer import Callback

STAGING = ".partial"  # the suffix of a run folder being built (disk.temporary_pattern)


class RunFolder:
    """A run folder being written by this process (holding its lock). path is where it is now: the hidden
    staging name until place(), then its own name."""

    def __init__(
        self, path: Path, lock: FolderLock, target: Path | None = None, replaced=None, staged: int | None = None
    ) -> None:
        self.path, self.lock = path, lock
        self._target, self._replaced = target, replaced  # where place() puts it; the old run's lock (--force)
        self._staged = staged  # a descriptor holding the staging folder's own lock (see disk.temporary)

    @classmethod
    def stage(cls, out: str | os.PathLike | None, default_name: str, force: bool, config: dict[str, Any]) -> RunFolder:
        """A new run folder for out (default runs/DEFAULT_NAME, numbered if taken), built under a hidden name
        next to it and holding config.json. Refuses an existing folder unless force replaces a run."""
        run_dir, replaced = _reserve(out, default_name, force)
        try:
            staging, fd = disk.temporary(run_dir, folder=True, suffix=STAGING)
        except AekitError:
            if replaced is not None:
                replaced.release()
            raise
        folder = cls(staging, FolderLock(staging), run_dir, replaced, fd)
        try:
            staging.chmod(0o777 & ~disk.current_umask())
            folder.lock.acquire()  # moves with the folder: held until training ends
            folder.write_config(config)
        except BaseException:
            folder.__exit__(None, None, None)
            raise
        return folder

    @classmethod
    def reopen(cls, run_dir: Path) -> RunFolder:
        """An existing run folder to train further (--resume): locked, a killed process's temporaries gone."""
        outputs.check_not_shipped(run_dir, "; start from its weights in a run of your own with --init")
        lock = FolderLock(run_dir).acquire()
        disk.remove_abandoned(disk.temporaries(run_dir))
        return cls(run_dir, lock)

    def save(self, state: dict[str, Any]) -> None:
        """A trainer's state (Trainer.state_dict): the resume point (checkpoint.safetensors, atomic), then
        model.safetensors, metrics.json and history.csv, all four before a Ctrl-C stops training."""
        with self._named(), disk.uninterrupted():
            checkpoint.save(self.path / CHECKPOINT, state)
            save_tensors(self.path / WEIGHTS, state["model"], {"epoch": str(state["epoch"])})
            history = state["history"]
            update_metrics(self.path, history=history, **({"final": history[-1]} if history else {}))
            write_history(self.path, history)

    def write_config(self, config: dict[str, Any]) -> None:
        with self._named():
            disk.write_json(self.path / CONFIG, config)

    @contextlib.contextmanager
    def _named(self) -> Iterator[None]:
        """Errors of writing into the folder while it is staged name the run folder, not its hidden staging name."""
        try:
            yield
        except AekitError as e:
            if self._target is None:
                raise
            raise AekitError(str(e).replace(str(self.path), str(self._target))) from None

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
        """Release the locks; a folder never placed (an error, Ctrl-C) is deleted."""
        self.lock.release()
        if self._staged is not None:
            os.close(self._staged)
            self._staged = None
        if self._replaced is not None:
            self._replaced.release()
        if self._target is not None:
            shutil.rmtree(self.path, ignore_errors=True)


def _reserve(out: str | os.PathLike | None, default_name: str, force: bool) -> tuple[Path, FolderLock | None]:
    """(the run folder to create, the lock on the old run there if force replaces one)."""
    if out is None:
        base = Path("runs") / default_name
        run_dir, n = base, 1
        while run_dir.exists():
            n += 1
            run_dir = base.with_name(f"{base.name}-{n}")
    else:
        run_dir = Path(out)
    outputs.check_not_shipped(run_dir, "; give another --out")
    if os.path.lexists(run_dir):
        check(not run_dir.is_symlink(), f"{run_dir} is a symbolic link; give the folder it points to, or another --out")
        check(run_dir.is_dir(), f"{run_dir} is a file; give another --out")
        if not any(run_dir.iterdir()):  # an empty folder: nothing to lose
            outputs.check_not_here(run_dir)
            run_dir.rmdir()
        else:
            is_run = _is_run(run_dir)
            hint = "; use --resume to continue it or --force to replace it" if is_run else ""
            check(force and is_run, f"{run_dir} already exists{hint}" if not force else
                  f"{run_dir} is not an aekit run folder (or holds files aekit did not write there); --force "
                  "replaces only a run: give another --out")  # fmt: skip
            outputs.check_not_here(run_dir, "; give another --out")
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AekitError(f"cannot create {run_dir.parent}: {e.strerror or e}") from None
    disk.remove_abandoned(disk.leftovers(run_dir, STAGING))  # run folders that killed processes were building
    if not os.path.lexists(run_dir):
        return run_dir, None
    return run_dir, FolderLock(run_dir).acquire()  # refuses while another process trains it


def _is_run(folder: Path) -> bool:
    """Whether folder is an aekit run: its config.json reads as a run's, and every entry is a run's file, an
    aekit temporary, or an output aekit wrote there (a file listed in the manifest with its content, or a folder
    of figures that aekit wrote whole)."""
    try:
        read_config(folder)
    except AekitError:
        return False
    temporary = disk.temporary_pattern()
    for entry in folder.iterdir():
        if entry.is_symlink():
            return False
        if entry.is_dir():
            if not disk.is_our_folder(entry):
                return False
        elif entry.name not in RUN_FILES and not temporary.fullmatch(entry.name) and not disk.is_ours(entry):
            return False
    return True


class SaveRun(Callback):
    """Checkpointing: the trainer's state saved into its run folder after every epoch (RunFolder.save)."""

    def __init__(self, folder: RunFolder) -> None:
        self.folder = folder

    @property
    def run_dir(self) -> Path:
        return self.folder.path

    def on_epoch_end(self, trainer, record: dict[str, float]) -> None:
        self.folder.save(trainer.state_dict())
