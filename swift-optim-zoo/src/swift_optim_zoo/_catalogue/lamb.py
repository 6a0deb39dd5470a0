"""LAMB."""

from swift_optim_zoo._catalogue._distributed import TENSOR_SUMS
from swift_zoo import OptimizerSpec

OPTIMIZERS = [
    OptimizerSpec(
        "lamb",
        "swift_optim_zoo.lamb:LAMB",
        summary="LAMB: Adam direction plus weight decay, scaled per tensor by the trust ratio ||w|| / ||u||",
        reference="arXiv:1904.00962",
        state_bytes="2 words (exp_avg, exp_avg_sq; parameter dtype)",
        roles=("all",),
        distributed=TENSOR_SUMS,
    ),
]
