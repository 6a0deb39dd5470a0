"""The named conformance checks for advantage estimators (:class:`swift_zoo.advantages.BaseAdvantage`).

Each check is a plain function ``check_x(estimator) -> str`` taking an instance, a ``BaseAdvantage``
subclass (built with its ``example_kwargs()``) or a registered name, as the loss checks do. Inputs come
from the class's own ``example_inputs``, seeded. What the checks hold an estimator to (the contract's
invariants): the declared level's shape, finite values that carry no gradient, the same output for the
same inputs, inputs left alone, masked positions without influence (and 0 on a token-level output),
outputs that permute with the batch whatever the order and the labels of the groups, finite values at
degenerate groups (every reward equal; every response alone; one group for all), the declared extra
outputs, and finite outputs from half-precision inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from swift_zoo._errors import ConformanceError
from swift_zoo.advantages import ADVANTAGE_LEVELS, BaseAdvantage
from swift_zoo.losses import TensorInput
from swift_zoo.testing._loss_checks import _constructor_problems, identity_problems, unknown_kwargs_rejected
from swift_zoo.testing._report import CheckSkipped
from swift_zoo.testing._subject import advantage_instance
from swift_zoo.testing._tensors import all_finite, close, fmt, max_abs_diff
from swift_zoo.testing._threads import runs_single_threaded

EXAMPLE_SEED = 0
EXAMPLE_BATCH = 8
MASK_PERTURBATION = 1e4
Batch = dict[str, torch.Tensor]


def _fail(check: str, estimator: BaseAdvantage, message: str) -> ConformanceError:
    return ConformanceError(check, estimator.display_name, message)


def _where(key: str) -> str:
    return f"batch[{key!r}]"


def _example(check: str, estimator: BaseAdvantage, *, seed: int = EXAMPLE_SEED) -> Batch:
    generator = torch.Generator().manual_seed(seed)
    try:
        batch = type(estimator).example_inputs(batch_size=EXAMPLE_BATCH, generator=generator)
    except Exception as exc:
        message = (
            f"expected {type(estimator).__name__}.example_inputs(batch_size={EXAMPLE_BATCH}) to build inputs, "
            f"found it raised {type(exc).__name__}: {exc}"
        )
        raise _fail(check, estimator, message) from exc
    if not isinstance(batch, dict) or not all(isinstance(v, torch.Tensor) for v in batch.values()):
        message = f"expected example_inputs to return a dict of tensors, found {type(batch).__name__}"
        raise _fail(check, estimator, message)
    return batch


def _subject(check: str, estimator: Any) -> tuple[BaseAdvantage, Batch]:
    """The estimator instance and its seeded example batch."""
    estimator = advantage_instance(estimator)
    return estimator, _example(check, estimator)


def _compute(check: str, estimator: BaseAdvantage, batch: Batch, what: str = "") -> torch.Tensor:
    try:
        out = estimator(batch)
    except ConformanceError:
        raise
    except Exception as exc:
        context = f" on {what}" if what else ""
        message = f"expected the estimator to compute{context}, found it raised {type(exc).__name__}: {exc}"
        raise _fail(check, estimator, message) from exc
    if not isinstance(out, torch.Tensor):
        message = f"expected forward to return a torch.Tensor, found {type(out).__name__}"
        raise _fail(check, estimator, message)
    return out


def _batched(estimator: BaseAdvantage, batch: Batch) -> list[str]:
    return [spec.key for spec in estimator.inputs if spec.shape and spec.shape[0] == "B" and spec.key in batch]


def _mask_of(estimator: BaseAdvantage, batch: Batch) -> torch.Tensor | None:
    spec = next((s for s in estimator.inputs if s.role == "mask" and s.key in batch), None)
    return None if spec is None else batch[spec.key] != 0


def _expected_shape(estimator: BaseAdvantage, batch: Batch) -> tuple[int, ...] | None:
    size = batch[_batched(estimator, batch)[0]].shape[0] if _batched(estimator, batch) else None
    if estimator.level == "sequence":
        return None if size is None else (size,)
    mask = _mask_of(estimator, batch)
    return None if mask is None else tuple(mask.shape)


def _per_response_floats(estimator: BaseAdvantage, batch: Batch) -> list[TensorInput]:
    """Float inputs with one value (or one row of values) per response and no mask: the rewards."""
    return [spec for spec in estimator.inputs if spec.key in batch and spec.dtype == "float"
            and spec.shape and spec.shape[0] == "B" and spec.masked_by is None and spec.role == "data"
            and len(spec.shape) <= 2 and "T" not in spec.shape]


def _group_keys(estimator: BaseAdvantage, batch: Batch) -> list[str]:
    return [spec.key for spec in estimator.inputs if spec.key in batch and spec.dtype == "int"
            and spec.shape == ("B",)]


# ---------------------------------------------------------------------------- checks
@runs_single_threaded
def check_advantage_metadata(estimator: Any) -> str:
    """Name, formula docstring, reference, declared inputs, level, keyword-only constructor, valid example."""
    estimator = advantage_instance(estimator)
    cls = type(estimator)
    problems = identity_problems(cls, "my_estimator", "arXiv:2402.03300")
    if not cls.inputs or not all(isinstance(spec, TensorInput) for spec in cls.inputs):
        problems.append(f"inputs: expected a non-empty tuple of TensorInput, found {cls.inputs!r}")
    if cls.level not in ADVANTAGE_LEVELS:
        problems.append(f"level: expected one of {', '.join(ADVANTAGE_LEVELS)}, found {cls.level!r}")
    elif cls.level == "token" and not any(spec.role == "mask" for spec in cls.inputs or ()):
        problems.append("level: a token-level estimator must declare its mask input (role 'mask'), found none")
    problems += _constructor_problems(estimator, BaseAdvantage)
    if cls.compute is BaseAdvantage.compute and cls.forward is BaseAdvantage.forward:
        problems.append("compute: expected an implementation, found BaseAdvantage's")
    try:
        batch = cls.example_inputs(batch_size=5, generator=torch.Generator().manual_seed(0))
        from swift_zoo.losses import validate_inputs

        validate_inputs(estimator.display_name, cls.inputs, batch, None)
        for key in _batched(estimator, batch):
            if batch[key].shape[0] != 5:
                problems.append(f"example_inputs(batch_size=5) gave {_where(key)} a batch dimension of "
                                f"{batch[key].shape[0]}")
    except Exception as exc:
        problems.append(f"example_inputs: expected valid inputs, found {type(exc).__name__}: {exc}")
    if problems:
        message = f"expected complete metadata, found {len(problems)} problem(s): " + "; ".join(problems)
        raise _fail("check_advantage_metadata", estimator, message)
    return f"{len(cls.inputs)} inputs, level {cls.level}, {cls.reference}"


@runs_single_threaded
def check_advantage_unknown_kwargs_rejected(estimator: Any) -> str:
    """``swift_zoo.build_advantage(cls, definitely_not_a_kwarg=1)`` raises ``ConfigError``."""
    from swift_zoo._config import build_advantage

    return unknown_kwargs_rejected("check_advantage_unknown_kwargs_rejected", advantage_instance(estimator),
                                   build_advantage)


@runs_single_threaded
def check_advantage_output(estimator: Any) -> str:
    """The level's shape (``[B]`` or ``[B, T]``), floating, finite, and no gradient even from grad-requiring inputs."""
    name = "check_advantage_output"
    estimator, batch = _subject(name, estimator)
    floats = {k: v.detach().clone().requires_grad_(True) for k, v in batch.items() if v.is_floating_point()}
    out = _compute(name, estimator, {**batch, **floats}, "inputs that require grad")
    expected = _expected_shape(estimator, batch)
    if expected is not None and tuple(out.shape) != expected:
        message = (
            f"expected advantages of shape {list(expected)} (level {estimator.level!r}: "
            f"{'one per response' if estimator.level == 'sequence' else 'one per token'}), found {list(out.shape)}"
        )
        raise _fail(name, estimator, message)
    if not out.is_floating_point():
        message = f"expected floating advantages, found dtype {out.dtype}"
        raise _fail(name, estimator, message)
    if not all_finite(out):
        message = f"expected finite advantages, found {(~torch.isfinite(out)).sum().item()} non-finite value(s)"
        raise _fail(name, estimator, message)
    if out.requires_grad:
        message = (
            "expected advantages that carry no gradient (targets, computed under torch.no_grad), found "
            f"requires_grad=True from inputs {', '.join(map(_where, floats))}"
        )
        raise _fail(name, estimator, message)
    return f"shape {list(out.shape)}, {out.dtype}"


