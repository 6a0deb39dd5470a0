"""AdEMAMix: Adam with a second, slow momentum."""

from swift_optim_zoo.ademamix.ademamix import AdEMAMix

__all__ = ["AdEMAMix"]
