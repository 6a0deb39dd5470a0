"""The named conformance checks for losses.

Each check is a plain function ``check_x(loss) -> str``: it takes a loss instance, a
``BaseLoss`` subclass (built with its ``example_kwargs()``) or a registered name, returns a short
note when the check holds, raises :class:`swift_zoo.ConformanceError` (what was expected, what was
found) when it does not, and raises :class:`CheckSkipped` when it does not apply (a capability
declaration such as ``order_dependent``, no CUDA device).

Inputs come from the loss's own ``example_inputs`` classmethod, seeded, so every check is
deterministic; the suite never needs to know what a loss computes.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import torch
from torch.autograd.gradcheck import GradcheckError

from swift_zoo._config import build_loss
from swift_zoo._errors import ConfigError, ConformanceError
from swift_zoo._specs import _NAME_RE
from swift_zoo.losses import REDUCTION_UNITS, BaseLoss, LossExample, TensorInput
from swift_zoo.losses._masking import ignored_positions
from swift_zoo.testing._report import CheckSkipped
from swift_zoo.testing._subject import loss_instance
from swift_zoo.testing._tensors import (
    all_finite,
    cast_floats,
    clone_example,
    close,
    fmt,
    get_input,
    max_abs_diff,
    replace_inputs,
    tensors_of,
    where_of,
)
from swift_zoo.testing._threads import runs_single_threaded

EXAMPLE_SEED = 0
EXAMPLE_BATCH = 4
GRADCHECK_BATCH = 2
EXTREME_SCALE = 1e4
LOW_PRECISION_SCALES = (1.0, 100.0)
LOW_PRECISION_RTOL, LOW_PRECISION_ATOL = 1e-2, 1e-5
MASK_PERTURBATION = 1e4
_FORMULA_MARKERS = ("math::", ":math:", "=", "\\frac", "\\sum", "\\log", "\\exp", "\\ell", "\\sigma")
_REFERENCE_RE = re.compile(r"^(arXiv:\d{4}\.\d{4,5}(v\d+)?|https?://\S+|doi:\S+)")


# --------------------------------------------------------------------------- helpers
def _fail(check: str, loss: BaseLoss, message: str) -> ConformanceError:
    return ConformanceError(check, loss.display_name, message)


def _example(check: str, loss: BaseLoss, *, batch_size: int = EXAMPLE_BATCH, dtype: torch.dtype = torch.float32,
             device: str | torch.device = "cpu", seed: int = EXAMPLE_SEED) -> LossExample:
    """``type(loss).example_inputs(...)`` seeded with ``seed``, checked to be a LossExample."""
    generator = torch.Generator().manual_seed(seed)
    try:
        example = type(loss).example_inputs(batch_size=batch_size, generator=generator, dtype=dtype, device=device)
    except Exception as exc:
        message = (
            f"expected {type(loss).__name__}.example_inputs(batch_size={batch_size}, dtype={dtype}) to build "
            f"inputs, found it raised {type(exc).__name__}: {exc}"
        )
        raise _fail(check, loss, message) from exc
    if not isinstance(example, tuple) or len(example) != 2 or not isinstance(example[0], dict):
        message = f"expected example_inputs to return a LossExample(model_outputs, labels), found {type(example).__name__}"
        raise _fail(check, loss, message)
    return LossExample(*example)


def _call(loss: BaseLoss, example: LossExample, num_items_in_batch: Any = None) -> torch.Tensor:
    if example.labels is None:
        return loss(example.model_outputs, num_items_in_batch=num_items_in_batch)
    return loss(example.model_outputs, example.labels, num_items_in_batch=num_items_in_batch)


def _forward(check: str, loss: BaseLoss, example: LossExample, num_items_in_batch: Any = None,
             what: str = "") -> torch.Tensor:
    try:
        out = _call(loss, example, num_items_in_batch)
    except ConformanceError:
        raise
    except Exception as exc:
        context = f" on {what}" if what else ""
        message = f"expected the loss to compute{context}, found it raised {type(exc).__name__}: {exc}"
        raise _fail(check, loss, message) from exc
    if not isinstance(out, torch.Tensor):
        message = f"expected forward to return a torch.Tensor, found {type(out).__name__}"
        raise _fail(check, loss, message)
    return out


def _spec_by_key(loss: BaseLoss) -> dict[str, TensorInput]:
    return {spec.key: spec for spec in loss.inputs}


def _differentiable_keys(loss: BaseLoss, example: LossExample) -> list[str]:
    keys = []
    for spec in loss.inputs:
        tensor = get_input(example, spec.key)
        if spec.differentiable and isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
            keys.append(spec.key)
    return keys


def _batched_keys(loss: BaseLoss, example: LossExample) -> list[str]:
    keys = []
    for spec in loss.inputs:
        tensor = get_input(example, spec.key)
        if spec.shape and spec.shape[0] == loss.batch_symbol and isinstance(tensor, torch.Tensor):
            keys.append(spec.key)
    return keys


def _leaves(example: LossExample, keys: list[str]) -> tuple[LossExample, dict[str, torch.Tensor]]:
    leaves = {key: get_input(example, key).detach().clone().requires_grad_(True) for key in keys}
    return replace_inputs(example, leaves), leaves


def _loss_and_grads(check: str, loss: BaseLoss, example: LossExample, keys: list[str],
                    num_items_in_batch: Any = None, what: str = "") -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
    """The loss on fresh leaves of ``keys`` and the gradient each leaf received (None: none arrived)."""
    example, leaves = _leaves(example, keys)
    out = _forward(check, loss, example, num_items_in_batch, what)
    _require_scalar(check, loss, out)
    if keys and out.requires_grad:
        try:
            out.backward()
        except Exception as exc:
            message = f"expected backward to run{' on ' + what if what else ''}, found {type(exc).__name__}: {exc}"
            raise _fail(check, loss, message) from exc
    return out.detach(), {key: leaf.grad for key, leaf in leaves.items()}


def _require_scalar(check: str, loss: BaseLoss, out: torch.Tensor) -> None:
    if out.dim() != 0:
        message = f"expected a 0-dim loss to differentiate, found shape {tuple(out.shape)} (see check_scalar_output)"
        raise _fail(check, loss, message)


def _require_finite(check: str, loss: BaseLoss, value: torch.Tensor, grads: dict[str, torch.Tensor | None],
                    what: str) -> None:
    if not all_finite(value):
        message = f"expected a finite loss for {what}, found {fmt(value)}"
        raise _fail(check, loss, message)
    for key, grad in grads.items():
        if grad is not None and not all_finite(grad):
            bad = (~torch.isfinite(grad)).sum().item()
            message = (
                f"expected finite gradients for {what}, found {bad} non-finite value(s) of "
                f"{grad.numel()} in the gradient of {where_of(key)}"
            )
            raise _fail(check, loss, message)


def _split_example(example: LossExample, keys: list[str], start: int, stop: int) -> LossExample:
    return replace_inputs(example, {key: get_input(example, key)[start:stop] for key in keys})


# ---------------------------------------------------------------------------- checks
@runs_single_threaded
def check_metadata(loss: Any) -> str:
    """Name, formula docstring, reference, declared inputs, reduction unit, constructor and example."""
    loss = loss_instance(loss)
    cls = type(loss)
    problems = identity_problems(cls, "my_loss", "arXiv:2305.18290")
    if not loss.inputs or not all(isinstance(spec, TensorInput) for spec in loss.inputs):
        problems.append(f"inputs: expected a non-empty tuple of TensorInput, found {loss.inputs!r}")
    else:
        keys = {spec.key for spec in loss.inputs}
        for spec in loss.inputs:
            if spec.masked_by is not None and spec.masked_by not in keys:
                problems.append(f"inputs: {spec.key!r} is masked_by {spec.masked_by!r}, which is not a declared input")
        if not any(spec.differentiable for spec in loss.inputs):
            problems.append("inputs: expected at least one differentiable input, found none")
    if cls.reduction_unit not in REDUCTION_UNITS:
        problems.append(f"reduction_unit: expected one of {', '.join(REDUCTION_UNITS)}, found {cls.reduction_unit!r}")
    problems += _constructor_problems(loss)
    if cls.per_unit_loss is BaseLoss.per_unit_loss and cls.forward is BaseLoss.forward:
        problems.append("per_unit_loss: expected an implementation, found BaseLoss's")
    try:
        example = type(loss).example_inputs(batch_size=3, generator=torch.Generator().manual_seed(0))
        loss.validate(*example)
        for key in _batched_keys(loss, LossExample(*example)):
            size = get_input(LossExample(*example), key).shape[0]
            if size != 3:
                problems.append(f"example_inputs(batch_size=3) gave {where_of(key)} a batch dimension of {size}")
    except Exception as exc:
        problems.append(f"example_inputs: expected valid inputs, found {type(exc).__name__}: {exc}")
    if problems:
        message = f"expected complete metadata, found {len(problems)} problem(s): " + "; ".join(problems)
        raise _fail("check_metadata", loss, message)
    return f"{len(loss.inputs)} inputs, unit {cls.reduction_unit}, {cls.reference}"


def identity_problems(cls: type, example_name: str, example_reference: str) -> list[str]:
    """What is wrong with a class's name, formula docstring and reference (losses and estimators alike)."""
    problems = []
    if not isinstance(cls.name, str) or not _NAME_RE.match(cls.name or ""):
        problems.append(f"name: expected lower snake case (e.g. {example_name!r}), found {cls.name!r}")
    doc = (cls.__dict__.get("__doc__") or "").strip()
    if len(doc.splitlines()) < 2:
        problems.append("docstring: expected a class docstring with the formula, defaults, inputs and a YAML snippet, "
                        f"found {('one line: ' + repr(doc)) if doc else 'none'}")
    elif not any(marker in doc for marker in _FORMULA_MARKERS):
        problems.append("docstring: expected a formula (a '.. math::' block or an equation), found none")
    if not cls.reference:
        problems.append(f"reference: expected the paper, e.g. {example_reference!r}, found ''")
    elif not _REFERENCE_RE.match(cls.reference):
        problems.append(f"reference: expected 'arXiv:NNNN.NNNNN', a URL or 'doi:...', found {cls.reference!r}")
    return problems


