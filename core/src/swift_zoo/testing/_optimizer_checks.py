"""The named conformance checks for optimizers.

Each check is a plain function ``check_x(optimizer, optimizer_kwargs=None) -> str``: ``optimizer``
is an optimizer class, a registered name, or an ``(optimizer class, kwargs)`` pair. The suite
builds every optimizer through :func:`swift_zoo.build_optimizer` (role-based param groups from a
model) with ``optimizer_kwargs``, else the class's ``example_kwargs()`` classmethod if it has one,
else its defaults; it calls ``optimizer.train()`` first when the optimizer has train/eval hooks
(schedule-free). A check returns a short note when it holds, raises
:class:`swift_zoo.ConformanceError` when it does not, :class:`CheckSkipped` when it does not apply.
"""

from __future__ import annotations

import inspect
import io
import math
import pickle
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from swift_zoo._errors import ConformanceError
from swift_zoo.optim import declared_state_bytes, measure_state_bytes
from swift_zoo.testing._models import Quadratic, tiny_lm, tiny_lm_batch, tiny_lm_loss
from swift_zoo.testing._report import CheckSkipped
from swift_zoo.testing._subject import OptimizerSubject, optimizer_subject
from swift_zoo.testing._tensors import fmt
from swift_zoo.testing._threads import runs_single_threaded

QUADRATIC_STEPS = 50
QUADRATIC_DISTANCES = (0.004, 0.04)  # per-coordinate distance of the optimum from the start
QUADRATIC_REDUCTION = 0.5  # final loss at most this fraction of the initial one
LM_STEPS = 30
LM_REDUCTION = 0.99  # a 1% fall: progress, not lr tuning (sign methods at lr 1e-4 fall ~2%)
RESUME_STEPS = (3, 3)  # steps before saving, steps after loading
RESUME_ATOL = 1e-6
STATE_BYTES_SHAPE = (64, 48)
STATE_BYTES_RANK = 8
_PLAIN = (bool, int, float, str, bytes, type(None))


# --------------------------------------------------------------------------- helpers
def _fail(check: str, subject: OptimizerSubject, message: str) -> ConformanceError:
    return ConformanceError(check, subject.label, message)


def _build(check: str, subject: OptimizerSubject, model_or_params: Any, **overrides: Any) -> torch.optim.Optimizer:
    try:
        return subject.build(model_or_params, **overrides)
    except ConformanceError:
        raise
    except Exception as exc:
        shown = {**subject.kwargs, **overrides}
        message = (
            f"expected swift_zoo.build_optimizer({subject.cls.__name__}, model, **{shown}) to build an optimizer, "
            f"found {type(exc).__name__}: {exc}"
        )
        raise _fail(check, subject, message) from exc


def _step(check: str, subject: OptimizerSubject, optimizer: torch.optim.Optimizer,
          loss_fn: Callable[[], torch.Tensor]) -> float:
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn()
    loss.backward()
    try:
        optimizer.step()
    except Exception as exc:
        message = f"expected optimizer.step() to run, found {type(exc).__name__}: {exc}"
        raise _fail(check, subject, message) from exc
    return loss.item()


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def _moved(module: nn.Module, before: Mapping[str, torch.Tensor]) -> list[str]:
    return [name for name, p in module.named_parameters() if not torch.equal(p.detach(), before[name])]


def _evaluate(optimizer: torch.optim.Optimizer, loss_fn: Callable[[], torch.Tensor]) -> float:
    """The loss at the point the optimizer would report (schedule-free: in eval mode)."""
    evaluate = getattr(optimizer, "eval", None)
    train = getattr(optimizer, "train", None)
    swap = callable(evaluate) and callable(train)
    if swap:
        evaluate()
    with torch.no_grad():
        value = loss_fn().item()
    if swap:
        train()
    return value


class _LMTask:
    """A tiny LM and a fixed batch: ``loss()`` is its next-token cross-entropy."""

    def __init__(self, seed: int = 0, dtype: torch.dtype = torch.float32) -> None:
        self.model = tiny_lm(seed, dtype=dtype)
        self.tokens = tiny_lm_batch(seed)

    def loss(self) -> torch.Tensor:
        return tiny_lm_loss(self.model, self.tokens)


