"""Every registered type on every backbone (a new type is tested here for free), then each type's own parts."""

import math

import pytest
import torch

import aekit
from aekit import AekitError
from aekit.data import noise
from aekit.metrics import squared_errors
from aekit.models.base import sigmoid_squared_error

MODELS = aekit.list_models()
SHAPES = {
    "mlp": [(1, 28, 28), (3, 8, 8), (10,)],
    "conv": [(1, 28, 28), (3, 32, 32), (1, 8, 8), (2, 13, 17)],
    "resnet": [(1, 28, 28), (3, 32, 32), (1, 8, 8), (2, 13, 17), (3, 1, 1)],
}
SIZES = {"mlp": {"hidden": [16], "latent_dim": 4}, "conv": {"hidden": [8, 16], "latent_dim": 4}}
SIZES["resnet"] = {"hidden": [8, 16], "latent_channels": 1}  # a code map of 1 x H/4 x W/4
CASES = [(backbone, shape) for backbone, shapes in SHAPES.items() for shape in shapes]


@pytest.fixture(params=MODELS)
def name(request):
    return request.param


def test_the_four_types_are_registered():
    assert set(MODELS) >= {"ae", "dae", "sae", "vae"}


@pytest.mark.parametrize("backbone,shape", CASES, ids=[f"{b}-{'x'.join(map(str, s))}" for b, s in CASES])
def test_shapes_loss_and_gradients(name, backbone, shape):
    torch.manual_seed(0)
    model = aekit.create_model(name, shape, backbone=backbone, **SIZES[backbone])
    code = 4 if backbone != "resnet" else math.ceil(shape[1] / 4) * math.ceil(shape[2] / 4)
    assert model.config.latent_dim == code
    x = torch.rand(5, *shape)
    out = model(x)
    assert out.x_hat.shape == x.shape and out.z.shape == (5, code)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert 0 <= out.x_hat.min() and out.x_hat.max() <= 1
    assert all(v.dim() == 0 and torch.isfinite(v) for v in out.logs.values()) and "mse" in out.logs
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) > 0 for g in grads) >= len(grads) - 1  # sigma of a bernoulli VAE may idle
    model.eval()
    z = model.encode(x)
    assert z.shape == (5, code) and model.decode(z).shape == x.shape
    assert torch.equal(model.encode(x), z)  # eval-mode codes are deterministic for every type


@pytest.mark.parametrize("backbone", ["conv", "resnet"])
def test_conv_backbones_need_images(backbone):
    with pytest.raises(AekitError, match=f"{backbone} backbone needs images"):
        aekit.create_model("ae", (10,), backbone=backbone)


def test_backbone_default_widths_are_recorded():
    assert aekit.create_model("ae", (1, 8, 8)).config.hidden == (128, 64)
    assert aekit.create_model("ae", (1, 8, 8), backbone="conv").config.hidden == (32, 64, 128)
    resnet = aekit.create_model("ae", (3, 64, 48), backbone="resnet").config
    assert (resnet.hidden, resnet.patch, resnet.latent_channels, resnet.activation) == ((96,), 4, 16, "silu")
    assert resnet.latent_dim == 16 * 8 * 6 == 3 * 64 * 48 // 12  # an RGB image's code: 1/12 of its numbers
    assert resnet.train_defaults() == {"batch_size": 16, "lr": 2e-3, "schedule": "cosine"}
    widths = aekit.create_model("ae", (3, 64, 48), backbone="resnet", hidden=[32, 64]).config  # its own sizes
    assert (widths.patch, widths.latent_channels, widths.latent_dim) == (1, 4, 4 * 16 * 12)  # 1/12 too
    cells = aekit.create_model("ae", (3, 64, 48), backbone="resnet", patch=2, latent_channels=8).config
    assert (cells.hidden, cells.patch, cells.latent_channels) == ((96,), 2, 8)  # each size left out: the default
    assert aekit.create_model("ae", (3, 64, 48), backbone="conv").config.train_defaults() == {}


def test_resnet_code_is_a_map_and_its_options_are_its_own():
    model = aekit.create_model("ae", (3, 32, 32), backbone="resnet", hidden=[8, 16], latent_channels=2).eval()
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules())  # resize + conv upsampling
    z = model.encode(torch.rand(3, 3, 32, 32))
    assert z.shape == (3, 2 * 8 * 8) and model.config.latent_dim == 128  # 2 channels on an 8x8 map
    odd = aekit.create_model("vae", (3, 21, 10), backbone="resnet", hidden=[8, 16], latent_channels=2).eval()
    assert odd.config.latent_dim == 2 * 6 * 3 and odd.sample(2).shape == (2, 3, 21, 10)  # padded, cropped back
    with pytest.raises(AekitError, match="latent_channels x 8 x 8 = 256"):
        aekit.create_model("ae", (3, 32, 32), backbone="resnet", hidden=[8, 16], latent_dim=100)
    with pytest.raises(AekitError, match="latent_channels applies to the resnet backbone"):
        aekit.create_model("ae", (3, 32, 32), backbone="conv", latent_channels=2)


