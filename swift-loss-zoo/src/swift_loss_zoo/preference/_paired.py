"""The shared base of paired, reference-based preference losses (the DPO family).

A subclass writes only its per-pair formula, :meth:`PairedReferenceLoss.pair_losses`, on the
log-ratios computed here once:

* ``cl = policy_chosen_logps - reference_chosen_logps`` (chosen log-ratio),
* ``rl = policy_rejected_logps - reference_rejected_logps`` (rejected log-ratio),
* ``Δ = cl - rl`` (the DPO "logits"),

all on **summed** completion log-probs, in at least float32. Length-normalised variants read
``chosen_lengths`` / ``rejected_lengths`` (clamped to >= 1, as TRL does).

Options every loss of the family takes, as TRL 1.x's ``DPOConfig`` (they are options, not new names,
because TRL applies them to any ``loss_type``):

* ``ld_alpha`` (LD-DPO, :mod:`._length_desensitized`): the four summed log-probs first lose
  ``(1 - ld_alpha)`` times their tail sums (policy **and** reference, as TRL 1.x);
* ``use_weighting`` (WPO, :mod:`._weighting`): each pair's loss is multiplied by the detached weights
  ``w(chosen)·w(rejected)`` (not for ``aot`` / ``aot_unpaired``, which sort the pairs);
* ``f_divergence_type`` (:mod:`._f_divergence`, :class:`FDivergencePairLoss`): the losses built on the
  margin -- sigmoid, sigmoid_norm, hinge, ipo, exo_pair, robust, discopop, as TRL 1.x allows -- read
  the margin of the f-scores ``s(cl) - s(rl)`` instead of ``cl - rl``.

An option's inputs are declared optional on the class and required on an instance that uses it.

Every call records the TRL metrics (detached, averaged over the local pairs):
``rewards/chosen`` = mean ``β·cl``, ``rewards/rejected`` = mean ``β·rl``, ``rewards/margins`` =
mean ``β·(cl - rl)``, ``rewards/accuracies`` = fraction of pairs with ``cl > rl``,
``logps/chosen`` / ``logps/rejected`` = mean policy summed log-probs. The implicit rewards always
use the summed log-ratios, also for the length-normalised losses.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F

from swift_loss_zoo.preference._f_divergence import FDivergence
from swift_loss_zoo.preference._inputs import (
    LD_DIFFERENTIABLE,
    paired_example,
    paired_inputs,
    requiring,
    with_options,
)
from swift_loss_zoo.preference._length_desensitized import TAIL_KEYS, length_desensitized
from swift_loss_zoo.preference._weighting import wpo_weights
from swift_zoo import BaseLoss, LossExample, TensorInput, UnitLosses
from swift_zoo.losses import require_bool, require_in_range, require_positive
from swift_zoo.ops import upcast

WPO_KEYS = {"policy_chosen_log_sum_sq_probs", "policy_rejected_log_sum_sq_probs", "chosen_lengths",
            "rejected_lengths"}


class LogRatios(NamedTuple):
    """Per-pair quantities of a paired batch, each ``[B]`` in at least float32."""

    policy_chosen: torch.Tensor
    policy_rejected: torch.Tensor
    reference_chosen: torch.Tensor
    reference_rejected: torch.Tensor
    chosen: torch.Tensor
    rejected: torch.Tensor
    chosen_lengths: torch.Tensor | None = None
    rejected_lengths: torch.Tensor | None = None
    chosen_score: torch.Tensor | None = None
    rejected_score: torch.Tensor | None = None

    @property
    def margin(self) -> torch.Tensor:
        """``Δ = cl - rl``: how much more the policy prefers chosen than the reference does."""
        return self.chosen - self.rejected

    @property
    def score_margin(self) -> torch.Tensor:
        """``s(cl) - s(rl)``: the margin of the f-divergence scores (``Δ`` for the reverse KL, DPO)."""
        return self.scores()[0] - self.scores()[1]

    def scores(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The f-divergence scores ``(s(cl), s(rl))``; the log-ratios themselves unless a loss set them."""
        if self.chosen_score is None or self.rejected_score is None:
            return self.chosen, self.rejected
        return self.chosen_score, self.rejected_score

    def averaged_scores(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Length-averaged scores ``(s(cl) / n_c, s(rl) / n_r)``; needs the lengths."""
        if self.chosen_lengths is None or self.rejected_lengths is None:
            message = "length-averaged scores need chosen_lengths and rejected_lengths"
            raise ValueError(message)
        chosen, rejected = self.scores()
        return chosen / self.chosen_lengths, rejected / self.rejected_lengths

    def averaged(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Length-averaged log-ratios ``(cl / n_c, rl / n_r)``; needs the lengths."""
        if self.chosen_lengths is None or self.rejected_lengths is None:
            message = "length-averaged log-ratios need chosen_lengths and rejected_lengths"
            raise ValueError(message)
        return self.chosen / self.chosen_lengths, self.rejected / self.rejected_lengths


def smoothed_logistic(z: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """``-(1-eps)·logsigmoid(z) - eps·logsigmoid(-z)``: the logistic loss with label-flip probability ``eps``.

    Written with ``logsigmoid`` so it stays finite for any finite ``z``.
    """
    loss = -F.logsigmoid(z)
    if label_smoothing:
        loss = (1.0 - label_smoothing) * loss - label_smoothing * F.logsigmoid(-z)
    return loss


class PairedReferenceLoss(BaseLoss):
    """Base of the paired, reference-based preference losses: one loss per (chosen, rejected) pair.

    Subclasses set ``name`` / ``reference`` (and ``inputs`` when they read lengths), implement
    :meth:`pair_losses` and, when they have hyperparameters besides the common ones, an ``__init__``
    that passes ``beta``, ``ld_alpha`` and ``use_weighting`` on to this one and stores the others. The
    base validates them, builds :class:`LogRatios` (LD-DPO applied), weights the pair losses (WPO),
    records the reward metrics, counts pairs, and builds example batches.
    """

    reduction_unit: ClassVar[str] = "pair"
    inputs: ClassVar[tuple[TensorInput, ...]] = with_options(paired_inputs(reference=True))
    beta: float

    def __init__(self, *, beta: float = 0.1, ld_alpha: float | None = None, use_weighting: bool = False) -> None:
        super().__init__()
        self.beta = require_positive(self.name, "beta", beta)
        self.ld_alpha = None if ld_alpha is None else require_in_range(self.name, "ld_alpha", ld_alpha, 0.0, 1.0)
        self.use_weighting = require_bool(self.name, "use_weighting", use_weighting)
        needed: set[str] = set()
        differentiable: set[str] = set()
        if self.ld_alpha is not None:
            needed |= set(TAIL_KEYS.values())
            differentiable |= set(LD_DIFFERENTIABLE)
        if self.use_weighting:
            needed |= WPO_KEYS
        if needed:
            self.inputs = requiring(type(self).inputs, needed, differentiable)

    def pair_losses(self, ratios: LogRatios) -> torch.Tensor:
        """The ``[B]`` per-pair losses."""
        message = f"{type(self).__name__} must implement pair_losses(ratios) -> Tensor [B]"
        raise NotImplementedError(message)

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        ratios = self.log_ratios(inputs)
        losses = self.pair_losses(ratios)
        if self.use_weighting:
            weights = (wpo_weights(inputs["policy_chosen_logps"], inputs["policy_chosen_log_sum_sq_probs"],
                                   inputs["chosen_lengths"])
                       * wpo_weights(inputs["policy_rejected_logps"], inputs["policy_rejected_log_sum_sq_probs"],
                                     inputs["rejected_lengths"]))
            losses = losses * weights.to(losses.dtype)
            self.record_metrics(**{"weights/mean": weights.mean()})
        self._record_rewards(ratios)
        return UnitLosses(losses)

    def summed_logps(self, inputs: dict[str, torch.Tensor], key: str) -> torch.Tensor:
        """The summed log-prob ``inputs[key]`` in at least float32, LD-weighted when ``ld_alpha`` is set."""
        value = upcast(inputs[key])
        if self.ld_alpha is None:
            return value
        return length_desensitized(value, upcast(inputs[TAIL_KEYS[key]]).to(value.dtype), self.ld_alpha)

    def log_ratios(self, inputs: dict[str, torch.Tensor]) -> LogRatios:
        policy_chosen = self.summed_logps(inputs, "policy_chosen_logps")
        policy_rejected = self.summed_logps(inputs, "policy_rejected_logps")
        reference_chosen = self.summed_logps(inputs, "reference_chosen_logps").to(policy_chosen.dtype)
        reference_rejected = self.summed_logps(inputs, "reference_rejected_logps").to(policy_chosen.dtype)
        chosen = policy_chosen - reference_chosen
        rejected = policy_rejected - reference_rejected
        lengths = []
        for key, like in (("chosen_lengths", chosen), ("rejected_lengths", rejected)):
            value = inputs.get(key)
            lengths.append(None if value is None else value.to(like.dtype).clamp(min=1.0))
        return LogRatios(
            policy_chosen, policy_rejected, reference_chosen, reference_rejected, chosen, rejected, *lengths
        )

    def _record_rewards(self, ratios: LogRatios) -> None:
        with torch.no_grad():
            chosen_rewards = self.beta * ratios.chosen
            rejected_rewards = self.beta * ratios.rejected
            self.record_metrics(**{
                "rewards/chosen": chosen_rewards.mean(),
                "rewards/rejected": rejected_rewards.mean(),
                "rewards/margins": (chosen_rewards - rejected_rewards).mean(),
                "rewards/accuracies": (chosen_rewards > rejected_rewards).float().mean(),
                "logps/chosen": ratios.policy_chosen.mean(),
                "logps/rejected": ratios.policy_rejected.mean(),
            })

    def count_units(self, model_outputs, labels=None) -> torch.Tensor:
        inputs = self.validate(model_outputs, labels)
        pairs = inputs["policy_chosen_logps"]
        return torch.tensor(pairs.shape[0], device=pairs.device)

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        return paired_example(cls.inputs, batch_size=batch_size, generator=generator, dtype=dtype, device=device)


class FDivergencePairLoss(PairedReferenceLoss):
    """A paired loss built on the margin, which also takes the f-divergence options (TRL 1.x's set).

    ``f_divergence_type`` in ``reverse_kl`` (default: DPO), ``forward_kl``, ``js_divergence``,
    ``alpha_divergence``; ``f_alpha_divergence_coef`` (default 0.5) and
    ``f_alpha_divergence_convention`` (``"trl"``: TRL >= 0.29's α; ``"trl_legacy"``: TRL <= 0.28's and
    ms-swift's :math:`a = 1 - \alpha`). See :mod:`swift_loss_zoo.preference._f_divergence`.
    """

    def __init__(
        self,
        *,
        beta: float = 0.1,
        ld_alpha: float | None = None,
        use_weighting: bool = False,
        f_divergence_type: str = "reverse_kl",
        f_alpha_divergence_coef: float = 0.5,
        f_alpha_divergence_convention: str = "trl",
    ) -> None:
        super().__init__(beta=beta, ld_alpha=ld_alpha, use_weighting=use_weighting)
        self.f_divergence = FDivergence.from_options(self.name, f_divergence_type, f_alpha_divergence_coef,
                                                     f_alpha_divergence_convention)
        self.f_divergence_type = f_divergence_type
        self.f_alpha_divergence_coef = float(f_alpha_divergence_coef)
        self.f_alpha_divergence_convention = f_alpha_divergence_convention

    def log_ratios(self, inputs: dict[str, torch.Tensor]) -> LogRatios:
        ratios = super().log_ratios(inputs)
        if self.f_divergence.is_reverse_kl:
            return ratios
        return ratios._replace(chosen_score=self.f_divergence.scores(ratios.chosen),
                               rejected_score=self.f_divergence.scores(ratios.rejected))
