"""The ZooOptimizer frame: the non-finite-gradient policy, sharding refusal, named groups, the state-kind check."""

from __future__ import annotations

import warnings

import pytest
import torch

from swift_zoo import (
    ConfigError,
    DistributedCapability,
    NonFiniteGradientError,
    OptimizerStateError,
    Support,
    UnsupportedShardingError,
)
from swift_zoo.optim import NonFiniteGradientWarning, UntestedShardingWarning, ZooOptimizer, all_finite


class PlainSgd(ZooOptimizer):
    """SGD with momentum on the frame (the smallest subclass: declare, implement ``_step``)."""

    name = "plain_sgd"
    elementwise = True

    def __init__(self, params, lr: float = 0.1, momentum: float = 0.9) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum})

    def _step(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                buf.mul_(group["momentum"]).add_(p.grad)
                p.add_(buf, alpha=-group["lr"])


class RefusesZero(PlainSgd):
    name = "refuses_zero"
    distributed = DistributedCapability(zero3=Support("refused", "use FSDP2 instead"),
                                        zero1_2=Support("refused", "needs whole matrices"))


def _named_model_groups():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    groups = [{"params": [p], "param_names": [n]} for n, p in model.named_parameters()]
    return model, groups


def _backward(model):
    model(torch.randn(5, 4)).pow(2).sum().backward()


def _poison(model):
    weight = next(model.parameters())
    weight.grad.view(-1)[0] = float("nan")


def test_a_non_finite_gradient_skips_the_whole_step_and_says_which_parameter():
    model, groups = _named_model_groups()
    opt = PlainSgd(groups)
    _backward(model)
    opt.step()
    before = [p.detach().clone() for p in model.parameters()]
    state_before = [s["momentum_buffer"].clone() for s in opt.state.values()]
    opt.zero_grad()
    _backward(model)
    _poison(model)
    with pytest.warns(NonFiniteGradientWarning, match=r"optimizer 'plain_sgd': skipped a step \(skipped so far: 1\).*'0.weight'"):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(torch.equal(a, s["momentum_buffer"]) for a, s in zip(state_before, opt.state.values()))
    assert opt.skipped_steps == 1
    opt.zero_grad()
    _backward(model)
    opt.step()  # the next finite step trains: nothing was poisoned
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(bool(torch.isfinite(s["momentum_buffer"]).all()) for s in opt.state.values())


def test_the_raise_policy_names_the_parameters_and_updates_nothing(monkeypatch):
    model, groups = _named_model_groups()
    opt = PlainSgd(groups)
    _backward(model)
    _poison(model)
    before = [p.detach().clone() for p in model.parameters()]
    opt.nonfinite_grads = "raise"
    with pytest.raises(NonFiniteGradientError, match=r"non-finite gradient \(NaN or Inf\) in '0.weight'") as info:
        opt.step()
    assert info.value.parameters == ("'0.weight'",)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not opt.state
    fresh = PlainSgd(model.parameters())
    monkeypatch.setenv("SWIFT_ZOO_NONFINITE_GRADS", "raise")
    with pytest.raises(NonFiniteGradientError, match=r"param_groups\[0\]\['params'\]\[0\]"):
        fresh.step()


def test_a_bad_policy_is_a_config_error(monkeypatch):
    opt = PlainSgd([torch.nn.Parameter(torch.ones(2))])
    with pytest.raises(ConfigError, match="nonfinite_grads must be one of skip, raise, got 'ignore'"):
        opt.nonfinite_grads = "ignore"
    monkeypatch.setenv("SWIFT_ZOO_NONFINITE_GRADS", "sometimes")
    with pytest.raises(ConfigError, match="SWIFT_ZOO_NONFINITE_GRADS must be one of skip, raise, got 'sometimes'"):
        _ = opt.nonfinite_grads


def test_all_finite_is_not_fooled_by_overflowing_sums_or_empty_tensors():
    huge = torch.full((8,), 1e30)  # finite, but its squared norm overflows float32
    summed_over = torch.full((4096,), 3e38)  # finite, but its sum overflows even a float64 accumulator's cast back
    half = torch.full((16,), 60000.0, dtype=torch.float16)  # finite, its float16 sum would overflow
    assert all_finite([huge, summed_over, half, torch.empty(0), torch.ones(3, dtype=torch.bfloat16)])
    assert not all_finite([huge, torch.tensor([1.0, float("inf")])])
    assert not all_finite([summed_over, torch.tensor([float("nan"), 1.0])])
    assert not all_finite([torch.tensor([60000.0, float("inf")], dtype=torch.float16)])
    assert not all_finite([torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([[0.0, float("-inf")]])])
    assert not all_finite([torch.ones(3, dtype=torch.bfloat16), torch.tensor([float("nan")], dtype=torch.bfloat16)])
    assert not all_finite([torch.tensor([-float("inf"), float("inf")])])


def test_add_param_group_accepts_a_plain_group_after_named_groups():
    model, groups = _named_model_groups()
    opt = PlainSgd(groups)
    extra = torch.nn.Parameter(torch.ones(3))
    opt.add_param_group({"params": [extra]})  # torch alone rejects this: the other groups carry names
    assert opt.param_groups[-1]["param_names"] == ["added.4"]
    assert opt.param_groups[-1]["lr"] == 0.1
    named = torch.nn.Parameter(torch.ones(2))
    opt.add_param_group({"params": [("my.extra", named)]})
    assert opt.param_groups[-1]["param_names"] == ["my.extra"]


def test_loading_another_optimizer_kinds_state_fails_at_load():
    model, groups = _named_model_groups()
    opt = PlainSgd(groups)
    other = RefusesZero([{"params": g["params"], "param_names": g["param_names"]} for g in groups])
    with pytest.raises(OptimizerStateError,
                       match="saved by optimizer 'refuses_zero'.*load it into a 'refuses_zero' optimizer"):
        opt.load_state_dict(other.state_dict())
    adam = torch.optim.AdamW(model.parameters())
    with pytest.raises(OptimizerStateError, match=r"carries no 'zoo_optimizer' tag.*missing \['momentum'\]"):
        opt.load_state_dict(adam.state_dict())
    with pytest.raises(OptimizerStateError, match="expected a state dict with 'state' and a list of 'param_groups'"):
        opt.load_state_dict({"state": {}})


def test_an_untagged_state_of_the_same_shape_still_loads():
    model, groups = _named_model_groups()
    opt = PlainSgd(groups)
    _backward(model)
    opt.step()
    saved = opt.state_dict()
    for group in saved["param_groups"]:
        del group["zoo_optimizer"]  # as saved before the tag existed
    fresh = PlainSgd(_named_model_groups()[1])
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["zoo_optimizer"] == "plain_sgd"
    assert len(fresh.state) == len(opt.state)


def test_a_refused_wrapper_raises_at_construction_naming_optimizer_wrapper_and_remedy():
    param = torch.nn.Parameter(torch.ones(4, 4))
    param.ds_id = 7  # what DeepSpeed ZeRO-3 leaves on a partitioned parameter
    with pytest.raises(UnsupportedShardingError,
                       match=r"optimizer 'refuses_zero': parameter 'layer.weight' \(shape \(4, 4\)\) comes from "
                             r"DeepSpeed ZeRO-3 .* which this optimizer refuses: use FSDP2 instead"):
        RefusesZero([{"params": [param], "param_names": ["layer.weight"]}])


def test_a_flat_partition_put_in_a_matrix_group_later_is_refused_at_the_next_step():
    matrix = torch.nn.Parameter(torch.ones(4, 6))
    opt = RefusesZero([{"params": [matrix], "role": "hidden_matrix"}])
    flat = torch.nn.Parameter(torch.ones(24))  # what ZeRO-1/2 put where the hidden matrices were
    opt.param_groups[0]["params"] = [flat]
    flat.grad = torch.ones(24)
    with pytest.raises(UnsupportedShardingError, match="ZeRO-1/2 .*needs whole matrices"):
        opt.step()
    assert torch.equal(flat, torch.ones(24))


def test_an_undeclared_wrapper_warns_once():
    param = torch.nn.Parameter(torch.ones(3))
    param._is_flat_param = True  # an FSDP1 flat parameter
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        opt = PlainSgd([param])
        for _ in range(3):
            param.grad = torch.ones(3)
            opt.step()
    untested = [w for w in caught if issubclass(w.category, UntestedShardingWarning)]
    assert len(untested) == 1
    assert "FSDP1 flat parameters" in str(untested[0].message)
