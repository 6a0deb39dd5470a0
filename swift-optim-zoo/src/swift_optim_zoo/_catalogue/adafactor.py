"""Adafactor: factored second-moment estimates."""

from swift_optim_zoo._catalogue._distributed import ADAFACTOR
from swift_zoo import OptimizerSpec

OPTIMIZERS = [
    OptimizerSpec(
        "adafactor",
        "swift_optim_zoo.adafactor:Adafactor",
        summary="Adafactor with transformers' defaults: factored second moment, RMS update clipping, optional beta1",
        reference="arXiv:1804.04235",
        state_bytes=(
            "tensors with >= 2 dims: rows + cols float32 words (last two dims factored); 1-D: n float32; "
            "+ numel float32 with beta1"
        ),
        roles=("all",),
        distributed=ADAFACTOR,
    ),
]
