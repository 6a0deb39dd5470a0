"""Muon: orthogonalised momentum for hidden matrices, inner AdamW for the rest."""

from swift_optim_zoo._catalogue._distributed import WHOLE_MATRIX
from swift_zoo import OptimizerSpec

OPTIMIZERS = [
    OptimizerSpec(
        "muon",
        "swift_optim_zoo.muon:Muon",
        summary="Muon: Nesterov momentum orthogonalised by quintic Newton-Schulz on hidden matrices; "
                "AdamW on embeddings, head, norms, biases",
        reference="arXiv:2502.16982",
        state_bytes="hidden matrices: 1 word (momentum, parameter dtype); other params: AdamW's 2 words + 4-byte step",
        roles=("hidden_matrix", "expert_stack"),
        distributed=WHOLE_MATRIX,
    ),
]
