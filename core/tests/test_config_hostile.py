"""Configs that are wrong in ways a user does not notice: non-finite numbers (issue 13 item 6), typos
inside ``training_args`` (item 11), and files that are not configs at all (item 12)."""

from __future__ import annotations

import math
import time

import pytest
import torch

from swift_zoo import ConfigError, build_from_config, load_config


@pytest.fixture
def focal(make_loss_plugin):
    make_loss_plugin("alpha-losses", "alpha", ["focal"])


def model():
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))


# ------------------------------------------------------------------------ item 6: finite numbers only
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "nan", "inf"])
def test_max_grad_norm_must_be_finite(focal, value):
    with pytest.raises(ConfigError, match="training_args: max_grad_norm must be a finite number > 0, got") as info:
        build_from_config({"training_args": {"loss_type": "focal", "max_grad_norm": value}})
    assert info.value.key == "max_grad_norm"


def test_max_grad_norm_nan_from_a_yaml_file(focal, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("training_args:\n  loss_type: focal\n  max_grad_norm: .nan\n")
    with pytest.raises(ConfigError, match="max_grad_norm must be a finite number > 0, got nan"):
        build_from_config(path)


def test_learning_rate_must_be_finite(focal):
    with pytest.raises(ConfigError, match="training_args: learning_rate must be a finite number >= 0, got nan"):
        build_from_config({"training_args": {"optimizer_type": "sgd_like", "learning_rate": "nan"}}, model())


# ------------------------------------------------------------------------- item 11: training_args typos
@pytest.mark.parametrize(("typo", "meant"), [("loss_kwarg", "loss_kwargs"), ("optimiser_type", "optimizer_type"),
                                             ("losss_type", "loss_type"), ("max_step", "max_steps"),
                                             ("nonfinite_grad", "nonfinite_grads")])
def test_a_near_miss_of_a_known_key_is_an_error_with_did_you_mean(focal, typo, meant):
    args = {"loss_type": "focal", typo: {"scale": 2.0} if "kwarg" in typo else "x"}
    if typo == "losss_type":
        args = {"optimizer_type": "x", typo: "focal"}
    with pytest.raises(ConfigError) as info:
        build_from_config({"training_args": args}, model())
    assert str(info.value).startswith(f"training_args: unknown key {typo!r}; did you mean {meant!r}?")
    assert (info.value.key, info.value.expected) == (typo, meant)


def test_other_unknown_keys_pass_through_to_the_trainer(focal):
    built = build_from_config({"training_args": {"loss_type": "focal", "per_device_train_batch_size": 8,
                                                 "warmup_steps": 10, "save_steps": 100, "eval_steps": 50}})
    assert built.passthrough == {"per_device_train_batch_size": 8, "warmup_steps": 10, "save_steps": 100,
                                 "eval_steps": 50}


def test_trainer_keys_are_checked_for_typos_too(focal):
    with pytest.raises(ConfigError, match="unknown key 'per_device_train_batch_sze'; did you mean "
                                          "'per_device_train_batch_size'"):
        build_from_config({"training_args": {"loss_type": "focal", "per_device_train_batch_sze": 8}},
                          trainer_keys=("per_device_train_batch_size",))


@pytest.mark.usefixtures("zoo_plain_sgd")
def test_nonfinite_grads_sets_the_optimizers_policy(focal):
    args = {"optimizer_type": "zoo_plain_sgd", "nonfinite_grads": "raise"}
    assert build_from_config({"training_args": args}, model()).optimizer.nonfinite_grads == "raise"
    with pytest.raises(ConfigError, match="nonfinite_grads must be one of skip, raise, got 'ignore'"):
        build_from_config({"training_args": {**args, "nonfinite_grads": "ignore"}}, model())
    with pytest.raises(ConfigError, match="nonfinite_grads is the optimizer's non-finite gradient policy: "
                                          "it needs an optimizer_type"):
        build_from_config({"training_args": {"loss_type": "focal", "nonfinite_grads": "raise"}})


# --------------------------------------------------------------------------------- item 12: bad files
def test_a_directory_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="is a directory, not a YAML file"):
        load_config(tmp_path)


BILLION_LAUGHS = "\n".join(
    ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"{chr(ord('b') + i)}: &{chr(ord('b') + i)} [{', '.join(['*' + chr(ord('a') + i)] * 9)}]" for i in range(8)]
    + ["training_args: {loss_type: dpo, loss_kwargs: {x: *i}}"]
)
BAD_FILES = {
    "binary": (b"PK\x03\x04\x80\xff\xfe binary", r"is not UTF-8 text \(byte 4 is b'\\x80'\): is it a binary file\?"),
    "yaml syntax": (b"training_args:\n  loss_type: [dpo\n  optimizer_type: lion\n", "is not valid YAML: .*line 3"),
    # 1 KB that stands for 9^9 values: repr() of the loaded result would never finish
    "alias bomb": (BILLION_LAUGHS.encode(), "expands to more than 100000 values once its aliases"),
    "recursive alias": (b"training_args: &t {loss_type: dpo, again: *t}\n", "refers to itself through an alias"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_file_that_is_not_a_config_is_a_config_error(tmp_path, case):
    content, pattern = BAD_FILES[case]
    path = tmp_path / "run.yaml"
    path.write_bytes(content)
    assert len(content) < 1024
    with pytest.raises(ConfigError, match=pattern) as info:
        load_config(path)
    assert str(info.value).startswith(f"config file {str(path)!r}")


def test_a_file_over_the_size_limit_is_refused_before_parsing(tmp_path):
    from swift_zoo._config_file import MAX_CONFIG_BYTES

    path = tmp_path / "huge.yaml"
    path.write_text("training_args:\n  loss_type: dpo\n" + "# padding\n" * (MAX_CONFIG_BYTES // 10 + 1))
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=f"is {path.stat().st_size} bytes; a config may hold at most {MAX_CONFIG_BYTES}"):
        load_config(path)
    assert time.perf_counter() - start < 1.0


def test_a_config_with_modest_aliases_still_loads(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("common: &c {beta: 0.1}\ntraining_args: {loss_type: dpo, loss_kwargs: *c}\n")
    assert load_config(path)["training_args"]["loss_kwargs"] == {"beta": 0.1}