def test_resnet_patch_runs_the_stages_on_cells_of_pixels(name):
    torch.manual_seed(0)
    options = {"backbone": "resnet", "hidden": [8], "latent_channels": 1, "patch": 2}
    model = aekit.create_model(name, (2, 13, 17), **options)
    assert model.config.stages == 2 and model.config.latent_dim == 4 * 5  # 13x17 padded to 16x20, then / 4
    assert isinstance(model.encoder.body[0], torch.nn.PixelUnshuffle) and model.encoder.body[1].in_channels == 8
    x = torch.rand(3, 2, 13, 17)
    out = model(x)
    assert out.x_hat.shape == x.shape and torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    model.eval()
    assert model.decode(model.encode(x)).shape == x.shape
    if name == "dae":  # U-Net skips at the stages' sizes
        assert aekit.create_model(name, (2, 13, 17), skips=True, **options).eval().reconstruct(x).shape == x.shape
    for bad, message in [({"patch": 3}, "power of 2"), ({"backbone": "conv", "latent_channels": None}, "applies")]:
        with pytest.raises(AekitError, match=message):
            aekit.create_model(name, (2, 13, 17), **{**options, **bad})


def test_dae_skips_carry_detail_past_the_code_and_refuse_to_decode_codes_alone():
    torch.manual_seed(0)
    options = {"backbone": "resnet", "hidden": [8, 16], "latent_channels": 1}
    plain = aekit.create_model("dae", (3, 20, 12), **options).eval()
    skips = aekit.create_model("dae", (3, 20, 12), skips=True, **options).eval()
    skips.load_state_dict(plain.state_dict(), strict=False)  # the same weights, plus the skips' own
    x = torch.rand(2, 3, 20, 12)
    assert skips.reconstruct(x).shape == x.shape and not torch.equal(skips.reconstruct(x), plain.reconstruct(x))
    for conv in skips.decoder.skips:  # skips that add nothing: the plain model again
        torch.nn.init.zeros_(conv.weight), torch.nn.init.zeros_(conv.bias)
    assert torch.allclose(skips.reconstruct(x), plain.reconstruct(x))
    assert skips(x).x_hat.shape == x.shape and not skips.capabilities.decodes_codes and plain.capabilities.decodes_codes
    with pytest.raises(AekitError, match="model.skips needs the resnet backbone"):
        aekit.create_model("dae", (3, 20, 12), backbone="conv", skips=True)


def test_classic_architecture():
    model = aekit.create_model("ae", (1, 28, 28), latent_activation="relu")
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (784, 128),
        (128, 64),
        (64, 32),
        (32, 64),
        (64, 128),
        (128, 784),
    ]
    assert isinstance(model.encoder[-1][-1], torch.nn.ReLU)


def test_loss_is_summed_over_features_and_averaged_over_the_batch():
    model = aekit.create_model("ae", (4,), hidden=[3], latent_dim=2)
    x = torch.rand(6, 4)
    out = model(x)
    assert torch.allclose(out.loss, ((out.x_hat - x) ** 2).sum(1).mean())


def test_fused_sigmoid_squared_error_matches_autograd():
    logits = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    x = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: sigmoid_squared_error(a, b)[0], (logits, x))
    loss, x_hat = sigmoid_squared_error(logits, x)
    reference = torch.nn.functional.mse_loss(torch.sigmoid(logits), x, reduction="sum") / 4
    assert torch.allclose(loss, reference) and torch.equal(x_hat, torch.sigmoid(logits))


