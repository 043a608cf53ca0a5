"""The seed example's pipeline, rewritten without torchvision (which does not import here).

torchvision's MNIST dataset, Compose, ToTensor and Normalize are reproduced step for step, so the
per-sample cost is the real one: a PIL image per item, converted to a tensor, batched by a DataLoader.
The model, loss and optimizer are the seed example's.

    python bench/classic.py --as-written --epochs 3   # the seed example verbatim: inputs in [-1, 1], Sigmoid output
    python bench/classic.py --epochs 20              # the same with inputs in [0, 1] (Normalize left out)
    python bench/classic.py --epochs 5 --figure f.png  # both, their training loss per step in one figure (the guide's)
"""

from __future__ import annotations

import argparse
import sys
import types

import numpy as np
import torch
from PIL import Image
from torch import nn, optim
from torch.utils.data import DataLoader, Dataset


def _log_api_usage_once(obj) -> None:  # torchvision.utils._log_api_usage_once
    module = obj.__module__
    if not module.startswith("torchvision"):
        module = f"torchvision.internal.{module}"
    name = obj.__class__.__name__
    if isinstance(obj, types.FunctionType):
        name = obj.__name__
    torch._C._log_api_usage_once(f"{module}.{name}")


def _is_pil_image(img) -> bool:
    return isinstance(img, Image.Image)


def _is_numpy(img) -> bool:
    return isinstance(img, np.ndarray)


def get_image_num_channels(img) -> int:
    if _is_pil_image(img):
        return len(img.getbands()) if hasattr(img, "getbands") else img.channels
    raise TypeError(f"Unexpected type {type(img)}")


def to_tensor(pic) -> torch.Tensor:  # torchvision.transforms.functional.to_tensor, the PIL-image path
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


def normalize(tensor: torch.Tensor, mean, std) -> torch.Tensor:  # torchvision.transforms.functional.normalize
    if not torch.jit.is_scripting() and not torch.jit.is_tracing():
        _log_api_usage_once(normalize)
    tensor = tensor.clone()
    mean = torch.as_tensor(mean, dtype=tensor.dtype, device=tensor.device)
    std = torch.as_tensor(std, dtype=tensor.dtype, device=tensor.device)
    if mean.ndim == 1:
        mean = mean.view(-1, 1, 1)
    if std.ndim == 1:
        std = std.view(-1, 1, 1)
    return tensor.sub_(mean).div_(std)


class ToTensor:
    def __call__(self, pic):
        return to_tensor(pic)


class Normalize:
    def __init__(self, mean, std):
        self.mean, self.std = mean, std

    def __call__(self, tensor):
        return normalize(tensor, self.mean, self.std)


class Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img


class MNIST(Dataset):
    """torchvision.datasets.MNIST over uint8 tensors already in memory (its __getitem__, step for step)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform=None) -> None:
        self.data, self.targets, self.transform, self.target_transform = images, labels, transform, None

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index):
        img, target = self.data[index], int(self.targets[index])
        img = Image.fromarray(img.numpy(), mode="L")
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target


class Autoencoder(nn.Module):
    """The seed example's model: 784-128-64-32 with a ReLU on the code, Sigmoid output."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(28 * 28, 128), nn.ReLU(True), nn.Linear(128, 64), nn.ReLU(True), nn.Linear(64, 32), nn.ReLU(True)
        )
        self.decoder = nn.Sequential(
            nn.Linear(32, 64), nn.ReLU(True), nn.Linear(64, 128), nn.ReLU(True), nn.Linear(128, 28 * 28), nn.Sigmoid()
        )

    def forward(self, x):
        return self.decoder(self.encoder(x))


def datasets(data_dir=None, as_written: bool = False) -> tuple[MNIST, MNIST]:
    """Train and test sets; as_written adds the seed's Normalize((0.5,), (0.5,))."""
    from aekit.data import mnist

    m = mnist.read_mnist(data_dir)
    steps = [ToTensor(), Normalize((0.5,), (0.5,))] if as_written else [ToTensor()]
    return tuple(
        MNIST(torch.from_numpy(m[f"x_{s}"]), torch.from_numpy(m[f"y_{s}"].astype(np.int64)), Compose(steps))
        for s in ("train", "test")
    )


def train(model, train_loader, epochs: int, between_epochs=lambda: None, log=lambda epoch, loss: None, steps=None):
    """The seed example's training loop (MSE, Adam 1e-3); steps, a list, collects every step's loss."""
    criterion = nn.MSELoss()
    optimizer = optim.Adam(model.parameters(), lr=0.001)
    for epoch in range(epochs):
        if epoch:
            between_epochs()
        for img, _ in train_loader:
            img = img.view(img.size(0), -1)
            output = model(img)
            loss = criterion(output, img)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if steps is not None:
                steps.append(loss.item())
        log(epoch, loss.item())


def main() -> int:
    p = argparse.ArgumentParser(description="Run the seed example's pipeline on MNIST.")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--as-written", action="store_true", help="keep the seed's Normalize to [-1, 1]")
    p.add_argument("--data-dir")
    p.add_argument("--figure", help="train both ways and draw their loss per step into this PNG")
    a = p.parse_args()
    if a.figure:
        return compare(a.epochs, a.figure, a.data_dir)
    torch.manual_seed(0)
    train_set, test_set = datasets(a.data_dir, a.as_written)
    model = Autoencoder()
    loader = DataLoader(train_set, batch_size=256, shuffle=True)
    train(model, loader, a.epochs, log=lambda e, loss: print(f"Epoch [{e + 1}/{a.epochs}], Loss: {loss:.4f}"))
    model.eval()
    with torch.no_grad():
        x = torch.stack([test_set[i][0] for i in range(len(test_set))]).view(-1, 784)
        mse = float(((model(x) - x) ** 2).mean())
        x01 = (x + 1) / 2 if a.as_written else x  # the same images in [0, 1], for a comparable figure
        out01 = (model(x) + 1) / 2 if a.as_written else model(x)
        print(
            f"test MSE in the model's input space: {mse:.4f}; in [0, 1] pixel space: "
            f"{float(((out01 - x01) ** 2).mean()):.4f}"
        )
    print("reproduce: python bench/classic.py" + (" --as-written" if a.as_written else "") + f" --epochs {a.epochs}")
    return 0


def compare(epochs: int, figure: str, data_dir=None) -> int:
    """The seed example as written and with inputs in [0, 1], each trained for epochs, their training loss per
    step in one figure."""
    from matplotlib.figure import Figure

    curves = {}
    for as_written, name in ((True, "as written: inputs in [-1, 1], Sigmoid output"), (False, "inputs in [0, 1]")):
        torch.manual_seed(0)
        loader = DataLoader(datasets(data_dir, as_written)[0], batch_size=256, shuffle=True)
        curves[name] = []
        train(Autoencoder(), loader, epochs, steps=curves[name])
        print(f"{name}: loss {curves[name][0]:.4f} at the first step, {curves[name][-1]:.4f} at the last")
    fig = Figure(figsize=(7, 3.4), layout="constrained")
    ax = fig.subplots()
    for name, losses in curves.items():
        ax.plot(np.arange(1, len(losses) + 1), losses, lw=1, label=name)
    ax.set_yscale("log")
    ax.set_xlabel(f"step (batches of 256, {epochs} epochs)")
    ax.set_ylabel("training loss (MSE)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.suptitle("The classic example's loss: stuck as written, falling once the inputs are in [0, 1]")
    fig.savefig(figure, dpi=110)
    print(f"figure: {figure}\nreproduce: python bench/classic.py --epochs {epochs} --figure {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
