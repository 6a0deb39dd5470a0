"""ADOPT."""

from swift_optim_zoo._catalogue._distributed import ELEMENT_WISE
from swift_zoo import OptimizerSpec

OPTIMIZERS = [
    OptimizerSpec(
        "adopt",
        "swift_optim_zoo.adopt:ADOPT",
        summary="ADOPT: normalise by the second moment before the current gradient, then momentum (any beta2 converges)",
        reference="arXiv:2411.02853",
        state_bytes="2 words (exp_avg, exp_avg_sq; parameter dtype)",
        roles=("all",),
        distributed=ELEMENT_WISE,
    ),
]
