"""Trained models that ship with aekit: used by name wherever a run folder is taken, never written over, and a
start for a user's own training (--init); and the blind noise they are trained with."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit import AekitError, pretrained
from conftest import RESNET, assert_clean_error, photo_folder, refused, run_cli, run_process

NAME = "photo-denoiser"
BLIND = {"skips": True, "noise_sigma": 0.02, "noise_sigma_max": 0.2, "crop": (16, 16), "epochs": 2}


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """A stand-in for the package's folder of shipped models: a tiny blind resnet dae trained as NAME."""
    root = tmp_path_factory.mktemp("package")
    photo_folder(root / "photos")
    run = aekit.train(root / "photos", "dae", out=root / "pretrained" / NAME, **RESNET, **BLIND)
    (run.path / "metrics.json").write_text(json.dumps({"shipped": {"summary": "28.0 dB at sigma 25"}}))
    return root


@pytest.fixture
def shipped(package, monkeypatch):
    """The stand-in is aekit's folder of shipped models for the test; returns that folder."""
    monkeypatch.setattr(pretrained, "FOLDER", package / "pretrained")
    return package / "pretrained"


def test_a_shipped_model_is_used_by_name(shipped, package, tmp_path, monkeypatch):
    run = aekit.Run.open(NAME)
    assert run.path == shipped / NAME and run.shipped and run.model.name == "dae"
    x = torch.rand(1, 3, 20, 24)
    assert aekit.denoise(NAME, x).shape == x.shape  # any use takes the name
    assert torch.equal(aekit.load(NAME).encode(x[..., :16, :16]), run.model.encode(x[..., :16, :16]))
    result = run_cli("denoise", NAME, package / "photos" / "p0.png", "-o", tmp_path / "clean.png")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "clean.png").exists()
    monkeypatch.chdir(tmp_path)  # a run folder of the same name where the user is: theirs comes first
    own = aekit.train(package / "photos", "ae", out=NAME, epochs=1, **RESNET, crop=(16, 16))
    assert aekit.Run.open(NAME).path == own.path and not aekit.Run.open(NAME).shipped


