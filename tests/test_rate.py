"""Learned compression: the entropy models, rate-distortion training, the .aez versions 2 to 4."""

import copy
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit import frequencies
from aekit.apps.compress import compress, compress_file, decompress
from aekit.codec import learned, rans
from aekit.codec.aez import SECTIONS, parse
from aekit.models.entropy import TABLE, FactorizedDensity
from aekit.models.hyperprior import SCALES, MeanScaleHyperprior, ScaleHyperprior
from aekit.models.layers import pixel_logits, start_from_pca
from conftest import RESNET, assert_clean_error, photo_folder, run_cli, succeeds


def test_the_density_gives_each_channel_a_distribution_over_the_integers_and_tables_that_match_it():
    torch.manual_seed(0)
    density = FactorizedDensity(3)
    with torch.no_grad():  # three different shapes: shifted, squeezed, skewed
        density.biases[0][0] += 2.0
        density.matrices[0][1] += 1.5
        density.factors[0][2] += 1.0
    k = torch.arange(-400, 401).float()
    with torch.no_grad():
        p = density.likelihood(k.view(1, 1, -1).expand(1, 3, -1))[0]
    assert torch.allclose(p.sum(1), torch.ones(3), atol=1e-4)
    x = torch.linspace(-30, 30, 601).view(1, 1, -1).expand(3, 1, -1)
    assert (density.logits(x).detach().diff(dim=2) > 0).all()  # a cumulative: increasing everywhere
    density.update_tables()
    for c in range(3):
        n = int(density.count[c])
        freqs = density.frequencies[c].numpy()
        assert (
            3 <= n <= TABLE and freqs.sum() == frequencies.PROB_SCALE and (freqs[:n] >= 1).all() and not freqs[n:].any()
        )
        symbols = torch.arange(n - 1) + int(density.offset[c])  # the table's range holds all but a sliver
        inside = p[c, symbols + 400]
        assert float(inside.sum()) > 1 - 1e-5
        # coding with the table costs at most a hundredth of a bit a symbol more than the density says
        table = freqs[: n - 1] / frequencies.PROB_SCALE
        assert float((inside.numpy() * np.log2(inside.numpy() / table)).sum()) < 0.01


def test_rate_lambda_trades_bits_for_error_and_training_lowers_the_cost(tmp_path):
    with torch.no_grad():  # training turns gradients on for itself
        runs = {
            lam: aekit.train(
                "digits",
                "ae",
                out=tmp_path / f"r{lam}",
                epochs=10,
                rate_lambda=lam,
                hidden=[32],
                batch_size=16,
                lr=3e-3,
                quiet=True,
            )  # fmt: skip
            for lam in (10.0, 1000.0)
        }
    history = runs[10.0].metrics["history"]
    assert history[-1]["train_loss"] < 0.7 * history[0]["train_loss"]
    cheap, good = (runs[lam].metrics["final"] for lam in (10.0, 1000.0))
    assert cheap["test_bits"] < 0.5 * good["test_bits"] and good["test_mse"] < 0.7 * cheap["test_mse"]
    assert cheap["test_bpp"] == pytest.approx(cheap["test_bits"] / 64)
    model = runs[10.0].model
    z = model.encode(torch.rand(5, 1, 8, 8))
    assert torch.equal(z, z.round())  # outside training the code is whole numbers: what a file stores
    assert_clean_error(run_cli("evaluate", runs[10.0].path, "--refine", "3"), "integers")
    done = run_cli("train", "digits", "--rate-lambda", "-1", "--out", tmp_path / "x")
    assert_clean_error(done, "model.rate_lambda must be a positive number, got -1.0")
    for entropy, message in (("hyperprior", "use --backbone resnet"), ("tables", "must be one of")):
        done = run_cli("train", "digits", "--rate-lambda", "10", "--entropy", entropy, "--out", tmp_path / "x")
        assert_clean_error(done, message)


