"""LoRA+ (Hayou, Ghosh & Yu, "LoRA+: Efficient Low Rank Adaptation of Large Models", arXiv:2402.12354)."""

from __future__ import annotations

from typing import Any

from torch import nn

from swift_optim_zoo.adamw import AdamW
from swift_zoo import ConfigError
from swift_zoo.optim import require_betas, require_non_negative, require_positive
from swift_zoo.params import build_param_groups

_B_MODULE_ATTRS = ("lora_B", "lora_embedding_B")



def lora_b_parameter_ids(model: nn.Module) -> set[int]:
    """``id`` of every LoRA B parameter of ``model``.

    By module structure first: every parameter under an attribute ``lora_B`` (PEFT's
    ``ModuleDict`` of ``Linear``, or a bare module) or ``lora_embedding_B`` (PEFT's
    ``ParameterDict`` on LoRA embeddings) of any module. Names second, for custom LoRA layers:
    a parameter whose dotted name has a component ``lora_B`` / ``lora_embedding_B`` (or starts
    with ``lora_B``, e.g. ``lora_B_weight``).
    """
    found: set[int] = set()
    for module in model.modules():
        for attr in _B_MODULE_ATTRS:
            holder = getattr(module, attr, None)
            if isinstance(holder, nn.Module):
                found.update(id(p) for p in holder.parameters())
            elif isinstance(holder, nn.Parameter):
                found.add(id(holder))
    for name, param in model.named_parameters():
        if any(part.startswith(_B_MODULE_ATTRS) for part in name.split(".")):
            found.add(id(param))
    return found


class LoraPlusAdamW(AdamW):
    r"""AdamW where the LoRA B matrices learn ``loraplus_lr_ratio`` times faster than everything else.

    LoRA writes a weight update as :math:`\Delta W = B A` (``B`` zero-initialised). LoRA+ shows that
    one shared lr is inefficient for wide models and sets :math:`\eta_B = \lambda\,\eta_A`,
    with :math:`\lambda = 2^4 = 16` suggested by the paper. This is AdamW (torch's, fused where
    possible) over role-based param groups (norms and biases without weight decay), each split into
    its non-B part (``lr``) and its B part (``lr * loraplus_lr_ratio``, ``"lora": "B"``), so LR
    schedules keep the ratio. At ``loraplus_lr_ratio=1`` it is exactly
    :class:`swift_optim_zoo.adamw.AdamW` built the same way.

    B matrices are found by module structure (:func:`lora_b_parameter_ids`: PEFT's ``lora_B`` /
    ``lora_embedding_B`` sub-modules, names as a fallback), hence ``needs_model=True``. Given
    parameters or param groups instead of a model, only groups that say ``"lora": "B"`` get the
    ratio. Differences from the original ``loraplus`` code and PEFT's
    ``create_loraplus_optimizer``: 1-D parameters (biases, norms) keep ``lr`` (they put them in the
    B group), and there is no separate lr for LoRA embedding A (``loraplus_lr_embedding``); the
    embedding B gets the ratio (the PEFT #3503 fix).

    Defaults: ``lr=1e-4`` (a LoRA lr), ``betas=(0.9, 0.999)``, ``eps=1e-8``,
    ``weight_decay=0.0``, ``loraplus_lr_ratio=16``. State: AdamW's.

    .. code-block:: yaml

        training_args:
          optimizer_type: lora_plus
          optimizer_kwargs: {lr: 1.0e-4, loraplus_lr_ratio: 16}
    """

    name = "lora_plus"
    needs_model = True

    def __init__(
        self,
        model_or_params: Any,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        loraplus_lr_ratio: float = 16.0,
        amsgrad: bool = False,
        fused: bool | None = None,
    ) -> None:
        owner = f"optimizer {self.name!r}"
        require_non_negative(owner, "lr", lr)
        require_positive(owner, "loraplus_lr_ratio", loraplus_lr_ratio)
        require_betas(owner, "betas", betas)
        require_non_negative(owner, "eps", eps)
        require_non_negative(owner, "weight_decay", weight_decay)
        self.loraplus_lr_ratio = loraplus_lr_ratio
        if isinstance(model_or_params, nn.Module):
            groups = _split_b_groups(model_or_params, lr, weight_decay, loraplus_lr_ratio)
            if not groups:
                message = "optimizer 'lora_plus': the model has no trainable parameter"
                raise ConfigError(message, expected="a model with trainable parameters", found=0)
        else:
            groups = list(model_or_params)
            if groups and isinstance(groups[0], dict):
                groups = [
                    {**g, "lr": g.get("lr", lr) * loraplus_lr_ratio} if g.get("lora") == "B" else g
                    for g in groups
                ]
        super().__init__(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, fused=fused)

    @classmethod
    def example_kwargs(cls) -> dict[str, Any]:
        """An lr fit for small test problems."""
        return {"lr": 1e-2, "loraplus_lr_ratio": 4.0}


def _split_b_groups(model: nn.Module, lr: float, weight_decay: float, ratio: float) -> list[dict[str, Any]]:
    b_ids = lora_b_parameter_ids(model)
    groups = []
    for group in build_param_groups(model, weight_decay=weight_decay):
        params, names = group["params"], group["param_names"]
        for is_b in (False, True):
            chosen = [i for i, p in enumerate(params) if (id(p) in b_ids) is is_b]
            if not chosen:
                continue
            part = {**group, "params": [params[i] for i in chosen], "param_names": [names[i] for i in chosen]}
            part["lora"] = "B" if is_b else "other"
            part["lr"] = lr * ratio if is_b else lr
            groups.append(part)
    return groups
