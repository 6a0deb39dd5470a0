"""The distributed capability records of the zoo's optimizers, shared by the catalogue specs and the classes.

Torch-free. ``ELEMENT_WISE`` serves methods whose update of each element needs only that element's gradient and
state; ``WHOLE_MATRIX`` serves methods that need every matrix whole (Newton-Schulz, projections, factored or
blocked statistics, eigenbases). DDP is tested for every optimizer (``tests_distributed``: two gloo ranks give
the single-process parameters); a wrapper is marked supported only where a test shows it.
"""

from __future__ import annotations

from swift_zoo import DistributedCapability, Support

DDP_TESTED = Support("supported", "replicated parameters, all-reduced gradients: tested equal to one process")
_WHOLE_MATRIX_ONLY = (
    "the method needs each matrix whole, and this wrapper hands the optimizer flat partitions of the parameters; "
    "use FSDP2 (torch.distributed.fsdp.fully_shard) or DDP instead, or an element-wise optimizer (adamw, lion)"
)

ELEMENT_WISE = DistributedCapability(
    ddp=DDP_TESTED,
    fsdp2=Support("untested", "element-wise on the local shards"),
    zero1_2=Support("untested", "element-wise on the flat partitions"),
    zero3=Support("untested", "element-wise on the partitions"),
    fsdp1_flat=Support("untested", "element-wise on the flat shards"),
)

WHOLE_MATRIX = DistributedCapability(
    ddp=DDP_TESTED,
    fsdp2=Support("untested", "each matrix computed whole by one owner rank"),
    zero1_2=Support("refused", _WHOLE_MATRIX_ONLY),
    zero3=Support("refused", _WHOLE_MATRIX_ONLY),
    fsdp1_flat=Support("refused", _WHOLE_MATRIX_ONLY),
)

#: Adafactor and Adam-mini: whole-matrix statistics (row/column or block means) -- for now the same record
ADAFACTOR = WHOLE_MATRIX
ADAM_MINI = WHOLE_MATRIX

_PARTITIONS_MIX_TENSORS = (
    "the update needs whole-tensor sums (a trust ratio, an RMS, a norm, a sign count), and this wrapper hands the "
    "optimizer flat partitions that cut and mix tensors, so the sums would be wrong; use DDP, or FSDP2 (the sums are "
    "all-reduced per tensor there)"
)

#: element-wise methods with a per-tensor statistic (LAMB, StableAdamW, MARS, Prodigy, the cautious mask)
TENSOR_SUMS = DistributedCapability(
    ddp=DDP_TESTED,
    fsdp2=Support("untested", "element-wise on the local shards, each whole-tensor sum all-reduced over the mesh"),
    zero1_2=Support("refused", _PARTITIONS_MIX_TENSORS),
    zero3=Support("refused", _PARTITIONS_MIX_TENSORS),
    fsdp1_flat=Support("refused", _PARTITIONS_MIX_TENSORS),
)

#: block-wise quantised states (adamw_8bit): blocks of 256 consecutive elements of each rank's local tensor
BLOCKWISE = DistributedCapability(
    ddp=DDP_TESTED,
    fsdp2=Support("untested", "quantisation blocks on each rank's local shard: the blocks of one process wherever a "
                              "shard holds whole blocks (rows of a multiple of 256 elements)"),
    zero1_2=Support("untested", "quantisation blocks on the flat partitions"),
    zero3=Support("untested", "quantisation blocks on the partitions"),
    fsdp1_flat=Support("untested", "quantisation blocks on the flat shards"),
)

#: MuonClip: Muon's whole-matrix step plus QK-clip, which rescales rows of each head of the q/k projections
MUON_CLIP = DistributedCapability(
    ddp=DDP_TESTED,
    fsdp2=Support("refused", "QK-clip rescales the rows of each attention head of the q/k projections, which needs "
                             "whole projections on every rank; use DDP, or muon / normuon under FSDP2"),
    zero1_2=Support("refused", _WHOLE_MATRIX_ONLY),
    zero3=Support("refused", _WHOLE_MATRIX_ONLY),
    fsdp1_flat=Support("refused", _WHOLE_MATRIX_ONLY),
)
