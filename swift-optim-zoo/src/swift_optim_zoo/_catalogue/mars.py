"""MARS-AdamW."""

from swift_optim_zoo._catalogue._distributed import TENSOR_SUMS
from swift_zoo import OptimizerSpec

OPTIMIZERS = [
    OptimizerSpec(
        "mars",
        "swift_optim_zoo.mars:MARS",
        summary="MARS-AdamW: AdamW on a variance-reduced gradient correction (matrices; 1-D tensors plain AdamW)",
        reference="arXiv:2411.10438",
        state_bytes="matrices 3 words (exp_avg, exp_avg_sq, last_grad), 1-D tensors 2 words; parameter dtype",
        roles=("all",),
        distributed=TENSOR_SUMS,
    ),
]
