"""The distributed capability records of the zoo's optimizers, shared by the catalogue specs and the classes.

Torch-free. A wrapper is ``supported`` only where a test in ``tests_distributed`` shows the optimizer equal to
one process there (``docs/distributed.md`` is generated from these records and names the tests):

* DDP: every optimizer, two gloo ranks, bit-identical replicas (``test_ddp_optimizers.py``);
* FSDP2: every optimizer on two and four ranks equal to one process -- bitwise for element-wise methods,
  within 1e-6 normwise per parameter for whole-matrix ones and for element-wise ones with whole-tensor sums
  (``swift_zoo.optim.bitwise_under_fsdp2``) -- and resumed from ``torch.distributed.checkpoint`` at another
  world size (``test_fsdp_optimizers.py``);
* ZeRO-1/2 and ZeRO-3: element-wise methods on DeepSpeed-style flat fp32 partitions, simulated in one process
  (DeepSpeed is not installed here: ``test_zero_partitions.py``); whole-matrix methods refuse them.

``ELEMENT_WISE`` serves methods whose update of each element needs only that element's gradient and state
(``TORCH_ADAMW`` the two built on torch's AdamW kernels); ``WHOLE_MATRIX`` methods that compute each matrix
whole on an owner rank (Newton-Schulz, projections, eigenbases, Kronecker factors); ``ROW_STATISTICS`` (and
``CAME``) methods that need only sums over a matrix's rows, columns or blocks; ``TENSOR_SUMS`` element-wise
methods with a whole-tensor sum; ``BLOCKWISE`` the 8-bit AdamW. A new whole-matrix optimizer takes
``WHOLE_MATRIX_UNSHARDED`` until it computes on owner ranks (``swift_zoo.optim.MatrixOwners``) and the FSDP2
tests pass for it.
"""

from __future__ import annotations

from swift_zoo import DistributedCapability, Support

DDP_TESTED = Support("supported", "replicated parameters, all-reduced gradients: tested bit-identical across ranks")
_FSDP2_TESTED = "tested against one process on 2 and 4 ranks, and resumed from DCP checkpoints 2->4, 4->2 and 2->1"
_WHOLE_MATRIX_ONLY = (
    "the method needs each matrix whole, and this wrapper hands the optimizer flat partitions of the parameters; "
    "use FSDP2 (torch.distributed.fsdp.fully_shard, which keeps each parameter's shape) or DDP instead, or an "
    "element-wise optimizer (adamw, lion, schedule_free_adamw)"
)

_ZERO_SIMULATED = (
    "simulated (no DeepSpeed here): element-wise on the flat fp32 partition each rank's optimizer gets per param "
    "group (stages 1, 2 and stage 3's fp32 partitions), tested on 2 and 4 simulated ranks"
)
_FSDP1_FLAT = (
    "element-wise on the flat shards, tested equal to one process with weight_decay=0 on 4 ranks{exactness}; but a "
    "flat parameter mixes norms, biases and matrices, so role-based weight-decay exclusion cannot apply to it: use "
    "FSDP2 or use_orig_params=True"
)
_TORCH_FUSED_TAIL = (
    "; torch's fused CPU AdamW (fused=None picks it on CPU) rounds the last numel % vector-width elements of each "
    "tensor it is given in scalar code, so on flat partitions a few elements differ by an ulp (tested within 1e-6); "
    "fused=False is bitwise"
)

ELEMENT_WISE = DistributedCapability(
    ddp=DDP_TESTED,
    fsdp2=Support("supported", f"element-wise on each rank's rows, bitwise equal to one process; {_FSDP2_TESTED}"),
    zero1_2=Support("supported", f"{_ZERO_SIMULATED}: bitwise equal to one process"),
    zero3=Support("supported", f"{_ZERO_SIMULATED}: bitwise equal to one process"),
    fsdp1_flat=Support("untested", _FSDP1_FLAT.format(exactness=" (bitwise)")),
)

