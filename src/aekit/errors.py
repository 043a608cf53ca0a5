"""The one exception aekit raises for problems with the user's input or environment, and the one warning it
gives when it changed the user's input to fit (a note)."""

import warnings

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C: the status of an interrupted command


class AekitError(ValueError):
    """A problem with input, options or files, explained in one line.

    The CLI prints the message and exits with status 2. It subclasses ValueError so that code
    which already catches bad-value errors (scikit-learn, argparse callers) catches it too. The message
    is always one line: any line breaks in it (from a file's content, say) become spaces.
    """

    def __init__(self, message: object = "") -> None:
        super().__init__(" ".join(str(message).split()))


def check(condition: bool, message: str) -> None:
    """Raise AekitError(message) unless condition holds."""
    if not condition:
        raise AekitError(message)


class AekitNote(UserWarning):
    """Something aekit did to the user's input that they should know of (a grey photo used as RGB), in one line.
    The CLI prints it as `aekit: note: ...`; in Python it is a warning (shown once per place, as warnings are)."""


def note(message: str) -> None:
    """Tell the user, in one line, what aekit did to their input (an AekitNote warning)."""
    warnings.warn(AekitNote(" ".join(message.split())), stacklevel=2)
