"""Multi-process training on torch.distributed: the environment torchrun sets, and `--nproc` to launch it.

aekit reads the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), so
`torchrun --nproc-per-node N -m aekit train ...` works on one node or many (`--nnodes`, `--node-rank`, `--master-addr`).
`aekit train --nproc N` starts N local processes with the same variables itself, so that a failure is one
line from rank 0 rather than torchrun's report.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from .errors import AekitError

T = TypeVar("T")


def world() -> tuple[int, int]:
    """(rank, world size): from the process group if one is running, else from torchrun's environment."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def setup() -> bool:
    """Join the process group torchrun (or --nproc) describes: gloo for CPU tensors, NCCL for CUDA ones.
    True if this call started it (the caller then ends it with teardown())."""
    rank, size = world()
    if size == 1 or dist.is_initialized():
        return False
    if not dist.is_available():  # pragma: no cover - every official build has it
        raise AekitError("this PyTorch build has no torch.distributed; train with one process")
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=size)
    return True


def barrier() -> None:
    """Wait for every process (a no-op with one). A CPU all-reduce: it goes through gloo on any machine."""
    if dist.is_initialized():
        dist.all_reduce(torch.zeros(1))


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def on_rank0(fn: Callable[[], T]) -> T | None:
    """Run fn on rank 0 only; if it raises an AekitError, every rank raises it (nobody waits forever)."""
    rank, size = world()
    result, error = None, None
    if rank == 0:
        try:
            result = fn()
        except AekitError as e:
            error = str(e)
    if size > 1:
        shared = [error]
        dist.broadcast_object_list(shared, src=0)
        error = shared[0]
    if error is not None:
        raise AekitError(error)
    return result


def all_sum(values: dict[str, Any], device: torch.device) -> dict[str, float]:
    """Sum each value over all ranks (a no-op with one process)."""
    if world()[1] == 1 or not values:
        return {k: float(v) for k, v in values.items()}
    keys = sorted(values)
    t = torch.stack([torch.as_tensor(values[k], dtype=torch.float64, device=device) for k in keys])
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist(), strict=True))


def launch(nproc: int, argv: list[str]) -> int:
    """Run `python -m aekit ARGV` (less its --nproc) in nproc local processes as one job; returns rank 0's exit
    status.

    Every rank's output but rank 0's is dropped unless a rank fails alone (then its last line is shown).
    """
    argv = _without_option(argv, "--nproc")
    port = _free_port()
    base = {**os.environ, "WORLD_SIZE": str(nproc), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    base.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    procs = []
    for rank in range(nproc):
        env = {**base, "RANK": str(rank), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(nproc)}
        quiet = subprocess.DEVNULL if rank else None
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "aekit", *argv],
                env=env,
                stdout=quiet,
                stderr=subprocess.PIPE if rank else None,
                text=True,
            )
        )
    try:
        while any(p.poll() is None for p in procs):
            if any(p.poll() not in (None, 0) for p in procs):  # the others would wait for it until a timeout
                time.sleep(2)  # time to report the error they may share
                for p in procs:
                    if p.poll() is None:
                        p.terminate()
            time.sleep(0.05)
    except KeyboardInterrupt:
        for p in procs:
            p.wait()
        return 130
    codes = [p.returncode for p in procs]
    if codes[0] > 0 or not any(codes):  # success, or rank 0 said what went wrong (its one line)
        return codes[0]
    failed = next(i for i, c in enumerate(codes) if c and i) if any(codes[1:]) else 0
    code = codes[failed]
    if code < 0:
        why = f"was killed by {signal.Signals(-code).name}"
    else:
        lines = (procs[failed].stderr.read() or "").strip().splitlines() if failed else []
        why = f"failed: {lines[-1] if lines else f'exit status {code}'}"
    print(f"aekit: error: process {failed} of the {nproc}-process job {why}", file=sys.stderr)
    return 2


def _without_option(argv: list[str], flag: str) -> list[str]:
    """argv less `flag VALUE` or `flag=VALUE`."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == flag:
            skip = True
        elif not arg.startswith(flag + "="):
            out.append(arg)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