def test_unknown_names_list_the_shipped_ones(shipped, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(f"nope: no such run folder, nor a model that ships with aekit ({NAME})", aekit.load, "nope")
    assert_clean_error(run_cli("evaluate", "nope"), f"nor a model that ships with aekit ({NAME})")
    monkeypatch.setattr(pretrained, "FOLDER", tmp_path / "empty")  # a shipped name whose weights are missing
    refused(f"{NAME}: no such run folder, nor a model that ships with aekit (none here)", aekit.load, NAME)


def test_aekit_models_lists_the_shipped_ones_with_their_figures(shipped):
    out = run_cli("models").stdout
    assert f"  {NAME}  {pretrained.SHIPPED[NAME].what}" in out and "    28.0 dB at sigma 25" in out
    assert "  ae     Vanilla autoencoder" in out


def test_a_shipped_model_is_never_written(shipped, package, tmp_path):
    before = {p.name: p.read_bytes() for p in (shipped / NAME).iterdir() if p.is_file()}
    photos = package / "photos"
    for args in (
        ["train", photos, "--model", "dae", "--backbone", "resnet", "--out", shipped / NAME, "--force"],
        ["train", photos, "--backbone", "resnet", "--out", shipped / "another", "--epochs", "1"],
        ["reconstruct", NAME, photos / "p0.png", "-o", shipped / NAME / "r.png", "--force"],
    ):
        assert_clean_error(run_cli(*args), "the models that ship with aekit are never written over")
    assert_clean_error(run_cli("train", "--resume", shipped / NAME), "never written over", "--init")
    assert run_cli("evaluate", NAME, photos / "p0.png").returncode == 0  # measured, not stored in it
    assert {p.name: p.read_bytes() for p in (shipped / NAME).iterdir() if p.is_file()} == before
    assert not (shipped / "another").exists()


def test_init_starts_a_run_from_a_trained_models_weights_and_options(shipped, package, tmp_path):
    photos = package / "photos"
    tiny = {"epochs": 1, "lr": 1e-12, "quiet": True, "crop": (24, 24)}  # a step that changes nothing
    run = aekit.train(photos, out=tmp_path / "r", init=NAME, noise_sigma=0.05, **tiny)
    assert run.config["train"]["init"] == NAME and run.model.name == "dae"  # the type of the run started from
    model = run.config["model"]
    assert (model["hidden"], model["skips"], model["noise_sigma"], model["noise_sigma_max"]) == ([8], True, 0.05, 0.2)
    assert model["input_shape"] == [3, 24, 24]  # a resnet's weights fit any image size
    start = aekit.load(NAME).state_dict()
    assert all(torch.allclose(v, start[k], atol=1e-6) for k, v in run.model.state_dict().items())  # no PCA start
    refused(
        f"--init {NAME} is a dae; drop --model ae, or start from a run of that type",
        aekit.train, photos, "ae", out=tmp_path / "a", init=NAME, **tiny,
    )  # fmt: skip
    with pytest.raises(AekitError, match=rf"^--init {NAME}: weight encoder\.body\.0\.weight has shape \[8, 3, 3, 3\]"):
        aekit.train(photos, out=tmp_path / "h", init=NAME, hidden=[16], **tiny)
    assert not (tmp_path / "a").exists() and not (tmp_path / "h").exists()
    own = aekit.train(photos, out=tmp_path / "o", init=tmp_path / "r", **tiny)  # a run folder works too
    assert own.config["model"]["noise_sigma"] == 0.05
    refused("train.init must name a run folder or a shipped model", aekit.train, photos, init="", **tiny)


def test_blind_noise_draws_a_sigma_per_item():
    from aekit.data.noise import gaussian

    x = torch.full((400, 1, 32, 32), 0.5)
    noisy = gaussian(x, 0.02, torch.Generator().manual_seed(0), sigma_max=0.2)
    spread = (noisy - x).flatten(1).std(1).numpy()
    assert 0.015 < spread.min() < 0.03 and 0.18 < spread.max() < 0.21  # each item's own sigma, from the range
    assert np.corrcoef(np.sort(spread), np.linspace(0, 1, 400))[0, 1] > 0.99  # spread evenly over it
    fixed = (gaussian(x, 0.1, torch.Generator().manual_seed(0)) - x).flatten(1).std(1)
    assert fixed.min() > 0.09 and fixed.max() < 0.11
    with pytest.raises(AekitError, match=r"model.noise_sigma_max must be at least noise_sigma \(0.1\), got 0.05"):
        aekit.create_model("dae", (3, 16, 16), noise_sigma=0.1, noise_sigma_max=0.05)


def test_the_shipped_denoiser_removes_noise_of_a_strength_it_is_not_told():
    import skimage.data

    clean = torch.from_numpy(skimage.data.chelsea()[100:196, 150:278].transpose(2, 0, 1).copy()).float()[None] / 255
    generator = torch.Generator().manual_seed(0)
    for sigma in (10 / 255, 25 / 255, 45 / 255):
        noisy = (clean + sigma * torch.randn(clean.shape, generator=generator)).clamp(0, 1)
        denoised = aekit.denoise(NAME, noisy)
        gain = 10 * torch.log10((noisy - clean).pow(2).mean() / (denoised - clean).pow(2).mean())
        assert float(gain) > 4, (sigma * 255, float(gain))  # dB of noise removed
    assert aekit.Run.open(NAME).metrics["shipped"]["summary"].startswith("held-out photos, sigma not told")


CODEC = "photo-codec"


@pytest.fixture(scope="module")
def coffee(tmp_path_factory):
    """A 128x192 RGB photo the codec never saw in training, as a PNG file."""
    import skimage.data

    path = tmp_path_factory.mktemp("codec") / "coffee.png"
    Image.fromarray(skimage.data.coffee()[100:228, 200:392]).save(path)
    return path


def test_the_shipped_codec_codes_a_photo_at_each_quality(coffee, tmp_path):
    from aekit.apps.compress import compress_file
    from aekit.codec import aez

    reports = [compress_file(CODEC, str(coffee), tmp_path / f"{q}.aez", quality=q) for q in range(1, 5)]
    sizes, psnrs = [r["bytes"] for r in reports], [r["psnr_db"] for r in reports]
    assert sizes == sorted(sizes) and psnrs == sorted(psnrs) and psnrs[0] > 20, (sizes, psnrs)  # more bytes, better
    for q in range(1, 5):  # the file names the shipped level, wherever the package is installed
        assert aez.parse((tmp_path / f"{q}.aez").read_bytes())[1].run == f"{CODEC}/{q}"
    compress_file(CODEC, str(coffee), tmp_path / "default.aez")  # the name alone: the default level
    assert (tmp_path / "default.aez").read_bytes() == (tmp_path / "3.aez").read_bytes()
    assert aekit.Run.open(CODEC).path == pretrained.FOLDER / CODEC / "3"
    # decoded in a fresh process with no model given: the pixels this process decodes
    result = run_process("decompress", tmp_path / "2.aez", "-o", tmp_path / "back.png")
    assert result.returncode == 0, result.stderr
    image = aekit.decompress((tmp_path / "2.aez").read_bytes())[0][0]
    mine = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "back.png").convert("RGB")), mine)


def test_quality_names_a_level_of_a_shipped_codec(coffee, tmp_path):
    x = torch.rand(1, 3, 32, 32)
    refused(f"--quality of {CODEC} is 1 to 4, got 0", aekit.compress, CODEC, x, quality=0)
    refused(
        f"--quality picks a level of a shipped codec ({CODEC} 1 to 4); {NAME} is not one",
        aekit.compress, NAME, x, quality=1,
    )  # fmt: skip
    assert_clean_error(run_cli("compress", CODEC, coffee, "-o", tmp_path / "c.aez", "--quality", "5"), "1 to 4, got 5")
    assert_clean_error(run_cli("compress", f"{CODEC}/9", coffee, "-o", tmp_path / "c.aez"), "no such run folder")
    assert not (tmp_path / "c.aez").exists()
    level = pretrained.FOLDER / CODEC / "2"
    assert pretrained.name_of(level) == f"{CODEC}/2" and pretrained.name_of(tmp_path) is None
    assert_clean_error(run_cli("compress", CODEC, coffee, "-o", level / "c.aez"), "never written over")


def test_a_float16_weight_stands_for_a_float32_one(tmp_path):
    from aekit.runfiles import load_state

    model = aekit.create_model("ae", (1, 8, 8), hidden=[4], latent_dim=2)
    half = {k: v.half() for k, v in model.state_dict().items()}
    fresh = aekit.create_model("ae", (1, 8, 8), hidden=[4], latent_dim=2)
    load_state(fresh, half, tmp_path)
    assert all(v.dtype == torch.float32 and torch.equal(v, half[k].float()) for k, v in fresh.state_dict().items())
    wide = {k: v.double() for k, v in model.state_dict().items()}
    with pytest.raises(AekitError, match=r"has shape \[.*\] \(float64\), the model expects \[.*\] \(float32\)"):
        load_state(fresh, wide, tmp_path)
