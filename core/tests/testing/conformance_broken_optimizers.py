"""A small correct Adam and deliberately broken variants, one defect each, for the meta-tests."""

from __future__ import annotations

import math

import torch

from swift_zoo import OptimizerModeError
from swift_zoo.optim import ZooOptimizer


class TinyAdam(ZooOptimizer):
    """Adam with decoupled weight decay, written plainly on the zoo frame (the reference the broken variants start
    from): the frame gives it the non-finite-gradient policy, named-group ``add_param_group`` and the state-kind
    check."""

    name = "tiny_adam"

    def __init__(self, params, lr: float = 1e-2, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    def init_state(self, param: torch.Tensor) -> dict:
        return {
            "step": torch.zeros((), dtype=torch.float32),
            "exp_avg": torch.zeros_like(param),
            "exp_avg_sq": torch.zeros_like(param),
        }

    def params_to_update(self, group: dict) -> list[torch.Tensor]:
        return [p for p in group["params"] if p.grad is not None]

    def step_count(self, state: dict) -> float:
        state["step"] += 1
        return state["step"].item()

    def lr_of(self, group: dict) -> float:
        return group["lr"]

    def apply(self, param: torch.Tensor, update: torch.Tensor, group: dict) -> None:
        lr = self.lr_of(group)
        param.mul_(1 - lr * group["weight_decay"])
        param.add_(update.to(param.dtype), alpha=-lr)

    def _step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in self.params_to_update(group):
                state = self.state[p]
                if not state:
                    state.update(self.init_state(p))
                t = self.step_count(state)
                grad = p.grad.float() if p.grad is not None else torch.zeros_like(p, dtype=torch.float32)
                state["exp_avg"].mul_(beta1).add_(grad.to(state["exp_avg"].dtype), alpha=1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(grad.to(p.dtype), grad.to(p.dtype), value=1 - beta2)
                m_hat = state["exp_avg"].float() / (1 - beta1 ** t)
                v_hat = state["exp_avg_sq"].float() / (1 - beta2 ** t)
                self.apply(p, m_hat / (v_hat.sqrt() + group["eps"]), group)

    def state_bytes_for(self, param: torch.Tensor, group: dict) -> int:
        return 2 * param.numel() * param.element_size() + 4


class AscentAdam(TinyAdam):
    """Steps up the gradient."""

    def apply(self, param, update, group):
        super().apply(param, -update, group)


class StateForAllAdam(TinyAdam):
    """Creates state and applies weight decay for every parameter, with or without a gradient."""

    def params_to_update(self, group):
        return list(group["params"])


class LrFreeDecayAdam(TinyAdam):
    """Applies weight decay without the lr factor: parameters move at lr 0."""

    def apply(self, param, update, group):
        param.mul_(1 - 1e-3 * group["weight_decay"] * 10)
        param.add_(update.to(param.dtype), alpha=-group["lr"])


class CachedLrAdam(TinyAdam):
    """Reads the lr it was built with, not the group's current lr."""

    def __init__(self, params, lr: float = 1e-2, weight_decay: float = 0.01) -> None:
        super().__init__(params, lr=lr, weight_decay=weight_decay)
        self.initial_lr = lr

    def lr_of(self, group):
        return self.initial_lr


class FrozenParamListAdam(TinyAdam):
    """Lists its parameters once at construction: groups added later are never stepped."""

    def __init__(self, params, lr: float = 1e-2, weight_decay: float = 0.01) -> None:
        super().__init__(params, lr=lr, weight_decay=weight_decay)
        self.known = {id(p) for g in self.param_groups for p in g["params"]}

    def params_to_update(self, group):
        return [p for p in super().params_to_update(group) if id(p) in self.known]


class IgnoresClosureAdam(TinyAdam):
    """Never calls the closure and returns None."""

    def step(self, closure=None):
        super().step()
        return None


class Float32ParamsAdam(TinyAdam):
    """Silently promotes parameters to float32."""

    def apply(self, param, update, group):
        param.data = param.data.float() - group["lr"] * update.float()


class _Projector:
    """A Python object kept in optimizer state (not weights_only-loadable)."""

    def __init__(self) -> None:
        self.rank = 4


class PythonObjectStateAdam(TinyAdam):
    """Keeps a custom Python object in state."""

    def init_state(self, param):
        state = super().init_state(param)
        state["projector"] = _Projector()
        return state


class UnsavedStepAdam(TinyAdam):
    """Counts steps in an attribute outside state_dict: a resumed run restarts bias correction."""

    def __init__(self, params, lr: float = 1e-2, weight_decay: float = 0.01) -> None:
        super().__init__(params, lr=lr, weight_decay=weight_decay)
        self.steps: dict[int, int] = {}

    def init_state(self, param):
        return {"exp_avg": torch.zeros_like(param), "exp_avg_sq": torch.zeros_like(param)}

    def step_count(self, state):
        key = id(state)
        self.steps[key] = self.steps.get(key, 0) + 1
        return float(self.steps[key])

    def state_bytes_for(self, param, group):
        return 2 * param.numel() * param.element_size()


class UnderDeclaredAdam(TinyAdam):
    """Declares one moment but keeps two."""

    def state_bytes_for(self, param, group):
        return param.numel() * param.element_size() + 4


class UndeclaredAdam(TinyAdam):
    """Declares no state_bytes_for."""

    state_bytes_for = None


class LowRankAdam(TinyAdam):
    """Keeps a rank-``rank`` factored second moment for matrices (like Adafactor) and declares it."""

    def __init__(self, params, lr: float = 1e-2, weight_decay: float = 0.01, rank: int = 64) -> None:
        super().__init__(params, lr=lr, weight_decay=weight_decay)
        self.rank = rank

    def init_state(self, param):
        state = super().init_state(param)
        if param.dim() == 2 and self.rank < min(param.shape):
            state["factor"] = torch.zeros(self.rank, param.shape[1], dtype=param.dtype)
        return state

    def state_bytes_for(self, param, group):
        extra = self.rank * param.shape[1] * param.element_size() if param.dim() == 2 and self.rank < min(
            param.shape) else 0
        return 2 * param.numel() * param.element_size() + 4 + extra


class ModeAdam(TinyAdam):
    """Schedule-free style hooks: step() outside train mode raises."""

    hooks = ("train", "eval")

    def __init__(self, params, lr: float = 1e-2, weight_decay: float = 0.01) -> None:
        super().__init__(params, lr=lr, weight_decay=weight_decay)
        self.training = False

    def train(self) -> None:
        self.training = True

    def eval(self) -> None:
        self.training = False

    def step(self, closure=None):
        if not self.training:
            message = "ModeAdam: call optimizer.train() before step()"
            raise OptimizerModeError(message)
        return super().step(closure)


class ExampleKwargsAdam(TinyAdam):
    """Too slow at its default lr; example_kwargs gives the suite a working one."""

    def __init__(self, params, lr: float = 1e-7, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr=lr, weight_decay=weight_decay)

    @classmethod
    def example_kwargs(cls) -> dict:
        return {"lr": 1e-2}


class NanPoisonAdam(TinyAdam):
    """Steps straight through the update with no non-finite check: a NaN gradient poisons the moments."""

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            self._step()
        return loss


class SilentSkipAdam(TinyAdam):
    """Skips a non-finite step, but says nothing."""

    def _gradients_finite(self, with_grad):
        return all(bool(torch.isfinite(p.grad).all()) for p, _ in with_grad)


class AdoptsAnyStateAdam(TinyAdam):
    """Loads whatever state dict it is given (torch's plain load_state_dict)."""

    def load_state_dict(self, state_dict):
        torch.optim.Optimizer.load_state_dict(self, state_dict)


class PlainGroupsAdam(TinyAdam):
    """torch's add_param_group: a group without names after the model-built named groups is rejected."""

    def add_param_group(self, param_group):
        torch.optim.Optimizer.add_param_group(self, param_group)


_ = math  # math kept for readers extending these
