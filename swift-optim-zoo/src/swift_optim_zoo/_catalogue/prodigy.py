"""Prodigy."""

from swift_optim_zoo._catalogue._distributed import TENSOR_SUMS
from swift_zoo import OptimizerSpec

OPTIMIZERS = [
    OptimizerSpec(
        "prodigy",
        "swift_optim_zoo.prodigy:Prodigy",
        summary="Prodigy: learning-rate-free Adam, step size d estimated from the distance travelled",
        reference="arXiv:2306.06101",
        state_bytes="4 words (exp_avg, exp_avg_sq, s, p0; parameter dtype)",
        roles=("all",),
        distributed=TENSOR_SUMS,
    ),
]
