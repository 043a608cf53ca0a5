"""Every CLI verb through a real subprocess, and the bad inputs a user will try."""

import json

import numpy as np
import pytest
import torch

import aekit
from conftest import assert_clean_error, fake_mnist_files, run_cli


def test_models_and_help():
    result = run_cli("models")
    assert result.returncode == 0 and result.stdout.startswith("types (aekit train --model TYPE):\n  ae     ")
    assert "shipped, trained" in result.stdout and "  photo-denoiser  removes Gaussian noise" in result.stdout
    assert run_cli("--version").stdout.startswith("aekit ")
    assert "--latent-dim" in run_cli("train", "--help").stdout


def test_data_list_and_info():
    listed = run_cli("data", "list")
    assert listed.returncode == 0 and "mnist    missing" in listed.stdout and "digits   bundled" in listed.stdout
    info = json.loads(run_cli("data", "info", "digits").stdout)
    assert info["item_shape"] == [1, 8, 8] and info["train"] == 1438


def test_data_fetch_refuses_files_that_fail_verification(tmp_path):
    fake_mnist_files(tmp_path / "src", 10, 5)
    result = run_cli("data", "fetch", "mnist", "--from", tmp_path / "src", "--data-dir", tmp_path / "d")
    assert_clean_error(result, "SHA-256")
    assert not (tmp_path / "d" / "mnist").exists()
    assert_clean_error(run_cli("data", "fetch", "cifar"), "unknown dataset 'cifar'", "mnist, digits")
    assert_clean_error(run_cli("data", "fetch", "digits"), "nothing to fetch")


@pytest.mark.slow
@pytest.mark.figures
def test_train_evaluate_reconstruct(tmp_path):
    out = tmp_path / "run"
    result = run_cli(
        "train",
        "--data",
        "digits",
        "--out",
        out,
        "--epochs",
        "2",
        "--hidden",
        "32",
        "--latent-dim",
        "8",
        "--batch-size",
        "128",
    )
    assert result.returncode == 0, result.stderr
    assert "epoch 2/2" in result.stderr and f"run folder: {out}" in result.stdout
    assert (out / "model.safetensors").exists() and (out / "loss_curve.png").exists()

    evaluation = run_cli("evaluate", out)
    assert evaluation.returncode == 0, evaluation.stderr
    report = json.loads(evaluation.stdout)
    assert set(report["baselines"]) == {"pca_8", "mean"} and report["items"] == 359
    assert json.loads((out / "metrics.json").read_text())["evaluation"] == report

    fig = tmp_path / "fig.png"
    shown = run_cli("reconstruct", out, "-o", fig, "-n", "5")
    assert shown.returncode == 0 and fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    resumed = run_cli("train", "--resume", out, "--epochs", "3", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert len(json.loads((out / "metrics.json").read_text())["history"]) == 3


def test_train_reads_the_json_it_writes(tmp_path, digits_run_dir):
    out = tmp_path / "again"
    result = run_cli("train", "--config", digits_run_dir / "config.json", "--epochs", "1", "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "config.json").read_text())
    original = json.loads((digits_run_dir / "config.json").read_text())
    assert config["model"] == original["model"] and config["train"]["epochs"] == 1


@pytest.mark.slow
@pytest.mark.figures
def test_train_a_conv_vae(tmp_path):
    result = run_cli(
        "train",
        "--data",
        "digits",
        "--model",
        "vae",
        "--backbone",
        "conv",
        "--hidden",
        "8,16",
        "--latent-dim",
        "4",
        "--epochs",
        "1",
        "--out",
        tmp_path / "v",
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "v" / "config.json").read_text())["model"]
    assert config["name"] == "vae" and config["backbone"] == "conv" and (tmp_path / "v" / "samples.png").exists()
    report = json.loads(run_cli("evaluate", tmp_path / "v", "--nll-k", "5").stdout)["model"]
    assert {"nll", "active_units", "elbo", "kl"} <= set(report)


def test_train_on_user_arrays(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).integers(0, 256, (40, 3, 6, 6), dtype=np.uint8))
    result = run_cli("train", "--data", tmp_path / "x.npy", "--out", tmp_path / "r", "--epochs", "1", "--quiet")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "r" / "config.json").read_text())["model"]["input_shape"] == [3, 6, 6]
    assert result.stderr.splitlines() == [  # --quiet: no progress output, but a run too short to learn says so
        "note: only 3 optimizer steps in all (3 per epoch), too few to learn much: train 1000 epochs for 3000 steps "
        "(--epochs), or for a time (--minutes)"
    ]


