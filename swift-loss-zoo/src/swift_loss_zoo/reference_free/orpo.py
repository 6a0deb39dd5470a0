"""ORPO: monolithic preference optimisation with an odds-ratio term added to the NLL."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from swift_loss_zoo._equivalents import call, flags, liger, ms_swift, trl
from swift_loss_zoo.preference._inputs import paired_inputs
from swift_loss_zoo.reference_free._pairwise import ReferenceFreePairLoss, pair_logps
from swift_zoo import TensorInput, UnitLosses
from swift_zoo.losses import require_choice, require_non_negative, require_positive
from swift_zoo.ops import log1mexp, masked_mean

NLL_CONVENTIONS = ("pair", "trl", "ms_swift")
PROMPT_INPUTS = (
    TensorInput("policy_chosen_prompt_logps", ("B",), optional=True,
                doc="nll_convention='trl': summed log p of the chosen row's scored prompt tokens"),
    TensorInput("chosen_prompt_lengths", ("B",), dtype="int", optional=True,
                doc="nll_convention='trl': scored prompt tokens of the chosen row"),
)
_BATCH_REASON = (
    "nll_convention={convention!r}: the NLL is one token mean over the chosen rows of the micro-batch (as in "
    "{library}), so the loss is one number per micro-batch (unit 'batch') and a split batch weights tokens "
    "differently; nll_convention='pair' keeps splitting exact"
)

# Largest average log-prob used in log-odds: log1mexp(0) = -inf, so averages that round to 0 (bf16
# does this for very likely completions) are clamped to -eps in value. The gradient passes straight
# through, evaluated at -eps: finite (about 1/eps) and still pushing in the right direction. For
# float16 inputs the gradient must fit 65504, hence the larger eps there.
_MAX_MEAN_LOGP = -1e-6
_MAX_MEAN_LOGP_FP16 = -1e-3


def log_odds(mean_logps: torch.Tensor, max_mean_logp: float = _MAX_MEAN_LOGP) -> torch.Tensor:
    r"""``log(p / (1 - p))`` for ``log p = mean_logps``, finite at ``mean_logps = 0`` (see module note)."""
    # value: the clamped average exactly; gradient: 1 everywhere (straight through the clamp)
    straight_through = torch.clamp(mean_logps.detach(), max=max_mean_logp) + (mean_logps - mean_logps.detach())
    return straight_through - log1mexp(straight_through)


class ORPOLoss(ReferenceFreePairLoss):
    r"""ORPO (Hong, Lee & Thorne 2024, arXiv:2403.07691): NLL on chosen plus a log-odds-ratio penalty.

    With the length-averaged log-probabilities :math:`\bar A_c = S_c/|y_c|`, :math:`\bar A_r = S_r/|y_r|`
    and :math:`\operatorname{odds}(y) = p/(1-p)`, :math:`p = e^{\bar A}`:

    .. math::
        \log\frac{\operatorname{odds}(y_c)}{\operatorname{odds}(y_r)}
            = (\bar A_c - \bar A_r) - \big(\log(1-e^{\bar A_c}) - \log(1-e^{\bar A_r})\big), \qquad
        \ell = -\bar A_c - \lambda\,\log\sigma\Big(\log\frac{\operatorname{odds}(y_c)}{\operatorname{odds}(y_r)}\Big)

    averaged over pairs (the paper's eqs. 6-7, :math:`\lambda` = ``beta`` as in TRL), with the NLL term
    weighted by ``nll_weight`` (1 by default; 0 gives the odds-ratio term alone, e.g. to add an NLL of your
    own choice with ``weighted_sum``).
    :math:`\log(1-e^x)` is :func:`swift_zoo.ops.log1mexp`. An average that rounds to 0 (bf16 does this
    for a very likely completion) would give :math:`-\infty` there (TRL PR #5339): the value is clamped
    to :math:`\le -10^{-6}` (:math:`-10^{-3}` for float16 inputs) with the gradient passed straight
    through, so values and gradients stay finite. Pairs with an empty completion are not counted.

    **Which tokens the NLL averages** (``nll_convention``), an option rather than a new name because it
    is the same objective normalised three ways:

    * ``"pair"`` (default): :math:`-\bar A_c` per pair, the chosen completion's per-token mean (the paper's
      :math:`\mathcal L_{SFT}` per example); one unit per pair, so micro-batch splitting is exact;
    * ``"trl"``: TRL's ``ORPOTrainer``: one token mean over the **prompt and completion** tokens of the
      chosen rows of the batch, :math:`-\sum_b (P_b + S_{c,b}) / \sum_b (m_b + n_{c,b})`, plus the mean
      over pairs of the odds-ratio term; reads ``policy_chosen_prompt_logps`` :math:`P_b` (summed log-probs
      of the scored prompt tokens, i.e. all but the first) and ``chosen_prompt_lengths`` :math:`m_b`;
    * ``"ms_swift"``: ms-swift's ``--rlhf_type orpo`` (TRL's trainer with the completion labels passed as
      inputs): one token mean over the chosen **completion** tokens of the batch.

    The two batch conventions are one number per micro-batch: the unit is then ``"batch"`` (``count_units``
    is 1, ``num_items_in_batch`` = the number of micro-batches, which is how TRL's and ms-swift's trainers
    average over gradient accumulation) and the loss declares ``batch_dependent``.

    Defaults (TRL ``ORPOConfig``): ``beta=0.1``; ``nll_weight=1.0``, ``nll_convention="pair"``.

    Inputs: ``policy_chosen_logps``, ``policy_rejected_logps`` ``[B]`` (summed, differentiable),
    ``chosen_lengths``, ``rejected_lengths`` ``[B]`` (int); with ``nll_convention="trl"`` also
    ``policy_chosen_prompt_logps`` ``[B]`` (differentiable) and ``chosen_prompt_lengths`` ``[B]``. Metrics: ``chosen_reward``,
    ``rejected_reward`` (:math:`\lambda\bar A`), ``reward_margin``, ``reward_accuracy``, ``nll_chosen``,
    ``log_odds_ratio`` (mean :math:`\log\sigma(\cdot)`), ``log_odds_chosen``.

    .. code-block:: yaml

        training_args:
          loss_type: orpo
          loss_kwargs: {beta: 0.1, nll_weight: 1.0, nll_convention: pair}
    """

    name = "orpo"
    reference = "arXiv:2403.07691"
    equivalents = (
        trl(call("ORPOConfig", beta=0.1), {"nll_convention": "trl"},
            settings="the zoo reads the chosen rows' prompt log-probs and counts"),
        trl(call("ORPOConfig", beta=0.1),
            differs="the default nll_convention='pair' takes the NLL per pair over the chosen completion; TRL one "
                    "token mean over the prompt and completion tokens of the batch's chosen rows"),
        ms_swift(flags(rlhf_type="orpo", beta=0.1), {"nll_convention": "ms_swift"},
                 settings="TRL 0.29's ORPOTrainer with the completion labels as NLL targets"),
        liger(call("LigerFusedLinearORPOLoss", compute_nll_loss=False), {"nll_weight": 0.0},
              settings="the odds-ratio term; Liger's NLL (compute_nll_loss=True) is a token mean over the chosen "
                       "completion tokens of the batch, i.e. nll_convention='ms_swift'"),
    )
    inputs = paired_inputs(reference=False, lengths=True) + PROMPT_INPUTS

    def __init__(self, *, beta: float = 0.1, nll_weight: float = 1.0, nll_convention: str = "pair") -> None:
        super().__init__()
        self.beta = require_positive(self.name, "beta", beta)
        self.nll_weight = require_non_negative(self.name, "nll_weight", nll_weight)
        self.nll_convention = require_choice(self.name, "nll_convention", nll_convention, NLL_CONVENTIONS)
        if nll_convention != "pair":
            self.reduction_unit = "batch"
            library = "TRL's ORPOTrainer" if nll_convention == "trl" else "ms-swift's --rlhf_type orpo"
            self.batch_dependent = _BATCH_REASON.format(convention=nll_convention, library=library)
        if nll_convention == "trl":
            prompt_keys = {spec.key for spec in PROMPT_INPUTS}
            self.inputs = tuple(
                dataclasses.replace(spec, optional=False, differentiable=spec.key == "policy_chosen_prompt_logps")
                if spec.key in prompt_keys else spec
                for spec in type(self).inputs
            )

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        logps = pair_logps(inputs)
        eps = _MAX_MEAN_LOGP_FP16 if inputs["policy_chosen_logps"].dtype == torch.float16 else _MAX_MEAN_LOGP
        chosen, rejected = logps.chosen_mean, logps.rejected_mean
        ratio = log_odds(chosen, eps) - log_odds(rejected, eps)
        log_sigmoid_ratio = F.logsigmoid(ratio)
        self.record_pair_metrics(
            self.beta * chosen, self.beta * rejected, logps.counted,
            nll_chosen=-chosen, log_odds_ratio=log_sigmoid_ratio, log_odds_chosen=ratio,
        )
        if self.nll_convention == "pair":
            losses = -self.beta * log_sigmoid_ratio
            if self.nll_weight:
                losses = losses - self.nll_weight * chosen
            return UnitLosses(losses, logps.counted)
        odds_term = masked_mean(-self.beta * log_sigmoid_ratio, logps.counted)
        nll = self.batch_nll(inputs, logps.chosen)
        self.record_metrics(nll_loss=nll)
        return UnitLosses((odds_term + self.nll_weight * nll).reshape(1))

    def batch_nll(self, inputs: dict[str, torch.Tensor], chosen_summed: torch.Tensor) -> torch.Tensor:
        """One token mean of ``-log p`` over the chosen rows' NLL tokens (``"trl"``: prompt too)."""
        summed = chosen_summed.sum()
        count = inputs["chosen_lengths"].clamp(min=0).sum()
        if self.nll_convention == "trl":
            summed = summed + inputs["policy_chosen_prompt_logps"].to(chosen_summed.dtype).sum()
            count = count + inputs["chosen_prompt_lengths"].clamp(min=0).sum()
        return -summed / count.clamp(min=1).to(chosen_summed.dtype)

    def count_units(self, model_outputs, labels=None) -> torch.Tensor:
        if self.nll_convention == "pair":
            return super().count_units(model_outputs, labels)
        pairs = self.validate(model_outputs, labels)["policy_chosen_logps"]
        return torch.tensor(1, device=pairs.device)