def _constructor_problems(loss: Any, base: type = BaseLoss) -> list[str]:
    """What is wrong with the constructor of ``loss``'s class (a loss, or an estimator with ``base``)."""
    import inspect

    problems = []
    init = type(loss).__init__
    if init is base.__init__:
        return problems
    for name, param in inspect.signature(init).parameters.items():
        if name == "self":
            continue
        if param.kind is param.VAR_KEYWORD:
            problems.append(f"constructor: expected keyword-only hyperparameters, found **{name}")
        elif param.kind is param.VAR_POSITIONAL:
            problems.append(f"constructor: expected keyword-only hyperparameters, found *{name}")
        else:
            if param.kind is not param.KEYWORD_ONLY:
                problems.append(f"constructor: expected {name!r} to be keyword-only (after '*')")
            if param.annotation is param.empty:
                problems.append(f"constructor: expected a type annotation on {name!r} (config coercion reads it)")
            if not hasattr(loss, name):
                problems.append(f"constructor: expected the hyperparameter {name!r} stored as an attribute of that name")
    return problems


@runs_single_threaded
def check_unknown_kwargs_rejected(loss: Any) -> str:
    """``swift_zoo.build_loss(cls, definitely_not_a_kwarg=1)`` raises ``ConfigError``."""
    return unknown_kwargs_rejected("check_unknown_kwargs_rejected", loss_instance(loss), build_loss)


