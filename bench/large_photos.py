"""Memory of a large folder of photos: aekit keeps every image once, as uint8 at its own size.

Writes N generated 12-megapixel JPEGs (4000x3000, smooth colour and fine noise), then runs, each in a fresh
process: `aekit data info FOLDER --crop 64,64` (every photo decoded into the uint8 store, cut into the crop
grid and summed up) and `aekit train FOLDER --crop 64,64 --backbone resnet` stopped after a few steps (the
training process: the store, the model, Adam and a batch). Prints each one's peak resident memory beside the
bytes the pixels take as uint8 and as float32.

    python bench/large_photos.py [--photos 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

PROBE = """
import resource, subprocess, sys, time
child = subprocess.Popen(sys.argv[2:])
deadline = float(sys.argv[1])
start = time.perf_counter()
while child.poll() is None:
    if deadline and time.perf_counter() - start > deadline:
        child.send_signal(2)  # Ctrl-C: training stops after its first steps
        child.wait()
    time.sleep(0.2)
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def peak(command: list[str], stop_after: float = 0.0) -> tuple[float, float]:
    """(seconds, peak resident MB) of command in a fresh process (measured from a small parent, so that this
    script's memory is not counted); interrupted after stop_after seconds when given."""
    out = subprocess.run([sys.executable, "-c", PROBE, str(stop_after), *command], capture_output=True, text=True)
    seconds, kilobytes = out.stdout.split()[-2:]
    return float(seconds), int(kilobytes) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=20, help="how many 12-megapixel photos (default 20)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows, cols = np.meshgrid(np.linspace(0, 1, 3000), np.linspace(0, 1, 4000), indexing="ij")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for k in range(args.photos):
            phase = rng.uniform(0, 6, 3)
            base = np.stack([np.sin(7 * rows + 5 * cols + p) for p in phase], -1) * 90 + 128
            image = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(image).save(folder / f"{k:03d}.jpg", quality=90)
        pixels = args.photos * 4000 * 3000 * 3
        aekit = [sys.executable, "-m", "aekit"]
        env_note = f"{os.cpu_count()} CPUs"
        print(f"{args.photos} photos of 4000x3000 RGB: {pixels / 2**20:.0f} MB as uint8, "
              f"{4 * pixels / 2**20:.0f} MB as float32 ({env_note})")  # fmt: skip
        seconds, mb = peak([*aekit, "data", "info", str(folder), "--crop", "64,64"])
        print(f"  aekit data info FOLDER --crop 64,64: peak {mb:.0f} MB, {seconds:.0f} s")
        train = [*aekit, "train", str(folder), "--crop", "64,64", "--backbone", "resnet", "--batch-size", "16",
                 "--out", str(Path(tmp) / "run")]  # fmt: skip
        seconds, mb = peak(train, stop_after=seconds + 60)  # loading, then about a minute of steps
        print(f"  aekit train FOLDER --crop 64,64 --backbone resnet (stopped after {seconds:.0f} s of loading and "
              f"steps): peak {mb:.0f} MB")  # fmt: skip
    print(f"reproduce: python bench/large_photos.py --photos {args.photos}")


if __name__ == "__main__":
    main()
