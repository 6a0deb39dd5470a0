"""``fused=True``: the compiled per-tensor kernels against the eager rules they fuse, the
conformance suite on the fused variants, and the eager fallback when compilation fails."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from torch import nn

from swift_optim_zoo import _fused
from swift_optim_zoo.adafactor import Adafactor
from swift_optim_zoo.adafactor._fused_rule import FACTORED_WRITE_KERNEL, UNFACTORED_KERNEL
from swift_optim_zoo.adam_mini import AdamMini
from swift_optim_zoo.adam_mini.adam_mini import ADAM_MINI_KERNEL
from swift_optim_zoo.apollo import ApolloAdamW, ApolloMini
from swift_optim_zoo.lion import Lion
from swift_optim_zoo.lion.lion import LION_KERNEL
from swift_optim_zoo.schedule_free import ScheduleFreeAdamW
from swift_optim_zoo.schedule_free.adamw import SCHEDULE_FREE_KERNEL
from swift_zoo import ConfigError
from swift_zoo.testing import optimizer_checks, parametrize_with_checks


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.num_heads = heads
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)


class MixedModel(nn.Module):
    """Every kind of tensor a kernel meets: rows of a table, per-head blocks, 3-D, 1-D, a single element."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(11, 8)
        self.attn = Attention(8, heads=2)
        self.up = nn.Linear(8, 12)
        self.experts = nn.Parameter(torch.randn(3, 5, 4))
        self.norm = nn.RMSNorm(8)
        self.gate = nn.Parameter(torch.randn(1))


def _pair(dtype: torch.dtype) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    a = MixedModel().to(dtype)
    b = MixedModel().to(dtype)
    b.load_state_dict(a.state_dict())
    return a, b


ADAFACTOR_KERNELS = [FACTORED_WRITE_KERNEL, UNFACTORED_KERNEL]  # fp32 matrices on CPU take the C write (_native)
CASES: dict[str, tuple[type, dict[str, Any], list[Any]]] = {
    "lion": (Lion, {"lr": 0.05, "weight_decay": 0.3, "betas": (0.8, 0.95)}, [LION_KERNEL]),
    "schedule_free_adamw": (ScheduleFreeAdamW, {"lr": 0.05, "weight_decay": 0.1, "warmup_steps": 2},
                            [SCHEDULE_FREE_KERNEL]),
    "adam_mini": (AdamMini, {"lr": 0.05, "weight_decay": 0.1}, [ADAM_MINI_KERNEL]),
    "adafactor_lr": (Adafactor, {"lr": 0.05, "weight_decay": 0.1}, ADAFACTOR_KERNELS),
    "adafactor_relative": (Adafactor, {}, ADAFACTOR_KERNELS),
    "adafactor_momentum": (Adafactor, {"lr": 0.05, "beta1": 0.9}, ADAFACTOR_KERNELS),
}


def _build(cls: type, model: nn.Module, kwargs: dict[str, Any]) -> torch.optim.Optimizer:
    return cls(model if cls is AdamMini else model.parameters(), **kwargs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_fused_matches_eager_with_changing_hyperparameters(case: str, dtype: torch.dtype) -> None:
    """Four steps with a new lr (and new betas where the rule has them) every step: a compiled kernel that
    baked a hyperparameter in as a constant would drift from the eager rule at step 2."""
    cls, kwargs, kernels = CASES[case]
    eager_model, fused_model = _pair(dtype)
    eager = _build(cls, eager_model, kwargs)
    fused = _build(cls, fused_model, {**kwargs, "fused": True})
    gen = torch.Generator().manual_seed(1)
    for step in range(4):
        for group_e, group_f in zip(eager.param_groups, fused.param_groups):
            for group in (group_e, group_f):
                if group.get("lr") is not None:
                    group["lr"] = kwargs.get("lr", 0.05) / (step + 1)
                if "betas" in group:
                    group["betas"] = (0.9 - 0.05 * step, 0.99 - 0.01 * step)
        for p_e, p_f in zip(eager_model.parameters(), fused_model.parameters()):
            grad = torch.randn(p_e.shape, generator=gen).to(dtype)
            p_e.grad, p_f.grad = grad.clone(), grad.clone()
        eager.step()
        fused.step()
    assert all(kernel.compiled for kernel in kernels if kernel._compiled is not None)
    if dtype == torch.float32:  # float32 on the CPU: the C kernels of _native_rules, never a compilation
        assert any(kernel.native_calls for kernel in kernels)
    else:
        assert any(kernel.compiled for kernel in kernels)
    # fp32: the compiled loop reorders float ops (ulp-level); bf16: eager rounds after every op, the kernel once
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 2e-2}
    for (name, p_e), p_f in zip(eager_model.named_parameters(), fused_model.parameters()):
        torch.testing.assert_close(p_f, p_e, **tol, msg=lambda m, name=name: f"{case} {name}: {m}")


@pytest.mark.parametrize("cls", [Lion, ScheduleFreeAdamW, AdamMini, Adafactor, ApolloAdamW, ApolloMini])
def test_fused_must_be_a_bool(cls: type) -> None:
    with pytest.raises(ConfigError, match="'fused' must be a bool, got 'yes'"):
        _build(cls, MixedModel(), {"fused": "yes"})


