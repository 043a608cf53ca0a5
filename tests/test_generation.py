"""Generation you can measure: the digit classifier and its sample-quality scores, evaluate --samples, and
conditional models (--conditional, generate --label) with their refusals."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import aekit
from aekit import quality
from aekit.errors import AekitError
from aekit.runfiles import save_tensors
from conftest import assert_clean_error, run_cli


@pytest.fixture(scope="module")
def big_digits(tmp_path_factory):
    """scikit-learn's 8x8 digits enlarged to MNIST's 28x28, as an .npz of uint8 images and labels: (path, x, y)."""
    digits = aekit.data.load("digits")
    x = torch.cat([digits.train.floats(), digits.test.floats()])
    y = torch.cat([digits.train.y, digits.test.y])
    big = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False).clamp(0, 1)
    path = tmp_path_factory.mktemp("big-digits") / "digits28.npz"
    np.savez(path, x=(big[:, 0] * 255).round().to(torch.uint8).numpy(), y=y.numpy())
    return path, big, y


@pytest.fixture(scope="module")
def classifier_dir(big_digits, tmp_path_factory):
    """A data folder holding a digit classifier trained on the enlarged digits (in the place of MNIST's)."""
    _, x, y = big_digits
    folder = tmp_path_factory.mktemp("classifier")
    net = quality.train_classifier(x[:1400], y[:1400], epochs=8)
    save_tensors(quality.cached_path(folder), {k: v.contiguous() for k, v in net.state_dict().items()})
    return folder


@pytest.fixture(scope="module")
def cvae(big_digits, tmp_path_factory):
    path, _, _ = big_digits
    out = tmp_path_factory.mktemp("cvae") / "run"
    return aekit.train(path, "vae", out=out, conditional=True, epochs=40, hidden=[256, 128], latent_dim=8, quiet=True)


def test_the_classifier_learns_digits_and_is_read_back_from_its_cache(big_digits, classifier_dir):
    _, x, y = big_digits
    net = quality.classifier(classifier_dir)  # read, not trained: MNIST is not in this folder
    held_out = (net.predict(x[1400:]) == y[1400:]).float().mean()
    assert held_out > 0.9
    with torch.no_grad():  # seeded: the same weights; trained with gradients whatever the caller's mode
        again = quality.train_classifier(x[:1400], y[:1400], epochs=8)
    assert torch.equal(again.predict(x[1400:]), net.predict(x[1400:]))
    assert net.features(x[:5]).shape == (5, quality.FEATURES)
    with pytest.raises(AekitError, match="28x28 grayscale digits"):
        net.features(torch.zeros(2, 1, 8, 8))


def test_scores_tell_real_digits_from_noise_and_from_one_class(big_digits, classifier_dir):
    _, x, y = big_digits
    net = quality.classifier(classifier_dir)
    real, other = x[::2], x[1::2]
    same = quality.sample_quality(other, real, net)
    noise = quality.sample_quality(torch.rand(len(other), 1, 28, 28, generator=torch.Generator().manual_seed(0)),
                                   real, net)  # fmt: skip
    ones = quality.sample_quality(other[y[1::2] == 1], real, net)  # one class of ten: precise, no recall
    assert same["frechet"] < ones["frechet"] < noise["frechet"]
    assert same["precision"] > 0.5 and noise["precision"] < 0.1
    assert ones["precision"] > 0.5 and ones["recall"] < 0.3 < same["recall"]


def test_evaluate_scores_generated_items(big_digits, classifier_dir, cvae, tmp_path):
    path, _, _ = big_digits
    ae = aekit.train(path, "ae", out=tmp_path / "ae", epochs=3, hidden=[64], latent_dim=4, quiet=True)
    result = aekit.evaluate(ae, data_dir=classifier_dir, samples=300, sampler="gmm", save=False)["model"]["samples"]
    assert result["sampler"] == "gmm" and result["items"] == 300
    assert result["frechet"] > 0 and 0 <= result["precision"] <= 1 and 0 <= result["recall"] <= 1
    cli = run_cli("evaluate", cvae.path, "--samples", "300", "--data-dir", classifier_dir, "--no-save")
    assert cli.returncode == 0, cli.stderr
    assert '"sampler": "prior"' in cli.stdout and '"frechet"' in cli.stdout
    assert_clean_error(run_cli("evaluate", cvae.path, "--samples", "1"), "at least 2 generated items")


def test_sample_scores_refuse_items_other_than_28x28_digits(digits_run):
    assert_clean_error(run_cli("evaluate", digits_run.path, "--samples", "100"), "28x28 grayscale digits", "[1, 8, 8]")


def test_a_conditional_vae_draws_the_class_it_is_asked_for(cvae, classifier_dir, tmp_path):
    assert cvae.model.config.classes == 10
    net = quality.classifier(classifier_dir)
    for sampler in ("prior", "gmm"):
        right = [float((net.predict(aekit.generate(cvae, 200, sampler=sampler, label=k)) == k).float().mean())
                 for k in range(10)]  # fmt: skip
        assert min(right) > 0.5 and sum(right) / 10 > 0.8, (sampler, right)  # labels ignored: about 0.1
    mixed = aekit.generate(cvae, 20)  # the classes in turn: 0, 1, ..., 9, 0, 1, ...
    assert (net.predict(mixed) == torch.arange(20) % 10).float().mean() >= 0.7
    result = run_cli("generate", cvae.path, "--label", "7", "-n", "16", "-o", tmp_path / "sevens.png")
    assert result.returncode == 0 and (tmp_path / "sevens.png").stat().st_size > 0, result.stderr
    evaluation = aekit.evaluate(cvae, save=False, nll_k=5)  # with the test items' labels
    assert evaluation["model"]["nll"] > 0 and evaluation["model"]["mse"] < evaluation["baselines"]["mean"]["mse"]


@pytest.mark.parametrize("kind", ["ae", "dae", "sae"])
def test_every_type_trains_conditionally(big_digits, kind, tmp_path):
    path, x, y = big_digits
    run = aekit.train(path, kind, out=tmp_path / kind, conditional=True, epochs=1, hidden=[32], latent_dim=4,
                      quiet=True, backbone="conv" if kind == "dae" else "mlp")  # fmt: skip
    rebuilt = run.model.reconstruct(x[:6], labels=y[:6])
    assert rebuilt.shape == (6, 1, 28, 28)
    assert not torch.equal(rebuilt, run.model.reconstruct(x[:6], labels=(y[:6] + 1) % 10))  # the label is used
    assert aekit.generate(run, 4, sampler="gmm", components=2, label=3).shape == (4, 1, 28, 28)


def test_conditional_refusals(big_digits, cvae, digits_run, tmp_path):
    path, x, _ = big_digits
    assert_clean_error(run_cli("generate", cvae.path, "--label", "10", "-o", tmp_path / "a.png"),
                       "--label 10", "labels 0 to 9")  # fmt: skip
    assert_clean_error(run_cli("generate", digits_run.path, "--label", "1", "-o", tmp_path / "b.png"),
                       "not conditional")  # fmt: skip
    assert_clean_error(run_cli("features", cvae.path, path, "-o", tmp_path / "f.npy"), "conditional", "label")
    np.save(tmp_path / "plain.npy", x[:50, 0].numpy())
    unlabelled = run_cli("train", "--data", tmp_path / "plain.npy", "--model", "vae", "--conditional", "--epochs", "1",
                         "--out", tmp_path / "r")  # fmt: skip
    assert_clean_error(unlabelled, "--conditional", "has no labels")
    resnet = run_cli("train", "--data", path, "--model", "vae", "--conditional", "--backbone", "resnet", "--out",
                     tmp_path / "r2")  # fmt: skip
    assert_clean_error(resnet, "mlp or conv backbone")
    assert not (tmp_path / "a.png").exists() and not (tmp_path / "r").exists() and not (tmp_path / "r2").exists()
    with pytest.raises(AekitError, match="labels must be from 0 to 9"):
        cvae.model.reconstruct(x[:2], labels=torch.tensor([0, 10]))
    with pytest.raises(AekitError, match="whole-number labels"):
        cvae.model.encode(x[:2], torch.tensor([0.0, 1.0]))


def test_the_vampprior_density_is_its_mixture_and_its_kl_estimate_is_unbiased():
    from aekit.models.priors import VampPrior, gaussian_log_prob

    generator = torch.Generator().manual_seed(0)
    mu_k, logvar_k = torch.randn(5, 3, generator=generator), torch.randn(5, 3, generator=generator) * 0.3
    posterior = lambda u: (mu_k, logvar_k)  # noqa: E731 - the pseudo-inputs' posteriors, fixed
    prior = VampPrior(3, (2,), {"pseudo_inputs": 5})
    z = torch.randn(7, 4, 3, generator=generator)
    direct = torch.logsumexp(gaussian_log_prob(z[..., None, :], mu_k, logvar_k), -1) - np.log(5)
    torch.testing.assert_close(prior.log_prob(z, posterior), direct)
    one = lambda u: (mu_k[:1], logvar_k[:1])  # noqa: E731 - one component: p is that Gaussian
    mu, logvar = torch.zeros(20000, 3), torch.full((20000, 3), -1.0)
    draws = mu + (0.5 * logvar).exp() * torch.randn(20000, 3, generator=generator)
    estimate = prior.kl(draws, mu, logvar, one).mean()
    var_q, var_p = logvar.exp()[0], logvar_k[0].exp()
    exact = 0.5 * (var_q / var_p + (mu_k[0] - 0).pow(2) / var_p - 1 + logvar_k[0] - logvar[0]).sum()
    assert abs(float(estimate - exact)) < 0.05 * float(exact) + 0.02


def test_a_vae_with_the_vampprior_trains_samples_and_bounds_its_likelihood(big_digits, tmp_path):
    path, x, _ = big_digits
    options = {"epochs": 3, "hidden": [64], "latent_dim": 4, "quiet": True, "seed": 0}
    vamp = aekit.train(path, "vae", out=tmp_path / "v", prior="vamp", pseudo_inputs=20, **options)
    assert vamp.model.prior.pseudo_inputs.shape == (20, 1, 28, 28)
    first = aekit.data.load(path).train.floats()[:20]  # they started as the first training items, then moved
    moved = (vamp.model.prior.pseudo_inputs.detach() - first).abs()
    assert 0 < float(moved.max()) < 0.1
    assert aekit.generate(vamp, 8).shape == (8, 1, 28, 28)
    nll = vamp.model.nll(x[:50], k=20, generator=torch.Generator().manual_seed(0))
    scores = vamp.model.anomaly_scores(x[:50])  # the negative ELBO: never below the NLL bound's estimate by much
    assert torch.isfinite(nll).all() and float(scores.mean()) > float(nll.mean()) - 1
    reopened = aekit.Run.open(vamp.path)  # the pseudo-inputs are in the weights
    assert torch.equal(reopened.model.prior.pseudo_inputs, vamp.model.prior.pseudo_inputs)
    for flags, message in (
        (["--prior", "vamp", "--free-bits", "0.5"], "free_bits needs the normal prior"),
        (["--prior", "vamp", "--conditional"], "conditional vae keeps the normal prior"),
        (["--prior", "uniform"], "model.prior must be one of normal, vamp"),
    ):
        result = run_cli("train", "--data", path, "--model", "vae", *flags, "--out", tmp_path / "bad")
        assert_clean_error(result, message)
