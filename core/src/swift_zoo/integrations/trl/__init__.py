"""swift zoo inside TRL 1.16 (the ``[trl]`` extra: ``trl>=1.16,<2``): TRL's trainers with a zoo loss.

``ZooSFTTrainer``, ``ZooDPOTrainer``, ``ZooKTOTrainer`` and ``ZooGRPOTrainer`` take their TRL trainer's
arguments plus ``zoo_config={"loss_type": ..., "loss_kwargs": {...}}`` (and optionally
``optimizer_type``/``optimizer_kwargs``, ``lr_scheduler_type``). They override TRL's private loss
methods, hence the pinned range. ``TRL_EQUIVALENTS`` says which zoo loss equals which TRL
``loss_type`` and where they differ. ``ZooCPOTrainer`` and ``ZooORPOTrainer`` (over ``trl.experimental``)
are in :mod:`swift_zoo.integrations.trl.experimental`, so that importing this module does not import TRL's
experimental code.
"""

from swift_zoo.integrations.trl._names import TRL_EQUIVALENTS, TRLEquivalent, equivalents_markdown
from swift_zoo.integrations.trl.dpo import ZooDPOTrainer
from swift_zoo.integrations.trl.grpo import ZooGRPOTrainer
from swift_zoo.integrations.trl.kto import ZooKTOTrainer
from swift_zoo.integrations.trl.sft import ZooSFTTrainer

__all__ = [
    "TRL_EQUIVALENTS",
    "TRLEquivalent",
    "ZooDPOTrainer",
    "ZooGRPOTrainer",
    "ZooKTOTrainer",
    "ZooSFTTrainer",
    "equivalents_markdown",
]
