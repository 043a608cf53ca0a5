"""config.py on its own: every refusal's exact words, every limit from both sides, the defaults, the derived
options (for_data, lr_factor). Unit tests: no training, no files."""

import dataclasses
import math
import re

import pytest

from aekit import AekitError
from aekit.codec.aez import Header
from aekit.config import (
    DataConfig,
    TrainConfig,
    _coerce,
    brief,
    check_like,
    check_seed,
    field_names,
    from_dict,
    lr_factor,
    new_names,
    to_dict,
)
from aekit.data.scaling import Scaling
from conftest import refused

BIG = 2**63  # the first integer a config refuses


@dataclasses.dataclass(frozen=True)
class Options:
    needed: int
    listed: tuple[int, ...] = dataclasses.field(default_factory=tuple)
    count: int = 1
    derived: int = dataclasses.field(default=0, init=False)


# ---------------------------------------------------------------- from_dict, new_names, field_names, to_dict


def test_from_dict_builds_and_coerces():
    config = from_dict(TrainConfig, {"lr": 1, "epochs": None, "batch_size": 3}, "train")
    assert config == TrainConfig(lr=1.0, batch_size=3) and type(config.lr) is float
    assert from_dict(Options, {"needed": 2, "listed": [1, 2]}, "o") == Options(2, (1, 2))


def test_from_dict_refusals():
    refused("train: expected an object of options, got list", from_dict, TrainConfig, [1], "train")
    known = "epochs, minutes, batch_size, lr, weight_decay, schedule, grad_clip, seed, init, device, precision, compile"
    refused(f"train: unknown option 'aa', 'zz' (known: {known})", from_dict, TrainConfig, {"zz": 1, "aa": 2}, "train")
    refused("o: unknown option 'derived' (known: needed, listed, count)", from_dict, Options, {"derived": 1}, "o")
    refused("o: missing 'needed'", from_dict, Options, {"count": 2}, "o")  # not listed: it has a default factory
    refused(
        "h: missing 'model', 'model_sha256', 'run', 'items', 'item_shape', 'scaling', 'latent_dim', 'bits', 'lo', "
        "'step'",
        from_dict,
        Header,
        {},
        "h",
    )
    refused(
        "data: give test_split (or its old name val_split), not both",
        from_dict,
        DataConfig,
        {"test_split": 0.1, "val_split": 0.2},
        "data",
    )
    refused("train.lr: expected a finite number, got 'x'", from_dict, TrainConfig, {"lr": "x"}, "train")


def test_old_option_names():
    assert from_dict(DataConfig, {"val_split": 0.2}, "data").test_split == 0.2
    refused(
        "data: give test_split (or its old name val_split), not both",
        new_names,
        DataConfig,
        {"test_split": 0.1, "val_split": 0.2},
        "data",
    )
    assert new_names(DataConfig, {"val_split": 1, "source": "x"}, "d") == {"test_split": 1, "source": "x"}
    assert new_names(TrainConfig, {"lr": 1}, "t") == {"lr": 1}
    assert field_names(Options) == {"needed", "listed", "count"}
    assert field_names(DataConfig) == {f.name for f in dataclasses.fields(DataConfig)} | {"val_split"}


def test_defaults_and_to_dict():
    assert to_dict(TrainConfig()) == {
        "epochs": None,
        "minutes": None,
        "batch_size": None,
        "lr": None,
        "weight_decay": 0.0,
        "schedule": None,
        "grad_clip": None,
        "seed": 0,
        "init": None,
        "device": "auto",
        "precision": "fp32",
        "compile": False,
    }
    assert to_dict(DataConfig()) == {
        "source": "mnist",
        "test_split": None,
        "size": None,
        "label_column": None,
        "split_seed": 0,
        "classes": None,
        "crop": None,
        "color_jitter": 0.0,
    }
    assert to_dict(DataConfig(size=(2, 3), classes=("a",))) == {
        **to_dict(DataConfig()),
        "size": [2, 3],
        "classes": ["a"],
    }
    assert to_dict(Options(1, ((1, 2), (3,)))) == {"needed": 1, "listed": [[1, 2], [3]], "count": 1}

    @dataclasses.dataclass
    class Nested:
        scaling: Scaling

    assert to_dict(Nested(Scaling(0.0, 2.0))) == {"scaling": {"lo": 0.0, "hi": 2.0}}


