"""Speed and memory of aekit against the classic example's own pipeline, same model, same epochs.

The classic pipeline is the seed example's, rewritten without torchvision: a per-sample Dataset that
makes a PIL image per item and converts it to a tensor (torchvision's MNIST + ToTensor, step for step),
a DataLoader with batch 256 and shuffle, nn.MSELoss, Adam 1e-3. Normalize((0.5,), (0.5,)) is left out:
it is the bug that stops the classic example from learning, and leaving it out only makes the classic
pipeline faster, so the ratio printed here is conservative. Both train the classic 784-128-64-32 MLP
(with the classic's ReLU on the code).

Machines here are shared and noisy, so the two pipelines run in two worker processes that take turns,
one epoch each, and each one's time excludes its waits: drift hits both alike. Each worker reports its
own peak resident memory. aekit's time is the whole `aekit.train()` call (data loading, per-epoch
validation and checkpoints, its two figures); the classic's is its data set-up, training loop and its
test-and-plot step (one figure, as in the seed example).

    python bench/train_speed.py                 # 20 epochs, the acceptance check (exit 1 if a target fails)
    python bench/train_speed.py --epochs 2      # a quick look
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import types

TARGET_RATIO = 4.0
TARGET_PEAK_MB = 1536


class Turns:
    """Take turns with the other worker through the parent: wait for 'go', report 'done'."""

    def __init__(self) -> None:
        self.waited = 0.0
        self.turns: list[float] = []  # how long each turn ran (about one epoch each)
        self.went = 0.0

    def start(self) -> float:
        """The first turn: returns its start time; waiting before it is not counted."""
        self.wait()
        self.waited, self.turns = 0.0, []
        return self.went

    def wait(self) -> None:
        start = time.perf_counter()
        self.turns.append(start - self.went)
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        assert sys.stdin.readline().strip() == "go"
        self.went = time.perf_counter()
        self.waited += self.went - start

    def result(self, pipeline: str, start: float, **extra) -> dict:
        import statistics

        import torch

        self.turns.append(time.perf_counter() - self.went)
        return {
            "pipeline": pipeline,
            "seconds": time.perf_counter() - start - self.waited,
            "median_turn": statistics.median(self.turns),
            "peak_rss_mb": peak_rss_mb(),
            "threads": torch.get_num_threads(),
            **extra,
        }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_aekit(epochs: int, data_dir: str | None) -> dict:

    import aekit
    from aekit.train import Callback

    turns = Turns()

    class TakeTurns(Callback):
        def on_train_start(self, trainer):
            turns.wait()

        def on_epoch_end(self, trainer, record):
            if record["epoch"] < epochs:
                turns.wait()

    start = turns.start()
    with tempfile.TemporaryDirectory() as tmp:
        run = aekit.train(
            "mnist",
            "ae",
            out=f"{tmp}/run",
            epochs=epochs,
            latent_activation="relu",
            quiet=True,
            device="cpu",
            data_dir=data_dir,
            callbacks=[TakeTurns()],
        )
        result = turns.result("aekit", start)
    test = aekit.datasets.load("mnist", data_dir=data_dir).test.floats()
    result["test_mse"] = float(((run.model.reconstruct(test) - test) ** 2).mean())
    return result


def worker_classic(epochs: int, data_dir: str | None) -> dict:
    import numpy as np
    import torch
    from PIL import Image
    from torch import nn, optim
    from torch.utils.data import DataLoader, Dataset

    from aekit.data import sources

    # torchvision's MNIST, Compose and ToTensor, step for step (torchvision itself does not import here)
    def _log_api_usage_once(obj):  # torchvision.utils._log_api_usage_once
        module = obj.__module__
        if not module.startswith("torchvision"):
            module = f"torchvision.internal.{module}"
        name = obj.__class__.__name__
        if isinstance(obj, types.FunctionType):
            name = obj.__name__
        torch._C._log_api_usage_once(f"{module}.{name}")

    def _is_pil_image(img):
        return isinstance(img, Image.Image)

    def _is_numpy(img):
        return isinstance(img, np.ndarray)

    def get_image_num_channels(img):
        if _is_pil_image(img):
            return len(img.getbands()) if hasattr(img, "getbands") else img.channels
        raise TypeError(f"Unexpected type {type(img)}")

    def to_tensor(pic):  # torchvision.transforms.functional.to_tensor, the PIL-image path
        if not torch.jit.is_scripting() and not torch.jit.is_tracing():
            _log_api_usage_once(to_tensor)
        if not (_is_pil_image(pic) or _is_numpy(pic)):
            raise TypeError(f"pic should be PIL Image or ndarray. Got {type(pic)}")
        default_float_dtype = torch.get_default_dtype()
        mode_to_nptype = {"I": np.int32, "I;16" if sys.byteorder == "little" else "I;16B": np.int16, "F": np.float32}
        img = torch.from_numpy(np.array(pic, mode_to_nptype.get(pic.mode, np.uint8), copy=True))
        if pic.mode == "1":
            img = 255 * img
        img = img.view(pic.size[1], pic.size[0], get_image_num_channels(pic))
        img = img.permute((2, 0, 1)).contiguous()  # HWC -> CHW
        if isinstance(img, torch.ByteTensor):
            return img.to(dtype=default_float_dtype).div(255)
        return img

    class ToTensor:
        def __call__(self, pic):
            return to_tensor(pic)

    class Compose:
        def __init__(self, transforms):
            self.transforms = transforms

        def __call__(self, img):
            for t in self.transforms:
                img = t(img)
            return img

    class MNIST(Dataset):  # torchvision.datasets.MNIST.__getitem__
        def __init__(self, images, labels, transform):
            self.data, self.targets, self.transform, self.target_transform = images, labels, transform, None

        def __len__(self):
            return len(self.data)

        def __getitem__(self, index):
            img, target = self.data[index], int(self.targets[index])
            img = Image.fromarray(img.numpy(), mode="L")
            if self.transform is not None:
                img = self.transform(img)
            if self.target_transform is not None:
                target = self.target_transform(target)
            return img, target

    class Autoencoder(nn.Module):  # the seed example's model
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(
                nn.Linear(28 * 28, 128),
                nn.ReLU(True),
                nn.Linear(128, 64),
                nn.ReLU(True),
                nn.Linear(64, 32),
                nn.ReLU(True),
            )
            self.decoder = nn.Sequential(
                nn.Linear(32, 64),
                nn.ReLU(True),
                nn.Linear(64, 128),
                nn.ReLU(True),
                nn.Linear(128, 28 * 28),
                nn.Sigmoid(),
            )

        def forward(self, x):
            return self.decoder(self.encoder(x))

    turns = Turns()
    start = turns.start()
    torch.manual_seed(0)
    m = sources.read_mnist(data_dir)
    train_set = MNIST(
        torch.from_numpy(m["x_train"]), torch.from_numpy(m["y_train"].astype(np.int64)), Compose([ToTensor()])
    )
    train_loader = DataLoader(train_set, batch_size=256, shuffle=True)
    model = Autoencoder()
    criterion = nn.MSELoss()
    optimizer = optim.Adam(model.parameters(), lr=0.001)
    for epoch in range(epochs):
        if epoch:
            turns.wait()
        for img, _ in train_loader:
            img = img.view(img.size(0), -1)
            output = model(img)
            loss = criterion(output, img)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    # the seed's test-and-plot step: first test batch through the same pipeline, original beside reconstruction
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    test_set = MNIST(
        torch.from_numpy(m["x_test"]), torch.from_numpy(m["y_test"].astype(np.int64)), Compose([ToTensor()])
    )
    model.eval()
    with torch.no_grad():
        img, _ = next(iter(DataLoader(test_set, batch_size=256, shuffle=False)))
        output = model(img.view(img.size(0), -1)).view(img.size(0), 1, 28, 28)
    fig, axes = plt.subplots(1, 2)
    axes[0].imshow(img[0].squeeze(), cmap="gray")
    axes[0].set_title("Original Image")
    axes[1].imshow(output[0].squeeze(), cmap="gray")
    axes[1].set_title("Reconstructed Image")
    with tempfile.TemporaryDirectory() as tmp:
        fig.savefig(f"{tmp}/classic.png")
    result = turns.result("classic", start)
    with torch.no_grad():
        test = torch.from_numpy(m["x_test"]).float().div(255).view(-1, 784)
        result["test_mse"] = float(((model(test) - test) ** 2).mean())
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--data-dir")
    p.add_argument("--worker", choices=["aekit", "classic"], help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        fn = worker_aekit if a.worker == "aekit" else worker_classic
        print(json.dumps(fn(a.epochs, a.data_dir)), flush=True)
        return 0

    cmd = [sys.executable, __file__, "--epochs", str(a.epochs)] + (["--data-dir", a.data_dir] if a.data_dir else [])
    workers = {
        name: subprocess.Popen([*cmd, "--worker", name], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for name in ("classic", "aekit")
    }
    results = {}
    last = {name: proc.stdout.readline() for name, proc in workers.items()}  # each is "ready" after its imports
    while len(results) < len(workers):  # one turn each, in order, until both have finished
        for name, proc in workers.items():
            if name in results:
                continue
            if last[name].strip() == "ready":
                proc.stdin.write("go\n")
                proc.stdin.flush()
                last[name] = proc.stdout.readline()  # blocks until this worker's turn is over
            elif last[name]:
                results[name] = json.loads(last[name])
            else:
                raise SystemExit(f"the {name} worker failed (exit {proc.wait()})")
    for proc in workers.values():
        proc.wait()

    c, k = results["classic"], results["aekit"]
    ratio = c["seconds"] / k["seconds"]
    print(f"MNIST, classic 784-128-64-32 MLP, batch 256, Adam 1e-3, {a.epochs} epochs, {k['threads']} threads")
    print(f"{'pipeline':10} {'seconds':>8} {'s/epoch':>8} {'median epoch':>13} {'test MSE':>9} {'peak RSS':>9}")
    for r in (c, k):
        print(
            f"{r['pipeline']:10} {r['seconds']:8.2f} {r['seconds'] / a.epochs:8.3f} {r['median_turn']:12.3f}s "
            f"{r['test_mse']:9.5f} {r['peak_rss_mb']:7.0f}MB"
        )
    ok_speed, ok_mem = ratio >= TARGET_RATIO, k["peak_rss_mb"] <= TARGET_PEAK_MB
    print(
        f"aekit is {ratio:.2f}x faster (target >= {TARGET_RATIO}x: {'PASS' if ok_speed else 'FAIL'}); "
        f"aekit peak memory {k['peak_rss_mb']:.0f} MB (target <= {TARGET_PEAK_MB} MB: "
        f"{'PASS' if ok_mem else 'FAIL'})"
    )
    print("reproduce: python bench/train_speed.py" + (f" --epochs {a.epochs}" if a.epochs != 20 else ""))
    return 0 if ok_speed and ok_mem else 1


if __name__ == "__main__":
    sys.exit(main())