def unknown_kwargs_rejected(check: str, subject: Any, builder: Callable[..., Any]) -> str:
    """The body of the unknown-kwargs checks: ``builder(cls, definitely_not_a_kwarg=1)`` must raise ``ConfigError``."""
    cls = type(subject)
    call = f"swift_zoo.{builder.__name__}({cls.__name__}, definitely_not_a_kwarg=1)"
    try:
        built = builder(cls, **dict(cls.example_kwargs()), definitely_not_a_kwarg=1)
    except ConfigError as exc:
        return f"ConfigError: {exc}"
    except Exception as exc:
        message = f"expected {call} to raise swift_zoo.ConfigError, found {type(exc).__name__}: {exc}"
        raise ConformanceError(check, subject.display_name, message) from exc
    message = (
        f"expected {call} to raise swift_zoo.ConfigError, found it built {built!r}; take keyword-only "
        "hyperparameters, never **kwargs"
    )
    raise ConformanceError(check, subject.display_name, message)


@runs_single_threaded
def check_scalar_output(loss: Any) -> str:
    """The loss is a 0-dim, finite, floating tensor."""
    loss = loss_instance(loss)
    out = _forward("check_scalar_output", loss, _example("check_scalar_output", loss))
    if out.dim() != 0:
        message = f"expected a 0-dim tensor, found shape {tuple(out.shape)}"
        raise _fail("check_scalar_output", loss, message)
    if not out.is_floating_point():
        message = f"expected a floating tensor, found dtype {out.dtype}"
        raise _fail("check_scalar_output", loss, message)
    if not all_finite(out):
        message = f"expected a finite value, found {fmt(out)}"
        raise _fail("check_scalar_output", loss, message)
    return f"{fmt(out)} ({out.dtype})"


@runs_single_threaded
def check_gradients_reach_inputs(loss: Any) -> str:
    """Every declared differentiable input gets a finite, not-all-zero gradient."""
    name = "check_gradients_reach_inputs"
    loss = loss_instance(loss)
    example = _example(name, loss)
    keys = _differentiable_keys(loss, example)
    if not keys:
        raise CheckSkipped("no differentiable float input is declared (or present in example_inputs)")
    example, leaves = _leaves(example, keys)
    out = _forward(name, loss, example)
    _require_scalar(name, loss, out)
    if not out.requires_grad:
        message = (
            f"expected the loss to depend differentiably on {', '.join(map(where_of, keys))}, found a result with "
            "requires_grad=False: the graph is cut (.detach(), argmax, .item() or no_grad inside)"
        )
        raise _fail(name, loss, message)
    out.backward()
    notes = []
    for key, leaf in leaves.items():
        grad = leaf.grad
        if grad is None:
            message = (
                f"expected a gradient on {where_of(key)} (declared differentiable), found none reached it: "
                "it is detached or unused"
            )
            raise _fail(name, loss, message)
        if not all_finite(grad):
            message = f"expected a finite gradient on {where_of(key)}, found {(~torch.isfinite(grad)).sum().item()} non-finite values"
            raise _fail(name, loss, message)
        largest = grad.abs().max().item()
        if largest == 0:
            message = (
                f"expected a non-zero gradient on {where_of(key)}, found all zeros: the loss does not depend "
                "on it (argmax, rounding, a detached branch)"
            )
            raise _fail(name, loss, message)
        notes.append(f"{key} max |grad| {fmt(largest)}")
    return "; ".join(notes)