@runs_single_threaded
def check_advantage_deterministic(estimator: Any) -> str:
    """Two calls on equal inputs give bitwise-equal advantages."""
    name = "check_advantage_deterministic"
    estimator, batch = _subject(name, estimator)
    first = _compute(name, estimator, {k: v.clone() for k, v in batch.items()})
    second = _compute(name, estimator, {k: v.clone() for k, v in batch.items()})
    if not torch.equal(first, second):
        message = (
            f"expected two calls on the same inputs to give the same advantages, found max |diff| "
            f"{fmt(max_abs_diff(first, second))}: the estimator uses randomness or state"
        )
        raise _fail(name, estimator, message)
    return "bitwise equal over 2 calls"


@runs_single_threaded
def check_advantage_inputs_not_mutated(estimator: Any) -> str:
    """A call leaves every input tensor (values, dtype, shape, version) as it was."""
    name = "check_advantage_inputs_not_mutated"
    estimator, batch = _subject(name, estimator)
    before = {k: v.clone() for k, v in batch.items()}
    versions = {k: v._version for k, v in batch.items()}
    _compute(name, estimator, batch)
    for key, tensor in batch.items():
        if tensor.dtype != before[key].dtype or tensor.shape != before[key].shape or not torch.equal(tensor,
                                                                                                     before[key]):
            message = f"expected {_where(key)} unchanged after a call, found it modified in place"
            raise _fail(name, estimator, message)
        if tensor._version != versions[key]:
            message = (
                f"expected no in-place write to {_where(key)}, found its version counter went from "
                f"{versions[key]} to {tensor._version}"
            )
            raise _fail(name, estimator, message)
    return f"{len(batch)} tensors unchanged"


