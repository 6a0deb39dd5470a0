"""Lion: sign of interpolated momentum."""

from swift_optim_zoo._catalogue._distributed import ELEMENT_WISE
from swift_zoo import OptimizerSpec

OPTIMIZERS = [
    OptimizerSpec(
        "lion",
        "swift_optim_zoo.lion:Lion",
        summary="Lion: sign of the interpolated momentum, one state tensor, decoupled weight decay",
        reference="arXiv:2302.06675",
        state_bytes="1 word (exp_avg, parameter dtype)",
        roles=("all",),
        distributed=ELEMENT_WISE,
    ),
]
