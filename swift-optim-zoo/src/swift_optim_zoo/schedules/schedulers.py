"""Schedule factories: ``(optimizer, *, num_training_steps, warmup_steps=0, ...) -> LambdaLR``.

Each validates its arguments (``swift_zoo.ConfigError`` naming the schedule, the key, what was
expected and what came) and returns a ``torch.optim.lr_scheduler.LambdaLR`` over a
``functools.partial`` of a pure factor function (:mod:`swift_optim_zoo.schedules.factors`), so
the scheduler's ``state_dict()`` stays plain. One ``scheduler.step()`` per optimizer update.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from torch.optim.lr_scheduler import LambdaLR

from swift_optim_zoo.schedules.factors import (
    constant_with_warmup_factor,
    cosine_factor,
    linear_factor,
    wsd_factor,
)
from swift_zoo import ConfigError
from swift_zoo.optim import require_choice, require_in_range, require_int, require_positive


def _require(schedule: str, ok: bool, key: str, expected: str, found: Any) -> None:
    if not ok:
        message = f"scheduler {schedule!r}: {key!r} must be {expected}, got {found!r}"
        raise ConfigError(message, key=key, expected=expected, found=found)


def _check_steps(schedule: str, num_training_steps: int, warmup_steps: int) -> None:
    owner = f"scheduler {schedule!r}"
    require_int(owner, "num_training_steps", num_training_steps, low=1, high=10**12)
    require_int(owner, "warmup_steps", warmup_steps, low=0, high=num_training_steps)


def _check_ratio(schedule: str, min_lr_ratio: float) -> None:
    require_in_range(f"scheduler {schedule!r}", "min_lr_ratio", min_lr_ratio, 0.0, 1.0)


def constant_with_warmup_schedule(optimizer: Any, *, num_training_steps: int, warmup_steps: int = 0,
                                  last_epoch: int = -1) -> LambdaLR:
    """Linear warmup from 0 over ``warmup_steps``, then the base lr (``num_training_steps`` only validated).

    .. code-block:: yaml

        training_args: {lr_scheduler_type: constant_with_warmup, lr_scheduler_kwargs: {warmup_steps: 100}}
    """
    _check_steps("constant_with_warmup", num_training_steps, warmup_steps)
    factor = functools.partial(constant_with_warmup_factor, warmup_steps=warmup_steps)
    return LambdaLR(optimizer, factor, last_epoch=last_epoch)


def linear_schedule(optimizer: Any, *, num_training_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.0,
                    last_epoch: int = -1) -> LambdaLR:
    """Linear warmup, then linear decay to ``min_lr_ratio * lr`` at ``num_training_steps`` (HF ``linear`` at 0).

    .. code-block:: yaml

        training_args: {lr_scheduler_type: linear, max_steps: 1000, lr_scheduler_kwargs: {warmup_steps: 100}}
    """
    _check_steps("linear", num_training_steps, warmup_steps)
    _check_ratio("linear", min_lr_ratio)
    factor = functools.partial(linear_factor, num_training_steps=num_training_steps, warmup_steps=warmup_steps,
                               min_lr_ratio=min_lr_ratio)
    return LambdaLR(optimizer, factor, last_epoch=last_epoch)


def cosine_schedule(optimizer: Any, *, num_training_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.0,
                    num_cycles: float = 0.5, last_epoch: int = -1) -> LambdaLR:
    """Linear warmup, then cosine decay from lr to ``min_lr_ratio * lr`` at ``num_training_steps``.

    .. code-block:: yaml

        training_args:
          lr_scheduler_type: cosine
          max_steps: 1000
          lr_scheduler_kwargs: {warmup_steps: 100, min_lr_ratio: 0.1}
    """
    _check_steps("cosine", num_training_steps, warmup_steps)
    _check_ratio("cosine", min_lr_ratio)
    require_positive("scheduler 'cosine'", "num_cycles", num_cycles)
    factor = functools.partial(cosine_factor, num_training_steps=num_training_steps, warmup_steps=warmup_steps,
                               min_lr_ratio=min_lr_ratio, num_cycles=num_cycles)
    return LambdaLR(optimizer, factor, last_epoch=last_epoch)


def wsd_schedule(optimizer: Any, *, num_training_steps: int, warmup_steps: int = 0, decay_ratio: float = 0.1,
                 decay_shape: Literal["linear", "cosine", "1-sqrt"] = "1-sqrt", min_lr_ratio: float = 0.0,
                 last_epoch: int = -1) -> LambdaLR:
    """Warmup-stable-decay: warmup, constant lr, then the last ``round(decay_ratio * N)`` steps decay.

    ``decay_shape``: ``1-sqrt`` (default; Hägele et al., arXiv:2405.18392, found it best),
    ``linear`` or ``cosine``; the decay ends at ``min_lr_ratio * lr``. The decay phase must fit
    after the warmup.

    .. code-block:: yaml

        training_args:
          lr_scheduler_type: wsd
          max_steps: 10000
          lr_scheduler_kwargs: {warmup_steps: 500, decay_ratio: 0.2, decay_shape: 1-sqrt}
    """
    _check_steps("wsd", num_training_steps, warmup_steps)
    _check_ratio("wsd", min_lr_ratio)
    require_in_range("scheduler 'wsd'", "decay_ratio", decay_ratio, 0.0, 1.0)
    require_choice("scheduler 'wsd'", "decay_shape", decay_shape, ("linear", "cosine", "1-sqrt"))
    decay_steps = round(decay_ratio * num_training_steps)
    _require("wsd", warmup_steps + decay_steps <= num_training_steps, "decay_ratio",
             f"at most (num_training_steps - warmup_steps) / num_training_steps = "
             f"{(num_training_steps - warmup_steps) / num_training_steps:.4g}", decay_ratio)
    factor = functools.partial(wsd_factor, num_training_steps=num_training_steps, warmup_steps=warmup_steps,
                               decay_steps=decay_steps, min_lr_ratio=min_lr_ratio, decay_shape=decay_shape)
    return LambdaLR(optimizer, factor, last_epoch=last_epoch)