@runs_single_threaded
def check_advantage_masking(estimator: Any) -> str:
    """Values at masked positions do not change the advantages; a token-level output is 0 there."""
    name = "check_advantage_masking"
    estimator, batch = _subject(name, estimator)
    mask = _mask_of(estimator, batch)
    if mask is None:
        raise CheckSkipped("no input has the role 'mask'")
    if bool(mask.all()):
        message = "expected example_inputs to mask some positions (a 0 in the mask input), found none"
        raise _fail(name, estimator, message)
    base = _compute(name, estimator, batch)
    notes = []
    if estimator.level == "token":
        leaked = base[~mask.expand_as(base)] if base.shape == mask.shape else base
        if base.shape == mask.shape and bool((leaked != 0).any()):
            message = (
                f"expected token-level advantages of 0 at the {int((~mask).sum())} masked position(s), found "
                f"max |A| {fmt(leaked.abs().max())} there"
            )
            raise _fail(name, estimator, message)
        notes.append("0 at masked positions")
    masked = [spec for spec in estimator.inputs if spec.masked_by and spec.key in batch and
              batch[spec.key].is_floating_point()]
    if masked:
        generator = torch.Generator().manual_seed(1)
        perturbed = dict(batch)
        for spec in masked:
            data = batch[spec.key]
            noise = torch.randn(data.shape, generator=generator).sign().to(data.dtype) * MASK_PERTURBATION
            perturbed[spec.key] = torch.where(batch[spec.masked_by] != 0, data, noise)
        found = _compute(name, estimator, perturbed, "inputs perturbed at masked positions")
        if not close(found, base, rtol=1e-5, atol=1e-6):
            message = (
                f"expected the advantages unchanged when masked positions of "
                f"{', '.join(_where(s.key) for s in masked)} are set to ±{MASK_PERTURBATION:g}, found max |diff| "
                f"{fmt(max_abs_diff(found, base))}: masked positions leak into the advantages"
            )
            raise _fail(name, estimator, message)
        notes.append(f"{', '.join(s.key for s in masked)} perturbed at {int((~mask).sum())} masked position(s)")
    return "; ".join(notes) or "mask declared"


@runs_single_threaded
def check_advantage_permutation(estimator: Any) -> str:
    """Permuting the batch (groups and responses within them) and relabelling the groups permutes the advantages."""
    name = "check_advantage_permutation"
    estimator, batch = _subject(name, estimator)
    batched = _batched(estimator, batch)
    if not batched:
        raise CheckSkipped("no declared input has the batch dimension 'B' first")
    size = batch[batched[0]].shape[0]
    perm = torch.randperm(size, generator=torch.Generator().manual_seed(2))
    if torch.equal(perm, torch.arange(size)):
        perm = perm.flip(0)
    permuted = {**batch, **{k: batch[k][perm] for k in batched}}
    relabelled = _group_keys(estimator, batch)
    for key in relabelled:
        permuted[key] = permuted[key] * -3 + 1000  # a bijection that reverses the order of the labels
    base = _compute(name, estimator, batch)
    found = _compute(name, estimator, permuted, "a permuted batch with relabelled groups")
    if base.shape[:1] != (size,) or not close(found, base[perm], rtol=1e-5, atol=1e-6):
        message = (
            f"expected the advantages to permute with the batch (rows {perm.tolist()}"
            f"{', group labels relabelled' if relabelled else ''}), found max |diff| "
            f"{fmt(max_abs_diff(found, base[perm] if base.shape[:1] == (size,) else base))}: the estimator depends on "
            "the order of responses or on the values of the group ids"
        )
        raise _fail(name, estimator, message)
    return f"rows {perm.tolist()}" + (f", relabelled {', '.join(relabelled)}" if relabelled else "")