# ---------------------------------------------------------------- _coerce: one JSON value to one field's type


@pytest.mark.parametrize(
    "value, hint, expected",
    [
        (None, int | None, None),
        (3, int | None, 3),
        (True, bool, True),
        (BIG - 1, int, BIG - 1),
        (1 - BIG, int, 1 - BIG),
        (3, float, 3.0),
        ("s", str, "s"),
        ([1, 2], tuple[int, ...], (1, 2)),
        ((1, 2), tuple[int, int], (1, 2)),
        ([[1, 2]], tuple[tuple[int, int], ...], ((1, 2),)),
        ({"lo": 0, "hi": 1}, Scaling, Scaling(0, 1)),
    ],
)
def test_coerce_accepts(value, hint, expected):
    result = _coerce(value, hint, "w")
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    "value, hint, message",
    [
        ("x", int | None, "w: expected an integer, got 'x'"),
        (1, bool, "w: expected true or false, got 1"),
        (True, int, "w: expected an integer, got True"),
        (1.0, int, "w: expected an integer, got 1.0"),
        (BIG, int, "w: 9223372036854775808 is out of range (at most 2**63 - 1)"),
        (-BIG, int, "w: -9223372036854775808 is out of range (at most 2**63 - 1)"),
        (False, float, "w: expected a finite number, got False"),
        (math.nan, float, "w: expected a finite number, got nan"),
        (-math.inf, float, "w: expected a finite number, got -inf"),
        ("1", float, "w: expected a finite number, got '1'"),
        (3, str, "w: expected a string, got 3"),
        ("ab", tuple[int, ...], "w: expected a list, got 'ab'"),
        ([1, 2, 3], tuple[int, int], "w: expected a list of 2 values, got [1, 2, 3]"),
        ([1, "a"], tuple[int, int], "w[1]: expected an integer, got 'a'"),
        ([1, 2, "a"], tuple[int, ...], "w[2]: expected an integer, got 'a'"),
        ([[1, 2], [3]], tuple[tuple[int, int], ...], "w[1]: expected a list of 2 values, got [3]"),
        (
            {"lo": 1, "hi": 0},
            Scaling,
            "w: scaling: the range from 1 to 0 is empty or reversed",
        ),
    ],
)
def test_coerce_refuses(value, hint, message):
    refused(message, _coerce, value, hint, "w")


def test_coerce_has_no_other_types():
    with pytest.raises(TypeError, match=re.escape("unsupported config type <class 'dict'> for w")):
        _coerce({}, dict, "w")


# ---------------------------------------------------------------- check_like: JSON shaped like a template


def test_check_like_accepts_the_same_shape():
    template = {"a": [1, 2.5, "s"], "b": {"c": None, "d": True}, "e": (1,)}
    check_like(template, {"a": [3.5, 4, "t"], "b": {"c": None, "d": False}, "e": [7]}, "w")


@pytest.mark.parametrize(
    "template, value, message",
    [
        ({"a": 1, "b": 2}, [1], "w: expected an object with keys ['a', 'b']"),
        ({"a": 1, "b": 2}, {"a": 1}, "w: expected an object with keys ['a', 'b']"),
        ({"a": {"b": 1}}, {"a": {"b": "x"}}, "w.a.b: expected a finite number, got 'x'"),
        ([1, 2], [1], "w: expected a list of 2 values"),
        ((1, 2), (1, 2), "w: expected a list of 2 values"),  # JSON has lists, never tuples
        ([1, [2, 3]], [1, [2, True]], "w[1][1]: expected a finite number, got True"),
        ([1], [math.inf], "w[0]: expected a finite number, got inf"),
        (True, 1, "w: expected bool, got 1"),
        (None, 0, "w: expected NoneType, got 0"),
        ("s", 1, "w: expected str, got 1"),
        (1.5, None, "w: expected a finite number, got None"),
    ],
)
def test_check_like_refuses(template, value, message):
    refused(message, check_like, template, value, "w")