#: torch's AdamW kernels (adamw, lora_plus): under FSDP2 run on shard pieces aligned as on the whole tensor
TORCH_ADAMW = DistributedCapability(
    ddp=DDP_TESTED,
    fsdp2=Support("supported", (
        "element-wise on each rank's rows, torch's fused CPU kernel run on pieces aligned as on the whole tensor "
        f"(its scalar tail rounds differently), bitwise equal to one process; {_FSDP2_TESTED}")),
    zero1_2=Support("supported", f"{_ZERO_SIMULATED}{_TORCH_FUSED_TAIL}"),
    zero3=Support("supported", f"{_ZERO_SIMULATED}{_TORCH_FUSED_TAIL}"),
    fsdp1_flat=Support("untested", _FSDP1_FLAT.format(exactness="") + _TORCH_FUSED_TAIL),
)

WHOLE_MATRIX = DistributedCapability(
    ddp=DDP_TESTED,
    fsdp2=Support("supported", (
        "each matrix is computed whole by one owner rank (owners balanced by size): gradients or updates "
        "gathered to it and results sent back to each rank's rows in one all_to_all per direction; element-wise "
        f"state stays sharded; within 1e-6 of one process; {_FSDP2_TESTED}")),
    zero1_2=Support("refused", _WHOLE_MATRIX_ONLY),
    zero3=Support("refused", _WHOLE_MATRIX_ONLY),
    fsdp1_flat=Support("refused", _WHOLE_MATRIX_ONLY),
)

#: for a new whole-matrix optimizer that does not compute on owner ranks yet: FSDP2 stays "untested" (a warning
#: at the first step, and the FSDP2 tests skip it) until it uses swift_zoo.optim.MatrixOwners and passes them
WHOLE_MATRIX_UNSHARDED = DistributedCapability(
    ddp=DDP_TESTED,
    fsdp2=Support("untested", "not yet computed on owner ranks: each matrix must be whole (see MatrixOwners)"),
    zero1_2=Support("refused", _WHOLE_MATRIX_ONLY),
    zero3=Support("refused", _WHOLE_MATRIX_ONLY),
    fsdp1_flat=Support("refused", _WHOLE_MATRIX_ONLY),
)

_PARTITIONS_MIX_TENSORS = (
    "the update needs whole-tensor sums (a trust ratio, an RMS, a norm, a sign count), and this wrapper hands the "
    "optimizer flat partitions that cut and mix tensors, so the sums would be wrong; use DDP, or FSDP2 (the sums are "
    "all-reduced per tensor there)"
)

#: element-wise methods with a per-tensor statistic (LAMB, StableAdamW, MARS, Prodigy, the cautious mask)
TENSOR_SUMS = DistributedCapability(
    ddp=DDP_TESTED,
    fsdp2=Support("supported", (
        "element-wise on each rank's rows; each whole-tensor sum (LAMB's norms, StableAdamW's RMS, MARS' "
        "correction norm, Prodigy's two sums for d) is all-reduced from the ranks' partial sums: one process's sum "
        "added in another order, so within 1e-6 normwise of one process, not bitwise; the cautious mask's count of "
        f"kept elements is an exact sum: bitwise (adamw, lion, adopt, ademamix with cautious=True); {_FSDP2_TESTED}")),
    zero1_2=Support("refused", _PARTITIONS_MIX_TENSORS),
    zero3=Support("refused", _PARTITIONS_MIX_TENSORS),
    fsdp1_flat=Support("refused", _PARTITIONS_MIX_TENSORS),
)

