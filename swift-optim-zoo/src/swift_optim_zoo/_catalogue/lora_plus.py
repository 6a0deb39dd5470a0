"""LoRA+: a larger learning rate for LoRA B matrices."""

from swift_optim_zoo._catalogue._distributed import TORCH_ADAMW
from swift_zoo import OptimizerSpec

OPTIMIZERS = [
    OptimizerSpec(
        "lora_plus",
        "swift_optim_zoo.lora_plus:LoraPlusAdamW",
        aliases=("loraplus", "lorap"),
        summary="LoRA+: AdamW with lr * loraplus_lr_ratio (16) for the LoRA B matrices",
        reference="arXiv:2402.12354",
        state_bytes="AdamW's: 2 words (parameter dtype) + 4-byte step",
        roles=("all",),
        needs_model=True,
        distributed=TORCH_ADAMW,
    ),
]
