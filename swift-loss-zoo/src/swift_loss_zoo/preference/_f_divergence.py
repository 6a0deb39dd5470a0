r"""f-divergence DPO: the implicit reward of each completion through :math:`f'` of the density ratio.

Wang et al., "Beyond Reverse KL: Generalizing Direct Preference Optimization with Diverse Divergence
Constraints", arXiv:2309.16240. With the log-ratio :math:`l = \log\pi(y) - \log\pi_{ref}(y)` (summed over
the completion) and :math:`u = e^{l}`, DPO's margin :math:`\Delta = c_l - r_l` becomes
:math:`\Delta_f = s(c_l) - s(r_l)` with the score :math:`s(l) = f'(e^{l})` (constants cancel in the
difference):

* ``reverse_kl`` (DPO): :math:`s(l) = l`;
* ``forward_kl``: :math:`s(l) = 1 - e^{-l}`;
* ``js_divergence``: :math:`s(l) = \log 2 + \log\sigma(l)`;
* ``alpha_divergence``: :math:`s(l) = (e^{(\alpha-1) l} - 1)/(\alpha - 1)`, the reverse KL at
  :math:`\alpha = 1` (its limit).

TRL 1.x computes exactly these scores (``DPOConfig.f_divergence_type`` / ``f_alpha_divergence_coef``).
**Two spellings of the α coefficient** exist: TRL >= 0.29 uses α as above (default 0.5); TRL <= 0.28 and
ms-swift's vendored ``dpo_loss`` use a coefficient :math:`a` with the margin
:math:`(e^{-a r_l} - e^{-a c_l})/a`, which is the same margin for :math:`\alpha = 1 - a`.
``f_alpha_divergence_convention="trl_legacy"`` reads ``f_alpha_divergence_coef`` as that :math:`a`.

Numerics: the exponents of ``forward_kl`` and ``alpha_divergence`` are clamped at 80 (TRL clamps the
α exponent at 80 for float32), so the scores stay finite in float32; beyond the clamp the gradient is 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from swift_zoo import ConfigError
from swift_zoo.losses import require_choice, require_finite

F_DIVERGENCE_TYPES = ("reverse_kl", "forward_kl", "js_divergence", "alpha_divergence")
ALPHA_CONVENTIONS = ("trl", "trl_legacy")
EXPONENT_CLAMP = 80.0
_REVERSE_KL_TOLERANCE = 1e-6  # as TRL: |alpha - 1| below this is the reverse-KL limit


@dataclass(frozen=True)
class FDivergence:
    """Which :math:`f` gives the scores, and α in TRL >= 0.29's spelling."""

    kind: str = "reverse_kl"
    alpha: float = 0.5

    @classmethod
    def from_options(cls, owner: str, f_divergence_type: str, f_alpha_divergence_coef: float,
                     f_alpha_divergence_convention: str) -> FDivergence:
        """Validate the three loss kwargs; ``trl_legacy`` turns the coefficient :math:`a` into :math:`\\alpha = 1 - a`."""
        kind = require_choice(owner, "f_divergence_type", f_divergence_type, F_DIVERGENCE_TYPES)
        coef = require_finite(owner, "f_alpha_divergence_coef", f_alpha_divergence_coef)
        convention = require_choice(owner, "f_alpha_divergence_convention", f_alpha_divergence_convention,
                                    ALPHA_CONVENTIONS)
        if convention == "trl_legacy" and kind == "alpha_divergence" and coef == 0.0:
            message = (
                f"{owner}: f_alpha_divergence_coef must be != 0 with f_alpha_divergence_convention='trl_legacy' "
                "(the margin divides by it), got 0.0; the reverse-KL limit is f_divergence_type='reverse_kl'"
            )
            raise ConfigError(message, key="f_alpha_divergence_coef", expected="!= 0", found=coef)
        return cls(kind, 1.0 - coef if convention == "trl_legacy" else coef)

    @property
    def is_reverse_kl(self) -> bool:
        return self.kind == "reverse_kl" or (
            self.kind == "alpha_divergence" and abs(self.alpha - 1.0) < _REVERSE_KL_TOLERANCE)

    def scores(self, log_ratio: torch.Tensor) -> torch.Tensor:
        """:math:`s(l)` elementwise, in the dtype of ``log_ratio``."""
        if self.is_reverse_kl:
            return log_ratio
        if self.kind == "forward_kl":
            return 1.0 - torch.exp(torch.clamp(-log_ratio, max=EXPONENT_CLAMP))
        if self.kind == "js_divergence":
            return math.log(2.0) + F.logsigmoid(log_ratio)
        exponent = torch.clamp((self.alpha - 1.0) * log_ratio, max=EXPONENT_CLAMP)
        return torch.expm1(exponent) / (self.alpha - 1.0)