def test_a_photo_compressor_starts_as_a_block_transform_coder_with_a_density_that_fits_its_codes():
    torch.manual_seed(0)
    x = torch.nn.functional.interpolate(torch.rand(64, 3, 4, 4), size=(32, 32), mode="bilinear")  # smooth photos
    options = {"backbone": "resnet", "hidden": [8], "latent_channels": 6, "patch": 2}
    model = aekit.create_model("ae", (3, 32, 32), rate_lambda=300.0, **options)
    before = model.eval().reconstruct(x)
    unfitted = copy.deepcopy(model.entropy)
    model.start(x)
    after = model.reconstruct(x)  # 6 principal components of 4x4 blocks, quantized with a step of 0.17
    assert float(((after - x) ** 2).mean()) < 0.1 * float(((before - x) ** 2).mean())
    with torch.no_grad():
        codes = model.code_map(model.encode(x))
        assert float(model.entropy.bits(codes).mean()) < 0.8 * float(unfitted.bits(codes).mean())
    plain = aekit.create_model("ae", (3, 32, 32), **options).eval()
    plain.start(x)  # a plain ae starts as the same block transform, unquantized: closer still
    assert float(((plain.reconstruct(x) - x) ** 2).mean()) < float(((after - x) ** 2).mean())
    with torch.no_grad():
        step = math.sqrt(6 / (300.0 * math.log(2)))  # the compressor's quantization step
        assert torch.allclose(plain.encoder.linear.weight / step, model.encoder.linear.weight, atol=1e-6)
    unweighted = aekit.create_model("ae", (3, 32, 32), **options).eval()
    start_from_pca(unweighted.encoder, unweighted.decoder, x, 1.0)  # the compressor's fit, unquantized
    errors = [float(((m.reconstruct(x) - x) ** 2).mean()) for m in (plain, unweighted)]
    assert errors[0] < 0.95 * errors[1]  # a plain ae's fit weighs each logit by the pixels' slope: closer


def test_the_default_resnet_decodes_pixels_and_starts_as_block_pca_exactly():
    torch.manual_seed(0)
    x = torch.nn.functional.interpolate(torch.rand(64, 3, 4, 4), size=(32, 32), mode="bilinear")
    x[:8] = 0.0  # black items too: a sigmoid's logits cannot fit these and the mid-tones with one linear map
    model = aekit.create_model("ae", (3, 32, 32), backbone="resnet").eval()  # sizes left out: 8x8 blocks, 16
    assert model.config.pixel_output and model.config.latent_channels == 16
    model.start(x)
    blocks = x.unfold(2, 8, 8).unfold(3, 8, 8).permute(0, 2, 3, 1, 4, 5).reshape(-1, 192).double()
    mean = blocks.mean(0)
    basis = torch.linalg.svd(blocks - mean, full_matrices=False).Vh[:16]
    pca = ((blocks - mean) @ basis.T @ basis + mean).clamp(0, 1)
    rebuilt = model.reconstruct(x).unfold(2, 8, 8).unfold(3, 8, 8).permute(0, 2, 3, 1, 4, 5).reshape(-1, 192)
    assert torch.allclose(rebuilt.double(), pca, atol=2e-4)  # PCA's blocks, to the clamp's 1e-4
    logits_model = aekit.create_model("ae", (3, 32, 32), backbone="resnet", pixel_output=False).eval()
    logits_model.start(x)
    errors = [float(((m.reconstruct(x) - x) ** 2).mean()) for m in (model, logits_model)]
    assert errors[1] > 1.5 * errors[0]  # the sigmoid's start is further from the photos
    u = torch.tensor([-0.5, 0.5, 1.5], requires_grad=True)  # pushed past [0, 1]: still pulled back by its error
    torch.sigmoid(pixel_logits(u)).sum().backward()
    assert torch.allclose(torch.sigmoid(pixel_logits(u.detach())), torch.tensor([1e-4, 0.5, 1 - 1e-4]), atol=1e-6)
    assert bool((u.grad > 0.5).all())
    assert aekit.create_model("ae", (3, 32, 32), backbone="resnet", hidden=[8]).config.pixel_output is False
    with pytest.raises(aekit.AekitError, match="model.pixel_output applies to the resnet backbone only"):
        aekit.create_model("ae", (1, 8, 8), pixel_output=True)


def test_a_hyperprior_codes_values_whose_spread_varies_by_region_in_fewer_bits_and_decodes_them_exactly():
    torch.manual_seed(0)
    wide, narrow = torch.distributions.Laplace(0, 8.0), torch.distributions.Laplace(0, 0.3)
    y = torch.cat([wide.sample((64, 16, 8, 4)), narrow.sample((64, 16, 8, 4))], dim=3).round()  # two regions
    hyper, factorized = ScaleHyperprior(16), FactorizedDensity(16)
    for model in (hyper, factorized):
        model.fit(y)
        model.update_tables()
    with torch.no_grad():
        assert float(hyper.bits(y).mean()) < 0.9 * float(factorized.bits(y).mean())
        maps = [y[0], y[1, :, :5, :7]]  # code maps of any size (not multiples of the side information's 4)
        sections = learned.encode(hyper, maps)
        expected = sum(float(hyper.bits(m[None])) for m in maps) / 8
    back = learned.decode(hyper, sections, [tuple(m.shape[1:]) for m in maps])
    assert all(torch.equal(a, b) for a, b in zip(maps, back, strict=True))
    coded = sum(len(part) for part in sections)
    assert abs(coded - expected) < 0.03 * expected + 8  # each stream's final state: 4 bytes
    freqs = hyper.frequencies.numpy()
    assert (freqs.sum(1) == frequencies.PROB_SCALE).all() and (freqs[:, : int(hyper.count.min())] >= 1).all()


