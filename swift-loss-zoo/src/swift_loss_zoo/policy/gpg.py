"""GPG: plain REINFORCE on group-relative advantages, no ratio and no clipping."""

from __future__ import annotations

import torch

from swift_loss_zoo.policy._equivalents import verl_policy
from swift_loss_zoo.policy._group_policy import GroupPolicyLoss, PolicyBatch


class GPGLoss(GroupPolicyLoss):
    r"""Group Policy Gradient: the policy-gradient objective itself, without a surrogate.

    .. math::
        L_{i,t} = -A_i\,\log\pi_\theta(o_{i,t}) + \beta\,\mathrm{k3}_{i,t},\qquad
        \mathcal{L} = \frac{1}{N}\sum_{i,t} L_{i,t}

    No importance ratio and no clipping: each batch is used for one on-policy step
    (``old_per_token_logps`` is not read, except by the shared rollout and off-policy options).
    Unit: a **token** (verl ``loss_mode="gpg"`` with ``loss_agg_mode="token-mean"``). The paper pairs
    it with its own advantage scaling (verl's ``gpg`` advantage estimator: group-centred rewards times
    ``B / #non-zero rewards``); any advantages work here.

    Paper: Chu et al., "GPG: A Simple and Strong Reinforcement Learning Baseline for Model
    Reasoning", arXiv:2504.02546. Defaults: ``beta=0.0``; the shared options as
    :class:`~swift_loss_zoo.policy.GRPOLoss`. Inputs as GRPO.

    .. code-block:: yaml

        training_args:
          loss_type: gpg
          loss_kwargs: {loss_agg_mode: token-mean}
    """

    name = "gpg"
    reference = "arXiv:2504.02546"
    equivalents = (
        verl_policy("gpg", "token-mean"),
    )

    def per_token_losses(self, batch: PolicyBatch) -> torch.Tensor:
        losses = -batch.advantages * batch.logps
        return torch.where(batch.mask, losses, torch.zeros((), dtype=losses.dtype, device=losses.device))