@pytest.mark.parametrize(
    "name,options,fragment",
    [
        ("ae", {"latent_dim": 0}, "latent_dim must be a positive integer"),
        ("ae", {"latent_dim": -3}, "latent_dim must be a positive integer"),
        ("ae", {"hidden": [64, 0]}, "hidden sizes must be positive"),
        ("ae", {"hidden": [64, 1.5]}, "expected an integer"),
        ("ae", {"hidden": "128"}, "expected a list"),
        ("ae", {"activation": "swish"}, "activation must be one of"),
        ("ae", {"backbone": "transformer"}, "backbone must be one of"),
        ("ae", {"depth": 3}, "unknown option 'depth'"),
        ("ae", {"rho": 0.1}, "unknown option 'rho'"),
        ("dae", {"noise": ["gaussian", "pink"]}, "noise must name one or more of"),
        ("dae", {"noise": []}, "noise must name one or more of"),
        ("dae", {"noise_p": 1.5}, "noise_p must be in"),
        ("dae", {"noise_sigma": -1}, "noise_sigma must be >= 0"),
        ("dae", {"noise_shift": -1}, "noise_shift must be >= 0"),
        ("sae", {"rho": 0}, "rho must be in \\(0, 1\\)"),
        ("sae", {"rho": 1.2}, "rho must be in \\(0, 1\\)"),
        ("sae", {"sparsity": "topk", "k": 9, "latent_dim": 8}, "k \\(9\\) must not exceed latent_dim \\(8\\)"),
        ("sae", {"sparsity": "dropout"}, "sparsity must be one of"),
        ("sae", {"latent_activation": "relu"}, "leave it none"),
        ("vae", {"beta": -0.5}, "beta must be >= 0"),
        ("vae", {"likelihood": "poisson"}, "likelihood must be one of"),
        ("vae", {"likelihood": "gaussian", "binarize": True}, "binarize needs the bernoulli"),
        ("vae", {"free_bits": -1}, "free_bits must be >= 0"),
    ],
)
def test_bad_model_options(name, options, fragment):
    with pytest.raises(AekitError, match=fragment):
        aekit.create_model(name, (1, 8, 8), **options)


def test_unknown_model():
    with pytest.raises(AekitError, match="unknown model 'gan'"):
        aekit.create_model("gan", (4,))


def test_wrong_input_shape_is_a_clear_error():
    model = aekit.create_model("ae", (1, 8, 8))
    with pytest.raises(AekitError, match=r"expected input of shape \(N, 1, 8, 8\), got \[2, 1, 28, 28\]"):
        model.encode(torch.rand(2, 1, 28, 28))
    with pytest.raises(AekitError, match="codes of shape"):
        model.decode(torch.rand(2, 5))


# ---------------------------------------------------------------- denoising


def test_noise_functions():
    g = torch.Generator().manual_seed(0)
    x = torch.full((200, 100), 0.5)
    noisy = noise.gaussian(x, 0.2, g)
    assert 0.18 < float((noisy - x).std()) < 0.22 and noisy.min() >= 0 and noisy.max() <= 1
    assert float(noise.gaussian(x, 2.0, g).max()) == 1.0  # clipped
    sp = noise.salt_pepper(x, 0.3, g)
    assert abs(float((sp == 0).float().mean()) - 0.15) < 0.01 and abs(float((sp == 1).float().mean()) - 0.15) < 0.01
    masked = noise.masking(x, 0.4, g)
    assert abs(float((masked == 0).float().mean()) - 0.4) < 0.01 and set(masked.unique().tolist()) == {0.0, 0.5}
    both = noise.corrupt(x, ["salt_pepper", "masking"], 0.0, 0.2, g)
    assert abs(float((both == 0).float().mean()) - (0.1 + 0.9 * 0.2)) < 0.01


def test_shift_moves_each_image_whole():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(500, 2, 9, 9)
    x[:, :, 4, 4] = 1.0  # one lit pixel in the centre of both channels
    moved = noise.shift(x, 2, g)
    assert moved.shape == x.shape and torch.equal(moved.sum((2, 3)), x.sum((2, 3)))  # nothing lost or added
    where = moved[:, 0].flatten(1).argmax(1)
    rows, cols = where // 9 - 4, where % 9 - 4
    assert set(rows.tolist()) == set(cols.tolist()) == {-2, -1, 0, 1, 2}  # every offset drawn
    assert torch.equal(moved[:, 0], moved[:, 1])  # channels move together
    assert torch.equal(noise.corrupt(x, ["shift"], 0.0, 0.0, g, pixels=0), x)
    with pytest.raises(AekitError, match="tables .* have no rows and columns"):
        aekit.create_model("dae", (20,), noise=["shift"])


def test_denoising_adds_noise_only_in_training():
    torch.manual_seed(0)
    model = aekit.create_model("dae", (1, 8, 8), noise=["masking"], noise_p=0.5)
    x = torch.rand(16, 1, 8, 8)
    assert not torch.equal(model(x).z, model(x).z)  # training: fresh noise each call
    model.eval()
    assert torch.equal(model(x).z, model.encode(x))  # eval: the clean input
    metrics = model.extra_metrics(x)
    assert set(metrics) == {"noisy_psnr_db", "denoised_psnr_db", "denoised_mse"}


