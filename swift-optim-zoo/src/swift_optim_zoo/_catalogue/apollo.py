"""APOLLO and APOLLO-Mini: channel/tensor-wise gradient scaling estimated in a random projection."""

from swift_optim_zoo._catalogue._distributed import WHOLE_MATRIX
from swift_zoo import OptimizerSpec

_LICENSE = (
    "written from the paper (arXiv:2412.05270); the reference implementation apollo-torch is "
    "CC BY-NC 4.0 (non-commercial) and no code was taken from it"
)

OPTIMIZERS = [
    OptimizerSpec(
        "apollo_adamw",
        "swift_optim_zoo.apollo:ApolloAdamW",
        aliases=("apollo",),
        summary="APOLLO: AdamW-like channel-wise scaling of the raw gradient, estimated in a random projection",
        reference="arXiv:2412.05270",
        state_bytes=(
            "hidden m x n matrices (rank r < min(m, n)): 2*max(m,n)*r + min(m,n)*r + 1 float32 words (low-rank "
            "moments, the projection, the previous update norm; store_projection=False drops the projection and "
            "regenerates it from its seed every step); other parameters: AdamW's"
        ),
        roles=("hidden_matrix",),
        license=_LICENSE,
        distributed=WHOLE_MATRIX,
    ),
    OptimizerSpec(
        "apollo_mini",
        "swift_optim_zoo.apollo:ApolloMini",
        summary="APOLLO-Mini: rank-1 APOLLO with one tensor-wise scaling factor (SGD-like memory)",
        reference="arXiv:2412.05270",
        state_bytes=(
            "hidden m x n matrices: 2*max(m,n) + min(m,n) + 1 float32 words (moments, rank-1 projection, update "
            "norm); other parameters: AdamW's 2 moments + step"
        ),
        roles=("hidden_matrix",),
        license=_LICENSE,
        distributed=WHOLE_MATRIX,
    ),
]
