"""Every use of a trained model takes the same kinds of input through its public function: a tensor of items in
[0, 1], a numpy array in the data's own units, a dataset name, a path and a glob pattern. One function
(apps.model_inputs) turns each into the model's inputs, so a use gives the same result for the same items however
they were given."""

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

import aekit
from conftest import RESNET, photo_folder


def round_trip(run, x):
    """compress then decompress; the file's header counts the items it coded (not the length of a name)."""
    x_hat, header = aekit.decompress(aekit.compress(run, x), run)
    assert header["items"] == len(x_hat)
    return x_hat


USES = {  # every use that takes items, through its public function
    "compress": round_trip,
    "reconstruct": aekit.reconstruct,
    "denoise": aekit.denoise,
    "features": aekit.features,
    "anomaly_scores": aekit.anomaly_scores,
}


@pytest.fixture(scope="module")
def digit_sources(digits_run, tmp_path_factory) -> dict:
    """kind -> (a source of that kind, the same items as a tensor in [0, 1]) for the digits run."""
    root = tmp_path_factory.mktemp("sources")
    raw = load_digits().images[:6]  # (6, 8, 8) float64 in 0..16: the digits' own units
    np.save(root / "six.npy", raw)
    pixels = np.round(raw / 16 * 255).astype(np.uint8)  # the same digits as 8-bit grey PNGs
    (root / "pngs").mkdir()
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(root / "pngs" / f"{i}.png")
    scaled = torch.from_numpy(raw / 16).float()[:, None]  # (6, 1, 8, 8)
    return {
        "array": (raw, scaled),
        "path": (str(root / "six.npy"), scaled),
        "glob": (str(root / "pngs" / "*.png"), torch.from_numpy(pixels).float().div(255)[:, None]),
        "name": ("digits", digits_run.read("digits", "all")[0].floats()),
    }


@pytest.mark.parametrize("kind", ["array", "path", "glob", "name"])
@pytest.mark.parametrize("use", USES)
def test_every_use_takes_every_kind_of_source(digits_run, digit_sources, use, kind):
    source, as_tensor = digit_sources[kind]
    got, expected = USES[use](digits_run, source), USES[use](digits_run, as_tensor)
    assert len(got) == len(as_tensor) and torch.equal(got, expected)


def test_anomaly_maps_take_every_kind_of_image_source(shared_runs, tmp_path):
    """A fully convolutional model's maps, from images of another size than it trained on, given four ways (no
    built-in dataset holds colour images, so no name)."""
    run = aekit.Run.open(shared_runs(shared_runs.photos([(16, 20), (20, 16)]), "dae", epochs=1, crop=(8, 8), **RESNET))
    pixels = photo_folder(tmp_path / "pngs", [(12, 16), (12, 16)])
    array = np.stack([pixels[name] for name in sorted(pixels)])  # (2, 12, 16, 3) uint8
    np.save(tmp_path / "two.npy", array)
    tensor = torch.from_numpy(array).permute(0, 3, 1, 2).float().div(255)
    expected = aekit.anomaly_maps(run, tensor)
    assert len(expected) == 2 and expected[0].shape == (12, 16)
    for source in (array, str(tmp_path / "two.npy"), str(tmp_path / "pngs" / "*.png")):
        assert all(torch.equal(a, b) for a, b in zip(aekit.anomaly_maps(run, source), expected, strict=True))