def test_paste_lays_foreign_content_over_a_part_of_half_the_images():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 32, 32) * 0.5 + 0.25
    pasted = noise.paste(x, torch.Generator().manual_seed(1))
    assert torch.equal(pasted, noise.corrupt(x, ["paste"], 0.0, 0.0, torch.Generator().manual_seed(1)))
    assert pasted.shape == x.shape and pasted.min() >= 0 and pasted.max() <= 1
    touched = (pasted != x).any(1).flatten(1).float().mean(1)  # share of each image's pixels changed
    hit = touched > 0
    assert 20 <= int(hit.sum()) <= 44  # about half the images
    assert float(touched[hit].max()) < 0.5 and float(touched[hit].median()) > 0.005  # a part, never most
    with pytest.raises(AekitError, match="paste is for images"):
        aekit.create_model("dae", (20,), noise=["paste"])


def test_refined_codes_rebuild_items_closer_and_leave_the_model_alone():
    torch.manual_seed(0)
    x = torch.rand(6, 1, 8, 8)
    for name in ("ae", "vae"):
        model = aekit.create_model(name, (1, 8, 8), latent_dim=4).eval()
        weights = {k: v.clone() for k, v in model.state_dict().items()}
        z = model.refine_codes(x, 30)
        assert z.shape == (6, 4) and not z.requires_grad
        assert torch.equal(model.refine_codes(x, 0), model.encode(x))
        assert torch.allclose(model.refine_codes(x, 30, batch_size=4), z, atol=1e-5)  # batches change nothing
        closer = squared_errors(x, model.decode(z)) < squared_errors(x, model.reconstruct(x))
        assert bool(closer.all())
        assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
        assert all(p.grad is None for p in model.parameters())
    with pytest.raises(AekitError, match="sae's fitted codes would not stay sparse"):
        aekit.create_model("sae", (1, 8, 8)).refine_codes(x, 5)
    skips = aekit.create_model("dae", (3, 16, 16), backbone="resnet", hidden=(8,), skips=True)
    with pytest.raises(AekitError, match="code alone rebuilds an item"):
        skips.refine_codes(torch.rand(2, 3, 16, 16), 5)
    for steps in (-1, 100_001):
        with pytest.raises(AekitError, match="whole number from 0 to 100,000"):
            aekit.create_model("ae", (1, 8, 8)).refine_codes(x, steps)


# ---------------------------------------------------------------- sparse


def test_topk_keeps_exactly_k_units():
    model = aekit.create_model("sae", (1, 8, 8), sparsity="topk", k=3, latent_dim=10).eval()
    z = model.encode(torch.rand(7, 1, 8, 8))
    assert ((z != 0).sum(1) == 3).all()
    assert float(model(torch.rand(7, 1, 8, 8)).logs["active_fraction"]) == pytest.approx(0.3)


def test_sparsity_penalties():
    from aekit.models.sparse import kl_sparsity

    assert float(kl_sparsity(0.05, torch.full((4,), 0.05))) == pytest.approx(0, abs=1e-7)
    assert float(kl_sparsity(0.05, torch.full((4,), 0.5))) == pytest.approx(
        4 * (0.05 * math.log(0.1) + 0.95 * math.log(1.9))
    )
    model = aekit.create_model("sae", (1, 8, 8), sparsity="l1", sparsity_weight=0.0)
    z = model.encode(torch.rand(7, 1, 8, 8))
    assert z.min() >= 0  # ReLU codes
    kl_model = aekit.create_model("sae", (1, 8, 8))
    z = kl_model.encode(torch.rand(7, 1, 8, 8))
    assert 0 < z.min() and z.max() < 1  # sigmoid codes


# ---------------------------------------------------------------- variational