def test_a_hyperprior_base_level_past_the_widest_table_is_counted_as_files_code_it():
    torch.manual_seed(0)
    y = torch.distributions.Laplace(0, 2.0).sample((8, 4, 8, 8)).round()
    hyper = ScaleHyperprior(4)
    hyper.fit(y, steps=20)
    bits, files = [], []
    with torch.no_grad():
        hyper.analysis[-1].bias -= 10  # side information below 0: levels base + z below the widest
        for base in (SCALES - 1, SCALES + 20):  # training can push a channel's base past the widest level
            hyper.base[0] = base
            hyper.update_tables()
            bits.append(hyper.bits(y))
            files.append(learned.encode(hyper, list(y)))
    assert files[0] == files[1]  # the files use the widest level
    assert torch.equal(bits[0], bits[1])  # and so does the estimate


def test_a_mean_scale_hyperprior_codes_slowly_varying_channels_in_fewer_bits_and_decodes_them_exactly():
    torch.manual_seed(0)
    ramp = torch.linspace(0, 60, 16).view(16, 1) + torch.linspace(0, 40, 12)  # a smooth brightness over the map
    offsets = ramp * torch.rand(64, 2, 1, 1)  # in the first channels, as the block-PCA start gives it
    y = torch.cat(
        [offsets + torch.randn(64, 2, 16, 12), torch.distributions.Laplace(0, 2.0).sample((64, 6, 16, 12))], 1
    )
    y = y.round()
    mean_scale, scale = MeanScaleHyperprior(8), ScaleHyperprior(8)
    for model in (mean_scale, scale):
        model.fit(y)
        model.update_tables()
    with torch.no_grad():
        assert float(mean_scale.bits(y).mean()) < 0.9 * float(scale.bits(y).mean())
        maps = [y[0], y[1, :, :5, :7]]  # code maps of any size (not multiples of the blocks' 4)
        sections = learned.encode(mean_scale, maps)
        expected = sum(float(mean_scale.bits(m[None])) for m in maps) / 8
    assert len(sections) == SECTIONS[learned.VERSIONS["meanscale"]]
    back = learned.decode(mean_scale, sections, [tuple(m.shape[1:]) for m in maps])
    assert all(torch.equal(a, b) for a, b in zip(maps, back, strict=True))
    assert abs(sum(len(part) for part in sections) - expected) < 0.02 * expected + 12  # 4 bytes a stream's state


ENTROPY_VERSIONS = {"factorized": 2, "hyperprior": 3, "meanscale": 4}


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("factorized", marks=pytest.mark.slow),
        "hyperprior",
        pytest.param("meanscale", marks=pytest.mark.slow),
    ],
)
def photo_codec(shared_runs, tmp_path_factory, request):
    """A small compressor (each entropy model; the factorized and mean-scale ones' tests under make test) trained
    on photos of several sizes (fully convolutional, its stages on 2x2 cells of pixels), and a photo of another
    size."""
    root = tmp_path_factory.mktemp("codec")
    options = {"epochs": 3, "crop": (16, 16), "rate_lambda": 300.0, "patch": 2, "entropy": request.param, **RESNET}
    options.update(lr=1e-3, schedule="constant")  # what the refinement's margin below was measured with
    run = aekit.Run.open(shared_runs(shared_runs.photos(), "ae", **options))
    Image.fromarray(photo_folder(root / "new", [(37, 53)])["p0.png"]).save(root / "photo.png")
    return run, root


