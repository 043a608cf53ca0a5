"""checkpoint.py on its own: what save writes, what load restores, and the exact refusal of each part a damaged
checkpoint can get wrong, before anything is restored. A tiny model on the digits, trained two epochs once."""

import json

import pytest
import torch

import aekit
from aekit import AekitError, checkpoint
from aekit.config import TrainConfig
from aekit.runfiles import read_tensors, save_tensors

STEPS = 12  # two epochs of 1437 training digits in batches of 256: 6 steps each


def trainer(epochs: int = 2) -> aekit.Trainer:
    torch.manual_seed(0)
    model = aekit.create_model("ae", (1, 8, 8), hidden=[16], latent_dim=4)
    return aekit.Trainer(model, aekit.data.load("digits"), TrainConfig(epochs=epochs, batch_size=256, device="cpu"))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A checkpoint after two epochs: (path, its tensors, its metadata, the torch RNG state saved)."""
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.safetensors"
    t = trainer()
    t.fit()
    checkpoint.save(path, t.state_dict())
    tensors, meta = read_tensors(path)
    return path, tensors, meta


def write(tmp_path, tensors, meta):
    path = tmp_path / "checkpoint.safetensors"
    save_tensors(path, tensors, meta)
    return path


def test_save_writes_every_part(saved):
    path, tensors, meta = saved
    params = [name for name, _ in trainer().model.named_parameters()]
    optim = {f"optim.{i}.{k}" for i in range(len(params)) for k in ("exp_avg", "exp_avg_sq", "step")}
    assert set(tensors) == {f"model.{n}" for n in params} | optim | {"rng.order", "rng.torch"}
    assert set(meta) == set(checkpoint.META_KEYS)
    assert json.loads(meta["epoch"]) == 2 and json.loads(meta["optim_scalars"]) == {}
    assert [r["epoch"] for r in json.loads(meta["history"])] == [1, 2]
    assert json.loads(meta["scheduler"])["last_epoch"] == STEPS
    assert json.loads(meta["param_groups"])[0]["params"] == list(range(len(params)))
    assert float(tensors["optim.0.step"]) == STEPS


def test_load_restores_everything(saved, tmp_path):
    path, tensors, meta = saved
    meta = {**meta, "param_groups": json.dumps([{**json.loads(meta["param_groups"])[0], "lr": 0.0, "eps": 5.0}])}
    t = trainer()
    torch.manual_seed(123)  # the RNG state the checkpoint's replaces
    t.load_checkpoint(write(tmp_path, tensors, meta))
    assert t.epoch == 2 and t.history == json.loads(meta["history"])
    assert t.scheduler.last_epoch == STEPS
    assert t.optimizer.param_groups[0]["lr"] == 0.0  # the checkpoint's learning rate (0 is one)
    assert t.optimizer.param_groups[0]["eps"] == 1e-8  # the rest from this trainer's config
    state = t.optimizer.state_dict()["state"]
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".")
            assert torch.equal(state[int(pid)][name], value), key
    for name, value in t.model.state_dict().items():
        assert torch.equal(value, tensors[f"model.{name}"])
    assert torch.equal(t.order.get_state(), tensors["rng.order"])
    assert torch.equal(torch.get_rng_state(), tensors["rng.torch"])


def test_a_checkpoint_before_any_step_loads(tmp_path):
    """Epoch 0: no history, no optimizer state, the schedule at step 0."""
    path = tmp_path / "checkpoint.safetensors"
    checkpoint.save(path, trainer().state_dict())
    t = trainer()
    t.load_checkpoint(path)
    assert t.epoch == 0 and t.history == [] and t.optimizer.state_dict()["state"] == {}
    tensors, meta = read_tensors(path)
    tensors["optim.0.exp_avg"] = torch.zeros(16, 64)
    with pytest.raises(AekitError, match="the optimizer state does not cover the model's 8 parameters"):
        trainer().load_checkpoint(write(tmp_path, tensors, meta))


def test_old_history_names_and_scalar_state_load(saved, tmp_path):
    """History from before the held-out part was called test (val_*), and Adam's step as a number, as older
    PyTorch kept it."""
    _, tensors, meta = saved
    history = json.loads(meta["history"])
    old = [{("val_loss" if k == "test_loss" else k): v for k, v in r.items()} | {"my_val": 1} for r in history]
    tensors = {k: v for k, v in tensors.items() if k != "optim.0.step"}
    meta = {**meta, "history": json.dumps(old), "optim_scalars": json.dumps({"0": {"step": float(STEPS)}})}
    t = trainer()
    t.load_checkpoint(write(tmp_path, tensors, meta))
    assert [r["test_loss"] for r in t.history] == [r["test_loss"] for r in history]
    assert all("val_loss" not in r and r["my_val"] == 1 for r in t.history)
    assert float(t.optimizer.state_dict()["state"][0]["step"]) == STEPS


def test_save_keeps_scalar_optimizer_state(tmp_path):
    t = trainer(1)
    t.fit()
    first = next(t.model.parameters())
    t.optimizer.state[first]["step"] = 6.0  # a number, not a tensor
    checkpoint.save(tmp_path / "c.safetensors", t.state_dict())
    tensors, meta = read_tensors(tmp_path / "c.safetensors")
    assert "optim.0.step" not in tensors and json.loads(meta["optim_scalars"]) == {"0": {"step": 6.0}}


def test_a_checkpoint_from_a_gpu_loads_on_a_cpu(saved, tmp_path):
    _, tensors, meta = saved
    t = trainer()
    t.load_checkpoint(write(tmp_path, {**tensors, "rng.cuda": torch.zeros(16, dtype=torch.uint8)}, meta))
    assert t.epoch == 2


def _history(meta, change):
    history = json.loads(meta["history"])
    change(history)
    return json.dumps(history)


def _set(d, key, value):
    d[key] = value


ORDER = torch.Generator().get_state().shape[0]
CASES = {
    # metadata
    "no scheduler, history": lambda t, m: (m.pop("scheduler"), m.pop("history")),
    "epoch -1": lambda t, m: _set(m, "epoch", "-1"),
    "epoch true": lambda t, m: _set(m, "epoch", "true"),
    "epoch 2.0": lambda t, m: _set(m, "epoch", "2.0"),
    "history a string": lambda t, m: _set(m, "history", '"oops"'),
    "history short": lambda t, m: _set(m, "history", _history(m, lambda h: h.pop())),
    "history record a number": lambda t, m: _set(m, "history", _history(m, lambda h: h.__setitem__(1, 5))),
    "history epochs swapped": lambda t, m: _set(m, "history", _history(m, lambda h: h.reverse())),
    "history of true": lambda t, m: _set(m, "history", _history(m, lambda h: h[1].update(test_loss=True))),
    "history of text": lambda t, m: _set(m, "history", _history(m, lambda h: h[0].update(loss="x"))),
    "param_groups 7": lambda t, m: _set(m, "param_groups", "7"),
    "param_groups other": lambda t, m: _set(
        m, "param_groups", json.dumps([{**json.loads(m["param_groups"])[0], "params": [7, 6, 5, 4, 3, 2, 1, 0]}])
    ),
    "negative lr": lambda t, m: _set(m, "param_groups", json.dumps([{**json.loads(m["param_groups"])[0], "lr": -1}])),
    "scheduler {}": lambda t, m: _set(m, "scheduler", "{}"),
    "scheduler base_lrs": lambda t, m: _set(
        m, "scheduler", json.dumps({**json.loads(m["scheduler"]), "base_lrs": [0.5]})
    ),
    "scheduler step": lambda t, m: _set(m, "scheduler", json.dumps({**json.loads(m["scheduler"]), "last_epoch": 3})),
    "optim_scalars []": lambda t, m: _set(m, "optim_scalars", "[]"),
    "optim_scalars text": lambda t, m: _set(m, "optim_scalars", '{"0": {"step": "x"}}'),
    "optim_scalars true": lambda t, m: _set(m, "optim_scalars", '{"0": {"step": true}}'),
    "optim_scalars other key": lambda t, m: _set(m, "optim_scalars", '{"0": {"lr": 1}}'),
    "optim_scalars of x": lambda t, m: _set(m, "optim_scalars", '{"x": {}}'),
    "optim_scalars of 8": lambda t, m: _set(m, "optim_scalars", '{"8": {}}'),
    "optim_scalars a number": lambda t, m: _set(m, "optim_scalars", '{"0": 5}'),
    # tensors
    "notes": lambda t, m: _set(t, "notes", torch.zeros(1)),
    "model": lambda t, m: _set(t, "model", torch.zeros(1)),
    "other.x": lambda t, m: _set(t, "other.x", torch.zeros(1)),
    "optim.x.exp_avg": lambda t, m: _set(t, "optim.x.exp_avg", torch.zeros(1)),
    "optim.8.exp_avg": lambda t, m: _set(t, "optim.8.exp_avg", torch.zeros(1)),
    "optim.0.momentum": lambda t, m: _set(t, "optim.0.momentum", torch.zeros(1)),
    "step 5": lambda t, m: _set(t, "optim.0.step", torch.tensor(5.0)),
    "step a vector": lambda t, m: _set(t, "optim.0.step", torch.tensor([float(STEPS)])),
    "step an integer": lambda t, m: _set(t, "optim.0.step", torch.tensor(STEPS)),
    "exp_avg shape": lambda t, m: _set(t, "optim.0.exp_avg", torch.zeros(3)),
    "exp_avg dtype": lambda t, m: _set(t, "optim.0.exp_avg", torch.zeros(16, 64, dtype=torch.float64)),
    "exp_avg NaN": lambda t, m: _set(t, "optim.0.exp_avg", torch.full((16, 64), float("nan"))),
    "exp_avg_sq negative": lambda t, m: _set(t, "optim.1.exp_avg_sq", -torch.ones(16)),
    "exp_avg_sq infinite": lambda t, m: _set(t, "optim.1.exp_avg_sq", torch.full((16,), float("inf"))),
    "step missing": lambda t, m: t.pop("optim.3.step"),
    "parameter 0 as numbers only": lambda t, m: (
        [t.pop(f"optim.0.{k}") for k in checkpoint.ADAM_STATE],
        _set(m, "optim_scalars", '{"0": {"step": 12}}'),
    ),
    "model weight NaN": lambda t, m: _set(t, "model.decoder.0.2.bias", torch.full((64,), float("nan"))),
    "rng.extra": lambda t, m: _set(t, "rng.extra", torch.zeros(1)),
    "rng.order missing": lambda t, m: t.pop("rng.order"),
    "rng.order float": lambda t, m: _set(t, "rng.order", t["rng.order"].float()),
    "rng.torch short": lambda t, m: _set(t, "rng.torch", torch.zeros(5, dtype=torch.uint8)),
}
REFUSALS = {
    "no scheduler, history": "incomplete checkpoint metadata (no scheduler, history)",
    "epoch -1": "epoch must be a whole number >= 0, got -1",
    "epoch true": "epoch must be a whole number >= 0, got True",
    "epoch 2.0": "epoch must be a whole number >= 0, got 2.0",
    "history a string": "history must list one record per finished epoch (2)",
    "history short": "history must list one record per finished epoch (2)",
    "history record a number": "history record 2 is not a record of numbers for epoch 2",
    "history epochs swapped": "history record 1 is not a record of numbers for epoch 1",
    "history of true": "history record 2 is not a record of numbers for epoch 2",
    "history of text": "history record 1 is not a record of numbers for epoch 1",
    "param_groups 7": "param_groups: expected a list of 1 values",
    "param_groups other": "param_groups name other parameters than the model's",
    "negative lr": "param_groups hold a negative learning rate",
    "scheduler base_lrs": "the schedule's base learning rates differ",
    "scheduler step": f"the schedule is at step 3, but 2 epochs make {STEPS} steps",
    "optim_scalars []": "optim_scalars must be an object",
    "optim_scalars text": "optim_scalars hold something other than Adam's numbers",
    "optim_scalars true": "optim_scalars hold something other than Adam's numbers",
    "optim_scalars other key": "optim_scalars hold something other than Adam's numbers",
    "optim_scalars of x": "optim_scalars hold something other than Adam's numbers",
    "optim_scalars of 8": "optim_scalars hold something other than Adam's numbers",
    "optim_scalars a number": "optim_scalars hold something other than Adam's numbers",
    "notes": "unexpected tensor 'notes'",
    "model": "unexpected tensor 'model'",
    "other.x": "unexpected tensor 'other.x'",
    "optim.x.exp_avg": "unexpected optimizer tensor 'optim.x.exp_avg'",
    "optim.8.exp_avg": "unexpected optimizer tensor 'optim.8.exp_avg'",
    "optim.0.momentum": "unexpected optimizer tensor 'optim.0.momentum'",
    "step 5": f"optimizer step count of parameter 0 does not match {STEPS} steps",
    "step a vector": f"optimizer step count of parameter 0 does not match {STEPS} steps",
    "step an integer": f"optimizer step count of parameter 0 does not match {STEPS} steps",
    "exp_avg shape": "optimizer state optim.0.exp_avg has shape [3], the model's parameter [16, 64]",
    "exp_avg dtype": "optimizer state optim.0.exp_avg has shape [16, 64], the model's parameter [16, 64]",
    "exp_avg NaN": "optimizer state optim.0.exp_avg holds NaN, infinite or impossible values",
    "exp_avg_sq negative": "optimizer state optim.1.exp_avg_sq holds NaN, infinite or impossible values",
    "exp_avg_sq infinite": "optimizer state optim.1.exp_avg_sq holds NaN, infinite or impossible values",
    "step missing": "the optimizer state does not cover the model's 8 parameters",
    "parameter 0 as numbers only": "the optimizer state does not cover the model's 8 parameters",
    "model weight NaN": "weight decoder.0.2.bias holds NaN or infinite values; the file is damaged (retrain, or "
    "restore it)",
    "rng.extra": "unexpected RNG state 'rng.extra'",
    "rng.order missing": f"the RNG state rng.order is missing or not [{ORDER}] bytes",
    "rng.order float": f"the RNG state rng.order is missing or not [{ORDER}] bytes",
    "rng.torch short": f"the RNG state rng.torch is missing or not [{torch.get_rng_state().shape[0]}] bytes",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_damaged_checkpoint_is_refused_before_anything_is_restored(saved, tmp_path, case):
    _, tensors, meta = saved
    tensors, meta = dict(tensors), dict(meta)
    CASES[case](tensors, meta)
    path = write(tmp_path, tensors, meta)
    t = trainer()
    weights, rng = {k: v.clone() for k, v in t.model.state_dict().items()}, torch.get_rng_state()
    with pytest.raises(AekitError) as e:
        t.load_checkpoint(path)
    message = str(e.value)
    if case == "scheduler {}":
        keys = sorted(t.scheduler.state_dict())
        assert message == f"{path}: scheduler: expected an object with keys {keys}"[:200]
    else:
        assert message == f"{path}: {REFUSALS[case]}"
    assert t.epoch == 0 and t.history == [] and t.optimizer.state_dict()["state"] == {}
    assert all(torch.equal(v, weights[k]) for k, v in t.model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)


def test_metadata_that_is_not_json_is_refused(saved, tmp_path):
    _, tensors, meta = saved
    path = write(tmp_path, tensors, {**meta, "history": "[{"})
    with pytest.raises(AekitError, match=r"^" + str(path) + r": history: not valid JSON \("):
        trainer().load_checkpoint(path)


def test_bytes_that_are_no_generator_state_are_refused(saved, tmp_path):
    _, tensors, meta = saved
    path = write(tmp_path, {**tensors, "rng.order": torch.full_like(tensors["rng.order"], 255)}, meta)
    with pytest.raises(AekitError, match=r"^" + str(path) + r": an RNG state is not a valid generator state \(.+\)$"):
        trainer().load_checkpoint(path)
    path = write(tmp_path, {**tensors, "rng.torch": torch.full_like(tensors["rng.torch"], 255)}, meta)
    with pytest.raises(AekitError, match="an RNG state is not a valid generator state"):
        trainer().load_checkpoint(path)


class OnGPU:
    """Just what _rng_states reads of a trainer on a GPU (there is none here): its device and data-order generator."""

    device = torch.device("cuda", 1)
    order = torch.Generator()


def test_rng_states_on_a_gpu(saved, monkeypatch):
    _, tensors, _ = saved
    asked = []
    monkeypatch.setattr(
        torch.cuda, "get_rng_state", lambda device: asked.append(device) or torch.zeros(16, dtype=torch.uint8)
    )
    rng = {k.partition(".")[2]: v for k, v in tensors.items() if k.startswith("rng.")}
    assert set(checkpoint._rng_states(rng, OnGPU(), "w")) == {"order", "torch"}  # made on a CPU: resumed on a GPU
    assert asked == [OnGPU.device]
    cuda = torch.full((16,), 7, dtype=torch.uint8)
    states = checkpoint._rng_states({**rng, "cuda": cuda}, OnGPU(), "w")
    assert set(states) == {"order", "torch", "cuda"} and torch.equal(states["cuda"], cuda)
    with pytest.raises(AekitError) as e:
        checkpoint._rng_states({**rng, "cuda": torch.zeros(8, dtype=torch.uint8)}, OnGPU(), "w")
    assert str(e.value) == "w: the RNG state rng.cuda is missing or not [16] bytes"


def test_save_keeps_the_gpus_rng_state(tmp_path, monkeypatch):
    t = trainer()
    t.device = OnGPU.device  # as if it trained there: only the RNG's part of save reads the device
    asked = []
    state = torch.full((16,), 3, dtype=torch.uint8)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: asked.append(device) or state)
    checkpoint.save(tmp_path / "c.safetensors", t.state_dict())
    tensors, _ = read_tensors(tmp_path / "c.safetensors")
    assert torch.equal(tensors["rng.cuda"], state) and asked == [OnGPU.device]


def test_an_invalid_generator_state_is_named_with_torchs_reason(saved, tmp_path):
    _, tensors, meta = saved
    bad = torch.full_like(tensors["rng.order"], 255)
    try:
        torch.Generator().set_state(bad)
    except (RuntimeError, ValueError) as e:
        reason = str(e)
    path = write(tmp_path, {**tensors, "rng.order": bad}, meta)
    with pytest.raises(AekitError) as e:
        trainer().load_checkpoint(path)
    assert str(e.value) == f"{path}: an RNG state is not a valid generator state ({' '.join(reason[:80].split())})"


def test_lenient_values_load(saved, tmp_path):
    """The limits from the other side: a zero learning rate, exp_avg below 0, exp_avg_sq of 0."""
    _, tensors, meta = saved
    tensors = {**tensors, "optim.0.exp_avg": -torch.ones(16, 64), "optim.1.exp_avg_sq": torch.zeros(16)}
    t = trainer()
    t.load_checkpoint(write(tmp_path, tensors, meta))
    assert torch.equal(t.optimizer.state_dict()["state"][0]["exp_avg"], -torch.ones(16, 64))
