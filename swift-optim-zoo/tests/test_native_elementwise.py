"""The C kernels of the element-wise rules (``_native_elementwise.c``) against their Python rules: the same rule run
in float64 (the exact result for the float32 inputs) and run eagerly in float32, on sizes that exercise every path
(one element, a vector tail, tensors split over two and three threads), with every structural flag."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from swift_optim_zoo import _native, _native_elementwise
from swift_optim_zoo._cautious_rules import CAUTIOUS_ADAMW_KERNEL, CAUTIOUS_LION_KERNEL
from swift_optim_zoo._fused import FusedKernel
from swift_optim_zoo.adamw_8bit.adamw_8bit import ADAMW_FULL_KERNEL
from swift_optim_zoo.adan.adan import ADAN_KERNEL
from swift_optim_zoo.ademamix.ademamix import ADEMAMIX_KERNEL
from swift_optim_zoo.adopt.adopt import ADOPT_KERNEL
from swift_optim_zoo.lamb.lamb import LAMB_KERNEL
from swift_optim_zoo.mars.mars import MARS_KERNEL
from swift_optim_zoo.prodigy.prodigy import PRODIGY_STATISTICS_KERNEL, PRODIGY_UPDATE_KERNEL
from swift_optim_zoo.sgd.sgd import SGD_KERNEL
from swift_optim_zoo.stable_adamw.stable_adamw import STABLE_ADAMW_KERNEL

SIZES = [1, 37, 70_001, 100_003]  # 70_001: two threads' shares; 100_003: three (32768 elements a share at least)

# (kernel, its tensors after param and grad: a letter each, "+" after one that is non-negative (a second moment),
# a leading "-" when the rule takes no gradient; hyper; flag sets)
CASES: dict[str, tuple[FusedKernel, str, tuple[float, ...], list[dict[str, bool]]]] = {
    "sgd": (SGD_KERNEL, "b", (0.05, 0.8, 0.1, 0.8, 0.7),
            [{}, {"nesterov": True, "decay": True}, {"decoupled": False, "decay": True}]),
    "adopt": (ADOPT_KERNEL, "mv+", (0.05, 0.8, 0.95, 1e-2, 0.1, 2.0),
              [{}, {"decay": True}, {"decay": True, "decoupled": True, "cautious": True}, {"cautious": True}]),
    "ademamix": (ADEMAMIX_KERNEL, "mnv+", (0.05, 0.8, 0.9, 0.99, 4.0, 1e-8, 0.1, 0.36, 0.44),
                 [{}, {"decay": True}, {"cautious": True, "decay": True}]),
    "adan": (ADAN_KERNEL, "mnv+l", (0.05, 0.9, 0.8, 0.95, 1e-8, 0.1, 0.19, 0.36, 0.31),
             [{}, {"decay": True}, {"decay": True, "decoupled": True}]),
    "mars": (MARS_KERNEL, "mv+l", (0.05, 0.8, 0.9, 0.1, 1e-8, 0.1, 0.36, 0.44),
             [{}, {"decay": True}, {"cautious": True, "decay": True}, {"corrected": False},
              {"corrected": False, "cautious": True}]),
    "lamb": (LAMB_KERNEL, "mv+", (0.05, 0.8, 0.9, 1e-6, 0.1, 0.36, 0.19, 10.0), [{}, {"cautious": True}]),
    "lamb_clamped": (LAMB_KERNEL, "mv+", (0.05, 0.8, 0.9, 1e-6, 0.0, 0.36, 0.19, 0.5), [{}, {"cautious": True}]),
    "stable_adamw": (STABLE_ADAMW_KERNEL, "mv+", (0.05, 0.7, 0.8, 1e-8, 0.1), [{}, {"decay": True}]),
    "prodigy_statistics": (PRODIGY_STATISTICS_KERNEL, "mv+sz", (3.0, 0.9, 0.99, 0.95, 0.1, 0.01, 0.2), [{}]),
    "cautious_adamw": (CAUTIOUS_ADAMW_KERNEL, "mv+", (0.05, 0.8, 0.9, 1e-8, 0.1, 0.36, 0.44), [{}]),
    "prodigy_update": (PRODIGY_UPDATE_KERNEL, "-mv+", (0.05, 1e-3, 0.01), [{}, {"decay": True}]),
    "cautious_lion": (CAUTIOUS_LION_KERNEL, "m", (0.05, 0.8, 0.9, 0.1), [{}]),
    "adamw_full": (ADAMW_FULL_KERNEL, "mv+", (0.05, 0.8, 0.9, 1e-8, 0.1, 0.36, 0.44), [{"stochastic_round": False}]),
}


@pytest.fixture(autouse=True)
def built() -> None:
    if _native.find_compiler() is None:
        pytest.skip("no C compiler here: the kernels cannot be built (the compiled rules run instead)")
    assert _native.library() is not None, _native._failure


def _names(states: str) -> list[str]:
    letters = states.replace("+", "")
    return ["param", *letters[1:]] if letters.startswith("-") else ["param", "grad", *letters]


def _tensors(states: str, size: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = [torch.randn(size, generator=gen)]  # the parameter
    if not states.startswith("-"):
        out.append(torch.randn(size, generator=gen))  # the gradient
    letters = states.lstrip("-")
    for i, letter in enumerate(letters):
        if letter == "+":
            continue
        t = torch.randn(size, generator=gen) * 0.5
        out.append(t.square() * 0.1 if letters[i + 1: i + 2] == "+" else t)
    return out


def _run(kernel: FusedKernel, tensors: list[torch.Tensor], hyper: tuple[float, ...], flags: dict[str, bool], *,
         native: bool) -> Any:
    if native:
        result = kernel.native(*tensors, scalars=hyper, **flags)
        assert result is not False, "the C kernel declined float32 CPU tensors"
        return result
    return kernel.rule(*tensors, hyper, **flags)


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_kernel_matches_the_float64_rule_and_the_eager_float32_rule(case: str, size: int, threads: int,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    kernel, states, hyper, flag_sets = CASES[case]
    for index, flags in enumerate(flag_sets):
        inputs = _tensors(states, size, seed=size + index)
        native = [t.clone() for t in inputs]
        eager = [t.clone() for t in inputs]
        exact = [t.double() for t in inputs]
        got = _run(kernel, native, hyper, flags, native=True)
        expected = _run(kernel, exact, hyper, flags, native=False)
        eager_result = _run(kernel, eager, hyper, flags, native=False)
        for name, a, b, c in zip(_names(states), native, exact, eager, strict=True):
            message = f"{case} {flags} size {size}: {name}"
            torch.testing.assert_close(a.double(), b, rtol=2e-5, atol=2e-6, msg=lambda m, s=message: f"{s}: {m}")
            torch.testing.assert_close(a, c, rtol=2e-5, atol=2e-6, msg=lambda m, s=message: f"{s} (eager): {m}")
        if isinstance(got, torch.Tensor):  # Prodigy's sums: float32 terms, carried in double
            torch.testing.assert_close(got, expected.double(), rtol=1e-6, atol=0)
            torch.testing.assert_close(got, eager_result.double(), rtol=1e-5, atol=0)
        if "grad" in _names(states):
            assert torch.equal(native[1], inputs[1]), f"{case}: the gradient was written"


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_team_size_gives_the_same_bits(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sums are added in thread order: two runs with two threads agree bit for bit."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    kernel, states, hyper, flag_sets = CASES[case]
    inputs = _tensors(states, 70_001, seed=5)
    runs = []
    for _ in range(2):
        tensors = [t.clone() for t in inputs]
        _run(kernel, tensors, hyper, flag_sets[-1], native=True)
        runs.append(tensors)
    for a, b in zip(*runs):
        assert torch.equal(a, b)


def test_cautious_mask_counts_agreeing_signs() -> None:
    """C-AdamW's first step from zero moments moves every element by sign(g) (Adam's first step), so all are kept
    and scaled by n / (n + 1); where the momentum starts against the gradient, the update disagrees and is dropped,
    and the kept half is scaled by n / (n/2 + 1)."""
    n = 1000
    grad = torch.linspace(-1, 1, n)  # no zero
    hyper = (1.0, 0.75, 0.9375, 0.0, 0.0, 1 - 0.75, (1 - 0.9375) ** 0.5)  # exact in float32: no rounding below
    param, exp_avg, exp_avg_sq = torch.zeros(n), torch.zeros(n), torch.zeros(n)
    assert CAUTIOUS_ADAMW_KERNEL.native(param, grad, exp_avg, exp_avg_sq, scalars=hyper)
    torch.testing.assert_close(param, -torch.sign(grad) * (n / (n + 1)), rtol=1e-6, atol=0)
    against = torch.arange(n) < n // 2
    param, exp_avg, exp_avg_sq = torch.zeros(n), torch.where(against, -10 * grad, 0.0), torch.zeros(n)
    assert CAUTIOUS_ADAMW_KERNEL.native(param, grad, exp_avg, exp_avg_sq, scalars=hyper)
    assert torch.equal(param[against], torch.zeros(n // 2))
    torch.testing.assert_close(param[~against], -torch.sign(grad[~against]) * (n / (n // 2 + 1)), rtol=1e-6,
                               atol=0)


def test_native_declines_what_it_does_not_take() -> None:
    """bf16, float64, non-contiguous or mismatched tensors, and a flag the kernel does not implement: False, nothing
    written (the compiled rule runs instead)."""
    base = [torch.randn(8) for _ in range(4)]
    for tensors in ([t.bfloat16() for t in base], [t.double() for t in base],
                    [torch.randn(8, 2)[:, 0], *base[1:]], [torch.randn(9), *base[1:]]):
        before = [t.clone() for t in tensors]
        assert _native_elementwise.ADOPT(*tensors, scalars=(0.1,) * 6) is False
        for a, b in zip(tensors, before):
            assert torch.equal(a, b)
    before = [t.clone() for t in base]
    assert ADAMW_FULL_KERNEL.native(*base, scalars=(0.1,) * 7, stochastic_round=True) is False
    assert all(torch.equal(a, b) for a, b in zip(base, before))
    with pytest.raises(ValueError, match=r"swift_adopt_f32: expected 4 tensors and 6 scalars, got 4 and 5"):
        _native_elementwise.ADOPT(*base, scalars=(0.1,) * 5)


def test_fused_kernel_returns_what_the_native_rule_returns() -> None:
    """Prodigy's statistics come back from the C kernel as the rule's sums (float64), through FusedKernel."""
    tensors = _tensors("mv+sz", 100, seed=1)
    hyper = (3.0, 0.9, 0.99, 0.95, 0.1, 0.01, 0.2)
    expected = PRODIGY_STATISTICS_KERNEL.rule(*[t.double() for t in tensors], hyper)
    calls = PRODIGY_STATISTICS_KERNEL.native_calls
    got = PRODIGY_STATISTICS_KERNEL(*tensors, scalars=hyper, owner="prodigy")
    assert PRODIGY_STATISTICS_KERNEL.native_calls == calls + 1
    assert got.dtype == torch.float64 and got.shape == (2,)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)
    assert PRODIGY_UPDATE_KERNEL.native is not None