def test_vae_nll_matches_the_exact_likelihood():
    """With a 1-d code and 3 binary features, p(x) is an integral over z that quadrature gets exactly."""
    torch.manual_seed(0)
    vae = aekit.create_model("vae", (3,), hidden=[8], latent_dim=1).double().eval()
    x = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    z = torch.linspace(-10, 10, 20001, dtype=torch.float64)[:, None]
    logits = vae.decode_logits(z)
    exact = []
    for item in x:
        log_joint = vae.log_likelihood(logits, item.expand(len(z), 3)) - 0.5 * (z[:, 0] ** 2 + math.log(2 * math.pi))
        exact.append(-(torch.logsumexp(log_joint, 0) + math.log(float(z[1] - z[0]))))
    estimate = vae.nll(x, k=5000, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(estimate, torch.stack(exact), atol=0.02)


def test_vae_sampling_warmup_free_bits_and_binarize():
    torch.manual_seed(0)
    vae = aekit.create_model("vae", (1, 8, 8), latent_dim=3, kl_warmup_steps=10, binarize=True)
    samples = vae.sample(5, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (5, 1, 8, 8) and 0 <= samples.min() and samples.max() <= 1
    x = torch.rand(6, 1, 8, 8)
    out = vae(x)
    assert int(vae.steps) == 1
    assert float(out.loss.detach()) == pytest.approx(float(out.logs["rec"] + 0.1 * out.logs["kl"]), rel=1e-5)
    target = vae.eval().target(x)
    assert set(target.unique().tolist()) <= {0.0, 1.0} and torch.equal(target, vae.target(x))  # seeded in eval
    free = aekit.create_model("vae", (1, 8, 8), latent_dim=3, free_bits=5.0).eval()
    out = free(x)
    assert float(out.loss.detach()) == pytest.approx(float(out.logs["rec"]) + 15.0, rel=1e-5)  # under 5 nats free
    metrics = vae.extra_metrics(x, nll_k=10)
    assert set(metrics) == {"active_units", "nll", "nll_k"} and metrics["nll_k"] == 10
    assert metrics["active_units"] == int((vae.posterior(vae.target(x))[0].var(0) > 0.01).sum())
    nll = vae.nll(vae.target(x), k=10, generator=torch.Generator().manual_seed(0))
    assert metrics["nll"] == pytest.approx(float(nll.mean()), rel=1e-6)


def test_vae_gaussian_likelihood_learns_its_sigma():
    torch.manual_seed(0)
    vae = aekit.create_model("vae", (6,), likelihood="gaussian", hidden=[8], latent_dim=2)
    vae(torch.rand(4, 6)).loss.backward()
    assert vae.log_sigma.grad is not None and float(vae.log_sigma.grad) != 0


def test_ssim_is_one_for_the_same_image_exact_for_flat_ones_and_falls_with_noise():
    from aekit.metrics import ssim

    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ssim(x, x), torch.ones(4, dtype=torch.float64))
    a, b = torch.full((1, 1, 16, 16), 0.3), torch.full((1, 1, 16, 16), 0.7)  # flat: only the luminance term
    c1 = 0.01**2
    assert float(ssim(a, b)) == pytest.approx((2 * 0.3 * 0.7 + c1) / (0.3**2 + 0.7**2 + c1), rel=1e-6)
    smooth = torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2)
    noisy = [(smooth + s * torch.randn_like(x)).clamp(0, 1) for s in (0.02, 0.1, 0.3)]
    scores = [float(ssim(smooth, n).mean()) for n in noisy]
    assert 1 > scores[0] > scores[1] > scores[2] > 0
    assert ssim(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)).shape == (2,)  # a window to fit small images


def test_frechet_distance_matches_its_closed_form_for_gaussians():
    from aekit.metrics import frechet_distance

    generator = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 4, generator=generator, dtype=torch.float64)
    b = torch.randn(20000, 4, generator=generator, dtype=torch.float64)
    assert frechet_distance(a, b) < 0.01  # the same distribution
    shift = torch.tensor([1.0, 2.0, 0.0, 0.0], dtype=torch.float64)
    assert abs(frechet_distance(a, b + shift) - 5.0) < 0.15  # |mu_a - mu_b|^2, the covariances equal (3 sd)
    assert abs(frechet_distance(a, 2 * b) - 4.0) < 0.15  # tr(I + 4I - 2 * 2I) = 4 in 4 dimensions


def test_precision_and_recall_tell_poor_samples_from_missing_modes():
    from aekit.metrics import precision_recall

    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    real = centres[torch.arange(2000) % 2] + torch.randn(2000, 2, generator=generator)
    same = centres[torch.arange(2000) % 2] + torch.randn(2000, 2, generator=generator)
    one_mode = centres[0] + torch.randn(2000, 2, generator=generator)  # every sample good, half the data missed
    elsewhere = torch.tensor([5.0, 20.0]) + torch.randn(2000, 2, generator=generator)  # nothing like the data
    precision, recall = precision_recall(real, same)
    assert precision > 0.95 and recall > 0.95
    precision, recall = precision_recall(real, one_mode)
    assert precision > 0.95 and 0.4 < recall < 0.6
    assert precision_recall(real, elsewhere) == (0.0, 0.0)