def test_a_photo_of_any_size_compresses_to_a_file_whose_size_the_model_predicts(photo_codec, tmp_path):
    run, root = photo_codec
    done = run_cli("compress", run.path, root / "photo.png", "-o", tmp_path / "p.aez")
    assert done.returncode == 0, done.stderr
    blob = (tmp_path / "p.aez").read_bytes()
    assert blob[4] == learned.version(run.model) == ENTROPY_VERSIONS[run.config["model"]["entropy"]]
    report = compress_file(run, str(root / "photo.png"), tmp_path / "q.aez")
    assert report["bytes"] == len(blob) and report["bits_per_pixel"] == pytest.approx(8 * len(blob) / (37 * 53))
    assert report["coded_bytes"] + report["header_bytes"] == len(blob)
    assert _as_expected(run, report)
    assert report["psnr_db"] > 10 and 0 < report["ssim"] <= 1
    done = run_cli("decompress", tmp_path / "p.aez", "-o", tmp_path / "p.png")
    assert done.returncode == 0, done.stderr
    back = np.array(Image.open(tmp_path / "p.png"))
    assert back.shape == (37, 53, 3)
    image = torch.from_numpy(np.array(Image.open(root / "photo.png"))).permute(2, 0, 1)
    decoded = decompress(compress(run, [image]), run)[0][0]
    assert np.array_equal(back, (decoded * 255).round().byte().permute(1, 2, 0).numpy())


def _as_expected(run, report: dict) -> bool:
    """The file is the truth: its coded bytes within 1% of the entropy model's estimate, beside the coder's final
    states (4 bytes a stream; a stream and its escaped values make two sections)."""
    streams = SECTIONS[learned.version(run.model)] // 2
    return abs(report["coded_bytes"] - report["expected_bytes"]) < 0.01 * report["expected_bytes"] + 4 * streams


def _cost(run, report: dict, x: list[torch.Tensor] | torch.Tensor, blob: bytes) -> float:
    """What a compressor minimises, measured on a file: its coded bits + rate_lambda * squared error."""
    back = decompress(blob, run)[0]
    error = sum(float((a - b).pow(2).sum()) for a, b in zip(x, back, strict=True))
    return 8 * report["coded_bytes"] + run.model.config.rate_lambda * error


def test_refined_codes_cost_less_in_bits_and_error_and_decode_as_they_code(photo_codec, tmp_path, digits_run):
    run, root = photo_codec
    image = torch.from_numpy(np.array(Image.open(root / "photo.png"))).permute(2, 0, 1)
    costs = {}
    for steps in (0, 30):
        report = compress_file(run, str(root / "photo.png"), tmp_path / f"r{steps}.aez", refine=steps)
        blob = (tmp_path / f"r{steps}.aez").read_bytes()
        costs[steps] = _cost(run, report, [image.float() / 255], blob)
        assert _as_expected(run, report)
    assert costs[30] < 0.95 * costs[0], costs
    assert compress(run, [image], refine=30) == blob  # the same file again: the annealing's noise is seeded
    done = run_cli("compress", run.path, root / "photo.png", "-o", tmp_path / "c.aez", "--refine", "30")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "c.aez").read_bytes() == blob
    # items of a fixed size (codes per item, in batches) too
    with torch.no_grad():
        digits = aekit.train("digits", "ae", out=tmp_path / "d", epochs=3, rate_lambda=300.0, hidden=[32], quiet=True)
    x = digits.read("digits", "test")[0].floats()
    for steps in (0, 30):
        report = compress_file(digits, "digits", tmp_path / f"d{steps}.aez", split="test", refine=steps)
        costs[f"d{steps}"] = _cost(digits, report, x, (tmp_path / f"d{steps}.aez").read_bytes())
    assert costs["d30"] < 0.95 * costs["d0"], costs
    assert_clean_error(run_cli("compress", digits_run.path, "digits", "-o", tmp_path / "x.aez", "--refine", "5"),
                       "--rate-lambda")  # fmt: skip
    assert_clean_error(run_cli("compress", run.path, root / "photo.png", "-o", tmp_path / "y.aez", "--refine", "-1"),
                       "whole number")  # fmt: skip
    assert not (tmp_path / "x.aez").exists() and not (tmp_path / "y.aez").exists()


ANOTHER_PROCESS = """
import sys
from aekit.cli import main
run, photo, aez, png, again = sys.argv[1:]
sys.exit(main(["decompress", aez, "-o", png]) or main(["compress", run, photo, "-o", again]))
"""


