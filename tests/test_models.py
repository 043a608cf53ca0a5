import pytest
import torch

import aekit
from aekit import AekitError

SHAPES = [(1, 28, 28), (3, 8, 8), (10,)]


@pytest.fixture(params=aekit.list_models())
def name(request):
    return request.param


@pytest.mark.parametrize("shape", SHAPES)
def test_shapes_loss_and_gradients(name, shape):
    torch.manual_seed(0)
    model = aekit.create_model(name, shape, hidden=[16], latent_dim=4)
    x = torch.rand(5, *shape)
    out = model(x)
    assert out.x_hat.shape == x.shape and out.z.shape == (5, 4)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert 0 <= out.x_hat.min() and out.x_hat.max() <= 1
    assert all(v.dim() == 0 for v in out.logs.values())
    out.loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    model.eval()
    assert model.encode(x).shape == (5, 4) and model.decode(model.encode(x)).shape == x.shape


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


@pytest.mark.parametrize(
    "options,fragment",
    [
        ({"latent_dim": 0}, "latent_dim must be a positive integer"),
        ({"latent_dim": -3}, "latent_dim must be a positive integer"),
        ({"hidden": [64, 0]}, "hidden sizes must be positive"),
        ({"hidden": [64, 1.5]}, "expected an integer"),
        ({"hidden": "128"}, "expected a list"),
        ({"activation": "swish"}, "activation must be one of"),
        ({"backbone": "transformer"}, "backbone must be one of"),
        ({"depth": 3}, "unknown option 'depth'"),
    ],
)
def test_bad_model_options(options, fragment):
    with pytest.raises(AekitError, match=fragment):
        aekit.create_model("ae", (1, 8, 8), **options)


def test_unknown_model():
    with pytest.raises(AekitError, match="unknown model 'gan'"):
        aekit.create_model("gan", (4,))


def test_wrong_input_shape_is_a_clear_error():
    model = aekit.create_model("ae", (1, 8, 8))
    with pytest.raises(AekitError, match=r"expected input of shape \(N, 1, 8, 8\), got \[2, 1, 28, 28\]"):
        model.encode(torch.rand(2, 1, 28, 28))
    with pytest.raises(AekitError, match="codes of shape"):
        model.decode(torch.rand(2, 5))


def test_fused_sigmoid_squared_error_matches_autograd():
    from aekit.models.base import sigmoid_squared_error

    logits = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    x = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: sigmoid_squared_error(a, b)[0], (logits, x))
    loss, x_hat = sigmoid_squared_error(logits, x)
    reference = torch.nn.functional.mse_loss(torch.sigmoid(logits), x, reduction="sum") / 4
    assert torch.allclose(loss, reference) and torch.equal(x_hat, torch.sigmoid(logits))
