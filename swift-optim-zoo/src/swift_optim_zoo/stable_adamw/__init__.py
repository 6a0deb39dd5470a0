"""StableAdamW: AdamW with per-tensor update clipping (AdaFactor's RMS rule)."""

from swift_optim_zoo.stable_adamw.stable_adamw import StableAdamW

__all__ = ["StableAdamW"]
