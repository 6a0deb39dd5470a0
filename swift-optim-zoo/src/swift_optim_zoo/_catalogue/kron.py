"""PSGD Kron: a Kronecker-factored preconditioner fitted online."""

from swift_optim_zoo._catalogue._distributed import WHOLE_MATRIX
from swift_zoo import OptimizerSpec

OPTIMIZERS = [
    OptimizerSpec(
        "kron",
        "swift_optim_zoo.kron:Kron",
        summary="PSGD Kron: momentum preconditioned by Kronecker factors (triangular per dimension, diagonal for "
                "large ones) fitted online",
        reference="arXiv:1512.04202",
        state_bytes="1 word (momentum) + 4 bytes x (sum of d_i^2 over dense dimensions + d_i over diagonal ones)",
        roles=("all",),
        distributed=WHOLE_MATRIX,
    ),
]
