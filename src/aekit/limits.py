"""How much memory aekit may take, checked before allocating: the one home of the load limit.

Everything large is sized before it exists (arrays a file's header claims, decoded images, a model's
weights and optimizer state, a batch, the output of generate or decompress) and compared with
allowed_bytes(): $AEKIT_MAX_LOAD_BYTES, else 8 GiB or half the machine's memory (its container's, where that is
less), whichever is less, and never more than the machine has. Over it, one line says what was asked for and
what fits.
"""

from __future__ import annotations

import os

from .errors import AekitError, check

INFERENCE_BATCH = 1024  # items per forward pass outside training (evaluation and every use of a model)


# Where Linux says how much memory this process's container (control group, v2 or v1) may use
CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def physical_memory() -> int:
    """The memory this process may use in bytes: the machine's, or its container's where that is less (16 GiB
    assumed where neither can be read)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        total = 16 << 30
    for path in CGROUP_LIMITS:
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():  # "max" (v2) or a huge number (v1) where there is no limit
            total = min(total, int(text))
    return total


def peak_memory_mb() -> float:
    """This process's peak resident memory in MB (Linux's VmHWM: unlike ru_maxrss, it is not inherited from the
    process that started this one; ru_maxrss where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration, ValueError):  # pragma: no cover - not Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def max_load_bytes() -> int:
    """The load limit: $AEKIT_MAX_LOAD_BYTES, else 8 GiB or half the machine's memory, whichever is less."""
    raw = os.environ.get("AEKIT_MAX_LOAD_BYTES")
    if raw is None:
        return min(8 << 30, physical_memory() // 2)
    try:
        limit = int(raw)
    except ValueError:
        limit = -1
    check(limit > 0, f"AEKIT_MAX_LOAD_BYTES must be a positive whole number of bytes, got {raw!r}")
    return limit


def allowed_bytes() -> int:
    """What one step of aekit may allocate: the load limit, and never more than the machine's memory."""
    return min(max_load_bytes(), physical_memory())


def human(n: float) -> str:
    """A byte count for people: 1.5 GB."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""  # pragma: no cover


def check_load_size(nbytes: int, where: object, what: str, fits: str = "") -> None:
    """AekitError naming where unless nbytes fits allowed_bytes(); fits says what would (", at most ...")."""
    limit, ram = max_load_bytes(), physical_memory()
    if nbytes <= min(limit, ram):
        return
    if nbytes > ram:
        raise AekitError(
            f"{where}: {what} needs {human(nbytes)}, over the {human(limit)} load limit and this machine's "
            f"{human(ram)} of memory{fits}"
        )
    raise AekitError(
        f"{where}: {what} needs {human(nbytes)}, over the {human(limit)} load limit{fits} "
        "(raise AEKIT_MAX_LOAD_BYTES if this is real)"
    )