class _WithUnused(nn.Module):
    """A quadratic plus a layer the loss never touches (its parameters get no gradient)."""

    def __init__(self) -> None:
        super().__init__()
        self.used = Quadratic()
        self.unused = nn.Linear(8, 8)

    def forward(self) -> torch.Tensor:
        return self.used()


class _StateBytesModel(nn.Module):
    """A 64x48 hidden matrix (where a low-rank method really saves) and a norm gain."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.proj = nn.Linear(STATE_BYTES_SHAPE[1], STATE_BYTES_SHAPE[0], bias=False)
        self.norm = nn.LayerNorm(STATE_BYTES_SHAPE[0])
        self.register_buffer("x", torch.randn(16, STATE_BYTES_SHAPE[1], generator=generator))
        self.register_buffer("y", torch.randn(16, STATE_BYTES_SHAPE[0], generator=generator))

    def forward(self) -> torch.Tensor:
        return (self.norm(self.proj(self.x)) - self.y).pow(2).mean()


def _named_params(module: nn.Module) -> dict[int, str]:
    return {id(p): name for name, p in module.named_parameters()}


# ---------------------------------------------------------------------------- checks
@runs_single_threaded
def check_reduces_quadratic(optimizer: Any, optimizer_kwargs: Mapping[str, Any] | None = None) -> str:
    """A convex quadratic (8x8 matrix + bias) falls to at most half its initial value in 50 steps.

    The optimum starts 0.004 per coordinate away (suits lr ~1e-4..1e-3), then, if that fails, 0.04
    away (lr ~1e-3..2e-2): the check asks for progress, not for an lr tuned to one scale.
    """
    name = "check_reduces_quadratic"
    subject = optimizer_subject(optimizer, optimizer_kwargs)
    tried = []
    for distance in QUADRATIC_DISTANCES:
        model = Quadratic(distance=distance)
        opt = _build(name, subject, model)
        initial = _evaluate(opt, model)
        for _ in range(QUADRATIC_STEPS):
            _step(name, subject, opt, model)
        final = _evaluate(opt, model)
        if math.isfinite(final) and final <= QUADRATIC_REDUCTION * initial:
            return f"{fmt(initial)} -> {fmt(final)} in {QUADRATIC_STEPS} steps (optimum {distance:g} away)"
        tried.append(f"{fmt(initial)} -> {fmt(final)} with the optimum {distance:g} away")
    message = (
        f"expected a convex quadratic to fall to at most {QUADRATIC_REDUCTION:g}x its initial value in "
        f"{QUADRATIC_STEPS} steps (kwargs {subject.kwargs}), found {'; '.join(tried)}; if the lr does not suit "
        "either scale, give the class an example_kwargs() classmethod"
    )
    raise _fail(name, subject, message)


@runs_single_threaded
def check_trains_tiny_lm(optimizer: Any, optimizer_kwargs: Mapping[str, Any] | None = None) -> str:
    """A tiny LM (embedding, norms, q/k/v/o, MLP, lm_head) built with role-based groups learns a fixed batch."""
    name = "check_trains_tiny_lm"
    subject = optimizer_subject(optimizer, optimizer_kwargs)
    task = _LMTask()
    opt = _build(name, subject, task.model)
    initial = _evaluate(opt, task.loss)
    for _ in range(LM_STEPS):
        _step(name, subject, opt, task.loss)
    final = _evaluate(opt, task.loss)
    if not math.isfinite(final) or final > LM_REDUCTION * initial:
        message = (
            f"expected the tiny LM's loss to fall from {fmt(initial)} to at most {fmt(LM_REDUCTION * initial)} in "
            f"{LM_STEPS} steps on a fixed batch (kwargs {subject.kwargs}), found {fmt(final)}"
        )
        raise _fail(name, subject, message)
    roles = sorted({str(g.get("role", "?")) for g in opt.param_groups})
    return f"{fmt(initial)} -> {fmt(final)} in {LM_STEPS} steps; groups {roles}"


@runs_single_threaded
def check_no_grad_params_untouched(optimizer: Any, optimizer_kwargs: Mapping[str, Any] | None = None) -> str:
    """Parameters whose ``.grad`` is None get no optimizer state and do not move."""
    name = "check_no_grad_params_untouched"
    subject = optimizer_subject(optimizer, optimizer_kwargs)
    model = _WithUnused()
    opt = _build(name, subject, model)
    before = _snapshot(model)
    for _ in range(3):
        _step(name, subject, opt, model)
    names = _named_params(model)
    for param in model.unused.parameters():
        label = names[id(param)]
        state = opt.state.get(param) if param in opt.state else None
        if state:
            message = (
                f"expected no state for {label!r}, whose grad is None, found state keys {sorted(map(str, state))}: "
                "skip parameters without a gradient"
            )
            raise _fail(name, subject, message)
        if not torch.equal(param.detach(), before[label]):
            diff = (param.detach() - before[label]).abs().max().item()
            message = (
                f"expected {label!r}, whose grad is None, not to move, found it moved by max |diff| {fmt(diff)} "
                "(weight decay or momentum applied without a gradient?)"
            )
            raise _fail(name, subject, message)
    moved = [n for n in _moved(model, before) if n.startswith("used.")]
    if not moved:
        message = "expected the parameters with gradients to move, found none moved"
        raise _fail(name, subject, message)
    return f"{len(list(model.unused.parameters()))} grad-less params untouched; {len(moved)} others moved"


@runs_single_threaded
def check_zero_lr_no_movement(optimizer: Any, optimizer_kwargs: Mapping[str, Any] | None = None) -> str:
    """With ``lr=0`` (and every ``*_lr`` kwarg 0) no parameter moves (bitwise) over 3 steps."""
    name = "check_zero_lr_no_movement"
    subject = optimizer_subject(optimizer, optimizer_kwargs)
    if "lr" not in subject.accepted_kwargs:
        raise CheckSkipped(f"{subject.cls.__name__} takes no 'lr' kwarg")
    # every learning rate: hybrids take their inner optimizer's lr separately (e.g. Muon's adamw_lr)
    zeros = {"lr": 0.0}
    for key, param in inspect.signature(subject.cls.__init__).parameters.items():
        numeric = isinstance(param.default, (int, float)) and not isinstance(param.default, bool)
        if key != "lr" and numeric and (key == "learning_rate" or key.endswith("_lr")):
            zeros[key] = 0.0
    task = _LMTask()
    opt = _build(name, subject, task.model, **zeros)
    before = _snapshot(task.model)
    for _ in range(3):
        _step(name, subject, opt, task.loss)
    moved = _moved(task.model, before)
    if moved:
        diff = max((dict(task.model.named_parameters())[n].detach() - before[n]).abs().max().item() for n in moved)
        shown = ", ".join(f"{k}=0" for k in zeros)
        message = (
            f"expected no parameter to move with {shown}, found {len(moved)} moved (e.g. {moved[0]!r}, max |diff| "
            f"{fmt(diff)})"
        )
        raise _fail(name, subject, message)
    return f"{len(before)} params unchanged over 3 steps with {', '.join(f'{k}=0' for k in zeros)}"


@runs_single_threaded
def check_per_group_lr(optimizer: Any, optimizer_kwargs: Mapping[str, Any] | None = None) -> str:
    """A param group whose lr is set to 0 does not move; the other groups do."""
    name = "check_per_group_lr"
    subject = optimizer_subject(optimizer, optimizer_kwargs)
    task = _LMTask()
    opt = _build(name, subject, task.model)
    groups = opt.param_groups
    if len(groups) < 2:
        raise CheckSkipped("the optimizer puts every parameter in one param group")
    if any("lr" not in g for g in groups):
        raise CheckSkipped("its param groups carry no 'lr'")
    frozen_index = next((i for i, g in enumerate(groups) if g.get("role") == "hidden_matrix"), 0)
    groups[frozen_index]["lr"] = 0.0
    names = _named_params(task.model)
    before = _snapshot(task.model)
    for _ in range(3):
        _step(name, subject, opt, task.loss)
    moved = set(_moved(task.model, before))
    for index, group in enumerate(groups):
        labels = [names[id(p)] for p in group["params"] if id(p) in names]
        role = group.get("role", f"group {index}")
        if index == frozen_index:
            wrong = [n for n in labels if n in moved]
            if wrong:
                message = (
                    f"expected the params of param group {index} ({role}, lr set to 0) not to move, found "
                    f"{len(wrong)} moved (e.g. {wrong[0]!r}): the step ignores the group's lr"
                )
                raise _fail(name, subject, message)
        elif labels and not any(n in moved for n in labels):
            message = (
                f"expected the params of param group {index} ({role}, lr {group['lr']}) to move while group "
                f"{frozen_index} has lr 0, found none moved"
            )
            raise _fail(name, subject, message)
    return f"group {frozen_index} ({groups[frozen_index].get('role', '?')}) frozen; {len(groups) - 1} others moved"


@runs_single_threaded
def check_add_param_group(optimizer: Any, optimizer_kwargs: Mapping[str, Any] | None = None) -> str:
    """``add_param_group({"params": [...]})`` after some steps, on an optimizer built from a model (whose groups
    carry ``param_names``): accepted, the new group gets the defaults, and its params move."""
    name = "check_add_param_group"
    subject = optimizer_subject(optimizer, optimizer_kwargs)
    first, second = Quadratic(seed=0), Quadratic(seed=1)
    opt = _build(name, subject, first)
    for _ in range(2):
        _step(name, subject, opt, first)
    try:
        opt.add_param_group({"params": list(second.parameters())})
    except Exception as exc:
        named = " (the model-built groups carry param_names)" if any("param_names" in g for g in opt.param_groups) else ""
        message = (
            f"expected add_param_group({{'params': [...]}}) to accept a new group{named}, found "
            f"{type(exc).__name__}: {exc}"
        )
        raise _fail(name, subject, message) from exc
    added = opt.param_groups[-1]
    missing = [key for key in opt.defaults if key not in added]
    if missing:
        message = f"expected the added group to be filled with the defaults, found it lacks {missing}"
        raise _fail(name, subject, message)
    before_first, before_second = _snapshot(first), _snapshot(second)
    for _ in range(3):
        _step(name, subject, opt, lambda: first() + second())
    if not _moved(second, before_second):
        message = "expected the params of the added group to move, found none moved"
        raise _fail(name, subject, message)
    if not _moved(first, before_first):
        message = "expected the params of the original groups to keep moving after add_param_group, found none moved"
        raise _fail(name, subject, message)
    return f"{len(opt.param_groups)} groups, added group moved"


def _state_snapshot(opt: torch.optim.Optimizer) -> list[tuple[str, torch.Tensor]]:
    found = []
    for index, (_, state) in enumerate(opt.state.items()):
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                found.append((f"state[{index}][{key!r}]", value.detach().clone()))
    return found


def _non_finite_state(opt: torch.optim.Optimizer) -> list[str]:
    return [label for label, value in _state_snapshot(opt)
            if value.is_floating_point() and not bool(torch.isfinite(value).all())]


@runs_single_threaded
def check_nonfinite_gradient(optimizer: Any, optimizer_kwargs: Mapping[str, Any] | None = None) -> str:
    """A step whose gradients hold NaN / Inf follows the zoo-wide policy: it changes no parameter and no state, and
    says so (``NonFiniteGradientWarning``, policy ``"skip"``) or raises ``NonFiniteGradientError`` (``"raise"``); the
    next finite step trains as usual. A NaN must never silently poison state and freeze a weight."""
    import warnings

    from swift_zoo._errors import NonFiniteGradientError

    name = "check_nonfinite_gradient"
    subject = optimizer_subject(optimizer, optimizer_kwargs)
    task = _LMTask()
    opt = _build(name, subject, task.model)
    for _ in range(2):
        _step(name, subject, opt, task.loss)
    opt.zero_grad(set_to_none=True)
    task.loss().backward()
    with_grad = [(n, p) for n, p in task.model.named_parameters() if p.grad is not None]
    poisoned = [with_grad[0][0], with_grad[-1][0]]
    with torch.no_grad():
        with_grad[0][1].grad.view(-1)[0] = float("nan")
        with_grad[-1][1].grad.view(-1)[-1] = float("inf")
    params_before, state_before = _snapshot(task.model), _state_snapshot(opt)
    raised = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            opt.step()
        except NonFiniteGradientError as exc:
            raised = exc
        except Exception as exc:
            message = (
                f"expected a step with a NaN gradient in {poisoned[0]!r} (and Inf in {poisoned[1]!r}) to be skipped or "
                f"to raise swift_zoo.NonFiniteGradientError, found {type(exc).__name__}: {exc}"
            )
            raise _fail(name, subject, message) from exc
    moved = _moved(task.model, params_before)
    changed = [label for (label, before), (_, after) in zip(state_before, _state_snapshot(opt))
               if not torch.equal(before, after)]
    if moved or changed or len(_state_snapshot(opt)) != len(state_before):
        what = ", ".join((moved + changed)[:4]) or "the state's entries"
        message = (
            f"expected a step with a NaN gradient in {poisoned[0]!r} (and Inf in {poisoned[1]!r}) to change no parameter "
            f"and no state (the zoo-wide policy: skip the step, or raise NonFiniteGradientError), found {what} changed"
        )
        raise _fail(name, subject, message)
    if raised is None and not caught:
        message = (
            "expected a skipped non-finite step to say so (a warning such as NonFiniteGradientWarning, or "
            "NonFiniteGradientError under the 'raise' policy), found it skipped silently"
        )
        raise _fail(name, subject, message)
    params_before = _snapshot(task.model)
    _step(name, subject, opt, task.loss)
    bad_state = _non_finite_state(opt)
    bad_params = [n for n, p in task.model.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad_state or bad_params:
        message = f"expected finite parameters and state after the next finite step, found non-finite {(bad_params + bad_state)[:4]}"
        raise _fail(name, subject, message)
    if not _moved(task.model, params_before):
        message = "expected the next finite step to move the parameters again, found none moved"
        raise _fail(name, subject, message)
    return "raised NonFiniteGradientError" if raised is not None else f"skipped with a warning: {type(caught[0].message).__name__}"


@runs_single_threaded
def check_foreign_state_refused(optimizer: Any, optimizer_kwargs: Mapping[str, Any] | None = None) -> str:
    """``load_state_dict`` of another optimizer kind's state (torch SGD with momentum, on the same groups) fails at
    load with an error, instead of adopting its hyperparameters silently or crashing at the next step."""
    name = "check_foreign_state_refused"
    subject = optimizer_subject(optimizer, optimizer_kwargs)
    task = _LMTask()
    opt = _build(name, subject, task.model)
    groups = [{k: v for k, v in g.items() if k not in ("zoo_optimizer",)} for g in opt.param_groups]
    foreign = torch.optim.SGD([{"params": g["params"], "lr": 0.1} for g in groups], lr=0.1, momentum=0.9)
    foreign.zero_grad(set_to_none=True)
    task.loss().backward()
    foreign.step()
    state = foreign.state_dict()
    try:
        opt.load_state_dict(state)
    except Exception as exc:
        return f"refused at load: {type(exc).__name__}"
    try:
        _step(name, subject, opt, task.loss)
    except ConformanceError as exc:
        message = (
            "expected load_state_dict of a torch.optim.SGD state dict to fail at load with a clear error, found it "
            f"accepted, then the next step failed ({exc.detail[:200]})"
        )
        raise _fail(name, subject, message) from exc
    message = (
        "expected load_state_dict of a torch.optim.SGD state dict to fail at load with a clear error, found it "
        f"accepted silently (groups now: {sorted(k for k in opt.param_groups[0] if k != 'params')[:8]}...)"
    )
    raise _fail(name, subject, message)


@runs_single_threaded
def check_closure(optimizer: Any, optimizer_kwargs: Mapping[str, Any] | None = None) -> str:
    """``step(closure)`` calls the closure, returns its loss, and moves the parameters."""
    name = "check_closure"
    subject = optimizer_subject(optimizer, optimizer_kwargs)
    model = Quadratic()
    opt = _build(name, subject, model)
    before = _snapshot(model)
    values: list[float] = []

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = model()
        loss.backward()
        values.append(loss.item())
        return loss

    try:
        returned = opt.step(closure)
    except Exception as exc:
        message = f"expected optimizer.step(closure) to run, found {type(exc).__name__}: {exc}"
        raise _fail(name, subject, message) from exc
    if not values:
        message = "expected step(closure) to call the closure, found it was never called"
        raise _fail(name, subject, message)
    if returned is None:
        message = f"expected step(closure) to return the closure's loss {fmt(values[0])}, found None"
        raise _fail(name, subject, message)
    value = float(returned.item() if isinstance(returned, torch.Tensor) else returned)
    if value != values[0]:
        message = f"expected step(closure) to return the closure's loss {fmt(values[0])}, found {fmt(value)}"
        raise _fail(name, subject, message)
    if not _moved(model, before):
        message = "expected step(closure) to move the parameters, found none moved"
        raise _fail(name, subject, message)
    return f"closure called {len(values)}x, returned {fmt(value)}"


@runs_single_threaded
def check_scheduler_takes_effect(optimizer: Any, optimizer_kwargs: Mapping[str, Any] | None = None) -> str:
    """A LambdaLR that drops the lr to 0 after the first step stops all movement."""
    name = "check_scheduler_takes_effect"
    subject = optimizer_subject(optimizer, optimizer_kwargs)
    task = _LMTask()
    opt = _build(name, subject, task.model)
    if any("lr" not in g for g in opt.param_groups):
        raise CheckSkipped("its param groups carry no 'lr'")
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 if step == 0 else 0.0)
    start = _snapshot(task.model)
    _step(name, subject, opt, task.loss)
    scheduler.step()
    if not _moved(task.model, start):
        message = "expected the first step (full lr) to move the parameters, found none moved"
        raise _fail(name, subject, message)
    lrs = [g["lr"] for g in opt.param_groups]
    if any(lr != 0 for lr in lrs):
        message = f"expected LambdaLR to set every group's lr to 0, found {lrs}"
        raise _fail(name, subject, message)
    before = _snapshot(task.model)
    for _ in range(3):
        _step(name, subject, opt, task.loss)
        scheduler.step()
    moved = _moved(task.model, before)
    if moved:
        message = (
            f"expected no movement after the scheduler set lr to 0, found {len(moved)} params moved (e.g. "
            f"{moved[0]!r}): the step reads a cached lr instead of param_groups[i]['lr']"
        )
        raise _fail(name, subject, message)
    return "lr 0 after step 1: no movement in 3 steps"


@runs_single_threaded
def check_bf16_params(optimizer: Any, optimizer_kwargs: Mapping[str, Any] | None = None) -> str:
    """bfloat16 parameters stay bfloat16 and finite, move, and their state lives on their device."""
    name = "check_bf16_params"
    subject = optimizer_subject(optimizer, optimizer_kwargs)
    task = _LMTask(dtype=torch.bfloat16)
    opt = _build(name, subject, task.model)
    before = _snapshot(task.model)
    for _ in range(3):
        _step(name, subject, opt, task.loss)
    for label, param in task.model.named_parameters():
        if param.dtype != torch.bfloat16:
            message = f"expected {label!r} to stay torch.bfloat16, found {param.dtype}"
            raise _fail(name, subject, message)
        if not bool(torch.isfinite(param).all()):
            message = f"expected {label!r} finite after 3 bf16 steps, found non-finite values"
            raise _fail(name, subject, message)
        for key, value in (opt.state.get(param) or {}).items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.device != param.device:
                message = f"expected state {key!r} of {label!r} on {param.device}, found it on {value.device}"
                raise _fail(name, subject, message)
    if not _moved(task.model, before):
        message = "expected bf16 parameters to move in 3 steps, found none moved (updates lost to rounding?)"
        raise _fail(name, subject, message)
    return f"{len(before)} bf16 params, still bf16"


def _non_plain(value: Any, path: str) -> str | None:
    """The path of the first value in a state dict that is neither a tensor nor a plain Python value."""
    if isinstance(value, torch.Tensor) or isinstance(value, _PLAIN):
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, _PLAIN):
                return f"{path} key {key!r} ({type(key).__name__})"
            found = _non_plain(item, f"{path}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _non_plain(item, f"{path}[{i}]")
            if found:
                return found
        return None
    return f"{path} ({type(value).__module__}.{type(value).__qualname__})"


@runs_single_threaded
def check_state_dict_resume(optimizer: Any, optimizer_kwargs: Mapping[str, Any] | None = None) -> str:
    """Save after 3 steps, ``torch.load(weights_only=True)`` into a fresh optimizer, continue: same trajectory."""
    name = "check_state_dict_resume"
    subject = optimizer_subject(optimizer, optimizer_kwargs)
    before_save, after_load = RESUME_STEPS
    task = _LMTask()
    opt = _build(name, subject, task.model)
    for _ in range(before_save):
        _step(name, subject, opt, task.loss)
    state = opt.state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    try:
        loaded = torch.load(buffer, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as exc:
        culprit = _non_plain(state, "state_dict()")
        where = f" (first offending value: {culprit})" if culprit else ""
        summary = " ".join(str(exc).split())[:300]
        message = (
            f"expected state_dict() to load with torch.load(weights_only=True), found it fails{where}: "
            f"{type(exc).__name__}: {summary}; keep only tensors and plain Python values in state"
        )
        raise _fail(name, subject, message) from exc
    culprit = _non_plain(state, "state_dict()")
    if culprit:
        message = f"expected only tensors and plain Python values in state_dict(), found {culprit}"
        raise _fail(name, subject, message)
    resumed = _LMTask()
    resumed.model.load_state_dict(task.model.state_dict())
    fresh = _build(name, subject, resumed.model)
    try:
        fresh.load_state_dict(loaded)
    except Exception as exc:
        message = f"expected a fresh optimizer to load the saved state_dict, found {type(exc).__name__}: {exc}"
        raise _fail(name, subject, message) from exc
    for _ in range(after_load):
        _step(name, subject, opt, task.loss)
        _step(name, subject, fresh, resumed.loss)
    reference = dict(task.model.named_parameters())
    worst, worst_name = 0.0, ""
    for label, param in resumed.model.named_parameters():
        diff = (param.detach().double() - reference[label].detach().double()).abs().max().item()
        if not diff <= worst:
            worst, worst_name = diff, label
    if not worst <= RESUME_ATOL:
        message = (
            f"expected the run resumed from a weights_only-loaded state_dict after {before_save} steps to match the "
            f"uninterrupted run after {after_load} more steps (to {RESUME_ATOL:g}), found max |diff| {fmt(worst)} "
            f"on {worst_name!r}: something the update depends on (a step counter, a projector, a seed) is not "
            "saved in state_dict() or not restored by load_state_dict()"
        )
        raise _fail(name, subject, message)
    exact = "bitwise" if worst == 0 else f"max |diff| {fmt(worst)}"
    return f"resumed after {before_save} steps, {after_load} more: {exact}"


@runs_single_threaded
def check_state_bytes(optimizer: Any, optimizer_kwargs: Mapping[str, Any] | None = None) -> str:
    """Measured state bytes <= the declared ``state_bytes_for`` formula, on a 64x48 matrix (rank 8 if low-rank)."""
    name = "check_state_bytes"
    subject = optimizer_subject(optimizer, optimizer_kwargs)
    model = _StateBytesModel()
    overrides = {}
    if "rank" in subject.accepted_kwargs and "rank" not in subject.kwargs:
        overrides["rank"] = STATE_BYTES_RANK
    opt = _build(name, subject, model, **overrides)
    for _ in range(2):
        _step(name, subject, opt, model)
    if not callable(getattr(opt, "state_bytes_for", None)):
        message = (
            f"expected {subject.cls.__name__}.state_bytes_for(param, group) -> int (the declared state-size formula), "
            "found it not declared"
        )
        raise _fail(name, subject, message)
    try:
        declared = declared_state_bytes(opt)
    except Exception as exc:
        message = f"expected state_bytes_for(param, group) to compute, found {type(exc).__name__}: {exc}"
        raise _fail(name, subject, message) from exc
    measured = measure_state_bytes(opt)
    if measured > declared:
        names = _named_params(model)
        details = []
        for group in opt.param_groups:
            for param in group["params"]:
                state = opt.state.get(param) or {}
                have = sum(v.untyped_storage().nbytes() for v in state.values()
                           if isinstance(v, torch.Tensor) and v.numel())
                said = int(opt.state_bytes_for(param, group)) if state else 0
                if have > said:
                    details.append(f"{names.get(id(param), '?')} {tuple(param.shape)}: {have} > {said}")
        shown = "; ".join(details) or "(shared storages)"
        message = (
            f"expected measured optimizer state <= the declared formula on a {STATE_BYTES_SHAPE[0]}x"
            f"{STATE_BYTES_SHAPE[1]} matrix (kwargs {({**subject.kwargs, **overrides})}), found {measured} bytes "
            f"measured > {declared} declared: {shown}"
        )
        raise _fail(name, subject, message)
    return f"measured {measured} <= declared {declared} bytes" + (f" (rank {overrides['rank']})" if overrides else "")


OPTIMIZER_CHECKS: tuple[Callable[..., str], ...] = (
    check_reduces_quadratic,
    check_trains_tiny_lm,
    check_no_grad_params_untouched,
    check_zero_lr_no_movement,
    check_per_group_lr,
    check_add_param_group,
    check_closure,
    check_scheduler_takes_effect,
    check_bf16_params,
    check_state_dict_resume,
    check_state_bytes,
    check_nonfinite_gradient,
    check_foreign_state_refused,
)
