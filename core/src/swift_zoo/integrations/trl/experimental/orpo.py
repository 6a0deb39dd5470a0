"""``ZooORPOTrainer``: ``trl.experimental.orpo.ORPOTrainer`` with a zoo reference-free pair loss.

``ORPOConfig.beta`` (the paper's lambda) fills the zoo ``beta``. The zoo's ``orpo`` has TRL's odds-ratio
term (``ORPOTrainer.odds_ratio_loss`` on the length-averaged log-probs: equal per micro-step,
``tests_integrations/trl``) but not TRL's NLL: TRL takes the NLL over the prompt *and* the chosen completion
(``ORPOTrainer.concatenated_forward``: "orpo chosen nll loss is computed over the full prompt and response"),
as one token mean over the micro-batch; the zoo over the chosen completion only (the paper's
:math:`\\mathcal L_{SFT}` of the response given the prompt), each completion's token mean averaged over pairs.
So the two trainers do not give the same loss; they are not compared step by step.
"""

from __future__ import annotations

from typing import ClassVar

from trl.experimental.orpo import ORPOConfig, ORPOTrainer

from swift_zoo.integrations.trl.experimental._pairs import ZooPairBatchMixin


class ZooORPOTrainer(ZooPairBatchMixin, ORPOTrainer):
    """``trl.experimental.orpo.ORPOTrainer`` whose loss is a zoo reference-free pair loss (``orpo``, ``simpo``...).

    ::

        trainer = ZooORPOTrainer(model=model, args=ORPOConfig(beta=0.1, ...), train_dataset=pairs,
                                 processing_class=tok, zoo_config={"loss_type": "orpo"})
    """

    trl_kind: ClassVar[str] = "orpo"
    trl_config_class: ClassVar[type] = ORPOConfig

    @property
    def _zoo_padding_value(self) -> int:
        return self.padding_value
