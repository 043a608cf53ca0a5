"""Long loops in chunks that show their progress: a bar on a terminal, elsewhere (a log file, a job's output) a
line every INTERVAL seconds once a loop runs that long, so that a slow step still shows life."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator

INTERVAL = 30.0  # seconds between progress lines where there is no terminal


def chunks(n: int, size: int, what: str | None = None) -> Iterator[slice]:
    """Slices covering range(n), size at a time; with what, a progress bar on a terminal when there are many, and
    a line every INTERVAL seconds elsewhere."""
    starts: Iterable[int] = range(0, n, size)
    if what and len(starts) > 4 and sys.stderr.isatty():
        from tqdm import tqdm

        starts = tqdm(starts, desc=what, unit="chunk", leave=False, file=sys.stderr, dynamic_ncols=True)
    elif what:
        starts = _heartbeat(starts, what)
    for start in starts:
        yield slice(start, min(start + size, n))


def _heartbeat(items: range, what: str) -> Iterator[int]:
    begun = last = time.monotonic()
    for i, item in enumerate(items):
        now = time.monotonic()
        if i and now - last >= INTERVAL:
            print(f"{what}: {i / len(items):.0%} done, {now - begun:.0f} s", file=sys.stderr, flush=True)
            last = now
        yield item
