"""AdEMAMix."""

from swift_optim_zoo._catalogue._distributed import ELEMENT_WISE
from swift_zoo import OptimizerSpec

OPTIMIZERS = [
    OptimizerSpec(
        "ademamix",
        "swift_optim_zoo.ademamix:AdEMAMix",
        summary="AdEMAMix: Adam plus a slow EMA of gradients mixed into the numerator",
        reference="arXiv:2409.03137",
        state_bytes="3 words (exp_avg, exp_avg_slow, exp_avg_sq; parameter dtype)",
        roles=("all",),
        distributed=ELEMENT_WISE,
    ),
]
