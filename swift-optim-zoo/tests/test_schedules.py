"""LR schedules: values at key steps, registry and config building, validation messages."""

from __future__ import annotations

import io
import math

import pytest
import torch

import swift_zoo


def _lrs(name: str, steps: int, **kwargs) -> list[float]:
    """The lr used by each of the first ``steps`` optimizer updates (base lr 1.0)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = swift_zoo.build_scheduler(name, opt, **kwargs)
    seen = []
    for _ in range(steps):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return seen


def test_constant_with_warmup() -> None:
    lrs = _lrs("constant_with_warmup", 8, num_training_steps=8, warmup_steps=4)
    assert lrs == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0])
    assert _lrs("constant_with_warmup", 3, num_training_steps=3) == [1.0, 1.0, 1.0]


def test_linear() -> None:
    lrs = _lrs("linear", 12, num_training_steps=10, warmup_steps=2)
    assert lrs[:3] == pytest.approx([0.0, 0.5, 1.0])
    assert lrs[6] == pytest.approx(1 - 4 / 8)
    assert lrs[10:] == pytest.approx([0.0, 0.0])
    floor = _lrs("linear", 11, num_training_steps=10, min_lr_ratio=0.2)
    assert floor[5] == pytest.approx(0.2 + 0.8 * 0.5) and floor[10] == pytest.approx(0.2)


def test_cosine_with_min_lr_ratio() -> None:
    lrs = _lrs("cosine", 12, num_training_steps=10, warmup_steps=2, min_lr_ratio=0.1)
    assert lrs[:3] == pytest.approx([0.0, 0.5, 1.0])
    progress = (5 - 2) / 8
    assert lrs[5] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
    assert lrs[6] == pytest.approx(0.55)  # half-way through the decay
    assert lrs[10] == pytest.approx(0.1) and lrs[11] == pytest.approx(0.1)


@pytest.mark.parametrize(("shape", "mid"), [("linear", 0.5), ("cosine", 0.5), ("1-sqrt", 1 - math.sqrt(0.5))])
def test_wsd_shapes(shape: str, mid: float) -> None:
    lrs = _lrs("wsd", 21, num_training_steps=20, warmup_steps=2, decay_ratio=0.2, decay_shape=shape)
    assert lrs[:3] == pytest.approx([0.0, 0.5, 1.0])
    assert lrs[3:17] == pytest.approx([1.0] * 14)  # stable until the decay starts at 20 - 4 = 16
    assert lrs[18] == pytest.approx(mid)  # half-way: (18 - 16) / 4
    assert lrs[20] == pytest.approx(0.0)
    assert _lrs("wsd", 21, num_training_steps=20, decay_ratio=0.2, min_lr_ratio=0.1)[20] == pytest.approx(0.1)


def test_wsd_decay_must_fit_after_warmup() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(swift_zoo.ConfigError, match=r"'decay_ratio' must be at most .* = 0\.5, got 0\.8"):
        swift_zoo.build_scheduler("wsd", opt, num_training_steps=10, warmup_steps=5, decay_ratio=0.8)


def test_validation_messages_name_expected_and_found() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(swift_zoo.ConfigError, match=r"scheduler 'cosine': warmup_steps must be an integer in "
                                                     r"\[0, 10\], got 20"):
        swift_zoo.build_scheduler("cosine", opt, num_training_steps=10, warmup_steps=20)
    with pytest.raises(swift_zoo.ConfigError, match=r"num_training_steps must be an integer in \[1, 1000000000000\], got 0"):
        swift_zoo.build_scheduler("linear", opt, num_training_steps=0)
    with pytest.raises(swift_zoo.ConfigError, match="missing required kwarg"):
        swift_zoo.build_scheduler("cosine", opt)


def test_build_from_config_reads_lr_scheduler_type_and_max_steps() -> None:
    model = torch.nn.Linear(3, 2)
    config = {"training_args": {"optimizer_type": "lion", "learning_rate": "1e-3", "lr_scheduler_type": "wsd",
                                "lr_scheduler_kwargs": {"warmup_steps": "2", "decay_shape": "1-sqrt"},
                                "max_steps": 10}}
    built = swift_zoo.build_from_config(config, model=model)
    assert built.optimizer.param_groups[0]["lr"] == 0.0  # warmup starts at 0
    for _ in range(2):
        built.optimizer.step()
        built.lr_scheduler.step()
    assert built.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    assert built.lr_scheduler.lr_lambdas[0].keywords["num_training_steps"] == 10


def test_scheduler_state_dict_is_weights_only_loadable() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = swift_zoo.build_scheduler("cosine", opt, num_training_steps=10, warmup_steps=2)
    for _ in range(3):
        opt.step()
        scheduler.step()
    buffer = io.BytesIO()
    torch.save(scheduler.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler2 = swift_zoo.build_scheduler("cosine", opt2, num_training_steps=10, warmup_steps=2)
    scheduler2.load_state_dict(state)
    opt2.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    opt.step()
    opt2.step()
    scheduler.step()
    scheduler2.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])
