"""Adam-mini: one second-moment value per block."""

from swift_optim_zoo._catalogue._distributed import ADAM_MINI
from swift_zoo import OptimizerSpec

OPTIMIZERS = [
    OptimizerSpec(
        "adam_mini",
        "swift_optim_zoo.adam_mini:AdamMini",
        summary="Adam-mini: Adam with one second-moment scalar per block (per head for q/k, per neuron, "
                "per token row for embeddings/head)",
        reference="arXiv:2406.16793",
        state_bytes="1 word (exp_avg, parameter dtype) + 1 word per block + 4-byte step",
        roles=("all",),
        needs_model=True,
        distributed=ADAM_MINI,
    ),
]
