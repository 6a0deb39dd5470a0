"""AdamW with block-wise 8-bit quantised moments."""

from swift_optim_zoo.adamw_8bit.adamw_8bit import AdamW8bit
from swift_optim_zoo.adamw_8bit.quantization import dequantize_blockwise, dynamic_map, quantize_blockwise

__all__ = ["AdamW8bit", "dequantize_blockwise", "dynamic_map", "quantize_blockwise"]
