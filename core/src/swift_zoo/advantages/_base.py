"""``BaseAdvantage``: the contract every swift zoo advantage estimator implements. Its docstring is the contract."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from swift_zoo._equivalence import Equivalence
from swift_zoo._errors import LossInputError
from swift_zoo.losses._inputs import TensorInput, validate_inputs

ADVANTAGE_LEVELS = ("sequence", "token")


class BaseAdvantage(torch.nn.Module):
    """An advantage estimator for policy-gradient training: ``forward(batch) -> advantages``.

    Registered like losses (hook ``swift_zoo_register_advantages``, config keys ``advantage_type`` /
    ``advantage_kwargs``, :func:`swift_zoo.build_advantage`), so outside authors publish estimators the same
    way. The advantages feed a policy loss's ``advantages`` input.

    **What a subclass declares** (class attributes):

    * ``name`` (lower snake case), ``aliases``, ``summary``, ``reference`` (paper, e.g. ``"arXiv:2402.03300"``).
    * ``inputs`` -- a tuple of :class:`~swift_zoo.TensorInput` over the keys of ``batch``, with symbolic shapes,
      validated before any arithmetic. The names the zoo uses: ``rewards [B]`` (one scalar score per
      response; ``[B, K]`` for K reward functions), ``group_ids [B]`` (int: responses to the same prompt share
      an id; the values are labels only), ``completion_mask [B, T]``, ``token_rewards [B, T]`` (per-token
      terms such as ``-beta * KL``; the score ``rewards`` sits on each response's last counted token),
      ``values [B, T]`` (a critic's), ``baseline_rewards [B]`` (e.g. ReMax's greedy response).
    * ``level`` -- ``"sequence"`` (one advantage per response, shape ``[B]``) or ``"token"`` (shape
      ``[B, T]``, zero where ``completion_mask`` is 0).
    * ``extra_outputs`` -- names of further ``[B]`` / ``[B, T]`` tensors an estimator computes on the way
      (GAE's ``"returns"`` for the value loss), recorded with :meth:`record_outputs` and read back from
      :attr:`outputs` after the call.
    * ``equivalents`` -- a tuple of :class:`~swift_zoo.Equivalence`: the names in verl, TRL, ms-swift it equals.

    **What a subclass implements**:

    * ``compute(inputs) -> Tensor`` -- the advantages from the validated inputs (float32 or wider).
    * ``example_inputs(...)`` (classmethod) -- small valid inputs for the conformance suite.

    **Invariants the conformance suite holds every estimator to**: outputs permute with the batch (the
    order of groups, and of responses inside a group, does not change any response's advantage); masked
    tokens get 0; a degenerate group (every reward equal) gives finite advantages; nothing is
    differentiable (estimators run under ``torch.no_grad`` on detached inputs).

    **Metrics**: after each call, ``metrics`` holds detached 0-dim diagnostics (e.g. reward std, the
    fraction of degenerate groups), recorded with :meth:`record_metrics`.

    The conformance suite (``swift_zoo.testing.check_advantage``, ``swift-zoo check``) holds every estimator
    to this contract.
    """

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    summary: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    inputs: ClassVar[tuple[TensorInput, ...]] = ()
    level: ClassVar[str] = "sequence"
    extra_outputs: ClassVar[tuple[str, ...]] = ()
    equivalents: ClassVar[tuple[Equivalence, ...]] = ()

    def __init__(self) -> None:
        super().__init__()
        self._metrics: dict[str, torch.Tensor] = {}
        self._outputs: dict[str, torch.Tensor] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.level not in ADVANTAGE_LEVELS:
            message = f"{cls.__name__}.level must be one of {ADVANTAGE_LEVELS}, got {cls.level!r}"
            raise TypeError(message)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        inputs = validate_inputs(self.display_name, self.inputs, batch, None)
        inputs = {key: value.detach() for key, value in inputs.items()}
        self._metrics, self._outputs = {}, {}
        with torch.no_grad():
            advantages = self.compute(inputs)
        if not isinstance(advantages, torch.Tensor):
            message = f"{self.display_name}: compute() must return a tensor, got {type(advantages).__name__}"
            raise LossInputError(message)
        return advantages

    def compute(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        message = f"{type(self).__name__} must implement compute(inputs) -> Tensor"
        raise NotImplementedError(message)

    @classmethod
    def example_inputs(cls, *, batch_size: int = 8, generator: torch.Generator | None = None,
                       device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        message = f"{cls.__name__} must implement the classmethod example_inputs(...) -> dict of tensors"
        raise NotImplementedError(message)

    @classmethod
    def example_kwargs(cls) -> dict[str, Any]:
        """Constructor kwargs for the instance the conformance suite builds from the class."""
        return {}

    def record_metrics(self, **values: torch.Tensor | float) -> None:
        """Record detached diagnostics for this call (read back through :attr:`metrics`)."""
        for key, value in values.items():
            tensor = value.detach().float() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
            self._metrics[key] = tensor.mean().reshape(()) if tensor.numel() != 1 else tensor.reshape(())

    @property
    def metrics(self) -> dict[str, torch.Tensor]:
        return dict(self._metrics)

    def record_outputs(self, **tensors: torch.Tensor) -> None:
        """Record the declared ``extra_outputs`` of this call (detached), read back through :attr:`outputs`."""
        for key, tensor in tensors.items():
            self._outputs[key] = tensor.detach()

    @property
    def outputs(self) -> dict[str, torch.Tensor]:
        """The ``extra_outputs`` of the last call (e.g. GAE's ``returns``); empty before the first."""
        return dict(self._outputs)

    @property
    def display_name(self) -> str:
        return self.name or type(self).__name__

    def hyperparameters(self) -> dict[str, Any]:
        params = inspect.signature(type(self).__init__).parameters
        return {key: getattr(self, key) for key, p in params.items()
                if key != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and hasattr(self, key)}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
