"""StableAdamW."""

from swift_optim_zoo._catalogue._distributed import TENSOR_SUMS
from swift_zoo import OptimizerSpec

OPTIMIZERS = [
    OptimizerSpec(
        "stable_adamw",
        "swift_optim_zoo.stable_adamw:StableAdamW",
        summary="StableAdamW: AdamW with per-tensor update clipping by the RMS of g^2/v",
        reference="arXiv:2304.13013",
        state_bytes="2 words (exp_avg, exp_avg_sq; parameter dtype)",
        roles=("all",),
        distributed=TENSOR_SUMS,
    ),
]