def test_check_like_messages_are_cut_to_200_characters():
    template = {f"key{i:03d}": 1 for i in range(60)}
    with pytest.raises(AekitError) as e:
        check_like(template, {}, "w")
    assert len(str(e.value)) == 200 and str(e.value).startswith("w: expected an object with keys ['key000', ")
    with pytest.raises(TypeError, match="unsupported template value"):
        check_like(object(), 1, "w")


# ---------------------------------------------------------------- brief, check_seed


def test_brief():
    assert brief("abc") == "'abc'"
    assert brief("a" * 58) == repr("a" * 58)  # 60 characters: kept whole
    assert brief("a" * 59) == "'" + "a" * 56 + "..."
    assert len(brief("a" * 59)) == 60
    assert brief(2**200) == "an integer of 201 bits"
    assert brief(2**200 - 1) == repr(2**200 - 1)[:57] + "..."  # 200 bits: still written out, and cut


def test_check_seed():
    assert check_seed(0) == 0 and check_seed(BIG - 1) == BIG - 1
    for bad in (-1, BIG, True, 1.0, "1"):
        refused(f"seed must be a whole number in [0, 2**63), got {bad!r}", check_seed, bad)
    refused("split_seed must be a whole number in [0, 2**63), got -1", check_seed, -1, "split_seed")


# ---------------------------------------------------------------- TrainConfig


@pytest.mark.parametrize(
    "options",
    [
        {"precision": "bf16"},
        {"epochs": 1, "batch_size": 1},
        {"minutes": 1e-9},
        {"minutes": 10080},
        {"lr": 1e-12, "weight_decay": 0.0, "grad_clip": 1e-12},
        {"schedule": "cosine", "seed": BIG - 1},
    ],
)
def test_train_config_limits_allowed(options):
    TrainConfig(**options)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"precision": "fp16"}, "train.precision must be fp32 or bf16, got 'fp16'"),
        ({"epochs": 0}, "train.epochs must be at least 1, got 0"),
        ({"batch_size": 0}, "train.batch_size must be at least 1, got 0"),
        *(
            ({"minutes": m}, f"train.minutes must be a time in minutes above 0 and at most 10080 (a week), got {m}")
            for m in (0.0, -1.0, math.nan, math.inf, 10080.001)
        ),
        ({"lr": 0.0}, "train.lr must be positive, got 0.0"),
        ({"weight_decay": -0.5}, "train.weight_decay must be >= 0, got -0.5"),
        ({"schedule": "step"}, "train.schedule must be one of constant, cosine, got 'step'"),
        ({"grad_clip": 0.0}, "train.grad_clip must be positive, got 0.0"),
        ({"seed": -1}, "train.seed must be in [0, 2**63), got -1"),
        ({"seed": BIG}, f"train.seed must be in [0, 2**63), got {BIG}"),
    ],
)
def test_train_config_refusals(options, message):
    refused(message, TrainConfig, **options)


@pytest.mark.parametrize(
    "n_train, batch, epochs",
    [
        (60000, 256, 20),  # 235 steps an epoch: the 20 epochs at least
        (2560, 256, 300),  # 10 steps an epoch: 3000 steps
        (2570, 256, 273),  # 11 steps an epoch, rounded up
        (1000, 100, 300),  # a tenth of the items
        (100, 16, 429),  # at least 16 a batch: 7 steps an epoch
        (10, 16, 1000),  # one step an epoch: the 1000 epochs at most
    ],
)
def test_options_left_to_the_data(n_train, batch, epochs):
    config = TrainConfig(lr=0.5).for_data(n_train)
    assert (config.batch_size, config.epochs, config.lr) == (batch, epochs, 0.5)
    assert type(config.batch_size) is int and type(config.epochs) is int
    given = TrainConfig(epochs=3, batch_size=7, lr=0.1, schedule="constant")
    assert given.for_data(n_train, {"batch_size": 16, "lr": 2e-3, "schedule": "cosine"}) == given  # given: kept
    preferred = TrainConfig().for_data(n_train, {"batch_size": 16, "lr": 2e-3, "schedule": "cosine"})  # the model's
    assert (preferred.batch_size, preferred.lr, preferred.schedule) == (16, 2e-3, "cosine")
    assert (TrainConfig().for_data(n_train).lr, TrainConfig().for_data(n_train).schedule) == (1e-3, "constant")
    adapted = TrainConfig(init="photo-denoiser").for_data(n_train, {"lr": 2e-3})  # trained weights: smaller steps
    assert adapted.lr == pytest.approx(2e-4) and TrainConfig(init="r", lr=0.1).for_data(n_train).lr == 0.1
    timed = TrainConfig(minutes=2).for_data(n_train)  # a timed run: as many epochs as the minutes allow
    assert (timed.batch_size, timed.epochs, timed.minutes) == (batch, None, 2)


