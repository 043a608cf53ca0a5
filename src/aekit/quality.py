"""How good generated digits are, with nothing downloaded: a small MNIST classifier that aekit trains itself (seeded,
its weights cached as safetensors beside the data) gives each 28x28 image 128 features; generated items are scored
against real ones in those features by the Frechet distance and by precision and recall (aekit.metrics).

The figures are comparable with each other (same classifier, same real items), not with Inception-based FIDs.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import metrics
from .data import load
from .data.registry import default_data_dir
from .errors import check
from .limits import INFERENCE_BATCH
from .progress import chunks
from .runfiles import read_tensors, save_tensors

IMAGE_SHAPE = (1, 28, 28)  # what the classifier reads: MNIST-shaped digits in [0, 1]
FEATURES = 128  # the penultimate layer's width: the features the scores are computed in
EPOCHS, BATCH, LR, SEED = 4, 128, 1e-3, 0  # its training: about 99% test accuracy on MNIST
VERSION = 1  # part of the cached file's name: a change of the network or its training gets a new file
PRECISION_RECALL_ITEMS = 10_000  # k-NN balls over at most this many items of each side (quadratic in it)


class DigitClassifier(nn.Module):
    """Two 3x3 convolutions (16 and 32 channels, each followed by a ReLU and a 2x2 max-pool) and two linear
    layers: (N, 1, 28, 28) -> logits (N, classes); features() is the 128-wide ReLU layer before the last."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, 16, 14, 14)
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, 32, 7, 7)
            nn.Flatten(), nn.Linear(32 * 7 * 7, FEATURES), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(FEATURES, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, FEATURES) float32 features of images x (N, 1, 28, 28), INFERENCE_BATCH at a time."""
        check_images(x)
        return torch.cat([self.body(part) for part in x.split(INFERENCE_BATCH)])

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) the class of each image x (N, 1, 28, 28)."""
        check_images(x)
        return torch.cat([self(part).argmax(1) for part in x.split(INFERENCE_BATCH)])


def check_images(x: torch.Tensor) -> None:
    """AekitError unless x is a batch of 1x28x28 images: the only items the classifier reads."""
    check(
        x.dim() == 4 and tuple(x.shape[1:]) == IMAGE_SHAPE,
        f"sample quality is measured on 28x28 grayscale digits (the MNIST classifier's input); "
        f"these items are {list(x.shape[1:])}",
    )


@torch.enable_grad()  # also when called under torch.no_grad() (evaluate runs under it)
def train_classifier(x: torch.Tensor, y: torch.Tensor, epochs: int = EPOCHS, seed: int = SEED) -> DigitClassifier:
    """A DigitClassifier trained on images x (N, 1, 28, 28) in [0, 1] with labels y (N,): Adam, batch BATCH,
    shuffled by a generator seeded with seed (the same weights on the same machine every time)."""
    check_images(x)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = DigitClassifier(int(y.max()) + 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    for _ in chunks(epochs, 1, "training the digit classifier"):
        order = torch.randperm(len(x), generator=generator)
        for batch in order.split(BATCH):
            loss = F.cross_entropy(model(x[batch]), y[batch].long())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


def cached_path(data_dir: str | os.PathLike | None = None) -> Path:
    """Where the classifier's weights are kept: beside the MNIST files in the data folder."""
    return Path(data_dir or default_data_dir()) / f"mnist-classifier-v{VERSION}.safetensors"


def classifier(data_dir: str | os.PathLike | None = None) -> DigitClassifier:
    """The MNIST classifier: read from its cache, else trained on MNIST's training split (a minute on two cores)
    and cached (safetensors, written whole or not at all)."""
    path = cached_path(data_dir)
    model = DigitClassifier()
    if path.exists():
        tensors, _ = read_tensors(path)
        model.load_state_dict(tensors)
        return model.eval()
    train = load("mnist", data_dir=data_dir).train
    model = train_classifier(train.floats(), train.y)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_tensors(path, {k: v.contiguous() for k, v in model.state_dict().items()})
    return model


def sample_quality(fake: torch.Tensor, real: torch.Tensor, net: DigitClassifier, k: int = 3) -> dict[str, float]:
    """Generated images fake (M, 1, 28, 28) against real ones (N, 1, 28, 28), all in [0, 1], in net's features:
    {"frechet": the Frechet distance, "precision": the share of fake items on the real items' manifold, "recall":
    the share of real items on the fake ones', "items": M} (precision and recall over the first
    PRECISION_RECALL_ITEMS of each, with k nearest neighbours)."""
    check(len(fake) >= 2 and len(real) >= 2, "sample quality needs at least 2 generated and 2 real items")
    a, b = net.features(real), net.features(fake)
    cut = PRECISION_RECALL_ITEMS
    k = min(k, len(fake) - 1, len(real) - 1)
    precision, recall = metrics.precision_recall(a[:cut], b[:cut], k)
    return {"frechet": metrics.frechet_distance(a, b), "precision": precision, "recall": recall, "items": len(fake)}
