"""REINFORCE++ advantages: discounted per-token returns, whitened over the batch."""

from __future__ import annotations

from typing import ClassVar

import torch

from swift_loss_zoo.advantages._base import ZooAdvantage
from swift_loss_zoo.advantages._equivalents import TOKENS, verl_advantage
from swift_loss_zoo.advantages._inputs import COMPLETION_MASK, REWARDS, TOKEN_REWARDS
from swift_loss_zoo.advantages._token_rewards import discounted_returns, token_rewards
from swift_zoo.losses import require_in_range
from swift_zoo.ops import masked_whiten


class ReinforcePlusPlusAdvantage(ZooAdvantage):
    r"""REINFORCE++: a critic-free, batch-normalised return per token.

    With per-token rewards :math:`R_t` (``token_rewards``, e.g. :math:`-\beta\,\mathrm{KL}_t`, plus the
    score ``rewards`` on the response's last counted token),

    .. math::
        G_t = R_t + \gamma\,G_{t'},\qquad A_t = \frac{G_t - \mu}{\sqrt{\sigma^2 + 10^{-8}}}

    over each response's counted tokens (:math:`t'` the next counted token; masked spans such as tool
    output are skipped), with the mean and Bessel-corrected variance over all counted tokens of the
    batch. No group baseline (see ``reinforce_plus_plus_baseline``). Level: **token** (``[B, T]``, 0 on
    masked positions).

    Paper: Hu, arXiv:2501.03262. Default as verl (``algorithm.gamma``): ``gamma=1.0``. Inputs:
    ``rewards [B]``, ``token_rewards [B, T]`` (optional), ``completion_mask [B, T]``.

    .. code-block:: yaml

        training_args:
          advantage_type: reinforce_plus_plus
          advantage_kwargs: {gamma: 1.0}
    """

    name = "reinforce_plus_plus"
    reference = "arXiv:2501.03262"
    equivalents = (
        verl_advantage("compute_reinforce_plus_plus_outcome_advantage", "reinforce_plus_plus",
                       settings=f"algorithm.gamma = gamma; {TOKENS}"),
    )
    level: ClassVar[str] = "token"
    inputs = (REWARDS, TOKEN_REWARDS, COMPLETION_MASK)

    def __init__(self, *, gamma: float = 1.0) -> None:
        super().__init__()
        self.gamma = require_in_range(self.display_name, "gamma", gamma, 0.0, 1.0)

    def compute(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        rewards, mask = token_rewards(inputs)
        returns = discounted_returns(rewards, mask, self.gamma)
        self.record_metrics(return_mean=returns.sum() / mask.sum().clamp(min=1))
        return masked_whiten(returns, mask)
