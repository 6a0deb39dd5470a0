"""CAME."""

from swift_optim_zoo._catalogue._distributed import CAME
from swift_zoo import OptimizerSpec

OPTIMIZERS = [
    OptimizerSpec(
        "came",
        "swift_optim_zoo.came:CAME",
        summary="CAME: Adafactor's factored second moment with a factored confidence that scales the momentum",
        reference="arXiv:2307.02047",
        state_bytes="matrices: 1 word (exp_avg, float32) + 2(m+n) floats; vectors: 2 words (float32)",
        roles=("all",),
        distributed=CAME,
    ),
]
