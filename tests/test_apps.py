"""Using a trained model: compression, features, scikit-learn estimators, denoising, generation, anomalies."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import aekit
from aekit import frequencies
from aekit.apps.anomaly import anomaly_file
from aekit.apps.denoise import denoise_file
from aekit.apps.features import features_file
from aekit.codec import fitted, rans
from aekit.errors import AekitError
from conftest import assert_clean_error, run_cli


@pytest.fixture(scope="module")
def digits_test():
    return aekit.data.load("digits").test


# ---------------------------------------------------------------- compression


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 5), st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_rans_decodes_what_it_encodes(n, d, bits, seed):
    rng = np.random.default_rng(seed)
    skew = rng.uniform(0.5, 20)  # from nearly uniform to very peaked symbol distributions
    q = np.minimum(rng.exponential(skew, (n, d)).astype(np.int64), (1 << bits) - 1)
    freqs = frequencies.frequency_tables(q, 1 << bits)
    assert (freqs.sum(1) == frequencies.PROB_SCALE).all()
    assert all((freqs[j, np.unique(q[:, j])] > 0).all() for j in range(d))  # every symbol seen is codable
    np.testing.assert_array_equal(rans.decode(rans.encode(q, freqs), n, freqs), q)


def test_rans_reaches_the_entropy():
    q = np.random.default_rng(0).binomial(255, 0.5, (20000, 1))
    p = np.bincount(q[:, 0]) / len(q)
    entropy_bytes = -(p[p > 0] * np.log2(p[p > 0])).sum() * len(q) / 8
    size = len(rans.encode(q, frequencies.frequency_tables(q, 256)))
    assert entropy_bytes <= size <= entropy_bytes * 1.005 + 8


def test_compress_round_trip_is_exact(digits_run, digits_test):
    x = digits_test.floats()
    model = digits_run.model
    blob = aekit.compress(digits_run, x, bits=6)
    x_hat, header = aekit.decompress(blob, digits_run)
    expected = model.decode(fitted.dequantize(fitted.quantize(model.encode(x), 6))).detach()
    assert torch.equal(x_hat, expected)
    assert header["items"] == len(x) and header["item_shape"] == [1, 8, 8] and header["bits"] == 6
    assert len(blob) < len(x) * 8 * 6 / 8 + 1500  # at most 6 bits per code value, plus header and tables
    mse = {
        b: float((aekit.decompress(aekit.compress(digits_run, x, bits=b), digits_run)[0] - x).pow(2).mean())
        for b in (2, 8)
    }
    assert mse[8] < mse[2]  # finer quantization, closer to the input
    by_name, _ = aekit.decompress(aekit.compress(digits_run, "digits"), digits_run)  # a dataset name: its items
    assert len(by_name) == len(digits_run.read("digits")[0])


def test_aez_files_that_are_damaged_or_from_another_model_are_refused(digits_run, digits_test, tmp_path):
    blob = aekit.compress(digits_run, digits_test.floats()[:50])
    for cut in (0, 3, 8, 40, len(blob) // 2, len(blob) - 1):
        with pytest.raises(AekitError, match="aez|truncated|corrupt"):
            aekit.decompress(blob[:cut], digits_run)
    for i in range(0, len(blob), max(1, len(blob) // 25)):
        damaged = bytearray(blob)
        damaged[i] ^= 0x10
        with pytest.raises(AekitError):
            aekit.decompress(bytes(damaged), digits_run)
    other = aekit.train("digits", "ae", out=tmp_path / "other", epochs=1, hidden=[32], latent_dim=8, seed=1, quiet=True)
    with pytest.raises(AekitError, match="another model"):
        aekit.decompress(blob, other)


@pytest.mark.slow
def test_compress_and_decompress_commands(digits_run_dir, tmp_path):
    aez = tmp_path / "d.aez"
    report = json.loads(
        run_cli("compress", digits_run_dir, "digits", "-o", aez, "--split", "test", "--bits", "7").stdout
    )
    assert report["items"] == 359 and report["bytes"] == aez.stat().st_size and report["ratio"] > 10
    assert json.loads(run_cli("decompress", aez, "-o", tmp_path / "d.npz").stdout)["items"] == 359
    x = np.load(tmp_path / "d.npz")["x"]
    expected, _ = aekit.decompress(aez.read_bytes(), digits_run_dir)
    np.testing.assert_allclose(x, expected.numpy() * 16, rtol=1e-6)  # back in the digits' own units, 0..16
    from aekit.metrics import ssim

    clean = aekit.data.load("digits").test.floats()
    assert report["ssim"] == pytest.approx(float(ssim(clean, expected).mean()), rel=1e-5)  # of what the file holds
    assert run_cli("decompress", aez, "-o", tmp_path / "pngs").returncode == 0
    assert len(list((tmp_path / "pngs").glob("*.png"))) == 359
    assert_clean_error(run_cli("decompress", aez, "-o", tmp_path / "d.npz"), "exists", "--force")


# ---------------------------------------------------------------- features and the scikit-learn estimators


def test_features_file_holds_codes_and_labels(digits_run, tmp_path):
    report = features_file(digits_run, "digits", tmp_path / "f.npz", split="test")
    saved = np.load(tmp_path / "f.npz")
    assert report["items"] == 359 and saved["x"].shape == (359, 8) and saved["y"].shape == (359,)
    x = aekit.data.load("digits").test.floats()
    np.testing.assert_allclose(saved["x"], aekit.features(digits_run, x).numpy(), rtol=1e-6)
    assert not saved["trained"].any() and report["trained_on"] == 0  # the held-out part


def test_features_mark_the_items_the_run_trained_on(digits_run, tmp_path):
    everything = features_file(digits_run, "digits", tmp_path / "all.npz")  # the run's own data, all of it
    saved = np.load(tmp_path / "all.npz")
    assert everything["items"] == 1797 and everything["trained_on"] == 1438 == int(saved["trained"].sum())
    assert saved["trained"][:1438].all() and not saved["trained"][1438:].any()  # training part first
    features_file(digits_run, None, tmp_path / "held.npz")  # no INPUT: the held-out part, the same codes
    np.testing.assert_allclose(saved["x"][1438:], np.load(tmp_path / "held.npz")["x"], rtol=1e-6)
    np.save(tmp_path / "other.npy", np.random.default_rng(0).integers(0, 17, (20, 8, 8)).astype(np.uint8))
    assert features_file(digits_run, tmp_path / "other.npy", tmp_path / "o.npz")["trained_on"] == 0  # other data
    ones = aekit.train("digits", out=tmp_path / "ones", epochs=1, hidden=[8], latent_dim=2, classes=[1], quiet=True)
    marked = features_file(ones, "digits", tmp_path / "ones.npz")  # trained on the ones of its training part
    saved = np.load(tmp_path / "ones.npz")
    assert marked["trained_on"] == int(((saved["y"] == 1) & (np.arange(1797) < 1438)).sum()) > 0
    assert not saved["trained"][saved["y"] != 1].any()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")  # array-API checks need SciPy set-up
@pytest.mark.parametrize("name", ["AutoencoderTransformer", "AutoencoderDetector"])
def test_estimators_pass_scikit_learns_checks(name):
    from sklearn.utils.estimator_checks import check_estimator

    torch.set_num_threads(1)  # dozens of tiny fits: threads only add overhead
    try:
        results = check_estimator(getattr(aekit, name)(epochs=10), on_fail=None)
    finally:
        torch.set_num_threads(2)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert not failed and len(results) > 30


def test_transformer_in_a_pipeline_and_grid_search():
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    X, y = load_digits(return_X_y=True)
    pipe = make_pipeline(
        aekit.AutoencoderTransformer(hidden=(32,), epochs=30, batch_size=64), LogisticRegression(max_iter=2000)
    )
    search = GridSearchCV(pipe, {"autoencodertransformer__latent_dim": [2, 12]}, cv=2).fit(X[:1200], y[:1200])
    assert search.best_params_ == {"autoencodertransformer__latent_dim": 12}
    assert search.score(X[1200:], y[1200:]) > 0.75  # chance is 0.1
    ae = search.best_estimator_[0]
    assert ae.transform(X[:5]).shape == (5, 12)
    rebuilt = ae.inverse_transform(ae.transform(X))  # in X's own units, and closer to X than its mean is
    assert rebuilt.shape == X.shape and ((rebuilt - X) ** 2).mean() < 0.5 * ((X - X.mean(0)) ** 2).mean()
    assert list(ae.get_feature_names_out()[:2]) == ["autoencodertransformer0", "autoencodertransformer1"]


def test_transformer_wraps_a_trained_run(digits_run_dir, digits_test):
    rows = digits_test.floats().flatten(1).numpy() * 16  # raw digits pixels, 0..16
    t = aekit.AutoencoderTransformer(run=str(digits_run_dir)).fit(rows)
    expected = aekit.features(digits_run_dir, digits_test.floats()).numpy()
    np.testing.assert_allclose(t.transform(rows), expected, rtol=1e-5, atol=1e-6)


def test_detector_finds_the_digits_it_was_not_trained_on():
    from sklearn.datasets import load_digits
    from sklearn.metrics import roc_auc_score

    X, y = load_digits(return_X_y=True)
    detector = aekit.AutoencoderDetector(latent_dim=4, hidden=(32,), epochs=150, batch_size=32, contamination=0.05)
    detector.fit(X[y == 0])
    assert detector.labels_.mean() == pytest.approx(0.05, abs=0.02)
    scores = detector.decision_function(X)
    assert roc_auc_score(y != 0, scores) > 0.9
    np.testing.assert_array_equal(detector.predict(X), (scores > detector.threshold_).astype(int))
    np.testing.assert_array_equal(detector.score_samples(X), -scores)


def test_detector_code_size_by_default():
    """8 numbers a row, or as many as the row has where it has fewer; latent_dim given wins."""
    rows = np.random.default_rng(0).normal(size=(64, 30))
    sizes = [
        aekit.AutoencoderDetector(epochs=1, **given).fit(rows[:, :width]).model_.config.latent_dim
        for width, given in ((30, {}), (4, {}), (30, {"latent_dim": 3}))
    ]
    assert sizes == [8, 4, 3] and aekit.AutoencoderDetector().get_params()["latent_dim"] is None


# ---------------------------------------------------------------- denoising, generation, anomalies


def test_denoise_with_added_noise_reports_and_writes(tmp_path):
    options = {"epochs": 40, "hidden": [64], "latent_dim": 16, "noise_sigma": 0.3, "batch_size": 32, "lr": 3e-3}
    run = aekit.train("digits", "dae", out=tmp_path / "dae", quiet=True, **options)
    report = denoise_file(
        run,
        "digits",
        tmp_path / "clean.npz",
        split="test",
        add_noise=["gaussian"],
        sigma=0.3,
        noisy_out=tmp_path / "noisy.npz",
        figure=tmp_path / "fig.png",
    )
    assert report["denoised_psnr_db"] > report["noisy_psnr_db"] + 3
    assert 0 < report["noisy_ssim"] < report["denoised_ssim"] <= 1
    assert np.load(tmp_path / "clean.npz")["x"].shape == (359, 1, 8, 8) and (tmp_path / "fig.png").stat().st_size > 0
    assert not np.array_equal(np.load(tmp_path / "noisy.npz")["x"], np.load(tmp_path / "clean.npz")["x"])


def test_generate_interpolate_and_manifold(digits_run, tmp_path):
    a = aekit.generate(digits_run, n=6, seed=3)
    assert a.shape == (6, 1, 8, 8) and 0 <= float(a.min()) and float(a.max()) <= 1
    assert torch.equal(a, aekit.generate(digits_run, n=6, seed=3)) and not torch.equal(
        a, aekit.generate(digits_run, n=6, seed=4)
    )
    x = aekit.data.load("digits").test.floats()[:2]
    line = aekit.interpolate(digits_run, x[0], x[1], steps=5)
    torch.testing.assert_close(line[[0, -1]], digits_run.model.reconstruct(x))
    with pytest.raises(AekitError, match="latent_dim 2"):
        aekit.manifold(digits_run)
    vae = aekit.train("digits", "vae", out=tmp_path / "v2", epochs=2, hidden=[32], latent_dim=2, quiet=True)
    assert aekit.manifold(vae, grid=4).shape == (16, 1, 8, 8)


def test_a_mixture_sampler_fits_clusters_one_gaussian_smears_over(tmp_path):
    """Codes in two tight clusters: the mixture's draws land in them, one Gaussian's mostly between them."""
    from aekit.apps.samplers import fit_gaussian, fit_gmm

    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-4.0, 0.0], [4.0, 0.0]], dtype=torch.float64)
    codes = centres[torch.arange(400) % 2] + 0.1 * torch.randn(400, 2, generator=generator, dtype=torch.float64)
    mixture = fit_gmm(codes, 2, "codes")
    assert sorted(mixture.means[:, 0].round().tolist()) == [-4.0, 4.0]
    torch.testing.assert_close(mixture.weights, torch.tensor([0.5, 0.5]), atol=0.01, rtol=0)
    near = lambda z: ((z[:, None] - centres.float()).norm(dim=2).min(dim=1).values < 0.5).float().mean()  # noqa: E731
    assert near(mixture.sample(1000, 1.0, torch.Generator().manual_seed(1))) > 0.98
    assert near(fit_gaussian(codes, "codes").sample(1000, 1.0, torch.Generator().manual_seed(1))) < 0.2
    with pytest.raises(AekitError, match="400 training codes are too few for 200 components of 2 numbers"):
        fit_gmm(codes, 200, "codes")


def test_every_type_generates_through_a_fitted_mixture(digits_run, tmp_path, capsys):
    gaussian = aekit.generate(digits_run, n=6, seed=3, sampler="gaussian")
    assert torch.equal(gaussian, aekit.generate(digits_run, n=6, seed=3))  # the default of a type without a prior
    mixed = aekit.generate(digits_run, n=6, seed=3, sampler="gmm", components=4)
    assert mixed.shape == (6, 1, 8, 8) and not torch.equal(mixed, gaussian)
    assert torch.equal(mixed, aekit.generate(digits_run, n=6, seed=3, sampler="gmm", components=4))
    out = tmp_path / "g.npz"
    assert run_cli("generate", digits_run.path, "-o", out, "-n", "5", "--sampler", "gmm").returncode == 0
    assert np.load(out)["x"].shape == (5, 1, 8, 8)
    assert_clean_error(run_cli("generate", digits_run.path, "-o", tmp_path / "p.npz", "--sampler", "prior"),
                       "a ae model has no prior")  # fmt: skip
    too_many = run_cli("generate", digits_run.path, "-o", tmp_path / "m.npz", "--sampler", "gmm", "--components",
                       "500")  # fmt: skip
    assert_clean_error(too_many, "training codes are too few for 500 components of 8 numbers")
    assert not (tmp_path / "p.npz").exists() and not (tmp_path / "m.npz").exists()


def test_anomaly_scores_threshold_and_labels(digits_run, tmp_path):
    report = anomaly_file(
        digits_run,
        "digits",
        split="test",
        contamination=0.1,
        normal=["0", "1", "2", "3", "4"],
        out=tmp_path / "s.csv",
        figure=tmp_path / "a.png",
    )
    assert report["flagged"] == pytest.approx(36, abs=1)
    from sklearn.metrics import average_precision_score, roc_auc_score

    test = aekit.data.load("digits").test  # the same figures from the scores and labels, computed here
    s, anomalous = aekit.anomaly_scores(digits_run, test.floats()).numpy(), test.y.numpy() >= 5
    assert report["auroc"] == pytest.approx(roc_auc_score(anomalous, s)) and report["auroc"] != 0.5
    assert report["auprc"] == pytest.approx(average_precision_score(anomalous, s))
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0] == "index,score,flagged,label" and len(lines) == 360
    by_percentile = anomaly_file(digits_run, "digits", split="test", percentile=90)
    assert 0 < by_percentile["flagged_share"] < 0.3 and "90th percentile" in by_percentile["threshold_from"]


@pytest.mark.slow
def test_use_commands_on_a_run(digits_run_dir, tmp_path):
    for args, output in (
        (["features", digits_run_dir, "digits", "-o", tmp_path / "f.npy"], "f.npy"),
        (["generate", digits_run_dir, "-n", "16", "-o", tmp_path / "g.png"], "g.png"),
        (["generate", digits_run_dir, "--interpolate", "0", "5", "-o", tmp_path / "i.npz"], "i.npz"),
        (["anomaly", digits_run_dir, "digits", "--normal", "3", "--figure", tmp_path / "a.png"], "a.png"),
        (["latent", digits_run_dir, "digits", "--split", "test", "-o", tmp_path / "m.png"], "m.png"),
        (["denoise", digits_run_dir, "digits", "--add-noise", "masking", "-o", tmp_path / "dn"], "dn"),
    ):
        result = run_cli(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert (tmp_path / output).exists()
        json.loads(result.stdout)  # every verb reports in JSON
    assert np.load(tmp_path / "f.npy").shape == (1797, 8) and np.load(tmp_path / "i.npz")["x"].shape == (10, 1, 8, 8)


def test_train_on_one_class_then_score_all(tmp_path):
    run = aekit.train(
        "digits", "ae", out=tmp_path / "zeros", epochs=60, hidden=[32], latent_dim=4, classes=[0], quiet=True
    )
    assert set(run.load_data().train.y.tolist()) == {0} and set(run.load_data().test.y.tolist()) == {0}
    report = anomaly_file(run, "digits", split="test", normal=["0"])  # another read of the source: every class
    assert report["items"] == 359 and report["auroc"] > 0.9


def test_every_use_takes_what_the_cli_takes_and_returns_tensors(digits_run, tmp_path):
    """A tensor of items in [0, 1], a numpy array in the data's own units, a dataset name or a path: the same
    items give the same answers, always as tensors."""
    test = aekit.data.load("digits").test
    x = test.floats()
    raw = x.numpy()[:, 0] * 16  # the digits' own pixel values, 0..16, as (N, 8, 8)
    np.save(tmp_path / "d.npy", raw)
    for use in (aekit.reconstruct, aekit.features, aekit.denoise, aekit.anomaly_scores):
        expected = use(digits_run, x)
        assert isinstance(expected, torch.Tensor) and not expected.requires_grad
        for same in (raw, str(tmp_path / "d.npy"), tmp_path / "d.npy"):
            torch.testing.assert_close(use(digits_run, same), expected, rtol=1e-5, atol=1e-5)
    assert len(aekit.features(digits_run, "digits")) == 1797  # a name: all of its items
    assert aekit.decompress(aekit.compress(digits_run, raw), digits_run)[0].shape == x.shape
    model = aekit.load(digits_run.path)
    torch.testing.assert_close(aekit.reconstruct(digits_run, x), model.reconstruct(x))  # one meaning of the name
    assert aekit.datasets is aekit.data  # the old name of the data package keeps working
    z = model.encode(x)
    assert not z.requires_grad and not model.decode(z).requires_grad  # eval mode: plain tensors
    with pytest.raises(aekit.AekitError, match="items have shape"):
        aekit.features(digits_run, np.zeros((3, 5)))


def test_anomalies_in_an_image_folder_are_named_by_file_and_label(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for kind, count in (("ok", 40), ("defect", 6)):
        (tmp_path / "parts" / kind).mkdir(parents=True)
        for i in range(count):
            img = np.full((8, 8), 40, np.uint8) + rng.integers(0, 10, (8, 8), dtype=np.uint8)
            if kind == "defect":
                img[2:6, 2:6] = 255  # a bright blotch
            Image.fromarray(img).save(tmp_path / "parts" / kind / f"{kind}{i:02d}.png")
    run = aekit.train(tmp_path / "parts", out=tmp_path / "run", classes=["ok"], epochs=30, hidden=[16], latent_dim=2,
                      quiet=True, device="cpu")  # fmt: skip
    report = anomaly_file(run, tmp_path / "parts", normal=["ok"], out=tmp_path / "s.csv", figure=tmp_path / "a.png")
    assert report["auroc"] > 0.9 and report["most_anomalous_files"][0].startswith("defect/")
    rows = (tmp_path / "s.csv").read_text().splitlines()
    assert rows[0] == "index,score,flagged,file,label" and rows[1].endswith(",defect/defect00.png,defect")
    assert (tmp_path / "a.png").stat().st_size > 1000
