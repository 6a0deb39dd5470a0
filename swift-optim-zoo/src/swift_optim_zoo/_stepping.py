"""The parameter loop the zoo's optimizers share: each parameter with a gradient, its state created on first sight,
its step counted."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch


def stepped_params(optimizer: Any, group: Mapping[str, Any],
                   new_state: Callable[[torch.Tensor], dict[str, Any]]) -> Iterator[tuple[torch.Tensor, dict[str, Any]]]:
    """``(param, state)`` for every parameter of ``group`` that has a gradient. A sparse gradient is refused; an
    empty state is filled by ``new_state(param)``; ``state["step"]`` (a plain int) counts this step."""
    for param in group["params"]:
        if param.grad is None:
            continue
        if param.grad.is_sparse:
            message = f"{optimizer._owner}: sparse gradients are not supported"
            raise RuntimeError(message)
        state = optimizer.state[param]
        if not state:
            state.update(new_state(param))
            state.setdefault("step", 0)
        state["step"] += 1
        yield param, state