@runs_single_threaded
def check_gradcheck(loss: Any) -> str:
    """``torch.autograd.gradcheck`` in float64 (``fast_mode=True``) on a batch of 2."""
    name = "check_gradcheck"
    loss = loss_instance(loss)
    example = _example(name, loss, batch_size=GRADCHECK_BATCH, dtype=torch.float64)
    example = cast_floats(example, torch.float64)
    keys = _differentiable_keys(loss, example)
    if not keys:
        raise CheckSkipped("no differentiable float input is declared (or present in example_inputs)")
    leaves = tuple(get_input(example, key).detach().clone().requires_grad_(True) for key in keys)

    def function(*tensors: torch.Tensor) -> torch.Tensor:
        return _call(loss, replace_inputs(example, dict(zip(keys, tensors))))

    try:
        torch.autograd.gradcheck(function, leaves, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True,
                                 raise_exception=True)
    except GradcheckError as exc:
        text = str(exc).split("\n\n")[0]
        detail = " ".join(text.split())
        inputs = ", ".join(f"input {i} = {where_of(k)}" for i, k in enumerate(keys))
        message = (
            f"expected the analytical gradient to match finite differences (float64, fast_mode, batch "
            f"{GRADCHECK_BATCH}; {inputs}), found: {detail}"
        )
        raise _fail(name, loss, message) from exc
    except Exception as exc:
        message = f"expected gradcheck to run in float64, found {type(exc).__name__}: {exc}"
        raise _fail(name, loss, message) from exc
    return f"float64, fast_mode, {len(keys)} input(s)"


@runs_single_threaded
def check_deterministic(loss: Any) -> str:
    """Two calls on equal inputs give bitwise-equal losses and gradients."""
    name = "check_deterministic"
    loss = loss_instance(loss)
    example = _example(name, loss)
    keys = _differentiable_keys(loss, example)
    first, first_grads = _loss_and_grads(name, loss, clone_example(example), keys)
    second, second_grads = _loss_and_grads(name, loss, clone_example(example), keys)
    if not torch.equal(first, second):
        message = (
            f"expected two calls on the same inputs to give the same loss, found {fmt(first)} then "
            f"{fmt(second)} (|diff| {fmt(max_abs_diff(first, second))}): the loss uses randomness or state"
        )
        raise _fail(name, loss, message)
    for key in keys:
        a, b = first_grads[key], second_grads[key]
        if (a is None) != (b is None) or (a is not None and not torch.equal(a, b)):
            diff = max_abs_diff(a, b) if a is not None and b is not None else float("nan")
            message = (
                f"expected two calls on the same inputs to give the same gradient on {where_of(key)}, "
                f"found max |diff| {fmt(diff)}"
            )
            raise _fail(name, loss, message)
    return "bitwise equal over 2 calls"


@runs_single_threaded
def check_inputs_not_mutated(loss: Any) -> str:
    """Forward and backward leave every input tensor (values, dtype, shape, version) and key as it was."""
    name = "check_inputs_not_mutated"
    loss = loss_instance(loss)
    example = _example(name, loss)
    keys = _differentiable_keys(loss, example)
    before = {key: tensor.detach().clone() for key, tensor in tensors_of(example).items()}
    before_keys = list(example.model_outputs)
    versions = {key: tensor._version for key, tensor in tensors_of(example).items()}
    out = _forward(name, loss, example)  # plain tensors: an in-place write is allowed by autograd here
    _require_scalar(name, loss, out)
    if keys and out.requires_grad:
        out.backward()
    _compare_inputs(name, loss, example, before, versions, before_keys, "a forward and backward")
    # and with grad-requiring inputs: an in-place write to one raises, which the check reports too
    grad_example, _ = _leaves(example, keys)
    before = {key: tensor.detach().clone() for key, tensor in tensors_of(grad_example).items()}
    versions = {key: tensor._version for key, tensor in tensors_of(grad_example).items()}
    out = _forward(name, loss, grad_example, what="inputs that require grad")
    _require_scalar(name, loss, out)
    if out.requires_grad:
        out.backward()
    _compare_inputs(name, loss, grad_example, before, versions, before_keys, "a forward and backward")
    return f"{len(before)} tensors unchanged"


