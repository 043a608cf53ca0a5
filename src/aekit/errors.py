"""The one exception aekit raises for problems with the user's input or environment."""


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
