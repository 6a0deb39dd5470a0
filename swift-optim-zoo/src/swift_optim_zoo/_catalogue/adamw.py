"""AdamW behind role-based parameter groups."""

from swift_optim_zoo._catalogue._distributed import TORCH_ADAMW
from swift_zoo import OptimizerSpec

OPTIMIZERS = [
    OptimizerSpec(
        "adamw",
        "swift_optim_zoo.adamw:AdamW",
        summary="torch AdamW (fused where supported) with norms and biases kept out of weight decay",
        reference="arXiv:1711.05101",
        state_bytes="2 moments in the parameter's dtype + a 4-byte step per tensor",
        roles=("all",),
        distributed=TORCH_ADAMW,
    ),
]
