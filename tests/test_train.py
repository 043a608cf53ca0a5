import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import aekit
from aekit import AekitError

SMALL = {"hidden": [32], "latent_dim": 8, "batch_size": 64, "quiet": True, "device": "cpu"}


def test_training_lowers_the_loss_and_beats_the_mean_image(digits_run):
    history = digits_run.metrics["history"]
    assert len(history) == 30
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["test_loss"] < history[0]["test_loss"]
    result = aekit.evaluate(digits_run, save=False)
    assert result["split"] == "test" and result["items"] == 359
    assert result["model"]["mse"] < result["baselines"]["mean"]["mse"]
    x = aekit.data.load("digits").test.floats()  # the same figures, computed here from the model itself
    errors = (digits_run.model.reconstruct(x).double() - x.double()).pow(2).flatten(1).sum(1)
    assert result["model"]["sse_per_item"] == pytest.approx(float(errors.mean()), rel=1e-6)
    assert result["model"]["psnr_db"] == pytest.approx(10 * np.log10(64 / float(errors.mean())), rel=1e-6)
    from aekit.metrics import ssim

    assert result["model"]["ssim"] == pytest.approx(float(ssim(x, digits_run.model.reconstruct(x)).mean()), rel=1e-5)
    assert result["model"]["ssim"] > result["baselines"]["mean"]["ssim"]  # images: structure, beside the baselines


def test_run_folder_contents(digits_run_dir):
    names = {p.name for p in digits_run_dir.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "checkpoint.safetensors",
        "metrics.json",
        "loss_curve.png",
        "reconstructions.png",
    } <= names
    config = json.loads((digits_run_dir / "config.json").read_text())
    assert config["model"]["name"] == "ae" and config["model"]["input_shape"] == [1, 8, 8]
    assert config["data"]["source"] == "digits" and config["scaling"] == {"lo": 0.0, "hi": 16.0}
    assert config["aekit_version"] == aekit.__version__
    assert not [p for p in names if p.endswith(".tmp")]


def test_save_load_round_trip_gives_identical_outputs(digits_run):
    loaded = aekit.load(digits_run.path)
    assert not loaded.training
    x = aekit.data.load("digits").test.floats()
    assert torch.equal(loaded.encode(x), digits_run.model.encode(x))
    assert torch.equal(loaded.reconstruct(x), digits_run.model.reconstruct(x))


def test_resume_matches_an_uninterrupted_run_bit_for_bit(tmp_path):
    full = aekit.train("digits", out=tmp_path / "full", epochs=4, **SMALL)
    aekit.train("digits", out=tmp_path / "part", epochs=2, **SMALL)
    resumed = aekit.train(out=tmp_path / "part", resume=True, epochs=4, quiet=True)
    a, b = load_file(full.path / "model.safetensors"), load_file(resumed.path / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["epoch"] for r in resumed.metrics["history"]] == [1, 2, 3, 4]
    strip = [{k: v for k, v in r.items() if k != "time_s"} for r in resumed.metrics["history"]]
    assert strip == [{k: v for k, v in r.items() if k != "time_s"} for r in full.metrics["history"]]


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    runs = [aekit.train("digits", out=tmp_path / str(i), epochs=1, seed=s, **SMALL) for i, s in enumerate([1, 1, 2])]
    w = [load_file(r.path / "model.safetensors") for r in runs]
    assert all(torch.equal(w[0][k], w[1][k]) for k in w[0])
    assert not all(torch.equal(w[0][k], w[2][k]) for k in w[0])


def test_resume_refuses_changed_settings_and_finished_runs(digits_run_dir):
    with pytest.raises(AekitError, match="only epochs, minutes and device may change"):
        aekit.train(out=digits_run_dir, resume=True, latent_dim=4)
    with pytest.raises(AekitError, match="already trained 30 epochs; pass a larger --epochs to train on$"):
        aekit.train(out=digits_run_dir, resume=True, quiet=True)


def test_existing_run_folder_is_not_clobbered_unless_forced(tmp_path):
    aekit.train("digits", out=tmp_path / "r", epochs=1, **SMALL)
    with pytest.raises(AekitError, match="already exists; use --resume"):
        aekit.train("digits", out=tmp_path / "r", epochs=1, **SMALL)
    run = aekit.train("digits", out=tmp_path / "r", epochs=2, force=True, **SMALL)
    assert len(run.metrics["history"]) == 2


