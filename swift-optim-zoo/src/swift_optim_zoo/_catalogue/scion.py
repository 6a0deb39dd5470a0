"""Scion: per-layer linear minimisation oracles."""

from swift_optim_zoo._catalogue._distributed import WHOLE_MATRIX
from swift_zoo import OptimizerSpec

OPTIMIZERS = [
    OptimizerSpec(
        "scion",
        "swift_optim_zoo.scion:Scion",
        summary="Scion: momentum then a per-layer LMO (spectral for hidden matrices, column-wise for embeddings, sign "
                "for the head, RMS for vectors)",
        reference="arXiv:2502.07529",
        state_bytes="1 word (d, parameter dtype)",
        roles=("all",),
        distributed=WHOLE_MATRIX,
    ),
]
