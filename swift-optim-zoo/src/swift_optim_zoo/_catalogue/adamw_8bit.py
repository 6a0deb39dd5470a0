"""AdamW with 8-bit block-wise quantised moments."""

from swift_optim_zoo._catalogue._distributed import BLOCKWISE
from swift_zoo import OptimizerSpec

OPTIMIZERS = [
    OptimizerSpec(
        "adamw_8bit",
        "swift_optim_zoo.adamw_8bit:AdamW8bit",
        summary="AdamW with block-wise 8-bit moments (dynamic map, 256-element blocks), written in torch: CPU and "
                "CUDA",
        reference="arXiv:2110.02861",
        state_bytes="2 bytes + 8 bytes per 256-element block (tensors >= 4096 elements), else 2 words",
        roles=("all",),
        distributed=BLOCKWISE,
    ),
]