@pytest.mark.parametrize(
    "options,fragment",
    [
        ({"latent_dim": 0}, "latent_dim"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"lr": -0.1}, "lr must be positive"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"test_split": 1.5}, "test_split must be in"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_options_leave_no_run_folder(tmp_path, options, fragment):
    with pytest.raises(AekitError, match=fragment):
        aekit.train("digits", out=tmp_path / "r", **{**SMALL, **options})
    assert not (tmp_path / "r").exists()


def test_load_never_unpickles(tmp_path, digits_run_dir):
    bad = tmp_path / "pickled"
    bad.mkdir()
    (bad / "config.json").write_text((digits_run_dir / "config.json").read_text())
    torch.save(aekit.load(digits_run_dir).state_dict(), bad / "model.pt")
    with pytest.raises(AekitError, match="holds model.pt but no model.safetensors; .* never unpickles"):
        aekit.load(bad)
    (bad / "model.pt").rename(bad / "model.safetensors")
    with pytest.raises(AekitError, match="is a pickle"):
        aekit.load(bad)


def test_load_refuses_broken_run_folders(tmp_path, digits_run_dir):
    with pytest.raises(AekitError, match="no such run folder"):
        aekit.load(tmp_path / "nope")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes((digits_run_dir / "model.safetensors").read_bytes())
    (broken / "config.json").write_text("{not json")
    with pytest.raises(AekitError, match="not valid JSON"):
        aekit.load(broken)
    config = json.loads((digits_run_dir / "config.json").read_text())
    config["model"]["latent_dim"] = 5
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(AekitError, match="has shape"):
        aekit.load(broken)
    (broken / "config.json").write_text((digits_run_dir / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": 1}')
    with pytest.raises(AekitError, match="not a valid safetensors file"):
        aekit.load(broken)


def test_tables_train_and_keep_their_scaling(tmp_path):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 2))
    table = np.concatenate([z, z @ rng.normal(size=(2, 4))], axis=1) * 50 + 7
    np.savetxt(tmp_path / "t.csv", table, delimiter=",", header="a,b,c,d,e,f", comments="")
    run = aekit.train(
        tmp_path / "t.csv", out=tmp_path / "r", epochs=30, hidden=[16], latent_dim=2, batch_size=32, quiet=True
    )
    config = json.loads((run.path / "config.json").read_text())
    assert len(config["scaling"]["lo"]) == 6 and config["model"]["input_shape"] == [6]
    result = aekit.evaluate(run.path)
    assert result["items"] == 30 and result["model"]["mse"] < result["baselines"]["mean"]["mse"]


def test_data_that_does_not_fit_the_model(tmp_path, digits_run_dir):
    np.save(tmp_path / "x.npy", np.zeros((5, 28, 28), np.uint8))
    with pytest.raises(AekitError, match=r"items have shape \[1, 28, 28\] but the model .* expects \[1, 8, 8\]"):
        aekit.evaluate(digits_run_dir, data=str(tmp_path / "x.npy"), save=False)


def test_new_data_is_prepared_with_the_runs_scaling(tmp_path):
    np.savetxt(tmp_path / "train.csv", np.arange(40.0).reshape(20, 2), delimiter=",")
    np.savetxt(tmp_path / "new.csv", np.arange(40.0).reshape(20, 2) * 2, delimiter=",")
    run = aekit.train(
        tmp_path / "train.csv", out=tmp_path / "r", epochs=1, hidden=[4], latent_dim=1, test_split=0, quiet=True
    )
    new = run.load_data(str(tmp_path / "new.csv")).train.floats()
    assert float(new.max()) == pytest.approx((78 - 1) / 38)  # column 1 scaled by its training range 1..39
    np.save(tmp_path / "img8.npy", np.full((4, 3, 3), 255, np.uint8))
    np.save(tmp_path / "imgf.npy", np.full((4, 3, 3), 0.5, np.float32))
    image_run = aekit.train(
        tmp_path / "img8.npy", out=tmp_path / "i", epochs=1, hidden=[4], latent_dim=1, test_split=0, quiet=True
    )
    assert float(image_run.load_data(str(tmp_path / "imgf.npy")).train.floats().max()) == 0.5  # pixels in [0, 1] stay


def test_progress_bar_on_a_terminal_and_plain_lines_elsewhere(tmp_path):
    import io

    from aekit.callbacks import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal, log = Terminal(), io.StringIO()
    aekit.train("digits", out=tmp_path / "r", epochs=2, callbacks=[Progress(terminal), Progress(log)], **SMALL)
    assert "batch" in terminal.getvalue() and "loss=" in terminal.getvalue()  # tqdm's bar with the live loss
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("training ae on digits") and lines[2].startswith("note: only 46 optimizer steps")
    assert lines[1] == "23 steps an epoch of batches of 64, lr 0.001 constant"  # the options left out, as filled in
    assert len(lines) == 5 and lines[4].startswith("epoch 2/2") and "test_loss" in lines[4]
    assert "batch/s" not in log.getvalue() and "batch/s" in terminal.getvalue()  # no bar in a log


def test_a_long_epoch_shows_life_in_a_log(tmp_path, monkeypatch):
    import io

    from aekit import progress
    from aekit.callbacks import Progress

    monkeypatch.setattr(progress, "INTERVAL", 0.0)  # every step is "long": a line each
    log = io.StringIO()
    aekit.train("digits", out=tmp_path / "r", epochs=1, callbacks=[Progress(log)], **SMALL)
    steps = [line for line in log.getvalue().splitlines() if ": step " in line]
    assert len(steps) == 23 and steps[0].startswith("epoch 1/1: step 1/23  loss ")
    assert steps[-1].startswith("epoch 1/1: step 23/23")
    monkeypatch.setattr(progress, "INTERVAL", 3600.0)  # the default kind of run: epochs shorter than a line's wait
    quiet = io.StringIO()
    aekit.train("digits", out=tmp_path / "q", epochs=1, callbacks=[Progress(quiet)], **SMALL)
    assert ": step " not in quiet.getvalue()


BACKBONE_SIZES = {  # each a code of 8 numbers for the 8x8 digits (resnet: 2 channels on a 2x2 map)
    "mlp": {"hidden": [64], "latent_dim": 8},
    "conv": {"hidden": [16, 32], "latent_dim": 8},
    "resnet": {"hidden": [8, 16], "latent_channels": 2},
}


@pytest.mark.figures
@pytest.mark.parametrize("backbone", list(BACKBONE_SIZES))
@pytest.mark.parametrize("name", aekit.list_models())
def test_every_type_learns_saves_and_loads(tmp_path, name, backbone):
    run = aekit.train(
        "digits",
        name,
        out=tmp_path / "r",
        epochs=6,
        backbone=backbone,
        **BACKBONE_SIZES[backbone],
        **({"kl_warmup_steps": 300} if name == "vae" else {}),  # 138 steps: the KL term must not win them all
        batch_size=64,
        lr=3e-3,
        quiet=True,
        device="cpu",
    )
    history = run.metrics["history"]
    assert history[-1]["test_mse"] < 0.8 * history[0]["test_mse"], history
    x = aekit.data.load("digits").test.floats()
    loaded = aekit.load(run.path)
    assert torch.equal(loaded.encode(x), run.model.encode(x)) and torch.equal(
        loaded.reconstruct(x), run.model.reconstruct(x)
    )
    result = aekit.evaluate(run, save=False)["model"]
    assert {"mse", "sse_per_item", "psnr_db", "loss"} <= set(result) and all(np.isfinite(v) for v in result.values())
    assert (run.path / "samples.png").exists() == (name == "vae")


def test_type_metrics_in_evaluate(tmp_path):
    dae = aekit.train("digits", "dae", out=tmp_path / "d", epochs=30, noise=["gaussian"], noise_sigma=0.3, **SMALL)
    report = aekit.evaluate(dae, save=False)["model"]
    assert report["noisy_psnr_db"] < report["denoised_psnr_db"]
    sae = aekit.train("digits", "sae", out=tmp_path / "s", epochs=2, **SMALL)
    report = aekit.evaluate(sae, save=False)["model"]
    z = sae.model.encode(aekit.data.load("digits").test.floats())  # sigmoid codes: on above 0.5
    assert report["mean_activation"] == pytest.approx(float(z.mean()), rel=1e-5)
    assert report["active_fraction"] == pytest.approx(float((z > 0.5).float().mean()), rel=1e-5)
    vae = aekit.train("digits", "vae", out=tmp_path / "v", epochs=2, **SMALL)
    report = aekit.evaluate(vae, save=False, nll_k=20)["model"]
    assert report["nll"] <= -report["elbo"] + 1.0 and report["nll_k"] == 20
    mu = vae.model.encode(aekit.data.load("digits").test.floats())  # Burda et al.'s count, done here
    assert report["active_units"] == int((mu.var(0) > 0.01).sum())
    with pytest.raises(AekitError, match="only vae does"):
        aekit.evaluate(sae, save=False, nll_k=20)


def test_resume_after_an_interruption_is_exact_with_noise_and_a_schedule(tmp_path):
    from aekit.trainer import Callback

    class Interrupt(Callback):  # Ctrl-C at the end of epoch 2, after its checkpoint
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 2:
                raise KeyboardInterrupt

    options = {**SMALL, "noise": ["gaussian", "masking"], "schedule": "cosine", "epochs": 4}
    full = aekit.train("digits", "dae", out=tmp_path / "full", **options)
    with pytest.raises(KeyboardInterrupt):
        aekit.train("digits", "dae", out=tmp_path / "part", callbacks=[Interrupt()], **options)
    assert aekit.load(tmp_path / "part") is not None  # the interrupted folder loads
    resumed = aekit.train(out=tmp_path / "part", resume=True, quiet=True)
    a, b = load_file(full.path / "model.safetensors"), load_file(resumed.path / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cosine_schedule_shape():
    from aekit.config import lr_factor

    factors = [lr_factor("cosine", s, 100) for s in range(100)]
    assert factors[0] == pytest.approx(0.2) and factors[4] == 1.0 and factors[-1] < 0.01
    assert (
        all(a >= b for a, b in zip(factors[4:-1], factors[5:], strict=True)) and lr_factor("constant", 50, 100) == 1.0
    )


def test_a_run_says_when_it_is_too_short_to_learn(capsys):
    from aekit.callbacks import Progress
    from aekit.config import TrainConfig

    model = aekit.create_model("vae", (1, 8, 8), hidden=[16], latent_dim=4, kl_warmup_steps=1000)
    trainer = aekit.Trainer(model, aekit.data.load("digits"), TrainConfig(epochs=2, batch_size=256, device="cpu"))
    notes = trainer.notes()
    assert notes[0] == (
        "only 12 optimizer steps in all (6 per epoch), too few to learn much: train 500 epochs for 3000 steps "
        "(--epochs), or for a time (--minutes) or a smaller batch (--batch-size 143)"
    )
    assert "the KL warm-up takes 1000 steps but the run has 12" in notes[1]
    Progress().on_train_start(trainer)
    assert "note: only 12 optimizer steps" in capsys.readouterr().err
    default_batch = aekit.Trainer(model, aekit.data.load("digits"), TrainConfig(epochs=2, device="cpu"))
    assert default_batch.notes()[0].endswith("for a time (--minutes)")  # no smaller batch to suggest
    assert default_batch.notes()[0].startswith("only 22 optimizer steps in all (11 per epoch)")
    timed = aekit.Trainer(model, aekit.data.load("digits"), TrainConfig(minutes=1, batch_size=256, device="cpu"))
    assert timed.notes() == []  # the time was chosen: no count of steps to judge yet
    long = aekit.Trainer(
        aekit.create_model("ae", (1, 8, 8)), aekit.data.load("digits"), TrainConfig(device="cpu", epochs=40)
    )
    assert long.notes() == []


def test_a_quiet_run_still_says_it_is_too_short(tmp_path, capsys):
    aekit.train("digits", out=tmp_path / "r", epochs=1, **SMALL)
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "note: only 23 optimizer steps in all (23 per epoch), too few to learn much: train 131 epochs for 3000 "
        "steps (--epochs), or for a time (--minutes)"
    ]


class Clock:
    """A stand-in for the time module in aekit.train: each optimizer step takes one second."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    monotonic = perf_counter


def timed_run(tmp_path, monkeypatch, name: str, resume: bool = False, **options) -> tuple:
    """A digits run whose steps take a second each on a fake clock (11 steps an epoch): the Run, and the
    learning rate after each step (the next step's)."""
    from aekit import trainer

    clock, lrs = Clock(), []
    monkeypatch.setattr(trainer, "time", clock)

    class Step(trainer.Callback):
        def on_step(self, trainer, step, loss):
            clock.now += 1.0
            lrs.append(trainer.optimizer.param_groups[0]["lr"])

    options = {"quiet": True, **options} if resume else {**SMALL, "batch_size": 143, "schedule": "cosine", **options}
    run = aekit.train("digits", out=tmp_path / name, resume=resume, callbacks=[Step()], **options)
    return run, lrs


def test_a_timed_run_stops_after_the_epoch_that_passes_its_minutes(tmp_path, monkeypatch):
    from aekit.config import lr_factor

    run, lrs = timed_run(tmp_path, monkeypatch, "r", minutes=1)
    history = run.metrics["history"]
    assert [r["time_s"] for r in history] == [11.0] * 6  # 55 s < 60 s after five epochs: the sixth passes it
    assert run.config["train"]["minutes"] == 1 and run.config["train"]["epochs"] is None
    # timed from the second step (the first is the first check's): the schedule spans the 66 steps from there
    assert lrs == pytest.approx(
        [1e-3 * lr_factor("cosine", 1, 11)] + [1e-3 * lr_factor("cosine", s, 66) for s in range(2, 67)]
    )
    with pytest.raises(AekitError, match=r"already trained 6 epochs in 1\.1 of 1 minutes; pass a larger --minutes"):
        timed_run(tmp_path, monkeypatch, "r", resume=True)
    longer, lrs = timed_run(tmp_path, monkeypatch, "r", resume=True, minutes=2)  # 66 s done: 5 epochs pass 120 s
    assert len(longer.metrics["history"]) == 11 and longer.config["train"]["minutes"] == 2
    assert lrs == pytest.approx([1e-3 * lr_factor("cosine", s, 121) for s in range(67, 122)])
    capped, _ = timed_run(tmp_path, monkeypatch, "c", minutes=1, epochs=3)  # epochs, given too, is a cap
    assert len(capped.metrics["history"]) == 3


def test_defaults_fit_the_data_and_are_written_in_the_config(tmp_path):
    from aekit.config import TrainConfig

    small = aekit.create_model("ae", (13,)).config  # a table of 13 features (scikit-learn's wine)
    assert (small.latent_dim, small.hidden) == (4, (52, 26))  # a code smaller than the row, narrower layers
    mnist = aekit.create_model("ae", (1, 28, 28)).config
    assert (mnist.latent_dim, mnist.hidden) == (32, (128, 64))  # the classic example's sizes, as before
    assert (TrainConfig().for_data(160).batch_size, TrainConfig().for_data(160).epochs) == (16, 300)
    assert (TrainConfig().for_data(60000).batch_size, TrainConfig().for_data(60000).epochs) == (256, 20)
    given = TrainConfig(epochs=3, batch_size=8, lr=0.01, schedule="cosine")
    assert given.for_data(160) == given  # given: kept
    table = np.random.default_rng(0).random((40, 6))
    np.save(tmp_path / "t.npy", table)
    run = aekit.train(tmp_path / "t.npy", out=tmp_path / "r", quiet=True, device="cpu", epochs=2)
    assert run.config["train"]["batch_size"] == 16 and run.config["train"]["epochs"] == 2
    assert (run.config["train"]["lr"], run.config["train"]["schedule"]) == (1e-3, "constant")
    assert run.config["model"]["latent_dim"] == 2 and run.config["model"]["hidden"] == [24, 12]


@pytest.mark.slow  # real subprocesses or several trainings: under make test
def test_the_held_out_part_is_called_test_and_the_old_name_val_split_still_works(tmp_path):
    from conftest import assert_clean_error, run_cli

    assert len(aekit.data.load("digits", val_split=0.5).test) == len(aekit.data.load("digits", test_split=0.5).test)
    run = aekit.train("digits", out=tmp_path / "py", epochs=1, val_split=0.5, **SMALL)
    assert run.config["data"]["test_split"] == 0.5 and "val_split" not in run.config["data"]
    assert set(run.metrics["final"]) >= {"train_loss", "test_loss"}
    again = run_cli(
        "train",
        "--data",
        "digits",
        "--val-split",
        "0.5",
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--latent-dim",
        "2",
        "--quiet",
        "--out",
        tmp_path / "cli",
    )
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["data"]["test_split"] == 0.5
    old = json.loads((tmp_path / "cli" / "config.json").read_text())
    old["data"]["val_split"] = old["data"].pop("test_split")  # a config.json written before the rename
    (tmp_path / "old.json").write_text(json.dumps(old))
    from_old = run_cli("train", "--config", tmp_path / "old.json", "--epochs", "1", "--quiet", "--out", tmp_path / "o")
    assert from_old.returncode == 0, from_old.stderr
    assert json.loads((tmp_path / "o" / "config.json").read_text())["data"]["test_split"] == 0.5
    with pytest.raises(AekitError, match="not both"):
        aekit.train("digits", out=tmp_path / "both", epochs=1, val_split=0.5, test_split=0.2, **SMALL)
    flag_wins = run_cli(
        "train",
        "--config",
        tmp_path / "old.json",
        "--test-split",
        "0.2",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        tmp_path / "f",
    )
    assert flag_wins.returncode == 0, flag_wins.stderr  # flags win over the file, under either name
    assert json.loads((tmp_path / "f" / "config.json").read_text())["data"]["test_split"] == 0.2
    assert_clean_error(run_cli("train", "--data", "digits", "--val-split", "1.5"), "test_split must be in [0, 1)")
