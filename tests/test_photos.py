"""Photos of any size: training on random crops (data.crop), and the held-out images cut into fixed crops."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import aekit
from aekit import metrics
from aekit.apps import tiles
from aekit.apps.anomaly import local_excess
from aekit.apps.denoise import refined_fn
from aekit.data import splits
from aekit.errors import AekitError
from conftest import RESNET, SIZES, assert_clean_error, photo_folder, run_cli


def test_crops_are_the_images_pixels_and_held_out_images_stay_whole(tmp_path):
    pixels = photo_folder(tmp_path / "photos")
    train, test = splits.load(tmp_path / "photos", crop=(16, 24), test_split=0.2)
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


def test_a_fully_convolutional_model_trains_on_crops_of_photos_by_default(tmp_path):
    from aekit.config import DataConfig
    from aekit.data.splits import with_photo_crop

    photo_folder(tmp_path / "photos", sizes=[(70, 90), (80, 66)])  # photos of two sizes: crops of 64
    photo_folder(tmp_path / "small", sizes=[(40, 90), (80, 50)])  # the smallest sides: crops of 40 x 50
    photo_folder(tmp_path / "same", sizes=[(30, 40), (30, 40)])  # small and of one size: whole
    photo_folder(tmp_path / "large", sizes=[(65, 20), (65, 20)])  # of one size, but taller than a crop
    cases = {"photos": (64, 64), "small": (40, 50), "same": None, "large": (64, 20), "digits": None}
    for name, crop in cases.items():
        source = str(tmp_path / name) if name != "digits" else name
        assert with_photo_crop(DataConfig(source)).crop == crop, name
    assert with_photo_crop(DataConfig(str(tmp_path / "photos" / "p0.png"))).crop == (64, 64)  # one photo
    assert with_photo_crop(DataConfig(str(tmp_path / "photos" / "*.png"))).crop == (64, 64)  # a pattern
    assert with_photo_crop(DataConfig(str(tmp_path / "photos"), crop=(8, 8))).crop == (8, 8)  # given: kept
    assert with_photo_crop(DataConfig(str(tmp_path / "photos"), size=(32, 32))).crop is None  # resized: whole
    run = aekit.train(tmp_path / "photos", "ae", out=tmp_path / "r", epochs=1, **RESNET)
    assert run.config["data"]["crop"] == [64, 64] and run.model.config.input_shape == (3, 64, 64)
    with pytest.raises(AekitError, match="p1.png: is 80x66 but p0.png is 70x90"):  # other backbones: as before
        aekit.train(tmp_path / "photos", "ae", out=tmp_path / "m", epochs=1, backbone="conv", quiet=True)


def test_training_on_crops_resumes_bit_for_bit_and_the_run_scores_its_held_out_crops(tmp_path):
    photo_folder(tmp_path / "photos")
    options = {**RESNET, "crop": (16, 16), "schedule": "constant"}  # a cosine schedule would span 1 epoch, then 3
    full = aekit.train(tmp_path / "photos", "ae", out=tmp_path / "full", epochs=3, **options)
    aekit.train(tmp_path / "photos", "ae", out=tmp_path / "part", epochs=1, **options)
    resumed = aekit.train(out=tmp_path / "part", resume=True, epochs=3, quiet=True)
    a, b = load_file(full.path / "model.safetensors"), load_file(resumed.path / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    first = full.metrics["history"]
    assert first[-1]["train_loss"] < first[0]["train_loss"]
    report = aekit.evaluate(full.path)
    assert report["split"] == "test" and report["items"] == len(splits.load(tmp_path / "photos", crop=(16, 16)).test)
    assert report["model"]["mse"] == pytest.approx(first[-1]["test_mse"], rel=1e-5)


def test_codes_refined_for_each_photo_rebuild_it_closer(tmp_path):
    photo_folder(tmp_path / "photos")
    run = aekit.train(tmp_path / "photos", "ae", out=tmp_path / "run", epochs=1, crop=(16, 16), **RESNET)
    photo_folder(tmp_path / "new", sizes=[(23, 37), (50, 20)])
    done = run_cli("evaluate", run.path, tmp_path / "new", "--refine", "20", "--no-save")
    assert done.returncode == 0, done.stderr
    whole = json.loads(done.stdout)["model"]
    assert whole["refined"]["steps"] == 20 and whole["refined"]["psnr_db"] > whole["psnr_db"] + 0.1
    crops = aekit.evaluate(run, refine=20, save=False)["model"]  # the run's held-out crops, of the model's size
    assert crops["refined"]["psnr_db"] > crops["psnr_db"] + 0.1
    rebuilt = aekit.reconstruct(run, tmp_path / "new", refine=20)
    assert [tuple(r.shape) for r in rebuilt] == [(3, 23, 37), (3, 50, 20)]
    # the tiles' codes are fitted together, to the blended photo: closer than each tile fitted on its own
    photo = torch.from_numpy(np.array(Image.open(tmp_path / "new" / "p0.png"))).permute(2, 0, 1)
    each = tiles.map_image(run.model, photo, refined_fn(run.model, 20))
    error = lambda r: float((r - tiles.floats(photo)).pow(2).mean())  # noqa: E731
    assert error(rebuilt[0]) < error(each)
    assert torch.equal(tiles.refine_image(run.model, photo, 0), tiles.map_image(run.model, photo))
    assert_clean_error(run_cli("evaluate", run.path, "--refine", "-3"), "refine steps must be a whole number from 0")


@pytest.mark.slow  # real subprocesses or several trainings: under make test
def test_crop_options_fail_in_one_line(tmp_path):
    photo_folder(tmp_path / "photos", sizes=[(40, 40), (30, 20), (50, 60)])
    np.save(tmp_path / "table.npy", np.zeros((5, 3), np.float32))
    out = tmp_path / "run"
    cases = [
        (["--crop", "24,24"], tmp_path / "photos", "p1.png: is 30x20, smaller than the crop 24x24"),
        (["--crop", "0,8"], tmp_path / "photos", "data.crop must be two positive integers"),
        (["--crop", "8,8"], tmp_path / "table.npy", "--crop does not apply to table.npy"),
        (["--crop", "8,8"], "digits", "--crop applies to files and folders"),
        (["--backbone", "conv"], tmp_path / "photos", "train on crops with --crop HEIGHT,WIDTH"),  # resnet: crops
    ]
    for flags, source, message in cases:
        done = run_cli("train", source, "--backbone", "resnet", "--epochs", "1", "--out", out, *flags)
        assert_clean_error(done, message)
        assert not out.exists()


def test_one_photo_trains_on_its_crops_and_size_resizes_before_cropping(tmp_path):
    photo_folder(tmp_path, sizes=[(60, 80)])
    one = splits.load(tmp_path / "p0.png", crop=(20, 20))
    assert one.test is None and len(one.train) == 12
    resized = splits.load(tmp_path / "p0.png", crop=(20, 20), size=(40, 40)).train
    assert len(resized) == 4 and resized.images[0, 1:].tolist() == [40, 40]
    with pytest.raises(AekitError, match="smaller than the crop"):
        splits.load(tmp_path / "p0.png", crop=(20, 20), size=(10, 40))


# ---------------------------------------------------------------- whole images through a fully convolutional model


def test_tiles_cover_every_pixel_and_blend_back_to_the_image():
    from types import SimpleNamespace

    from aekit.apps import tiles

    model = SimpleNamespace(config=SimpleNamespace(input_shape=(3, 16, 12)), device=torch.device("cpu"))
    rng = np.random.default_rng(0)
    for h, w in [(16, 12), (5, 7), (40, 29), (17, 100)]:
        image = torch.from_numpy(rng.integers(0, 256, (3, h, w), dtype=np.uint8))
        seen = []

        def identity(batch, seen=seen):
            seen.append(batch.shape)
            return batch

        out = tiles.map_image(model, image, identity)
        assert out.shape == (3, h, w) and torch.allclose(out, image.float() / 255, atol=1e-6)
        assert all(s[1:] == (3, 16, 12) for s in seen)  # always the model's own input size
    assert tiles.starts(40, 16, 4) == [0, 12, 24] and tiles.starts(16, 16, 4) == [0]


@pytest.mark.slow  # real subprocesses or several trainings: under make test
def test_a_photo_of_any_size_is_denoised_whole_and_written_under_its_own_name(tmp_path):
    photo_folder(tmp_path / "photos")
    run = aekit.train(tmp_path / "photos", "dae", out=tmp_path / "run", epochs=1, crop=(16, 16), skips=True, **RESNET)
    photo_folder(tmp_path / "new", sizes=[(23, 37), (50, 20)])
    done = run_cli("denoise", run.path, tmp_path / "new" / "p0.png", "-o", tmp_path / "clean.png")
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "clean.png").size == (37, 23)
    done = run_cli("denoise", run.path, tmp_path / "new", "-o", tmp_path / "cleaned", "--add-noise", "gaussian")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "cleaned").glob("*.png")) == ["p0.png", "p1.png"]
    assert Image.open(tmp_path / "cleaned" / "p1.png").size == (20, 50)
    rebuilt = aekit.reconstruct(run, tmp_path / "new")
    assert isinstance(rebuilt, list) and [tuple(r.shape) for r in rebuilt] == [(3, 23, 37), (3, 50, 20)]
    same = aekit.reconstruct(run, torch.rand(2, 3, 30, 30))
    assert same.shape == (2, 3, 30, 30)
    report = aekit.evaluate(run, str(tmp_path / "new"), save=False)
    clean = [
        torch.from_numpy(np.array(Image.open(tmp_path / "new" / f"p{k}.png"))).permute(2, 0, 1) / 255 for k in (0, 1)
    ]
    assert report["items"] == 2 and report["model"]["psnr_db"] == pytest.approx(metrics.image_psnr(clean, rebuilt))
    assert set(report["baselines"]) == {"pca_128", "mean"} and report["baselines"]["mean"]["psnr_db"] > 0
    assert aekit.reconstruction_figure(run, tmp_path / "fig.png", data=str(tmp_path / "new")).stat().st_size > 0
    pooled = aekit.features(run, tmp_path / "new")  # whole photos: each code channel's mean over the photo
    assert pooled.shape == (2, 2) and torch.isfinite(pooled).all()
    flat = aekit.features(run, torch.rand(3, 3, 16, 16))  # the model's own size: the code map flattened
    assert flat.shape == (3, run.model.config.latent_dim)
    done = run_cli("features", run.path, tmp_path / "new", "-o", tmp_path / "codes.npy")
    assert done.returncode == 0 and np.allclose(np.load(tmp_path / "codes.npy"), pooled.numpy(), atol=1e-6)
    done = run_cli("compress", run.path, tmp_path / "photos", "-o", tmp_path / "x.aez")
    assert_clean_error(done, "U-Net skips (model.skips) bypass its code")
    assert_clean_error(run_cli("evaluate", run.path, "--refine", "5"), "code alone rebuilds an item")
    for out, message in [("one.png", "one PNG file holds one image"), ("all.npz", "images of several sizes")]:
        assert_clean_error(run_cli("denoise", run.path, tmp_path / "new", "-o", tmp_path / out), message)
        assert not (tmp_path / out).exists()


def test_nested_folders_and_glob_patterns_read_every_photo_and_outputs_keep_their_paths(tmp_path):
    lib = tmp_path / "lib"
    photo_folder(lib / "cats" / "2023", SIZES[:2])
    photo_folder(lib / "cats", SIZES[2:3])
    photo_folder(lib / "dogs" / "old" / "scans", SIZES[3:5])
    photo_folder(lib / "dogs" / "masks", SIZES[:1])  # ground truth for anomaly maps, never an image to learn from
    photos = splits.load_photos(lib)
    assert list(photos.item_names) == ["cats/2023/p0.png", "cats/2023/p1.png", "cats/p0.png",
                                       "dogs/old/scans/p0.png", "dogs/old/scans/p1.png"]  # fmt: skip
    assert photos.classes == ("cats", "dogs") and photos.y.tolist() == [0, 0, 0, 1, 1]
    pattern = splits.load_photos(lib / "*" / "2023" / "*.png")
    assert list(pattern.item_names) == ["cats/2023/p0.png", "cats/2023/p1.png"] and pattern.y is None
    assert torch.equal(pattern.image(1), photos.image(1))
    data = aekit.data.load(str(lib / "**" / "p0.png"), crop=(16, 16), test_split=0.0)
    assert len(data.train.images) == 4  # p0.png at every depth, masks/ too: a pattern takes what it matches
    run = aekit.train(str(lib / "**" / "p0.png"), "dae", out=tmp_path / "run", epochs=1, crop=(16, 16), **RESNET)
    done = run_cli("denoise", run.path, lib / "dogs" / "**" / "*.png", "-o", tmp_path / "clean")
    assert done.returncode == 0, done.stderr
    assert sorted(str(p.relative_to(tmp_path / "clean")) for p in (tmp_path / "clean").rglob("*.png")) == [
        "masks/p0.png", "old/scans/p0.png", "old/scans/p1.png"]  # fmt: skip
    assert_clean_error(run_cli("denoise", run.path, lib / "*.jpg", "-o", tmp_path / "none"), "no images")
    assert not (tmp_path / "none").exists()


def defect_set(folder):
    """normal/ and abnormal/ photos (a dark square pasted into the abnormal ones) with masks/ of the squares."""
    sizes = [(40, 56), (48, 48), (36, 60), (52, 44)]
    photo_folder(folder / "normal", sizes)
    photo_folder(folder / "abnormal", sizes)
    (folder / "masks" / "abnormal").mkdir(parents=True)
    for k, (h, w) in enumerate(sizes):
        image = np.asarray(Image.open(folder / "abnormal" / f"p{k}.png")).copy()
        mask = np.zeros((h, w), np.uint8)
        top, left = 5 + 6 * k, 8 + 4 * k
        image[top : top + 10, left : left + 10] = 0
        mask[top : top + 10, left : left + 10] = 255
        Image.fromarray(image).save(folder / "abnormal" / f"p{k}.png")
        Image.fromarray(mask).save(folder / "masks" / "abnormal" / f"p{k}_mask.png")


@pytest.mark.slow  # real subprocesses or several trainings: under make test
def test_anomaly_maps_find_pasted_defects_and_masks_give_a_pixel_auroc(tmp_path):
    photo_folder(tmp_path / "train")
    run = aekit.train(tmp_path / "train", "ae", out=tmp_path / "run", epochs=40, lr=3e-3, crop=(16, 16), **RESNET)
    defect_set(tmp_path / "test")
    assert aekit.data.load(tmp_path / "test", test_split=0, size=(8, 8)).train.classes == ("abnormal", "normal")
    out = {name: tmp_path / name for name in ("scores.csv", "figure.png", "maps.npz")}
    done = run_cli("anomaly", run.path, tmp_path / "test", "--normal", "normal", "--contamination", "0.5",
                   "-o", out["scores.csv"], "--figure", out["figure.png"], "--maps", out["maps.npz"])  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["score"] == "max of the anomaly map"
    assert report["pixel_auroc"] > 0.9 and report["auroc"] > 0.9, report
    maps = np.load(out["maps.npz"])
    assert sorted(maps.files) == sorted(f"{c}/p{k}.png" for c in ("abnormal", "normal") for k in range(4))
    assert maps["abnormal/p1.png"].shape == (48, 48)
    peak = np.unravel_index(maps["abnormal/p1.png"].argmax(), (48, 48))
    assert 11 - 4 <= peak[0] < 21 + 4 and 12 - 4 <= peak[1] < 22 + 4  # on the pasted square (10x10 at 11, 12)
    same = aekit.anomaly_maps(run, tmp_path / "test")
    assert np.allclose(same[0].numpy(), maps["abnormal/p0.png"])
    assert Image.open(out["figure.png"]).size[0] > 500
    wrong = tmp_path / "wrong"
    (wrong / "abnormal").mkdir(parents=True)
    Image.new("L", (5, 5)).save(wrong / "abnormal" / "p0.png")
    done = run_cli("anomaly", run.path, tmp_path / "test", "--masks", wrong, "--contamination", "0.5")
    assert_clean_error(done, "p0.png: the mask is 5x5, its image 40x56")


def test_the_anomaly_map_marks_error_that_stands_out_not_error_everywhere():
    everywhere = torch.full((1, 1, 60, 80), 0.04)  # content the model rebuilds poorly all over
    spot = torch.zeros(1, 1, 60, 80)
    spot[..., 30:34, 50:54] = 0.04  # a small defect on content rebuilt well
    assert float(local_excess(everywhere).abs().max()) < 1e-6
    peak = local_excess(spot)[0, 0]
    row, col = np.unravel_index(int(peak.argmax()), (60, 80))
    assert float(peak.max()) > 0.02 and 31 <= row <= 32 and 51 <= col <= 52  # on the spot's centre


def test_color_jitter_shuffles_and_scales_the_training_crops_channels_only(tmp_path):
    photo_folder(tmp_path / "photos")
    plain = splits.load(tmp_path / "photos", crop=(16, 16), test_split=0.2)
    jittered = splits.load(tmp_path / "photos", crop=(16, 16), test_split=0.2, color_jitter=0.5)
    assert torch.equal(jittered.test.batch(slice(None)), plain.test.batch(slice(None)))  # held out as they are
    idx = torch.arange(len(plain.train))
    torch.manual_seed(1)
    same_places = plain.train.training_batch(idx)
    torch.manual_seed(1)
    colours = jittered.train.training_batch(idx)
    assert colours.min() >= 0 and colours.max() <= 1 and not torch.equal(colours, same_places)
    for a, b in zip(same_places, colours, strict=True):  # each channel g * one of the crop's channels + o, clipped
        inside = ((b > 0.01) & (b < 0.99)).all(0)
        if inside.sum() < 20:
            continue
        fits = []
        for bj in b:
            errors = []
            for ai in a:
                design = torch.stack([ai[inside], torch.ones(int(inside.sum()))], 1)
                solution = torch.linalg.lstsq(design, bj[inside][:, None]).solution
                errors.append(float((design @ solution - bj[inside][:, None]).abs().max()))
            fits.append(min(range(3), key=errors.__getitem__) if min(errors) < 1e-4 else None)
        assert sorted(fits) == [0, 1, 2], fits
    with pytest.raises(AekitError, match="color_jitter applies to training on crops"):
        splits.load(tmp_path / "photos", color_jitter=0.5, size=(8, 8))


def test_a_resnet_vae_samples_images_of_the_size_asked_for(tmp_path):
    photo_folder(tmp_path / "photos")
    run = aekit.train(tmp_path / "photos", "vae", out=tmp_path / "vae", epochs=1, crop=(16, 16), **RESNET)
    big = aekit.generate(run, n=2, size=(40, 23), seed=3)
    assert big.shape == (2, 3, 40, 23) and 0 <= big.min() and big.max() <= 1
    assert torch.equal(big, aekit.generate(run, n=2, size=(40, 23), seed=3))
    assert not torch.equal(big, aekit.generate(run, n=2, size=(40, 23), seed=4))
    assert aekit.generate(run, n=2).shape == (2, 3, 16, 16)  # the training size, as before
    done = run_cli("generate", run.path, "-n", "1", "--size", "0,8", "-o", tmp_path / "x.png")
    assert_clean_error(done, "size must be two positive integers")
