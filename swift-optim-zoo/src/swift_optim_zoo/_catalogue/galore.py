"""GaLore, GaLore-Adafactor and Q-GaLore: low-rank gradient projection for hidden matrices."""

from swift_optim_zoo._catalogue._distributed import WHOLE_MATRIX
from swift_zoo import OptimizerSpec

OPTIMIZERS = [
    OptimizerSpec(
        "galore_adamw",
        "swift_optim_zoo.galore:GaLoreAdamW",
        aliases=("galore",),
        summary="GaLore: Adam moments in a low-rank projection of each hidden matrix's gradient; AdamW elsewhere",
        reference="arXiv:2403.03507",
        state_bytes=(
            "hidden m x n matrices (rank r < min(m, n)): 2*max(m,n)*r + min(m,n)*r float32 words (low-rank "
            "Adam moments + projector basis); other parameters: AdamW's 2 moments + a 4-byte step"
        ),
        roles=("hidden_matrix",),
        license="written from the paper; galore-torch is Apache-2.0",
        distributed=WHOLE_MATRIX,
    ),
    OptimizerSpec(
        "galore_adafactor",
        "swift_optim_zoo.galore:GaLoreAdafactor",
        summary="GaLore with Adafactor (factored second moment) as the low-rank optimizer; AdamW elsewhere",
        reference="arXiv:2403.03507",
        state_bytes=(
            "hidden m x n matrices (rank r < min(m, n)): max(m,n) + r (+ r*max(m,n) with beta1) + min(m,n)*r "
            "float32 words; other parameters: AdamW's 2 moments + a 4-byte step"
        ),
        roles=("hidden_matrix",),
        license="written from the paper; galore-torch is Apache-2.0",
        distributed=WHOLE_MATRIX,
    ),
    OptimizerSpec(
        "q_galore_adamw",
        "swift_optim_zoo.galore:QGaLoreAdamW",
        aliases=("q_galore",),
        summary="Q-GaLore: GaLore with an int8/int4 projector and layer-adaptive lazy refresh (weights stay float)",
        reference="arXiv:2407.08296",
        state_bytes=(
            "hidden m x n matrices (rank r < min(m, n)): 2*max(m,n)*r float32 words + min(m,n)*r codes of "
            "proj_bits bits + 2 float32 per proj_group_size codes; other parameters: AdamW's"
        ),
        roles=("hidden_matrix",),
        license="written from the paper; Q-GaLore's code is Apache-2.0",
        distributed=WHOLE_MATRIX,
    ),
]