@runs_single_threaded
def check_advantage_degenerate_groups(estimator: Any) -> str:
    """Finite advantages when every reward is equal, when every response is alone, and with one group for all."""
    name = "check_advantage_degenerate_groups"
    estimator, batch = _subject(name, estimator)
    rewards = _per_response_floats(estimator, batch)
    groups = _group_keys(estimator, batch)
    cases: dict[str, Batch] = {}
    if rewards:
        for value in (0.0, 1.0):
            cases[f"every reward {value:g}"] = {**batch, **{s.key: torch.full_like(batch[s.key], value)
                                                           for s in rewards}}
    for key in groups:
        size = batch[key].shape[0]
        cases[f"every response alone ({key} all distinct)"] = {**batch, key: torch.arange(size, dtype=batch[key].dtype)}
        cases[f"one group ({key} all equal)"] = {**batch, key: torch.zeros_like(batch[key])}
    if not cases:
        raise CheckSkipped("no per-response float input (rewards) and no int input (group ids) declared")
    for what, case in cases.items():
        out = _compute(name, estimator, case, what)
        if not all_finite(out):
            message = f"expected finite advantages with {what}, found {(~torch.isfinite(out)).sum().item()} non-finite"
            raise _fail(name, estimator, message)
    return "; ".join(cases)


@runs_single_threaded
def check_advantage_extra_outputs(estimator: Any) -> str:
    """Every declared ``extra_outputs`` entry is recorded, finite, shaped ``[B]`` or ``[B, T]``."""
    name = "check_advantage_extra_outputs"
    estimator = advantage_instance(estimator)
    declared = tuple(type(estimator).extra_outputs)
    if not declared:
        raise CheckSkipped("no extra_outputs declared")
    batch = _example(name, estimator)
    out = _compute(name, estimator, batch)
    for key in declared:
        value = estimator.outputs.get(key)
        if value is None:
            message = (
                f"expected the declared extra output {key!r} in estimator.outputs after a call, found "
                f"{sorted(estimator.outputs) or 'none'}: record it with record_outputs({key}=...)"
            )
            raise _fail(name, estimator, message)
        if value.shape[:1] != out.shape[:1] or value.dim() > 2 or not all_finite(value):
            message = (
                f"expected outputs[{key!r}] finite and shaped [B] or [B, T] with B={out.shape[0]}, found shape "
                f"{list(value.shape)}" + ("" if all_finite(value) else " with non-finite values")
            )
            raise _fail(name, estimator, message)
    return ", ".join(declared)


@runs_single_threaded
def check_advantage_low_precision(estimator: Any) -> str:
    """bfloat16 and float16 float inputs give finite advantages."""
    name = "check_advantage_low_precision"
    estimator, batch = _subject(name, estimator)
    notes = []
    for dtype in (torch.bfloat16, torch.float16):
        cast = {k: v.to(dtype) if v.is_floating_point() else v for k, v in batch.items()}
        what = f"{str(dtype).replace('torch.', '')} inputs"
        out = _compute(name, estimator, cast, what)
        if not all_finite(out):
            message = f"expected finite advantages from {what}, found {(~torch.isfinite(out)).sum().item()} non-finite"
            raise _fail(name, estimator, message)
        notes.append(f"{str(dtype).replace('torch.', '')}: {out.dtype}")
    return "; ".join(notes)


ADVANTAGE_CHECKS: tuple[Callable[[Any], str], ...] = (
    check_advantage_metadata,
    check_advantage_unknown_kwargs_rejected,
    check_advantage_output,
    check_advantage_deterministic,
    check_advantage_inputs_not_mutated,
    check_advantage_masking,
    check_advantage_permutation,
    check_advantage_degenerate_groups,
    check_advantage_extra_outputs,
    check_advantage_low_precision,
)