def test_compilation_failure_warns_once_and_runs_the_rule_eagerly(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_compile(*args: Any, **kwargs: Any) -> Any:
        def run(*a: Any, **k: Any) -> None:
            raise RuntimeError("no C++ compiler found\nmore detail")
        return run

    kernel = _fused.FusedKernel(LION_KERNEL.rule)
    monkeypatch.setattr("swift_optim_zoo.lion.lion.LION_KERNEL", kernel)
    monkeypatch.setattr(torch, "compile", broken_compile)
    eager_model, fused_model = _pair(torch.float32)
    eager, fused = Lion(eager_model.parameters(), lr=0.1), Lion(fused_model.parameters(), lr=0.1, fused=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            for p_e, p_f in zip(eager_model.parameters(), fused_model.parameters()):
                p_e.grad = torch.ones_like(p_e)
                p_f.grad = torch.ones_like(p_f)
            eager.step()
            fused.step()
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1, messages
    assert "optimizer 'lion': fused=True could not compile" in messages[0]
    assert "RuntimeError: no C++ compiler found" in messages[0]
    assert not kernel.compiled
    for p_e, p_f in zip(eager_model.parameters(), fused_model.parameters()):
        torch.testing.assert_close(p_f, p_e)


def _block_moment_rule(param: torch.Tensor, grad: torch.Tensor, second: torch.Tensor, hyper: torch.Tensor) -> None:
    """The shape of Adam-mini's rule: a per-row reduction updates a small state tensor in place, then the row."""
    second.mul_(hyper[0]).add_(grad.square().mean(dim=1) * (1 - hyper[0]))
    param.sub_(grad / (second.sqrt() + hyper[1]).unsqueeze(1))


def test_kernel_compiled_on_one_thread_is_right_on_two() -> None:
    """A kernel first compiled while torch runs one thread (the conformance checks run so; a cached
    compilation from another process may have been) must stay right when it later runs on two.

    Inductor with ``cpp.dynamic_threads`` generated for one thread left the one-row state update
    unguarded inside the parallel region, so every thread applied it (``second`` decayed twice), and
    its code cache did not tell thread counts apart. Found in CI: Adam-mini's float64 layer-norm weights."""
    kernel = _fused.FusedKernel(_block_moment_rule)
    threads = torch.get_num_threads()

    def run(shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(shape[1])
        p, g = (torch.randn(shape, generator=gen, dtype=torch.float64) for _ in range(2))
        second = torch.rand(shape[0], generator=gen, dtype=torch.float64)
        p_eager, second_eager = p.clone(), second.clone()
        _block_moment_rule(p_eager, g, second_eager, torch.tensor([0.9, 1e-6], dtype=torch.float64))
        kernel(p, g, second, scalars=(0.9, 1e-6), owner="test")
        return p, second, p_eager, second_eager

    try:
        torch.set_num_threads(1)
        run((1, 8))
        torch.set_num_threads(2)
        for shape in [(1, 8), (1, 40), (1, 1000), (3, 16)]:
            for _ in range(3):
                p, second, p_eager, second_eager = run(shape)
                where = lambda m, shape=shape: f"{shape}: {m}"  # noqa: E731
                torch.testing.assert_close(second, second_eager, rtol=1e-12, atol=0, msg=where)
                torch.testing.assert_close(p, p_eager, rtol=1e-12, atol=1e-14, msg=where)
    finally:
        torch.set_num_threads(threads)
    assert kernel.compiled


@pytest.mark.parametrize("case", sorted(CASES))
def test_float32_cpu_steps_never_compile(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cold first step of fused=True on float32 CPU tensors must not wait for inductor: every
    kernel that has a C twin runs it, and torch.compile is never called."""
    def no_compile(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("torch.compile called for a float32 CPU step")

    monkeypatch.setattr(torch, "compile", no_compile)
    cls, kwargs, kernels = CASES[case]
    for kernel in kernels:
        monkeypatch.setattr(kernel, "_compiled", None)
        monkeypatch.setattr(kernel, "native_calls", 0)
    model, _ = _pair(torch.float32)
    opt = _build(cls, model, {**kwargs, "fused": True})
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    assert sum(kernel.native_calls for kernel in kernels if kernel.native is not None) > 0


@pytest.mark.parametrize("name", ["lion", "schedule_free_adamw", "ademamix", "stable_adamw", "sgd", "adamw_8bit"])
def test_float32_cpu_steps_hand_the_c_kernel_the_tensors_as_they_are(name: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The C kernels read only memory: a float32 CPU step makes no flat alias (``Tensor.set_``, several
    microseconds per tensor, was most of the per-parameter cost of a step on small tensors)."""
    import swift_zoo

    model, _ = _pair(torch.float32)
    opt = swift_zoo.build_optimizer(name, model.parameters(), lr=1e-2, fused=True)
    for p in model.parameters():
        p.grad = torch.randn_like(p)

    def no_alias(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("Tensor.set_ (an alias) on the C kernel path")

    monkeypatch.setattr(torch.Tensor, "set_", no_alias)
    before = [p.detach().clone() for p in model.parameters()]
    opt.step()
    assert all(not torch.equal(p, b) for p, b in zip(model.parameters(), before) if p.numel() > 1)


# the whole conformance suite (resume, bf16, no state for grad-less params, declared bytes...) on the fused variants;
# check_fsdp2_equivalence spawns ranks that compile the kernels again: it runs in tests_distributed/test_fused_fsdp2.py
@parametrize_with_checks([
    (Lion, {"lr": 1e-2, "fused": True}),
    (ScheduleFreeAdamW, {"lr": 1e-2, "fused": True}),
    (AdamMini, {"lr": 1e-2, "fused": True}),
    (Adafactor, {"lr": 1e-2, "fused": True}),
    (ApolloAdamW, {**ApolloAdamW.example_kwargs(), "fused": True}),
    (ApolloMini, {**ApolloMini.example_kwargs(), "fused": True}),
], checks=[name for name in optimizer_checks() if name != "check_fsdp2_equivalence"])
def test_fused_conformance(subject: Any, check: Any) -> None:
    check(subject)
