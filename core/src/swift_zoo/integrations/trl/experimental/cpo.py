"""``ZooCPOTrainer``: ``trl.experimental.cpo.CPOTrainer`` with a zoo reference-free pair loss.

TRL's ``CPOTrainer.cpo_loss`` covers CPO (``loss_type`` ``sigmoid``, ``hinge``, ``ipo``), SimPO
(``loss_type="simpo"``) and the AlphaPO reward (``alpha != 0``), plus ``cpo_alpha`` times an NLL on chosen.
The zoo's ``cpo``, ``simpo`` and ``alphapo`` are those objectives, and ``CPOConfig`` fills their kwargs:
``beta``; ``label_smoothing``; ``loss_type`` (sigmoid, hinge or ipo) for ``cpo``; ``cpo_alpha`` as ``cpo``'s
``cpo_alpha`` and as ``simpo``/``alphapo``'s ``sft_weight``; ``simpo_gamma`` as ``gamma_beta_ratio =
simpo_gamma / beta``; a non-zero ``alpha`` for ``alphapo``.

Where it differs from TRL: the NLL on chosen is per pair (each completion's token mean, then the mean over
pairs) in the zoo, one token mean over the micro-batch's chosen tokens in TRL; equal when the chosen
completions have equal lengths. That is what keeps accumulation and ranks exact. With ``cpo_alpha=0`` the two
trainers give the same loss and gradient at every step (``tests_integrations/trl``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from trl.experimental.cpo import CPOConfig, CPOTrainer

from swift_zoo.integrations.trl.experimental._pairs import ZooPairBatchMixin

# TRL's CPOConfig.loss_type each zoo loss is consistent with (any other zoo loss: the default only)
_CONSISTENT_LOSS_TYPES = {"cpo": ("sigmoid", "hinge", "ipo"), "simpo": ("sigmoid", "simpo"),
                          "alphapo": ("sigmoid", "simpo")}


class ZooCPOTrainer(ZooPairBatchMixin, CPOTrainer):
    """``trl.experimental.cpo.CPOTrainer`` whose loss is a zoo reference-free pair loss (``cpo``, ``simpo``,
    ``alphapo``, ``orpo``...).

    ::

        trainer = ZooCPOTrainer(model=model, args=CPOConfig(beta=0.1, cpo_alpha=1.0, ...), train_dataset=pairs,
                                processing_class=tok, zoo_config={"loss_type": "cpo"})

    Refused (``ConfigError`` at construction): a ``CPOConfig.loss_type`` that names another objective than the
    zoo loss (``simpo`` with the zoo's ``cpo``: use the zoo's ``simpo``), and ``alpha != 0`` unless the zoo
    loss is ``alphapo``.
    """

    trl_kind: ClassVar[str] = "cpo"
    trl_config_class: ClassVar[type] = CPOConfig

    @property
    def _zoo_padding_value(self) -> int:
        return self.pad_token_id

    def _refused_options(self, trl_args: Any) -> list[tuple[str, Any, str]]:
        refused = super()._refused_options(trl_args)
        name = self.zoo_loss.name
        if trl_args.loss_type not in _CONSISTENT_LOSS_TYPES.get(name, ("sigmoid",)):
            instead = "the zoo loss 'simpo'" if trl_args.loss_type == "simpo" else "zoo_config['loss_type']"
            refused.append(("loss_type", trl_args.loss_type,
                            f"it selects TRL's built-in loss, not {self.zoo_loss.display_name}; use {instead}"))
        if trl_args.alpha and name != "alphapo":
            refused.append(("alpha", trl_args.alpha, "the AlphaPO reward is the zoo loss 'alphapo'"))
        return refused
