"""The `aekit` command: the parser built from the table of verbs (aekit.commands, one per public Python function),
and main(), which __main__.run() calls. Bad input is one line on stderr and exit status 2; Ctrl-C is one
line and status 130.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import typing
from collections.abc import Iterator
from typing import Any

from .errors import EXIT_INTERRUPTED

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (status 2) instead of a usage block."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every verb in VERBS, each with its handler as args.func."""
    from . import __version__
    from .commands import VERBS

    p = _Parser(prog="aekit", description="Train and use autoencoders: aekit <command> --help for each command.")
    p.add_argument("--version", action="version", version=f"aekit {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, (help, setup) in VERBS.items():
        group, _, action = name.rpartition(" ")
        if group and group not in groups:
            parent = sub.add_parser(
                group, help=f"{group}: {', '.join(n.split()[1] for n in VERBS if n.startswith(group + ' '))}"
            )
            groups[group] = parent.add_subparsers(
                dest=f"{group}_command", required=True, metavar="ACTION", parser_class=_Parser
            )
        parser = (groups[group] if group else sub).add_parser(action, help=help)
        parser.set_defaults(func=setup(parser))
    return p


class _Interrupts:
    """While aekit runs: Ctrl-C raises KeyboardInterrupt as usual, and is also noted, because an interrupt that
    lands inside a library's import can come out as another exception (a half-initialised module).

    Inside `deferred()` (start-up: PyTorch's import) a Ctrl-C is only noted and raised when the block ends: an
    exception raised in Python code that PyTorch's C++ initialisation calls back into can abort the process
    (std::terminate, status -6) instead of unwinding."""

    def __init__(self) -> None:
        self.seen = False
        self.deferring = False
        self.previous = None

    def _handler(self, signum, frame):
        self.seen = True
        if not self.deferring:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False
        if self.seen:
            raise KeyboardInterrupt

    def __enter__(self) -> _Interrupts:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not ignored, not the caller's own
                self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            import signal

            signal.signal(signal.SIGINT, self.previous)


def _show(result: Any) -> int | None:
    """Print what a handler returned (a report as JSON, text as it is); an int is an exit status."""
    if isinstance(result, dict):
        from .disk import dumps

        print(dumps(result))
    elif isinstance(result, str):
        print(result)
    return result if isinstance(result, int) else None


@contextlib.contextmanager
def _notes() -> Iterator[None]:
    """aekit's notes (errors.AekitNote) as one line each on stderr, `aekit: note: ...`, every one of them; other
    warnings as Python shows them."""
    import warnings

    from .errors import AekitNote

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, AekitNote):
            print(f"aekit: note: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("always", AekitNote)
        warnings.showwarning = show
        yield


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `aekit` command; returns the exit status."""
    with _Interrupts() as interrupts, _notes():
        try:
            with interrupts.deferred():
                args = build_parser().parse_args(argv)
            args.argv = list(sys.argv[1:] if argv is None else argv)
            from .errors import AekitError

            if interrupts.seen:  # swallowed by a library's import (a bare except): stop before any work
                raise KeyboardInterrupt
            try:
                code = _show(args.func(args))
                if interrupts.seen:  # swallowed by a library while the command worked: it did finish, say both
                    print("aekit: interrupted, but only after the command had finished its work", file=sys.stderr)
                    return EXIT_INTERRUPTED
            except AekitError as e:
                print(f"aekit: error: {e}", file=sys.stderr)
                return EXIT_USAGE
            except OSError as e:  # the disk is full, a folder is not writable, ...: say so in one line
                where = f"{e.filename}: " if e.filename else ""
                print(f"aekit: error: {where}{e.strerror or e}", file=sys.stderr)
                return EXIT_USAGE
        except BaseException as e:  # Ctrl-C at any moment, start-up included
            if isinstance(e, SystemExit) or not (isinstance(e, KeyboardInterrupt) or interrupts.seen):
                raise
            run_dir = getattr(e, "run_dir", None)
            hint = f"; continue with: aekit train --resume {run_dir}" if run_dir else ""
            print(f"aekit: interrupted{hint}", file=sys.stderr)
            return EXIT_INTERRUPTED
    return code or 0