def _compare_inputs(name: str, loss: BaseLoss, example: LossExample, before: dict[str, torch.Tensor],
                    versions: dict[str, int], before_keys: list[str], what: str) -> None:
    if list(example.model_outputs) != before_keys:
        message = (
            f"expected model_outputs to keep its keys {before_keys} after {what}, found {list(example.model_outputs)}"
        )
        raise _fail(name, loss, message)
    for key, tensor in tensors_of(example).items():
        old = before[key]
        if tensor.dtype != old.dtype or tensor.shape != old.shape:
            message = (
                f"expected {where_of(key)} to keep dtype {old.dtype} and shape {tuple(old.shape)} after {what}, "
                f"found {tensor.dtype} {tuple(tensor.shape)}"
            )
            raise _fail(name, loss, message)
        if not torch.equal(tensor.detach(), old):
            changed = (tensor.detach() != old).sum().item()
            message = f"expected {where_of(key)} unchanged after {what}, found {changed} element(s) modified in place"
            raise _fail(name, loss, message)
        if tensor._version != versions[key]:
            message = (
                f"expected no in-place write to {where_of(key)} during {what}, found its version counter went "
                f"from {versions[key]} to {tensor._version} (values equal, but the caller's tensor was written)"
            )
            raise _fail(name, loss, message)


