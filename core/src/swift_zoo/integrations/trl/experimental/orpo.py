r"""``ZooORPOTrainer``: ``trl.experimental.orpo.ORPOTrainer`` with a zoo reference-free pair loss.

``ORPOConfig.beta`` (the paper's lambda) fills the zoo ``beta``. The zoo's ``orpo`` has TRL's odds-ratio
term (``ORPOTrainer.odds_ratio_loss`` on the length-averaged log-probs: equal per micro-step,
``tests_integrations/trl``). Its NLL is an option, ``nll_convention``:

* ``"pair"`` (the zoo's default): over the chosen completion only (the paper's :math:`\mathcal L_{SFT}` of the
  response given the prompt), each completion's token mean averaged over pairs; splitting a batch is exact;
* ``"trl"``: TRL's own, one token mean over the prompt *and* the chosen completion of the micro-batch's chosen
  rows (``ORPOTrainer.concatenated_forward``: "orpo chosen nll loss is computed over the full prompt and
  response"); the trainer then also feeds the chosen rows' prompt log-probs and counts (the attention-masked
  tokens after the first, less the completion's, from the same forward pass), and the loss is one number per
  micro-batch, averaged over the accumulation steps as TRL does. With it the two trainers give the same loss
  and gradient at every step (``tests_integrations/trl``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from trl.experimental.orpo import ORPOConfig, ORPOTrainer

from swift_zoo.integrations.trl._inputs import required_inputs
from swift_zoo.integrations.trl.experimental._pairs import ZooPairBatchMixin
from swift_zoo.ops import sequence_logps

_PROMPT_KEYS = ("policy_chosen_prompt_logps", "chosen_prompt_lengths")


class ZooORPOTrainer(ZooPairBatchMixin, ORPOTrainer):
    """``trl.experimental.orpo.ORPOTrainer`` whose loss is a zoo reference-free pair loss (``orpo``, ``simpo``...).

    ::

        trainer = ZooORPOTrainer(model=model, args=ORPOConfig(beta=0.1, ...), train_dataset=pairs,
                                 processing_class=tok, zoo_config={"loss_type": "orpo",
                                                                   "loss_kwargs": {"nll_convention": "trl"}})
    """

    trl_kind: ClassVar[str] = "orpo"
    trl_config_class: ClassVar[type] = ORPOConfig

    @property
    def _zoo_padding_value(self) -> int:
        return self.padding_value

    def _zoo_extra_inputs(self, concatenated: Mapping[str, torch.Tensor], logits: torch.Tensor,
                          found: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The chosen rows' prompt log-probs and counts, for ``orpo``'s ``nll_convention="trl"``."""
        if _PROMPT_KEYS[0] not in required_inputs(self.zoo_loss):
            return {}
        chosen = found["policy_chosen_logps"]
        if self.is_encoder_decoder:  # TRL's NLL targets are the decoder's labels: the completion alone
            return {_PROMPT_KEYS[0]: torch.zeros_like(chosen), _PROMPT_KEYS[1]: torch.zeros_like(found["chosen_lengths"])}
        pairs = chosen.shape[0]
        input_ids = concatenated["concatenated_input_ids"][:pairs]
        targets = input_ids.masked_fill(concatenated["concatenated_attention_mask"][:pairs] != 1, -100)
        rows = sequence_logps(logits[:pairs], targets)  # TRL's NLL targets: every attended token after the first
        return {_PROMPT_KEYS[0]: rows.logps.to(chosen.dtype) - chosen,
                _PROMPT_KEYS[1]: rows.counts - found["chosen_lengths"]}
