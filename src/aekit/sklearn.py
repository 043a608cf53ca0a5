"""scikit-learn estimators around aekit's autoencoders, usable in Pipelines and GridSearchCV.

Rows of X are items: table rows, or flattened images (give input_shape, or a trained run, to use them as
images). Both estimators either train an autoencoder in fit or, with run=, load a trained run folder.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .config import TrainConfig
from .data.datasets import Dataset
from .data.scaling import Scaling
from .data.splits import Splits
from .errors import check
from .limits import INFERENCE_BATCH
from .models.types import model_from_config
from .run import Run
from .trainer import Trainer, resolve_device


class _AutoencoderEstimator(BaseEstimator):
    """What both estimators share: fit an autoencoder on rows of X, and run it on rows."""

    def __init__(
        self,
        model: str = "ae",
        latent_dim: int = 2,
        hidden: tuple[int, ...] | None = None,
        backbone: str = "mlp",
        input_shape: tuple[int, ...] | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float = 1e-3,
        options: dict | None = None,
        run: str | None = None,
        random_state: int | None = 0,
        device: str = "cpu",
    ) -> None:
        self.model = model
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.backbone = backbone
        self.input_shape = input_shape
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.options = options
        self.run = run
        self.random_state = random_state
        self.device = device

    def _fit_model(self, X) -> None:
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        if self.run is not None:
            run = Run.open(self.run, device=resolve_device(self.device))
            model, scaling = run.model, run.scaling
            shape = tuple(model.config.input_shape)
        else:
            shape = tuple(self.input_shape) if self.input_shape is not None else (X.shape[1],)
            scaling = Scaling.fit(X.astype(np.float64), per_feature=len(shape) == 1)
            model = self._train(X, shape, scaling)
        check(
            math.prod(shape) == X.shape[1],
            f"X has {X.shape[1]} features but the model's items have {math.prod(shape)} values (shape {list(shape)})",
        )
        self.model_, self.item_shape_, self.scaling_ = model.eval(), shape, scaling

    def _train(self, X: np.ndarray, shape: tuple[int, ...], scaling: Scaling) -> torch.nn.Module:
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        x = torch.from_numpy(scaling.apply(X.astype(np.float64))).reshape(-1, *shape)
        options = {
            "name": self.model,
            "input_shape": list(shape),
            "backbone": self.backbone,
            "hidden": list(self.hidden) if self.hidden is not None else None,
            "latent_dim": self._code_size(math.prod(shape)),
            **(self.options or {}),
        }
        config = TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, seed=seed, device=self.device)
        with torch.random.fork_rng():  # deterministic for a random_state, and the caller's RNG is left alone
            torch.manual_seed(seed)
            model = model_from_config(options)
            trainer = Trainer(model, Splits(Dataset(x, None, "X", scaling), None), config)
            self.history_ = trainer.fit()
        return trainer.model

    def _code_size(self, features: int) -> int:
        """The latent_dim to train with for items of so many values."""
        return self.latent_dim

    def _items(self, X) -> torch.Tensor:
        """Rows of X -> model inputs (N, *item_shape) in the model's [0, 1] space."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return torch.from_numpy(self.scaling_.apply(X.astype(np.float64))).reshape(-1, *self.item_shape_)

    @torch.no_grad()
    def _batched(self, fn, x: torch.Tensor) -> torch.Tensor:
        device = next(self.model_.parameters()).device
        return torch.cat([fn(part.to(device)).cpu() for part in x.split(INFERENCE_BATCH)])


class AutoencoderTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, _AutoencoderEstimator):
    """Autoencoder codes as features: fit trains (or loads) a model, transform encodes rows of X.

    Parameters
    model: an aekit type ("ae", "dae", "sae", "vae"). latent_dim: code size (the number of output features).
    hidden, backbone: the architecture (see aekit.create_model). input_shape: the shape of one item when the
    rows are flattened images, e.g. (1, 28, 28), needed for backbone="conv". epochs, batch_size, lr: training.
    options: the type's own options, e.g. {"noise": ["masking"]} or {"sparsity": "kl", "rho": 0.05}.
    run: a trained run folder; fit then loads it instead of training (the other parameters are ignored),
    and rows are taken in the units that run was trained on (0-255 pixels for MNIST).
    random_state: seed of the weights, data order and noise. device: "cpu", "cuda", "auto".

    Attributes: model_ (the torch module, eval mode), scaling_ (how X maps to [0, 1], fitted on X's
    columns), item_shape_, n_features_in_, history_ (per-epoch training losses, when fit trained).

    transform(X) -> (N, latent_dim) codes (the posterior mean for a VAE); inverse_transform(Z) -> rows
    rebuilt from codes; score(X) -> minus the mean squared reconstruction error per feature (higher is
    better, as scikit-learn's model selection expects).
    """

    def fit(self, X, y=None) -> AutoencoderTransformer:
        """Train the autoencoder on the rows of X (or load run); y is ignored."""
        self._fit_model(X)
        return self

    def transform(self, X) -> np.ndarray:
        """Codes of the rows of X: (N, latent_dim), in X's float dtype."""
        dtype = np.float32 if getattr(X, "dtype", None) == np.float32 else np.float64
        return self._batched(self.model_.encode, self._items(X)).numpy().astype(dtype)

    def inverse_transform(self, X) -> np.ndarray:
        """Rows rebuilt from codes X (N, latent_dim), in the units of the data fitted on."""
        check_is_fitted(self)
        z = check_array(X, dtype=[np.float64, np.float32])
        d = self.model_.config.latent_dim
        check(z.shape[1] == d, f"X has {z.shape[1]} features but the codes have {d}")
        x = self._batched(self.model_.decode, torch.from_numpy(z.astype(np.float32))).flatten(1).numpy()
        return self.scaling_.invert(x).astype(z.dtype)

    def score(self, X, y=None) -> float:
        """Minus the mean squared reconstruction error per feature, in the model's [0, 1] space."""
        x = self._items(X)
        x_hat = self._batched(self.model_.reconstruct, x)
        return -float((x_hat.double() - x.double()).pow(2).mean())

    @property
    def _n_features_out(self) -> int:
        return self.model_.config.latent_dim

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


CODE_SIZE = 8  # AutoencoderDetector's latent_dim by default (at most the number of features)


class AutoencoderDetector(_AutoencoderEstimator):
    """Anomaly detection by how badly an autoencoder rebuilds each row, with PyOD's conventions.

    The score of a row is its squared reconstruction error summed over features, or its negative ELBO
    for a VAE (model="vae"). Parameters are AutoencoderTransformer's, plus contamination: the share of
    the training rows taken to be anomalies, which sets threshold_. latent_dim None (the default) takes 8, or the
    number of features where there are fewer (chosen on scikit-learn's bundled tables: bench/tables.py).

    Attributes: decision_scores_ (scores of the training rows), threshold_, labels_ (0 normal, 1 anomaly,
    for the training rows), and model_, scaling_, item_shape_, n_features_in_ as in AutoencoderTransformer.

    decision_function(X) -> scores, higher is more anomalous (PyOD); predict(X) -> 1 where the score is
    above threshold_, else 0 (PyOD); score_samples(X) -> minus the score, higher is more normal
    (scikit-learn's convention for outlier detectors).
    """

    def __init__(
        self,
        model: str = "ae",
        latent_dim: int | None = None,
        hidden: tuple[int, ...] | None = None,
        backbone: str = "mlp",
        input_shape: tuple[int, ...] | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float = 1e-3,
        options: dict | None = None,
        run: str | None = None,
        random_state: int | None = 0,
        device: str = "cpu",
        contamination: float = 0.1,
    ) -> None:
        super().__init__(
            model, latent_dim, hidden, backbone, input_shape, epochs, batch_size, lr, options, run, random_state, device
        )
        self.contamination = contamination

    def fit(self, X, y=None) -> AutoencoderDetector:
        """Train the autoencoder on the rows of X (or load run) and set the threshold; y is ignored."""
        check(0 < self.contamination < 0.5, f"contamination must be in (0, 0.5), got {self.contamination}")
        self._fit_model(X)
        self.decision_scores_ = self.decision_function(X)
        self.threshold_ = float(np.quantile(self.decision_scores_, 1 - self.contamination))
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(int)
        return self

    def _code_size(self, features: int) -> int:
        return min(CODE_SIZE, features) if self.latent_dim is None else self.latent_dim

    def decision_function(self, X) -> np.ndarray:
        """Anomaly score of each row, (N,) float64: higher is more anomalous."""
        x = self._items(X)
        device = next(self.model_.parameters()).device
        return self.model_.anomaly_scores(x.to(device)).cpu().numpy()

    def predict(self, X) -> np.ndarray:
        """1 for rows scored above threshold_ (anomalies), 0 for the others."""
        return (self.decision_function(X) > self.threshold_).astype(int)

    def score_samples(self, X) -> np.ndarray:
        """Minus the anomaly score: higher is more normal."""
        return -self.decision_function(X)
