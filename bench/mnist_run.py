"""One aekit run on MNIST as the benches train them: a fresh run folder, quiet, Adam with a cosine decay, seed 0."""

from __future__ import annotations

import time

import aekit


def train(kind: str, out: str, **options) -> tuple[aekit.Run, float]:
    """(the trained run, its seconds): aekit.train on MNIST with the benches' shared settings and options."""
    start = time.perf_counter()
    run = aekit.train("mnist", kind, out=out, force=True, quiet=True, schedule="cosine", seed=0, **options)
    return run, time.perf_counter() - start