TRAIN = ["train", "--out", "TMP/run", "--quiet", "--epochs", "1"]
BAD_INPUTS = {  # name: (CLI args, fragments the one-line error must contain); TMP and RUN are filled in
    "mnist missing": ([*TRAIN, "--data", "mnist"], ["aekit data fetch mnist"]),
    "corrupt npz": ([*TRAIN, "--data", "TMP/corrupt.npz"], ["corrupt.npz", "not a readable"]),
    "nan in array": ([*TRAIN, "--data", "TMP/nan.npy"], ["NaN"]),
    "non-numeric csv": ([*TRAIN, "--data", "TMP/words.csv"], ["not numeric"]),
    "absurd idx header": ([*TRAIN, "--data", "TMP/idx-ubyte"], ["load limit"]),
    "corrupt image": ([*TRAIN, "--data", "TMP/imgs"], ["a.png", "not a readable image"]),
    "unknown model": (
        [*TRAIN, "--data", "digits", "--model", "gan"],
        ["invalid choice: 'gan'", "choose from 'ae', 'dae', 'sae', 'vae'"],
    ),
    "latent_dim 0": ([*TRAIN, "--data", "digits", "--latent-dim", "0"], ["latent_dim"]),
    "batch size 0": ([*TRAIN, "--data", "digits", "--batch-size", "0"], ["batch_size"]),
    "negative lr": ([*TRAIN, "--data", "digits", "--lr", "-1"], ["lr must be positive"]),
    "hidden not integers": ([*TRAIN, "--data", "digits", "--hidden", "128,abc"], ["--hidden", "integers"]),
    "epochs not a number": ([*TRAIN, "--data", "digits", "--epochs", "many"], ["--epochs"]),
    **{
        f"minutes {value}": ([*TRAIN, "--data", "digits", "--minutes", value], ["train.minutes must be", "a week"])
        for value in ("0", "-5", "1e9")
    },
    **{
        f"minutes {value}": (
            [*TRAIN, "--data", "digits", "--minutes", value],
            [f"minutes: expected a finite number, got {value}"],
        )
        for value in ("nan", "inf")
    },
    "minutes not a number": ([*TRAIN, "--data", "digits", "--minutes", "soon"], ["--minutes"]),
    "missing file": ([*TRAIN, "--data", "TMP/nothing.npy"], ["unknown dataset"]),
    "config not json": ([*TRAIN, "--config", "TMP/nan.npy"], ["not valid JSON"]),
    "config section not an object": ([*TRAIN, "--config", "TMP/bad.json"], ["'model' section must be an object"]),
    "resume with other data": (["train", "--resume", "RUN", "--data", "digits"], ["drop INPUT"]),
    "unknown noise type": ([*TRAIN, "--data", "digits", "--model", "dae", "--noise", "gaussian,pink"], ["noise"]),
    "rho outside (0, 1)": ([*TRAIN, "--data", "digits", "--model", "sae", "--rho", "1.5"], ["rho must be in (0, 1)"]),
    "k over latent_dim": (
        [*TRAIN, "--data", "digits", "--model", "sae", "--sparsity", "topk", "--k", "40"],
        ["k (40) must not exceed latent_dim (21)"],
    ),
    "negative beta": ([*TRAIN, "--data", "digits", "--model", "vae", "--beta", "-1"], ["beta must be >= 0"]),
    "option of another type": ([*TRAIN, "--data", "digits", "--model", "ae", "--beta", "2"], ["unknown option 'beta'"]),
    "conv on a table": ([*TRAIN, "--data", "TMP/words2.csv", "--backbone", "conv"], ["conv backbone needs images"]),
    "unknown class": ([*TRAIN, "--data", "digits", "--classes", "seven"], ["'seven' is not a label of digits"]),
    "classes of unlabeled data": ([*TRAIN, "--data", "TMP/unlabeled.npy", "--classes", "1"], ["has no labels"]),
    "unknown schedule": ([*TRAIN, "--data", "digits", "--schedule", "step"], ["schedule must be one of"]),
    "nll of a non-vae": (["evaluate", "RUN", "--nll-k", "10"], ["only vae does"]),
    "unknown run": (["evaluate", "TMP/no-run"], ["no such run folder"]),
    "shape does not fit": (["evaluate", "RUN", "--data", "TMP/wrong.npy"], ["expects [1, 8, 8]"]),
    "figure not png": (["reconstruct", "RUN", "-o", "TMP/fig.jpg"], ["PNG"]),
    "compress 13 bits": (["compress", "RUN", "digits", "-o", "TMP/x.aez", "--bits", "13"], ["between 1 and 12"]),
    "decompress not an aez": (["decompress", "TMP/nan.npy", "-o", "TMP/x.npz"], ["not an .aez file"]),
    "decompress corrupt aez": (["decompress", "TMP/corrupt.aez", "-o", "TMP/x.npz"], ["corrupt"]),
    "decompress missing file": (["decompress", "TMP/none.aez", "-o", "TMP/x.npz"], ["cannot read"]),
    "features csv output": (["features", "RUN", "digits", "-o", "TMP/f.csv"], [".npy or .npz"]),
    "denoise unknown noise": (["denoise", "RUN", "digits", "--add-noise", "pink", "-o", "TMP/d.npz"], ["'pink'"]),
    "generate unknown run": (["generate", "TMP/no-run", "-o", "TMP/g.png"], ["no such run folder"]),
    "generate manifold of 8-d codes": (["generate", "RUN", "--manifold", "-o", "TMP/m.png"], ["latent_dim 2"]),
    "generate temperature 0": (["generate", "RUN", "--temperature", "0", "-o", "TMP/g.png"], ["temperature"]),
    "anomaly contamination 2": (["anomaly", "RUN", "digits", "--contamination", "2"], ["contamination"]),
    "anomaly normal without labels": (["anomaly", "RUN", "TMP/unlabeled.npy", "--normal", "1"], ["no labels"]),
}