#: cautious=True with fused=True: FSDP2 runs the rule eagerly, one process compiled; the mask's sign test can flip
CAUTIOUS_COMPILED = DistributedCapability(
    ddp=DDP_TESTED,
    fsdp2=Support("untested", (
        "cautious=True with fused=True: under FSDP2 the rule runs eagerly on each rank's rows (its mask count is "
        "all-reduced), while one process runs it compiled; the two round differently, and an element whose "
        "update x gradient rounds across 0 is kept by one and masked by the other, so no equality is claimed; with "
        "fused=False the FSDP2 run is tested equal to one process")),
    zero1_2=Support("refused", _PARTITIONS_MIX_TENSORS),
    zero3=Support("refused", _PARTITIONS_MIX_TENSORS),
    fsdp1_flat=Support("refused", _PARTITIONS_MIX_TENSORS),
)

#: block-wise quantised states (adamw_8bit): blocks of 256 consecutive elements of each rank's local tensor
BLOCKWISE = DistributedCapability(
    ddp=DDP_TESTED,
    fsdp2=Support("supported", (
        "the whole tensor's quantisation blocks (and its choice of which tensors are quantised): each rank "
        "dequantises, steps and requantises its own elements; a block cut by a shard boundary takes its absmax "
        "from an exact max over the ranks holding part of it (one all_gather of 4 numbers per quantised tensor and "
        "rank per step); bitwise equal to one process; checkpoints hold the codes as Shard(0) DTensors in the "
        f"parameter's shape and the absmax whole; {_FSDP2_TESTED}; with bf16_stochastic_rounding each rank draws "
        "its own random bits, so the rounding is not one process's")),
    zero1_2=Support("untested", "quantisation blocks on the flat partitions"),
    zero3=Support("untested", "quantisation blocks on the partitions"),
    fsdp1_flat=Support("untested", "quantisation blocks on the flat shards"),
)

#: MuonClip: Muon's whole-matrix step plus QK-clip, which rescales rows of each head of the q/k projections
MUON_CLIP = DistributedCapability(
    ddp=DDP_TESTED,
    fsdp2=Support("supported", (
        "Muon's owner compute; QK-clip's per-head maximum logits (each rank's own batch) are all-reduced with MAX "
        "over the mesh, so every rank clips the same heads, and each rank scales its own rows of the q/k "
        f"projections (a head may straddle ranks); within 1e-6 of one process; {_FSDP2_TESTED}")),
    zero1_2=Support("refused", _WHOLE_MATRIX_ONLY),
    zero3=Support("refused", _WHOLE_MATRIX_ONLY),
    fsdp1_flat=Support("refused", _WHOLE_MATRIX_ONLY),
)

ROW_STATISTICS = DistributedCapability(
    ddp=DDP_TESTED,
    fsdp2=Support("supported", (
        "row, column and block statistics from one all-reduce of the ranks' partial sums per phase (O(rows + "
        f"columns) words, no matrix moves); within 1e-6 of one process; {_FSDP2_TESTED}; with fused=True the "
        "eager rule runs, so compare with one process's eager rule (the compiled one rounds differently)")),
    zero1_2=Support("refused", _WHOLE_MATRIX_ONLY),
    zero3=Support("refused", _WHOLE_MATRIX_ONLY),
    fsdp1_flat=Support("refused", _WHOLE_MATRIX_ONLY),
)

#: Adafactor (factored second moment: row and column means) and Adam-mini (per-block means)
ADAFACTOR = ROW_STATISTICS
ADAM_MINI = ROW_STATISTICS

#: CAME: Adafactor's factored second moment plus a factored confidence, both from partial sums
CAME = DistributedCapability(
    ddp=DDP_TESTED,
    fsdp2=Support("supported", (
        "row and column statistics of the second moment and of the confidence from three all-reduces of the ranks' "
        "partial sums per step for all parameters together (O(rows + columns) words per matrix, no matrix moves); "
        f"element-wise state and row statistics sharded like the parameter; within 1e-6 of one process; "
        f"{_FSDP2_TESTED}")),
    zero1_2=Support("refused", _WHOLE_MATRIX_ONLY),
    zero3=Support("refused", _WHOLE_MATRIX_ONLY),
    fsdp1_flat=Support("refused", _WHOLE_MATRIX_ONLY),
)
