"""Zoo trainers over ``trl.experimental`` (importing this imports TRL's experimental modules, which warn unless
``TRL_EXPERIMENTAL_SILENCE=1``): ``ZooCPOTrainer`` and ``ZooORPOTrainer``."""

from swift_zoo.integrations.trl.experimental.cpo import ZooCPOTrainer
from swift_zoo.integrations.trl.experimental.orpo import ZooORPOTrainer

__all__ = ["ZooCPOTrainer", "ZooORPOTrainer"]
