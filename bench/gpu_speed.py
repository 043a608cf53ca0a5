"""Epochs per second on a GPU: the classic example and a conv VAE, in fp32, bf16 autocast, and bf16 + compile.

On CUDA the trainer keeps MNIST on the GPU (no host-to-device copies per batch) and puts conv models in
channels_last. Each row trains a few epochs and reports the median epoch time (the first epoch, which
includes compilation, is left out). Without a CUDA device it says so and measures nothing.

    python bench/gpu_speed.py
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

import aekit

MODELS = {
    "classic ae, MLP 784-128-64-32, batch 256": ("ae", {"hidden": [128, 64], "latent_dim": 32, "batch_size": 256}),
    "conv vae 32-64-128, code 32, batch 128": ("vae", {"backbone": "conv", "latent_dim": 32, "batch_size": 128}),
}
MODES = {"fp32": {}, "bf16": {"precision": "bf16"}, "bf16 + compile": {"precision": "bf16", "compile": True}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=6)
    a = p.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device here: nothing measured (run this where a GPU is available)")
        return 0
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, aekit {aekit.__version__}")
    print(f"{'model':45} {'mode':15} {'epochs/s':>9} {'val loss':>9}")
    for label, (name, options) in MODELS.items():
        for mode, extra in MODES.items():
            run = aekit.train(
                "mnist",
                name,
                out="runs/gpu-speed",
                force=True,
                quiet=True,
                epochs=a.epochs,
                device="cuda",
                **options,
                **extra,
            )
            history = run.metrics["history"]
            seconds = statistics.median(r["time_s"] for r in history[1:])
            print(f"{label:45} {mode:15} {1 / seconds:9.2f} {history[-1]['test_loss']:9.3f}")
    print("reproduce: python bench/gpu_speed.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