@pytest.mark.parametrize(
    "schedule, step, total, factor",
    [
        ("constant", 0, 100, 1.0),
        ("constant", 99, 100, 1.0),
        ("cosine", 0, 100, 0.2),  # warm-up over the first 5 of 100 steps
        ("cosine", 3, 100, 0.8),
        ("cosine", 4, 100, 1.0),
        ("cosine", 5, 100, 1.0),  # the decay starts
        ("cosine", 30, 105, 0.5 * (1 + math.cos(math.pi / 4))),
        ("cosine", 55, 105, 0.5),  # half way through the decay
        ("cosine", 105, 105, 0.0),
        ("cosine", 200, 105, 0.0),  # past the end: stays at 0
        ("cosine", 0, 40, 0.5),  # a 2-step warm-up
        ("cosine", 0, 10, 1.0),  # fewer than 20 steps: a 1-step warm-up
        ("cosine", 2, 2, 0.0),
        ("cosine", 1, 1, 1.0),
    ],
)
def test_lr_factor(schedule, step, total, factor):
    assert lr_factor(schedule, step, total) == pytest.approx(factor, abs=1e-12)


# ---------------------------------------------------------------- DataConfig


@pytest.mark.parametrize(
    "options",
    [
        {"test_split": 0.0},
        {"test_split": 0.999},
        {"size": (1, 1), "crop": (1, 1), "color_jitter": 1.0},
        {"split_seed": BIG - 1, "classes": ("a",)},
    ],
)
def test_data_config_limits_allowed(options):
    DataConfig(**options)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"source": ""}, "data.source must name a dataset or a path"),
        ({"test_split": -0.1}, "data.test_split must be in [0, 1), got -0.1"),
        ({"test_split": 1.0}, "data.test_split must be in [0, 1), got 1.0"),
        ({"size": (0, 3)}, "data.size must be two positive integers HEIGHT,WIDTH, got [0, 3]"),
        ({"size": (3, 0)}, "data.size must be two positive integers HEIGHT,WIDTH, got [3, 0]"),
        ({"size": (3,)}, "data.size must be two positive integers HEIGHT,WIDTH, got [3]"),
        ({"crop": (2, 3, 4)}, "data.crop must be two positive integers HEIGHT,WIDTH, got [2, 3, 4]"),
        ({"crop": ()}, "data.crop must be two positive integers HEIGHT,WIDTH, got []"),
        ({"split_seed": -1}, "data.split_seed must be in [0, 2**63), got -1"),
        ({"split_seed": BIG}, f"data.split_seed must be in [0, 2**63), got {BIG}"),
        ({"classes": ()}, "data.classes must name at least one label"),
        ({"color_jitter": -0.1, "crop": (2, 2)}, "data.color_jitter must be in [0, 1], got -0.1"),
        ({"color_jitter": 1.5, "crop": (2, 2)}, "data.color_jitter must be in [0, 1], got 1.5"),
        ({"color_jitter": 0.5}, "data.color_jitter applies to training on crops (data.crop)"),
    ],
)
def test_data_config_refusals(options, message):
    refused(message, DataConfig, **options)