@runs_single_threaded
def check_microbatch_split(loss: Any) -> str:
    """Two micro-batches with the global ``num_items_in_batch`` sum to the full-batch loss and gradient."""
    name = "check_microbatch_split"
    loss = loss_instance(loss)
    if loss.batch_dependent:
        raise CheckSkipped(f"exempt: batch_dependent declared: {loss.batch_dependent}")
    example = _example(name, loss, dtype=torch.float64)
    batched = _batched_keys(loss, example)
    if not batched:
        raise CheckSkipped(f"no declared input has the batch dimension {loss.batch_symbol!r} first")
    size = get_input(example, batched[0]).shape[0]
    if size < 2:
        message = f"expected example_inputs(batch_size={EXAMPLE_BATCH}) to have at least 2 rows, found {size}"
        raise _fail(name, loss, message)
    bounds = [(0, size // 2), (size // 2, size)]
    parts = [_split_example(example, batched, a, b) for a, b in bounds]
    counts = [_count_units(name, loss, part) for part in parts]
    for (a, b), part, count in zip(bounds, parts, counts):
        declared = _declared_token_count(loss, part)
        if declared is not None and count != declared:
            message = (
                f"expected count_units on rows {a}:{b} to count the {declared} tokens the declared masks keep "
                f"(reduction_unit='token'), found {count}: a loss that averages each row first weighs the tokens of "
                "short rows more (it is sequence-level: declare reduction_unit='sequence'), or count_units counts "
                "something else"
            )
            raise _fail(name, loss, message)
    total_units = sum(counts)
    if bool(torch.as_tensor(total_units).le(0).any()):
        message = f"expected example_inputs to have counted units, found count_units = {counts}"
        raise _fail(name, loss, message)
    keys = _differentiable_keys(loss, example)
    # micro-batches: slices of the same leaves, so their gradients add up in the leaves
    leaf_example, leaves = _leaves(example, keys)
    part_losses = []
    for (a, b), part in zip(bounds, [_split_example(leaf_example, batched, a, b) for a, b in bounds]):
        part_losses.append(_forward(name, loss, part, total_units, what=f"micro-batch rows {a}:{b}"))
        _require_scalar(name, loss, part_losses[-1])
    summed = torch.stack(part_losses).sum()
    if keys and summed.requires_grad:
        summed.backward()
    split_grads = {key: leaf.grad for key, leaf in leaves.items()}
    full, full_grads = _loss_and_grads(name, loss, example, keys, total_units)
    plain, plain_grads = _loss_and_grads(name, loss, example, keys)
    rtol, atol = 1e-5, 1e-7
    if not close(summed, full, rtol=rtol, atol=atol):
        message = (
            f"expected the sum of {len(parts)} micro-batch losses with num_items_in_batch={total_units} to equal "
            f"the full-batch loss {fmt(full)}, found {fmt(summed)} (max |diff| {fmt(max_abs_diff(summed, full))}); "
            "divide by num_items_in_batch when given (BaseLoss.reduce does)"
        )
        raise _fail(name, loss, message)
    if not close(full, plain, rtol=rtol, atol=atol):
        message = (
            f"expected the full-batch loss with num_items_in_batch={total_units} (the sum of count_units over the "
            f"micro-batches, {counts}) to equal the plain full-batch loss {fmt(plain)}, found {fmt(full)}: "
            "count_units disagrees with the units the loss averages over"
        )
        raise _fail(name, loss, message)
    for key in keys:
        split, whole, bare = split_grads[key], full_grads[key], plain_grads[key]
        if split is None or whole is None or bare is None:
            continue  # check_gradients_reach_inputs reports missing gradients
        if not close(split, whole, rtol=rtol, atol=atol):
            message = (
                f"expected the gradient of {where_of(key)} summed over {len(parts)} micro-batches with "
                f"num_items_in_batch={total_units} to equal the full-batch gradient, found max |diff| "
                f"{fmt(max_abs_diff(split, whole))}"
            )
            raise _fail(name, loss, message)
        if not close(whole, bare, rtol=rtol, atol=atol):
            message = (
                f"expected the full-batch gradient of {where_of(key)} with num_items_in_batch={total_units} to equal "
                f"the plain full-batch gradient, found max |diff| {fmt(max_abs_diff(whole, bare))}"
            )
            raise _fail(name, loss, message)
    return f"rows {bounds}, units {counts}, loss {fmt(full)}"


def _declared_token_count(loss: BaseLoss, example: LossExample) -> int | None:
    """For ``reduction_unit='token'``: the tokens the declared masks keep, read from the declarations alone (not
    from the loss's own ``count_units``), or ``None`` when they do not say (another unit, several masks, shifts)."""
    if loss.reduction_unit != "token":
        return None
    if example.labels is not None:
        from_labels = loss.count_units_from_labels(example.labels)
        if from_labels is not None:
            return int(from_labels)
    masks = {spec.masked_by for spec in loss.inputs if spec.masked_by}
    if len(masks) != 1:
        return None
    (key,) = masks
    mask_spec, mask = _spec_by_key(loss).get(key), get_input(example, key)
    shifted = any(spec.mask_shift for spec in loss.inputs if spec.masked_by == key)
    if mask_spec is None or mask_spec.role != "mask" or mask is None or shifted:
        return None
    return int((mask != 0).sum())


def _count_units(check: str, loss: BaseLoss, example: LossExample) -> int | torch.Tensor:
    """One whole number, or (composite losses) a 1-D tensor of whole numbers, one per sub-loss."""
    try:
        count = loss.count_units(example.model_outputs, example.labels)
    except Exception as exc:
        message = f"expected count_units to run on a micro-batch, found {type(exc).__name__}: {exc}"
        raise _fail(check, loss, message) from exc
    if isinstance(count, torch.Tensor):
        whole = not count.is_floating_point() or bool((count == count.round()).all())
        if count.dim() > 1 or count.numel() == 0 or not whole:
            message = (
                f"expected count_units to return one whole number (a 0-dim int tensor or an int), or one per "
                f"sub-loss (a 1-D int tensor), found a {count.dtype} tensor of shape {tuple(count.shape)}"
            )
            raise _fail(check, loss, message)
        return int(count.item()) if count.dim() == 0 else count.detach().to(torch.int64)
    if isinstance(count, bool) or not isinstance(count, int):
        message = f"expected count_units to return an int or a 0-dim int tensor, found {type(count).__name__} {count!r}"
        raise _fail(check, loss, message)
    return count


def _ignored_positions(loss: BaseLoss, spec: TensorInput, example: LossExample) -> torch.Tensor | None:
    """Bool tensor (shape of ``spec``'s data) of the positions its ``masked_by`` mask declares ignored."""
    inputs = {key: value for key, value in tensors_of(example).items()}
    ignored = ignored_positions(spec, _spec_by_key(loss), inputs, getattr(loss, "ignore_index", -100))
    return None if ignored is None else ignored.expand_as(inputs[spec.key])


@runs_single_threaded
def check_masking(loss: Any) -> str:
    """Large values, then NaN, at positions a mask declares ignored change neither the loss nor the gradients:
    exactly 0 at those positions, finite and unchanged elsewhere."""
    name = "check_masking"
    loss = loss_instance(loss)
    masked = [spec for spec in loss.inputs if spec.masked_by]
    if not masked:
        raise CheckSkipped("no input declares masked_by")
    example = _example(name, loss)
    ignored = {}
    for spec in masked:
        positions = _ignored_positions(loss, spec, example)
        if positions is not None:
            ignored[spec.key] = positions
    if not ignored or not any(bool(p.any()) for p in ignored.values()):
        message = (
            "expected example_inputs to contain ignored positions (masked_by is declared for "
            f"{', '.join(where_of(s.key) for s in masked)}), found none: make the example mask some positions"
        )
        raise _fail(name, loss, message)
    generator = torch.Generator().manual_seed(1)
    noise_values, nan_values = {}, {}
    for key, positions in ignored.items():
        data = get_input(example, key)
        noise = torch.randn(data.shape, generator=generator, dtype=torch.float32).sign() * MASK_PERTURBATION
        noise_values[key] = torch.where(positions, noise.to(device=data.device, dtype=data.dtype), data)
        nan_values[key] = torch.where(positions, torch.full_like(data, float("nan")), data)
    keys = _differentiable_keys(loss, example)
    base, base_grads = _loss_and_grads(name, loss, example, keys)
    count = sum(int(p.sum()) for p in ignored.values())
    where = ", ".join(where_of(k) for k in ignored)
    for filled, values in ((f"±{MASK_PERTURBATION:g}", noise_values), ("NaN", nan_values)):
        what = f"inputs set to {filled} at ignored positions"
        found, found_grads = _loss_and_grads(name, loss, replace_inputs(example, values), keys, what=what)
        if not close(found, base, rtol=1e-5, atol=1e-6):
            message = (
                f"expected the loss unchanged when {count} ignored position(s) of {where} are set to {filled}, "
                f"found {fmt(found)} instead of {fmt(base)}: masked positions leak into the loss"
            )
            raise _fail(name, loss, message)
        for key in keys:
            _compare_masked_gradient(name, loss, key, found_grads[key], base_grads[key], ignored.get(key), filled)
    return f"{count} ignored position(s) of {where} set to ±{MASK_PERTURBATION:g} and to NaN"


def _compare_masked_gradient(name: str, loss: BaseLoss, key: str, grad: torch.Tensor | None,
                             reference: torch.Tensor | None, ignored: torch.Tensor | None, filled: str) -> None:
    """The gradient with ignored positions set to ``filled``: exactly 0 there, finite and unchanged elsewhere."""
    if grad is None or reference is None:
        return
    if ignored is not None:
        at_ignored = grad[ignored]
        if not all_finite(at_ignored) or bool((at_ignored != 0).any()):
            message = (
                f"expected zero gradient at the {int(ignored.sum())} ignored position(s) of {where_of(key)} set to "
                f"{filled}, found max |grad| {fmt(at_ignored.abs().max())} there: values the mask ignores reach "
                "the gradient (compute only on kept positions, or let BaseLoss.forward guard the input)"
            )
            raise _fail(name, loss, message)
        grad, reference = grad[~ignored], reference[~ignored]
    if not all_finite(grad):
        message = (
            f"expected a finite gradient of {where_of(key)} at counted positions with ignored positions set to "
            f"{filled}, found {int((~torch.isfinite(grad)).sum())} non-finite value(s)"
        )
        raise _fail(name, loss, message)
    if not close(grad, reference, rtol=1e-5, atol=1e-6):
        message = (
            f"expected the gradient of {where_of(key)} at counted positions unchanged by {filled} at ignored "
            f"positions, found max |diff| {fmt(max_abs_diff(grad, reference))}"
        )
        raise _fail(name, loss, message)


@runs_single_threaded
def check_permutation(loss: Any) -> str:
    """Permuting the batch leaves the loss unchanged and permutes the gradients (unless ``order_dependent``)."""
    name = "check_permutation"
    loss = loss_instance(loss)
    if loss.order_dependent:
        raise CheckSkipped(f"exempt: order_dependent declared: {loss.order_dependent}")
    example = _example(name, loss)
    batched = _batched_keys(loss, example)
    if not batched:
        raise CheckSkipped(f"no declared input has the batch dimension {loss.batch_symbol!r} first")
    size = get_input(example, batched[0]).shape[0]
    perm = torch.randperm(size, generator=torch.Generator().manual_seed(2))
    if torch.equal(perm, torch.arange(size)):
        perm = perm.flip(0)
    permuted = replace_inputs(example, {k: get_input(example, k)[perm.to(get_input(example, k).device)]
                                        for k in batched})
    keys = _differentiable_keys(loss, example)
    base, base_grads = _loss_and_grads(name, loss, example, keys)
    found, found_grads = _loss_and_grads(name, loss, permuted, keys, what="a permuted batch")
    order = perm.tolist()
    if not close(found, base, rtol=1e-5, atol=1e-6):
        message = (
            f"expected the loss unchanged when the batch is permuted to rows {order}, found {fmt(found)} instead of "
            f"{fmt(base)}; if order matters by design, declare order_dependent = '<why>'"
        )
        raise _fail(name, loss, message)
    for key in keys:
        grad, reference = found_grads[key], base_grads[key]
        if grad is None or reference is None:
            continue
        if key in batched:
            reference = reference[perm.to(reference.device)]
        if not close(grad, reference, rtol=1e-5, atol=1e-6):
            message = (
                f"expected the gradient of {where_of(key)} permuted with the batch (rows {order}), found max |diff| "
                f"{fmt(max_abs_diff(grad, reference))}"
            )
            raise _fail(name, loss, message)
    return f"rows {order}"


@runs_single_threaded
def check_low_precision(loss: Any) -> str:
    """bfloat16 and float16 inputs (as given, and differentiable ones x100) give a finite loss and gradients, and
    the loss the same inputs give in float32 (within ``rtol`` 1e-2): a result that is finite but depends on the
    input dtype (a clamp chosen per dtype) is as wrong as a NaN."""
    name = "check_low_precision"
    loss = loss_instance(loss)
    notes = []
    for dtype in (torch.bfloat16, torch.float16):
        base = _example(name, loss, dtype=dtype)
        keys = _differentiable_keys(loss, base)
        short = str(dtype).replace("torch.", "")
        for scale in LOW_PRECISION_SCALES:
            example = cast_floats(base, torch.float32)
            if scale != 1.0:
                example = replace_inputs(example, {k: get_input(example, k) * scale for k in keys})
            example = cast_floats(example, dtype)
            what = f"{short} inputs" + (f" (differentiable inputs x{scale:g})" if scale != 1.0 else "")
            value, grads = _loss_and_grads(name, loss, example, keys, what=what)
            _require_finite(name, loss, value, grads, what)
            reference = _forward(name, loss, cast_floats(example, torch.float32), what=f"{what} cast to float32")
            if not close(value.reshape(()), reference.detach().reshape(()), rtol=LOW_PRECISION_RTOL,
                         atol=LOW_PRECISION_ATOL):
                message = (
                    f"expected the loss for {what} to match the loss of the same values in float32, {fmt(reference)}, "
                    f"within rtol {LOW_PRECISION_RTOL:g}, found {fmt(value)}: compute in float32 whatever the input "
                    "dtype (swift_zoo.ops.upcast), with the same constants for every dtype"
                )
                raise _fail(name, loss, message)
            notes.append(f"{short} x{scale:g}: {fmt(value)}")
    return "; ".join(notes)


@runs_single_threaded
def check_extreme_inputs(loss: Any) -> str:
    """Differentiable float inputs scaled x1e4 give a finite loss and gradients."""
    name = "check_extreme_inputs"
    loss = loss_instance(loss)
    example = _example(name, loss)
    keys = _differentiable_keys(loss, example)
    if not keys:
        raise CheckSkipped("no differentiable float input is declared (or present in example_inputs)")
    example = replace_inputs(example, {k: get_input(example, k) * EXTREME_SCALE for k in keys})
    what = f"differentiable inputs scaled x{EXTREME_SCALE:g}"
    value, grads = _loss_and_grads(name, loss, example, keys, what=what)
    _require_finite(name, loss, value, grads, what)
    return f"x{EXTREME_SCALE:g}: {fmt(value)}"


@runs_single_threaded
def check_cuda(loss: Any) -> str:
    """On a CUDA device the loss runs, stays there, and agrees with the CPU result (skipped without CUDA)."""
    name = "check_cuda"
    loss = loss_instance(loss)
    if not torch.cuda.is_available():
        raise CheckSkipped("torch.cuda is not available")
    cpu_example = _example(name, loss)
    keys = _differentiable_keys(loss, cpu_example)
    cuda_example = _example(name, loss, device="cuda")
    for key, tensor in tensors_of(cuda_example).items():
        if tensor.device.type != "cuda":
            message = f"expected example_inputs(device='cuda') to put {where_of(key)} on cuda, found {tensor.device}"
            raise _fail(name, loss, message)
    cuda_loss = copy.deepcopy(loss).to("cuda")
    value, grads = _loss_and_grads(name, cuda_loss, cuda_example, keys, what="cuda inputs")
    if value.device.type != "cuda":
        message = f"expected the loss on cuda, found it on {value.device}"
        raise _fail(name, loss, message)
    _require_finite(name, loss, value, grads, "cuda inputs")
    reference, reference_grads = _loss_and_grads(name, loss, cpu_example, keys)
    if not close(value.cpu(), reference, rtol=1e-4, atol=1e-5):
        message = f"expected the cuda loss to match the cpu loss {fmt(reference)}, found {fmt(value)}"
        raise _fail(name, loss, message)
    for key in keys:
        if grads[key] is not None and reference_grads[key] is not None and \
                not close(grads[key].cpu(), reference_grads[key], rtol=1e-4, atol=1e-5):
            message = (
                f"expected the cuda gradient of {where_of(key)} to match the cpu one, found max |diff| "
                f"{fmt(max_abs_diff(grads[key].cpu(), reference_grads[key]))}"
            )
            raise _fail(name, loss, message)
    return f"cuda {fmt(value)} vs cpu {fmt(reference)}"


LOSS_CHECKS: tuple[Callable[[Any], str], ...] = (
    check_metadata,
    check_unknown_kwargs_rejected,
    check_scalar_output,
    check_gradients_reach_inputs,
    check_gradcheck,
    check_deterministic,
    check_inputs_not_mutated,
    check_microbatch_split,
    check_masking,
    check_permutation,
    check_low_precision,
    check_extreme_inputs,
    check_cuda,
)