VERB_OUTPUTS = {"compress": "x.aez", "features": "f.npy", "denoise": "d.npz", "anomaly": "s.csv", "latent": "m.png"}
for verb, output in VERB_OUTPUTS.items():  # every verb that reads data, on the inputs a user gets wrong
    use = ["-o", f"TMP/{output}"]
    BAD_INPUTS[f"{verb}: wrong shape"] = ([verb, "RUN", "TMP/wrong.npy", *use], ["expects [1, 8, 8]"])
    BAD_INPUTS[f"{verb}: wrong file type"] = ([verb, "RUN", "TMP/notes.txt", *use], ["unsupported file type"])
    BAD_INPUTS[f"{verb}: empty input"] = ([verb, "RUN", "TMP/empty.npy", *use], ["no items"])
    BAD_INPUTS[f"{verb}: unknown run"] = ([verb, "TMP/no-run", "digits", *use], ["no such run folder"])


def make_bad_files(tmp):
    (tmp / "corrupt.npz").write_bytes(b"PK\x03\x04 this is not a zip")
    np.save(tmp / "nan.npy", np.array([[0.0, np.nan], [1.0, 2.0]]))
    (tmp / "words.csv").write_text("a,b\n1,x\n")
    (tmp / "idx-ubyte").write_bytes(bytes([0, 0, 8, 3]) + (0xFFFFFFFF).to_bytes(4, "big") * 3)
    (tmp / "imgs").mkdir()
    (tmp / "imgs" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    np.save(tmp / "wrong.npy", np.zeros((5, 28, 28), np.uint8))
    (tmp / "bad.json").write_text('{"model": [1, 2]}')
    (tmp / "words2.csv").write_text("a,b\n1,2\n3,4\n")
    np.save(tmp / "empty.npy", np.zeros((0, 8, 8), np.uint8))
    np.save(tmp / "unlabeled.npy", np.zeros((5, 8, 8), np.uint8))
    (tmp / "notes.txt").write_text("not data")
    (tmp / "corrupt.aez").write_bytes(b"AEKZ\x01" + bytes(range(40)))


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(tmp_path, name, digits_run_dir):
    make_bad_files(tmp_path)
    args, fragments = BAD_INPUTS[name]
    args = [str(digits_run_dir) if a == "RUN" else a.replace("TMP", str(tmp_path)) for a in args]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert_clean_error(run_cli(*args), *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no run folder, no figure


def test_the_evaluated_model_is_the_saved_model(digits_run_dir):
    report = json.loads(run_cli("evaluate", digits_run_dir, "--no-save").stdout)
    import aekit

    x = aekit.data.load("digits").test.floats()
    mse = float(((aekit.load(digits_run_dir).reconstruct(x) - x) ** 2).mean())
    assert report["model"]["mse"] == pytest.approx(mse, rel=1e-5)
    assert torch.isfinite(torch.tensor(mse))


def test_evaluate_scores_the_same_items_however_the_data_is_spelled(tmp_path, monkeypatch, capsys):
    from aekit.cli import main

    (tmp_path / "data").mkdir()
    np.savetxt(tmp_path / "data" / "t.csv", np.random.default_rng(0).random((50, 4)), delimiter=",", fmt="%.5f")
    monkeypatch.chdir(tmp_path)
    run = aekit.train("data/t.csv", "ae", out="r", epochs=2, hidden=[8], latent_dim=2, quiet=True, device="cpu")
    spellings = ["data/t.csv", "./data/t.csv", str(tmp_path / "data" / "t.csv")]
    reports = [aekit.evaluate(run.path, spelled, save=False) for spelled in spellings]
    assert [(r["items"], r["split"]) for r in reports] == [(50, "all")] * 3
    assert reports[0]["model"] == reports[1]["model"] == reports[2]["model"]
    held_out = aekit.evaluate(run.path, save=False)  # no INPUT: the part the run held out
    assert (held_out["items"], held_out["split"]) == (5, "test")
    assert aekit.evaluate(run.path, "./data/t.csv", split="test", save=False)["model"] == held_out["model"]
    # The CLI: a positional INPUT or --data, and --split, the same on every verb
    for args in (["./data/t.csv"], ["--data", "data/t.csv"]):
        assert main(["evaluate", "r", *args, "--no-save"]) == 0
        assert json.loads(capsys.readouterr().out)["items"] == 50
    assert main(["evaluate", "r", "--split", "train", "--no-save"]) == 0
    assert json.loads(capsys.readouterr().out)["items"] == 45
    assert main(["evaluate", "r", "data/t.csv", "--data", "data/t.csv"]) == 2
    for out, args in (("r2", ["data/t.csv"]), ("r3", ["--data", "data/t.csv"])):  # train takes its INPUT alike
        assert (
            main(["train", *args, "--epochs", "1", "--hidden", "8", "--latent-dim", "2", "--quiet", "--out", out]) == 0
        )
        assert aekit.Run.open(out).config["data"]["source"] == "data/t.csv"


def test_evaluate_a_builtin_run_on_its_own_dataset_by_name_scores_all_of_it(digits_run_dir):
    report = aekit.evaluate(digits_run_dir, "digits", save=False)
    assert (report["items"], report["split"]) == (1797, "all")
    assert aekit.evaluate(digits_run_dir, save=False)["items"] == 359
