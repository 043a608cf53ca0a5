"""The peer library Pythae, set up the way aekit's benches compare against it: its VAE with the MLP encoder and
decoder aekit builds for the same sizes, trained by Pythae's own pipeline on the CPU.

    pip install pythae          # next to torch 2.13.0 (make bench does it)
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time

import torch
from torch import nn


def vae(hidden: tuple[int, int], latent: int):
    """Pythae's VAE (Bernoulli likelihood: reconstruction_loss "bce") on 1x28x28 items, encoder 784-hidden[0]-
    hidden[1] (ReLU) to a diagonal Gaussian of latent numbers, decoder mirrored with a sigmoid output."""
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden[0]), nn.ReLU(), nn.Linear(*hidden), nn.ReLU())
            self.mu, self.logvar = nn.Linear(hidden[1], latent), nn.Linear(hidden[1], latent)

        def forward(self, x):
            h = self.body(x)
            return ModelOutput(embedding=self.mu(h), log_covariance=self.logvar(h))

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(
                nn.Linear(latent, hidden[1]),
                nn.ReLU(),
                nn.Linear(hidden[1], hidden[0]),
                nn.ReLU(),
                nn.Linear(hidden[0], 784),
                nn.Sigmoid(),
            )

        def forward(self, z):
            return ModelOutput(reconstruction=self.body(z).view(-1, 1, 28, 28))

    config = VAEConfig(input_dim=(1, 28, 28), latent_dim=latent, reconstruction_loss="bce")
    return VAE(config, encoder=Encoder(), decoder=Decoder())


def train(model, data, epochs: int, batch: int, lr: float) -> float:
    """Train model on data (a tensor, or a Dataset of pythae DatasetOutput items) with Pythae's TrainingPipeline:
    Adam at lr with a cosine decay over the epochs, no checkpoints, its logging silenced. Returns the seconds."""
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig

    with tempfile.TemporaryDirectory() as tmp:
        config = BaseTrainerConfig(
            output_dir=tmp,
            num_epochs=epochs,
            learning_rate=lr,
            per_device_train_batch_size=batch,
            optimizer_cls="Adam",
            scheduler_cls="CosineAnnealingLR",
            scheduler_params={"T_max": epochs},
            no_cuda=True,
            steps_saving=None,
        )
        start = time.perf_counter()
        logging.disable(logging.WARNING)  # Pythae logs every epoch; keep the report readable
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            TrainingPipeline(model=model, training_config=config)(train_data=data)
        logging.disable(logging.NOTSET)
        seconds = time.perf_counter() - start
    model.eval()
    return seconds


def samples(model, n: int, sampler: str, train_x: torch.Tensor, components: int = 10) -> torch.Tensor:
    """n items from a trained Pythae VAE: its NormalSampler (sampler "normal", the prior) or its
    GaussianMixtureSampler with components Gaussians fitted to the training codes ("gmm")."""
    from pythae.samplers import GaussianMixtureSampler, GaussianMixtureSamplerConfig, NormalSampler

    if sampler == "gmm":
        chosen = GaussianMixtureSampler(
            model=model, sampler_config=GaussianMixtureSamplerConfig(n_components=components)
        )
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            chosen.fit(train_x)
    else:
        chosen = NormalSampler(model=model)
    with torch.no_grad():
        return chosen.sample(num_samples=n, batch_size=1000).cpu()
