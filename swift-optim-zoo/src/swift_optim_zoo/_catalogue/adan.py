"""Adan."""

from swift_optim_zoo._catalogue._distributed import ELEMENT_WISE
from swift_zoo import OptimizerSpec

OPTIMIZERS = [
    OptimizerSpec(
        "adan",
        "swift_optim_zoo.adan:Adan",
        summary="Adan: adaptive Nesterov momentum from moments of the gradient and its difference",
        reference="arXiv:2208.06677",
        state_bytes="4 words (exp_avg, exp_avg_diff, exp_avg_sq, previous_grad; parameter dtype)",
        roles=("all",),
        distributed=ELEMENT_WISE,
    ),
]
