"""Every optimizer refuses non-finite hyperparameters and unbounded work knobs before touching a parameter.

Driven by the registry and each constructor's signature, so a new optimizer or a new numeric kwarg is covered
without listing it here: NaN, +inf and -inf in every float (or float pair) kwarg raise ``ConfigError`` naming the
key. Before this test, NaN or infinite ``lr``/``eps``/``betas``/``weight_decay``/``scale`` built optimizers whose
first step turned every weight into NaN.
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch

import swift_zoo
from swift_zoo import ConfigError
from swift_zoo.testing._models import tiny_lm

BAD = (math.nan, math.inf, -math.inf)


def _zoo_optimizers() -> list[str]:
    return sorted(e.name for e in swift_zoo.list_optimizers() if e.distribution == "swift-optim-zoo")


def _numeric_kwargs(name: str) -> list[tuple[str, object]]:
    cls = swift_zoo.get_optimizer(name)
    found = []
    for key, parameter in list(inspect.signature(cls.__init__).parameters.items())[2:]:
        default = parameter.default
        if isinstance(default, float) or key == "lr":
            found.append((key, default))
        elif isinstance(default, tuple) and default and all(isinstance(v, float) for v in default):
            found.append((key, default))
    return found


CASES = [(name, key, default) for name in _zoo_optimizers() for key, default in _numeric_kwargs(name)]


def _model() -> torch.nn.Module:
    return tiny_lm(0)


@pytest.mark.parametrize("bad", BAD, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize(("name", "key", "default"), CASES, ids=[f"{n}-{k}" for n, k, _ in CASES])
def test_a_non_finite_hyperparameter_is_refused_naming_the_key(name, key, default, bad):
    value = tuple(bad if i == 0 else v for i, v in enumerate(default)) if isinstance(default, tuple) else bad
    extra = {"relative_step": False} if (name == "adafactor" and key == "lr") else {}
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ConfigError) as info:
        swift_zoo.build_optimizer(name, model, **{key: value}, **extra)
    assert key in str(info.value), str(info.value)
    assert info.value.key is not None and info.value.key.startswith(key)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_every_zoo_optimizer_has_a_case():
    assert {name for name, _, _ in CASES} == set(_zoo_optimizers())


@pytest.mark.parametrize(("name", "kwargs", "key"), [
    ("galore_adamw", {"power_iterations": 10**12}, "power_iterations"),
    ("galore_adamw", {"rank": 10**12}, "rank"),
    ("q_galore_adamw", {"proj_group_size": 10**12}, "proj_group_size"),
    ("apollo_adamw", {"update_proj_gap": 10**12}, "update_proj_gap"),
    ("muon", {"ns_steps": 10**9}, "ns_steps"),
    ("soap", {"max_precond_dim": 10**12}, "max_precond_dim"),
    ("schedule_free_adamw", {"weight_lr_power": 1e6}, "weight_lr_power"),
])
def test_knobs_that_size_work_or_memory_are_bounded(name, kwargs, key):
    with pytest.raises(ConfigError, match=f"{key} must be") as info:
        swift_zoo.build_optimizer(name, _model(), **kwargs)
    assert info.value.key == key
