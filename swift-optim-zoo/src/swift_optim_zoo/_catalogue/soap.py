"""SOAP: Adam in Shampoo's eigenbasis."""

from swift_optim_zoo._catalogue._distributed import WHOLE_MATRIX
from swift_zoo import OptimizerSpec

OPTIMIZERS = [
    OptimizerSpec(
        "soap",
        "swift_optim_zoo.soap:SOAP",
        summary="SOAP: Adam in the eigenbasis of Shampoo's preconditioner, refreshed every precondition_frequency "
                "steps",
        reference="arXiv:2409.11321",
        state_bytes="m x n matrix: 2mn + 2m^2 + 2n^2 float32 words (exp_avg, exp_avg_sq, L, R, Q_L, Q_R; a side "
                    "> max_precond_dim gets none); 1-D params: AdamW's",
        roles=("embedding", "tied_embedding", "output_head", "hidden_matrix", "expert_stack", "other"),
        distributed=WHOLE_MATRIX,
    ),
]
