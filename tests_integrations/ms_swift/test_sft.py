"""Token losses and optimizers through ``swift sft`` with ``--external_plugins $(swift-zoo ms-swift-plugin)``."""

from __future__ import annotations

import math

import pytest


@pytest.mark.parametrize(("batch", "accumulation"), [(2, 2), (1, 4)])
def test_zoo_cross_entropy_equals_builtin(tiny_run, same_steps, batch, accumulation):
    """num_items_in_batch is applied exactly once: same loss and grad_norm as ms-swift's cross_entropy."""
    builtin = tiny_run("sft", "--loss_type", "cross_entropy", batch=batch, accumulation=accumulation)
    zoo = tiny_run("sft", "--loss_type", "zoo:cross_entropy", batch=batch, accumulation=accumulation)
    same_steps(zoo, builtin)


def test_accumulation_split_does_not_change_the_loss(tiny_run, same_steps):
    """The same 4 samples per step as 2 x 2 or 1 x 4: equal only if the window count divides once."""
    same_steps(tiny_run("sft", "--loss_type", "zoo:ce", batch=1, accumulation=4),
               tiny_run("sft", "--loss_type", "zoo:ce", batch=2, accumulation=2), rel=2e-5)


def test_zoo_dft_equals_enable_dft_loss(tiny_run, same_steps):
    same_steps(tiny_run("sft", "--loss_type", "zoo:dft"), tiny_run("sft", "--enable_dft_loss", "true"))


def test_zoo_metrics_are_logged(tiny_run):
    tiny_run("sft", "--loss_type", "zoo:dft")
    logged = [log for log in tiny_run.last_logs if "loss" in log]
    assert all("zoo/mean_token_prob" in log and "zoo/nll" in log for log in logged)
    assert 0.0 < logged[0]["zoo/mean_token_prob"] < 1.0


@pytest.mark.parametrize("name", ["zoo:focal_token", "zoo:my_swift_loss:focal_token"])
def test_third_party_plugin_loss_is_usable(tiny_run, name):
    """examples/my-swift-loss, installed as a distribution, needs no step of its own."""
    pytest.importorskip("my_swift_loss", reason="the third-party example plugin is not installed")
    steps = tiny_run("sft", "--loss_type", name)
    assert steps[-1][0] < steps[0][0]


def test_kwargs_from_the_environment(tiny_run):
    """SWIFT_ZOO_LOSS_KWARGS reaches the loss: a z-loss of 0.01 adds 0.01 * logsumexp^2 (~0.35 here)."""
    plain = tiny_run("sft", "--loss_type", "zoo:cross_entropy")
    with_z_loss = tiny_run("sft", "--loss_type", "zoo:cross_entropy", env={"SWIFT_ZOO_LOSS_KWARGS": '{"z_loss": 0.01}'})
    assert with_z_loss[0][0] > plain[0][0] + 0.2


@pytest.fixture
def built_optimizers(monkeypatch):
    """The optimizers the zoo callback builds during the test."""
    from swift_zoo.integrations.ms_swift import _optimizers

    built = []
    original = _optimizers.build_optimizer
    monkeypatch.setattr(_optimizers, "build_optimizer", lambda *a, **k: built.append(original(*a, **k)) or built[-1])
    return built


def test_galore_through_optim_args_trains(tiny_run, built_optimizers):
    """--optim_args reach GaLore typed (rank 16 < 64: the hidden matrices are projected); the loss falls."""
    steps = tiny_run("sft", "--loss_type", "zoo:cross_entropy", "--optimizer", "zoo:galore_adamw",
                     "--optim_args", "rank=16,update_proj_gap=2")
    (optimizer,) = built_optimizers
    assert type(optimizer).__name__ == "GaLoreAdamW"
    assert {group.get("rank") for group in optimizer.param_groups} >= {16}
    assert steps[-1][0] < steps[0][0] - 0.05  # 5.957 -> 5.860 in 4 steps at lr 1e-3
    # ms-swift's schedule (cosine by default, no warmup) drives the zoo optimizer's groups; clipping is the Trainer's
    logged = [log["learning_rate"] for log in tiny_run.last_logs if "loss" in log]
    assert logged == pytest.approx([1e-3 * 0.5 * (1 + math.cos(math.pi * t / 4)) for t in (1, 2, 3, 4)], abs=1e-9)
    assert all(group["lr"] == pytest.approx(0.0, abs=1e-12) for group in optimizer.param_groups)


def test_schedule_free_ends_in_eval_mode(tiny_run, built_optimizers):
    """train()/eval() are wired: the run trains, and the optimizer is left in eval mode (averaged weights)."""
    steps = tiny_run("sft", "--optimizer", "zoo:schedule_free_adamw")
    assert steps[-1][0] < steps[0][0]
    (optimizer,) = built_optimizers
    assert all(not group["train_mode"] for group in optimizer.param_groups)
