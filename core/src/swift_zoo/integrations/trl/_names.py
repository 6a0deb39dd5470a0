"""Which zoo loss equals which TRL 1.16 ``loss_type``, and where they differ: data, rendered into the README.

``compared`` rows are run side by side on TRL in ``tests_integrations/trl`` (same seed, same data):
the zoo trainer's loss and gradient norm equal TRL's at every logged step. The other rows say why
they are not the same number.

Imports neither torch nor TRL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_CPO_NLL = ("with cpo_alpha > 0 the NLL on chosen is per pair in the zoo, one token mean per micro-batch in TRL "
            "(equal when the chosen completions have equal lengths)")


@dataclass(frozen=True)
class TRLEquivalent:
    """A zoo loss in a zoo trainer and the TRL trainer setting of the same meaning.

    :param trainer: the TRL trainer (``"SFTTrainer"``...; ``CPOTrainer`` and ``ORPOTrainer`` are in
        ``trl.experimental``); the zoo trainer is ``"Zoo" + trainer``.
    :param trl_loss_type: TRL's ``loss_type`` (plus ``trl_config``, set on both runs).
    :param zoo_loss: the zoo ``loss_type``, with ``zoo_kwargs`` in ``loss_kwargs``.
    :param compared: run against TRL in the test suite, equal per logged step.
    :param difference: where they differ ("" when they are the same objective).
    """

    trainer: str
    trl_loss_type: str
    zoo_loss: str
    trl_config: Mapping[str, Any] = field(default_factory=dict)
    zoo_kwargs: Mapping[str, Any] = field(default_factory=dict)
    compared: bool = True
    difference: str = ""


TRL_EQUIVALENTS: tuple[TRLEquivalent, ...] = (
    TRLEquivalent("SFTTrainer", "nll", "cross_entropy",
                  difference="full logits instead of TRL's fused LM head: float32 rounding apart"),
    TRLEquivalent("SFTTrainer", "nll", "fused_linear_cross_entropy",
                  difference="the zoo's chunked kernel from hidden states instead of TRL's fused LM head"),
    TRLEquivalent("SFTTrainer", "dft", "dft"),
    TRLEquivalent("DPOTrainer", "sigmoid", "dpo"),
    TRLEquivalent("DPOTrainer", "robust", "robust_dpo", {"label_smoothing": 0.1}),
    TRLEquivalent("DPOTrainer", "ipo", "ipo"),
    TRLEquivalent("DPOTrainer", "hinge", "hinge"),
    TRLEquivalent("DPOTrainer", "exo_pair", "exo_pair", {"label_smoothing": 1e-3}),
    TRLEquivalent("DPOTrainer", "nca_pair", "nca_pair"),
    TRLEquivalent("DPOTrainer", "bco_pair", "bco_pair"),
    TRLEquivalent("DPOTrainer", "sppo_hard", "sppo_hard"),
    TRLEquivalent("DPOTrainer", "aot", "aot",
                  difference="both sort within a micro-batch, so neither is invariant to the split"),
    TRLEquivalent("DPOTrainer", "aot_unpaired", "aot_unpaired",
                  difference="both sort within a micro-batch, so neither is invariant to the split"),
    TRLEquivalent("DPOTrainer", "apo_zero", "apo_zero"),
    TRLEquivalent("DPOTrainer", "apo_down", "apo_down"),
    TRLEquivalent("DPOTrainer", "discopop", "discopop"),
    TRLEquivalent("DPOTrainer", "sigmoid_norm", "dpo_norm"),
    TRLEquivalent("DPOTrainer", "sigmoid + sft (loss_weights [1, alpha])", "rpo", compared=False,
                  difference="the zoo averages the chosen NLL per pair (length-normalised), TRL over all chosen "
                             "tokens of the micro-batch"),
    TRLEquivalent("CPOTrainer", "sigmoid", "cpo", {"cpo_alpha": 0.0}, difference=_CPO_NLL),
    TRLEquivalent("CPOTrainer", "hinge", "cpo", {"cpo_alpha": 0.0}, {"loss_type": "hinge"}, difference=_CPO_NLL),
    TRLEquivalent("CPOTrainer", "ipo", "cpo", {"cpo_alpha": 0.0}, {"loss_type": "ipo"}, difference=_CPO_NLL),
    TRLEquivalent("CPOTrainer", "simpo", "simpo", {"cpo_alpha": 0.0},
                  difference="TRL's simpo_gamma is the zoo's gamma_beta_ratio * beta (mapped); " + _CPO_NLL),
    TRLEquivalent("CPOTrainer", "simpo", "alphapo", {"cpo_alpha": 0.0, "alpha": 0.25}, difference=_CPO_NLL),
    TRLEquivalent("ORPOTrainer", "orpo", "orpo", compared=False,
                  difference="the odds-ratio term equals TRL's odds_ratio_loss (tested per micro-step); TRL's NLL "
                             "covers the prompt and the chosen completion, one token mean per micro-batch, the "
                             "zoo's the chosen completion only, per pair"),
    TRLEquivalent("KTOTrainer", "kto", "kto"),
    TRLEquivalent("KTOTrainer", "apo_zero_unpaired", "apo_zero_unpaired"),
    TRLEquivalent("GRPOTrainer", "grpo", "grpo", {"beta": 0.04},
                  difference="a completion with no trained token is not a unit in the zoo; TRL counts it"),
    TRLEquivalent("GRPOTrainer", "dapo", "dapo", {"epsilon_high": 0.28},
                  difference="exact window token count; TRL rescales the generation batch's count by "
                             "gradient_accumulation_steps / steps_per_generation"),
    TRLEquivalent("GRPOTrainer", "dr_grpo", "dr_grpo"),
    TRLEquivalent("GRPOTrainer", "bnpo", "bnpo", compared=False,
                  difference="TRL normalises by each micro-batch's tokens and the accumulation steps; the zoo by "
                             "the window's tokens (TRL's dapo normalisation)"),
    TRLEquivalent("GRPOTrainer", "cispo", "cispo", {"epsilon_high": 5.0},
                  difference="TRL's cap is epsilon_high, the zoo's 1 + epsilon_high (mapped)"),
    TRLEquivalent("GRPOTrainer", "sapo", "sapo"),
    TRLEquivalent("GRPOTrainer", "grpo + importance_sampling_level='sequence'", "gspo", compared=False,
                  difference="the zoo's gspo computes the sequence ratio itself; ZooGRPOTrainer refuses the "
                             "TRL option"),
)


def _cell(mapping: Mapping[str, Any]) -> str:
    return ", ".join(f"`{k}={v!r}`" for k, v in mapping.items())


def equivalents_markdown() -> str:
    """The README table: one row per :data:`TRL_EQUIVALENTS` entry."""
    lines = [
        "| TRL trainer | TRL `loss_type` | zoo `loss_type` | config used in the comparison | equal per step (tested) "
        "| where they differ |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in TRL_EQUIVALENTS:
        config = _cell({**row.trl_config, **row.zoo_kwargs}) or "defaults"
        lines.append(f"| {row.trainer} | `{row.trl_loss_type}` | `{row.zoo_loss}` | {config} | "
                     f"{'yes' if row.compared else 'no'} | {row.difference or '—'} |")
    return "\n".join(lines) + "\n"
