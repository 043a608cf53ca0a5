"""Photos of any size: training on random crops (data.crop), and the held-out images cut into fixed crops."""

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import aekit
from aekit.data import datasets
from aekit.errors import AekitError
from conftest import assert_clean_error, run_cli

SIZES = [(40, 50), (36, 70), (32, 32), (64, 41), (45, 45), (50, 66), (33, 90), (48, 48), (70, 35), (40, 40)]
RESNET = {"backbone": "resnet", "hidden": (8,), "latent_channels": 2, "batch_size": 8, "quiet": True}


def photo_folder(folder, sizes=SIZES, mode="RGB"):
    """Photos of the given (height, width) sizes, smooth enough to learn; returns their pixels by file name."""
    folder.mkdir(parents=True, exist_ok=True)
    pixels = {}
    for k, (h, w) in enumerate(sizes):
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        rgb = np.dstack([rows * 255 // h, cols * 255 // w, (rows * cols + 40 * k) % 256]).astype(np.uint8)
        image = rgb if mode == "RGB" else rgb[..., 0]
        Image.fromarray(image).save(folder / f"p{k}.png")
        pixels[f"p{k}.png"] = rgb if mode == "RGB" else rgb[..., :1]
    return pixels


def test_crops_are_the_images_pixels_and_held_out_images_stay_whole(tmp_path):
    pixels = photo_folder(tmp_path / "photos")
    train, test = datasets.load(tmp_path / "photos", crop=(16, 24), test_split=0.2)
    assert train.item_shape == (3, 16, 24) and train.x.dtype == torch.uint8
    names = sorted(pixels)
    own = [pixels[n] for n in names]
    held_out = set(test.tiles[:, 0].tolist())
    assert len(held_out) == 2 and not held_out & set(train.tiles[:, 0].tolist())  # whole images held out
    for part in (train, test):  # a grid of crops, centred, each the image's own pixels
        for k, (image, top, left) in enumerate(part.tiles.tolist()):
            h, w = own[image].shape[:2]
            assert len(part.tiles[part.tiles[:, 0] == image]) == (h // 16) * (w // 24)
            expected = own[image][top : top + 16, left : left + 24].transpose(2, 0, 1)
            assert torch.equal(part.batch(slice(k, k + 1))[0], torch.from_numpy(expected).float() / 255)
    torch.manual_seed(0)
    drawn = train.training_batch(torch.arange(len(train)))
    torch.manual_seed(0)
    assert torch.equal(drawn, train.training_batch(torch.arange(len(train))))  # from torch's global RNG
    images = train.tiles[:, 0].tolist()
    flipped = 0
    for crop, image in zip(drawn.numpy().transpose(0, 2, 3, 1), images, strict=True):
        windows = np.lib.stride_tricks.sliding_window_view(own[image] / 255, (16, 24, 3))[..., 0, :, :, :]
        same = np.isclose(windows, crop, atol=1e-6).all(axis=(2, 3, 4))
        mirrored = np.isclose(windows, crop[:, ::-1], atol=1e-6).all(axis=(2, 3, 4))
        assert same.any() or mirrored.any()  # a crop of its own image, as it is or flipped left-right
        flipped += not same.any()
    assert 0 < flipped < len(images)
    tops = {tuple(c.flatten()[:8].tolist()) for c in drawn}
    assert len(tops) > len(drawn) // 2  # fresh places, not the grid


def test_training_on_crops_resumes_bit_for_bit_and_the_run_scores_its_held_out_crops(tmp_path):
    photo_folder(tmp_path / "photos")
    options = {**RESNET, "crop": (16, 16)}
    full = aekit.train(tmp_path / "photos", "ae", out=tmp_path / "full", epochs=3, **options)
    aekit.train(tmp_path / "photos", "ae", out=tmp_path / "part", epochs=1, **options)
    resumed = aekit.train(out=tmp_path / "part", resume=True, epochs=3, quiet=True)
    a, b = load_file(full.path / "model.safetensors"), load_file(resumed.path / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    first = full.metrics["history"]
    assert first[-1]["train_loss"] < first[0]["train_loss"]
    report = aekit.evaluate(full.path)
    assert report["split"] == "test" and report["items"] == len(datasets.load(tmp_path / "photos", crop=(16, 16)).test)
    assert report["model"]["mse"] == pytest.approx(first[-1]["test_mse"], rel=1e-5)


def test_crop_options_fail_in_one_line(tmp_path):
    photo_folder(tmp_path / "photos", sizes=[(40, 40), (30, 20), (50, 60)])
    np.save(tmp_path / "table.npy", np.zeros((5, 3), np.float32))
    out = tmp_path / "run"
    cases = [
        (["--crop", "24,24"], tmp_path / "photos", "p1.png: is 30x20, smaller than the crop 24x24"),
        (["--crop", "0,8"], tmp_path / "photos", "data.crop must be two positive integers"),
        (["--crop", "8,8"], tmp_path / "table.npy", "--crop does not apply to table.npy"),
        (["--crop", "8,8"], "digits", "--crop applies to files and folders"),
        ([], tmp_path / "photos", "train on crops with --crop HEIGHT,WIDTH"),
    ]
    for flags, source, message in cases:
        done = run_cli("train", source, "--backbone", "resnet", "--epochs", "1", "--out", out, *flags)
        assert_clean_error(done, message)
        assert not out.exists()


def test_one_photo_trains_on_its_crops_and_size_resizes_before_cropping(tmp_path):
    photo_folder(tmp_path, sizes=[(60, 80)])
    one = datasets.load(tmp_path / "p0.png", crop=(20, 20))
    assert one.test is None and len(one.train) == 12
    resized = datasets.load(tmp_path / "p0.png", crop=(20, 20), size=(40, 40)).train
    assert len(resized) == 4 and resized.images[0, 1:].tolist() == [40, 40]
    with pytest.raises(AekitError, match="smaller than the crop"):
        datasets.load(tmp_path / "p0.png", crop=(20, 20), size=(10, 40))
