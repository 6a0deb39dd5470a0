"""KL-Cov: REINFORCE-style ratio objective with a KL penalty on the highest-covariance tokens."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from swift_loss_zoo.policy._covariance import selection_size, token_covariance, top_tokens
from swift_loss_zoo.policy._equivalents import verl_policy
from swift_loss_zoo.policy._estimators import importance_ratio
from swift_loss_zoo.policy._group_policy import GroupPolicyLoss, PolicyBatch
from swift_zoo.losses import require_in_range, require_non_negative
from swift_zoo.ops import masked_mean


class KLCovLoss(GroupPolicyLoss):
    r"""KL-Cov (Cui et al., "The Entropy Mechanism of Reinforcement Learning for Reasoning Language Models").

    .. math::
        L_{i,t} = -A_{i,t}\,\rho_{i,t} + c_\mathrm{KL}\,\big|\log\rho_{i,t}\big|\,[\,(i,t) \in \mathcal{S}\,]
                  + \beta\,\mathrm{k3}_{i,t}

    where :math:`\mathcal{S}` holds the ``max(1, int(kl_cov_ratio * #tokens))`` counted tokens with the
    largest covariance :math:`(A - \bar A)(\log\pi_\theta - \overline{\log\pi_\theta})` (see
    :mod:`~swift_loss_zoo.policy._covariance`). No clipping: the penalty restrains only the tokens
    that drive entropy collapse. Unit: a **token** (verl ``loss_mode="kl_cov"``, ``token-mean``). The
    selection depends on the batch, so splitting it changes the loss (``batch_dependent``).

    Paper: arXiv:2505.22617. Defaults: ``kl_cov_ratio=0.0002`` (verl's), ``kl_cov_coef=1.0`` (the paper's and
    the fallback of verl's ``compute_policy_loss_kl_cov``; verl's ``PolicyLossConfig.ppo_kl_coef`` defaults to
    0.1); ``beta=0.0``; the shared options as
    :class:`~swift_loss_zoo.policy.GRPOLoss`. Metrics ``ratio_mean``, ``kl_cov_fraction``.

    .. code-block:: yaml

        training_args:
          loss_type: kl_cov
          loss_kwargs: {kl_cov_ratio: 0.002, kl_cov_coef: 1.0}
    """

    name = "kl_cov"
    reference = "arXiv:2505.22617"
    equivalents = (
        verl_policy("kl_cov", "token-mean",
                    settings="policy_loss.kl_cov_ratio = kl_cov_ratio, policy_loss.ppo_kl_coef = kl_cov_coef "
                    "(verl's config default is 0.1, the zoo's 1.0)"),
    )
    batch_dependent: ClassVar[str] = (
        "the penalised tokens are the top kl_cov_ratio fraction of the call's tokens by covariance with means "
        "over the call, so a micro-batch split selects differently")

    def __init__(self, *, kl_cov_ratio: float = 0.0002, kl_cov_coef: float = 1.0, **options: Any) -> None:
        super().__init__(**options)
        self.kl_cov_ratio = require_in_range(self.name, "kl_cov_ratio", kl_cov_ratio, 0.0, 1.0, low_inclusive=False)
        self.kl_cov_coef = require_non_negative(self.name, "kl_cov_coef", kl_cov_coef)

    def per_token_losses(self, batch: PolicyBatch) -> torch.Tensor:
        ratio = importance_ratio(batch.log_ratio)
        covariance = token_covariance(batch.advantages, batch.logps.detach(), batch.mask)
        chosen = top_tokens(covariance, batch.mask, selection_size(batch.mask, self.kl_cov_ratio))
        losses = -batch.advantages * ratio + torch.where(
            chosen, self.kl_cov_coef * batch.log_ratio.abs(), torch.zeros((), dtype=ratio.dtype, device=ratio.device))
        self.record_metrics(ratio_mean=masked_mean(ratio.detach(), batch.mask),
                            kl_cov_fraction=masked_mean(chosen.float(), batch.mask))
        return torch.where(batch.mask, losses, torch.zeros((), dtype=losses.dtype, device=losses.device))

    @classmethod
    def example_kwargs(cls) -> dict:
        return {**super().example_kwargs(), "kl_cov_ratio": 0.2}  # penalise some tokens of the small example
