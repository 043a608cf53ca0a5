"""Sparse autoencoders against the plain autoencoder of the same size on MNIST.

Every model is the 784-128-64-32 MLP trained the same way (20 epochs, batch 256, Adam 3e-3 with a cosine
schedule, seed 0); the sparse ones differ only in their code. Target for the KL penalty at rho = 0.05: mean
code activation within 50% of rho, and test MSE within 25% of the plain autoencoder's.

    python bench/sparse.py
"""

from __future__ import annotations

import sys
import tempfile
import time

import torch

import aekit

RHO = 0.05
COMMON = {
    "hidden": (128, 64),
    "latent_dim": 32,
    "epochs": 20,
    "batch_size": 256,
    "lr": 3e-3,
    "schedule": "cosine",
    "seed": 0,
    "quiet": True,
}
MODELS = {  # name: (type, options)
    "ae": ("ae", {}),
    "sae kl rho=0.05": ("sae", {"sparsity": "kl", "rho": RHO, "sparsity_weight": 3.0}),
    "sae l1": ("sae", {"sparsity": "l1", "sparsity_weight": 0.05}),
    "sae topk k=8": ("sae", {"sparsity": "topk", "k": 8}),
}


def main() -> int:
    rows = {}
    test = aekit.data.load("mnist").test.floats()
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, (name, options)) in enumerate(MODELS.items()):
            start = time.perf_counter()
            run = aekit.train("mnist", name, out=f"{tmp}/{i}", **COMMON, **options)
            seconds = time.perf_counter() - start
            report = aekit.evaluate(run, save=False)["model"]
            z = run.model.encode(test).detach()
            rows[label] = {**report, "seconds": seconds, "above_2rho": float((z > 2 * RHO).float().mean())}
    ae = rows["ae"]["mse"]
    print("MNIST test set, 784-128-64-32 MLP, 20 epochs, Adam 3e-3 cosine, batch 256")
    print(f"{'model':18} {'MSE':>8} {'vs ae':>6} {'mean act.':>9} {'active':>7} {'> 2 rho':>8} {'train s':>8}")
    for label, r in rows.items():
        act = f"{r['mean_activation']:9.4f}" if "mean_activation" in r else f"{'':9}"
        frac = f"{r['active_fraction']:7.3f}" if "active_fraction" in r else f"{'':7}"
        print(
            f"{label:18} {r['mse']:8.5f} {r['mse'] / ae:6.2f} {act} {frac} {r['above_2rho']:8.3f} {r['seconds']:8.1f}"
        )
    kl = rows["sae kl rho=0.05"]
    ok_act = abs(kl["mean_activation"] - RHO) <= 0.5 * RHO
    ok_mse = kl["mse"] <= 1.25 * ae
    print(
        f"kl: mean activation {kl['mean_activation']:.4f} (target {0.5 * RHO:.3f}-{1.5 * RHO:.3f}: "
        f"{'PASS' if ok_act else 'FAIL'}); MSE {kl['mse'] / ae:.2f}x the ae's (target <= 1.25x: "
        f"{'PASS' if ok_mse else 'FAIL'})"
    )
    print("active: share of code values on (> 0.5 for sigmoid codes, nonzero otherwise); > 2 rho: share above 0.1")
    print("reproduce: python bench/sparse.py")
    return 0 if ok_act and ok_mse else 1


if __name__ == "__main__":
    torch.manual_seed(0)
    sys.exit(main())
