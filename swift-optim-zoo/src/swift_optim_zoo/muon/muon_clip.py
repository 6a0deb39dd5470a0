"""MuonClip (Kimi Team, "Kimi K2: Open Agentic Intelligence", arXiv:2507.20534): Muon with RMS matching and
QK-clip."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from torch import nn

from swift_optim_zoo._catalogue._distributed import MUON_CLIP
from swift_optim_zoo.muon import qk_clip
from swift_optim_zoo.muon.muon import Muon
from swift_optim_zoo.muon.newton_schulz import KELLER_COEFFICIENTS
from swift_zoo import ConfigError, DistributedCapability
from swift_zoo.optim import require_in_range, require_positive


class MuonClip(Muon):
    r"""MuonClip: Muon with Moonlight's update-RMS matching and weight decay, plus QK-clip on attention.

    The step is :class:`~swift_optim_zoo.muon.Muon`'s with ``adjust_lr_fn="match_rms_adamw"`` by default
    (:math:`s = 0.2\sqrt{\max(A, B)}`, so AdamW's lr and weight decay carry over). Then, for every attention head
    :math:`h` whose largest pre-softmax logit :math:`S_h = \max q_h^\top k_h \cdot \text{scaling}` over the forward
    passes since the previous step exceeded :math:`\tau` (``qk_clip_threshold``):

    .. math::
        W_q^{(h)} \leftarrow W_q^{(h)}\,(\tau/S_h)^{\alpha},\qquad W_k^{(h)} \leftarrow W_k^{(h)}\,(\tau/S_h)^{1-\alpha}

    (Algorithm 1 of arXiv:2507.20534 with :math:`\alpha = 1/2`; grouped-query keys take the largest
    :math:`S_h` of their group). The logits after the clip are at most :math:`\tau` for the same inputs; heads
    below the threshold are untouched, so training is Muon's until a logit explodes.

    **Takes the model** (``needs_model``): it finds the attention modules, hooks them to record per-head maximum
    logits, and builds role-based param groups (hidden matrices -> Muon, the rest -> the inner AdamW). Supported
    attention implementations and the refusal of the others: :mod:`swift_optim_zoo.muon.qk_clip` (transformers
    attention modules dispatching through ``ALL_ATTENTION_FUNCTIONS`` without QK-norm or MLA, and
    ``swift_zoo.testing.TinyBlock``). A model without attention modules trains as plain Muon.
    ``qk_clip_threshold=None`` turns the clip off (and accepts any attention). Under DDP the maxima are
    all-reduced, so ranks clip alike. Under FSDP2 the Muon step runs on owner ranks (as Muon's does), the maxima
    are all-reduced (max) over the mesh, and each rank scales its own rows of the ``Shard(0)`` projections (a
    head whose rows straddle two ranks is scaled in two parts): one process's result, within 1e-6 (tested on 2
    and 4 ranks with heads cut by shard boundaries). ZeRO and FSDP1 flat parameters are refused.
    :attr:`last_max_logits` holds the per-head maxima used at the last step, for logging.

    Defaults: Moonlight's Muon (``lr=1e-3, momentum=0.95, nesterov=True, weight_decay=0.1,
    adjust_lr_fn="match_rms_adamw"``) and Kimi K2's clip (``qk_clip_threshold=100, qk_clip_alpha=0.5``); inner
    AdamW ``adamw_lr=1e-3, adamw_betas=(0.9, 0.95), adamw_eps=1e-8, adamw_wd=0.1``. State: Muon's.

    .. code-block:: yaml

        training_args:
          optimizer_type: muon_clip
          optimizer_kwargs: {lr: 1.0e-3, weight_decay: 0.1, qk_clip_threshold: 100}
    """

    name = "muon_clip"
    needs_model: ClassVar[bool] = True
    distributed: ClassVar[DistributedCapability] = MUON_CLIP

    def __init__(self, model: nn.Module, lr: float = 1e-3, momentum: float = 0.95, nesterov: bool = True,
                 weight_decay: float = 0.1, ns_steps: int = 5,
                 ns_coefficients: tuple[float, float, float] = KELLER_COEFFICIENTS, eps: float = 1e-7,
                 adjust_lr_fn: Literal["original", "match_rms_adamw"] = "match_rms_adamw",
                 ns_dtype: Literal["bfloat16", "float32", "float64"] = "bfloat16", adamw_lr: float = 1e-3,
                 adamw_betas: tuple[float, float] = (0.9, 0.95), adamw_eps: float = 1e-8, adamw_wd: float = 0.1,
                 qk_clip_threshold: float | None = 100.0, qk_clip_alpha: float = 0.5) -> None:
        owner = f"optimizer {self.name!r}"
        if not isinstance(model, nn.Module):
            message = (f"{owner}: expected the model (an nn.Module: QK-clip hooks its attention modules), got "
                       f"{type(model).__name__}; build it with swift_zoo.build_optimizer('muon_clip', model)")
            raise ConfigError(message, key="model", expected="an nn.Module", found=type(model).__name__)
        threshold = None if qk_clip_threshold is None else require_positive(owner, "qk_clip_threshold",
                                                                            qk_clip_threshold)
        alpha = require_in_range(owner, "qk_clip_alpha", qk_clip_alpha, 0.0, 1.0)
        attention = [] if threshold is None else qk_clip.find_attention(model, owner)
        from swift_zoo.params import build_param_groups

        groups = build_param_groups(model, weight_decay=weight_decay)
        super().__init__(groups, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                         ns_steps=ns_steps, ns_coefficients=ns_coefficients, eps=eps, adjust_lr_fn=adjust_lr_fn,
                         ns_dtype=ns_dtype, adamw_lr=adamw_lr, adamw_betas=adamw_betas, adamw_eps=adamw_eps,
                         adamw_wd=adamw_wd)
        self.defaults.update({"qk_clip_threshold": threshold, "qk_clip_alpha": alpha})
        self.attention = attention
        self._hooks = qk_clip.install(attention)
        self.last_max_logits: dict[str, torch.Tensor] = {}

    @classmethod
    def example_kwargs(cls) -> dict[str, Any]:
        """Muon's small-problem lrs."""
        return {"lr": 0.02, "adamw_lr": 1e-2, "weight_decay": 0.0, "adamw_wd": 0.0}

    def _step(self) -> None:
        super()._step()
        threshold = self.defaults["qk_clip_threshold"]
        if threshold is not None and self.attention:
            self.last_max_logits = qk_clip.clip(self.attention, threshold, self.defaults["qk_clip_alpha"])
