"""``ZooAdvantage``: the example inputs every estimator of this package draws from one shared batch."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from swift_loss_zoo.advantages._inputs import example_batch
from swift_zoo.advantages import BaseAdvantage


class ZooAdvantage(BaseAdvantage):
    """A :class:`~swift_zoo.advantages.BaseAdvantage` whose ``example_inputs`` are the declared keys of
    :func:`~swift_loss_zoo.advantages._inputs.example_batch` (``example_batch_options`` passed through)."""

    example_batch_options: ClassVar[dict[str, Any]] = {}

    @classmethod
    def example_inputs(cls, *, batch_size: int = 8, generator: torch.Generator | None = None,
                       device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        batch = example_batch(batch_size=batch_size, generator=generator, device=device, **cls.example_batch_options)
        return {spec.key: batch[spec.key] for spec in cls.inputs if spec.key in batch}
