"""The `aekit` command's entry point (`python -m aekit`, and the console script `aekit`): aekit.cli.main(),
then exit. Nothing heavy is imported before the try, so that a Ctrl-C while aekit.cli itself loads is the
same one line and status 130 as later on.

Two exits skip the interpreter's shutdown once the output is flushed (os._exit): after Ctrl-C, because
CPython kills itself with SIGINT at shutdown (status -2, not 130) when an interrupt passed through a
library's exec() on its way to aekit's handler; and in a process of a multi-process job, because
destroying torch.distributed's threads late can abort shutdown (seen under load with gloo), after
everything was written.
"""

import os
import sys

from .errors import EXIT_INTERRUPTED


def run() -> None:
    try:
        from .cli import main

        code = main()
    except KeyboardInterrupt:  # while aekit.cli loads, or between main's end and here
        print("aekit: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    if code == EXIT_INTERRUPTED or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