@pytest.mark.slow  # a real process: under make test
def test_decoding_is_the_same_in_another_process_and_with_other_thread_counts(photo_codec, tmp_path, capsys):
    run, root = photo_codec
    threads = torch.get_num_threads()
    aez = tmp_path / "p.aez"
    succeeds(capsys, ["compress", run.path, root / "photo.png", "-o", aez])
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            succeeds(capsys, ["decompress", aez, "-o", tmp_path / f"t{n}.png"])
            succeeds(capsys, ["compress", run.path, root / "photo.png", "-o", tmp_path / f"t{n}.aez"])
    finally:
        torch.set_num_threads(threads)
    script, png, again = tmp_path / "other.py", tmp_path / "other.png", tmp_path / "other.aez"
    script.write_text(ANOTHER_PROCESS)
    args = [sys.executable, script, run.path, root / "photo.png", aez, png, again]
    done = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "t1.png").read_bytes() == (tmp_path / "t2.png").read_bytes() == png.read_bytes()
    assert (tmp_path / "t1.aez").read_bytes() == (tmp_path / "t2.aez").read_bytes() == again.read_bytes()
    assert again.read_bytes() == aez.read_bytes()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_run_opened_on_a_gpu_codes_on_the_cpu_so_files_and_pixels_do_not_depend_on_the_device(photo_codec):
    run, root = photo_codec
    gpu = aekit.Run.open(run.path, device="cuda")
    image = torch.from_numpy(np.array(Image.open(root / "photo.png"))).permute(2, 0, 1)
    for steps in (0, 5):
        blob = compress(run, [image], refine=steps)
        assert compress(gpu, [image], refine=steps) == blob
        assert torch.equal(decompress(blob, gpu)[0][0], decompress(blob, run)[0][0])
    assert gpu.model.device.type == "cuda"  # the caller's run stays where it was opened


def test_codes_outside_the_tables_travel_as_escapes(photo_codec):
    run, _ = photo_codec
    model = run.model
    x = torch.rand(4, *model.config.input_shape)
    expected = model.decode(model.encode(x))
    saved = model.entropy.offset.clone()
    try:
        model.entropy.offset += 1000  # every code now falls below its channel's table
        blob = compress(run, x)
        decoded, _ = decompress(blob, run)
        escaped = parse(blob)[2][-1]  # the code values outside the tables, as int32
        assert len(escaped) == 4 * model.config.latent_dim * len(x)
    finally:
        model.entropy.offset.copy_(saved)
    assert torch.equal(decoded, expected)


@pytest.mark.slow  # real subprocesses or several trainings: under make test
def test_bad_aez_files_and_images_are_refused_in_one_line(photo_codec, tmp_path, digits_run):
    run, root = photo_codec
    good = tmp_path / "p.aez"
    assert run_cli("compress", run.path, root / "photo.png", "-o", good).returncode == 0
    blob = good.read_bytes()
    cases = {
        "truncated.aez": (blob[: len(blob) // 2], "truncated or corrupt"),
        "flipped.aez": (blob[:60] + bytes([blob[60] ^ 4]) + blob[61:], "truncated or corrupt"),
        "newer.aez": (blob[:4] + bytes([max(SECTIONS) + 1]) + blob[5:], f"format version {max(SECTIONS) + 1}"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        out = tmp_path / f"{name}.png"
        assert_clean_error(run_cli("decompress", tmp_path / name, "-o", out), message)
        assert not out.exists()
    out = tmp_path / "other.png"
    assert_clean_error(run_cli("decompress", good, "--run", digits_run.path, "-o", out), "another model")
    assert not out.exists()
    np.save(tmp_path / "four.npy", np.zeros((1, 16, 16, 4), np.uint8))  # four channels: neither grey nor RGB
    done = run_cli("compress", run.path, tmp_path / "four.npy", "-o", tmp_path / "four.aez")
    assert_clean_error(done, "items have shape [4, 16, 16] but the model", "expects [3, 16, 16]")
    assert not (tmp_path / "four.aez").exists()


def test_the_coder_takes_learned_tables_whose_unused_symbols_have_no_frequency():
    rng = np.random.default_rng(0)
    density = FactorizedDensity(8)
    with torch.no_grad():
        density.matrices[0][4:] += 2.0  # half the channels narrower
    density.update_tables()
    freqs = density.frequencies.numpy().astype(np.int64)
    assert (freqs[4:] == 0).any() and (density.count[4:] < TABLE).all()  # tables of TABLE symbols, some using fewer
    symbols = np.minimum(np.abs(rng.laplace(0, 3, (5000, 8))).astype(np.int64), density.count.numpy() - 1)
    stream = rans.encode(symbols, freqs)
    assert np.array_equal(rans.decode(stream, len(symbols), freqs), symbols)


def test_fitted_tables_sum_to_the_coders_scale_when_many_symbols_are_rare():
    q = np.concatenate([np.zeros(100_000, np.int64), np.arange(4096)])[:, None]  # one common symbol, 4095 rare
    freqs = frequencies.frequency_tables(q, 4096)
    assert freqs.sum() == frequencies.PROB_SCALE and (freqs >= 1).all()
    assert np.array_equal(rans.decode(rans.encode(q, freqs), len(q), freqs), q)
