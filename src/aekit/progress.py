"""Long loops in chunks that show their progress on a terminal (and stay silent elsewhere)."""

from __future__ import annotations

import sys
from collections.abc import Iterator


def chunks(n: int, size: int, what: str | None = None) -> Iterator[slice]:
    """Slices covering range(n), size at a time; with what, a progress bar on a terminal when there are many."""
    starts: range | Iterator[int] = range(0, n, size)
    if what and len(starts) > 4 and sys.stderr.isatty():
        from tqdm import tqdm

        starts = iter(tqdm(starts, desc=what, unit="chunk", leave=False, file=sys.stderr, dynamic_ncols=True))
    for start in starts:
        yield slice(start, min(start + size, n))
