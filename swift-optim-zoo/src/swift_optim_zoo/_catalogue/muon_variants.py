"""Muon's variants: NorMuon, AdaMuon, MuonClip."""

from swift_optim_zoo._catalogue._distributed import MUON_CLIP, WHOLE_MATRIX
from swift_zoo import OptimizerSpec

OPTIMIZERS = [
    OptimizerSpec(
        "normuon",
        "swift_optim_zoo.muon:NorMuon",
        summary="NorMuon: Muon with a per-neuron (row) second moment normalising the orthogonalised update",
        reference="arXiv:2510.05491",
        state_bytes="hidden matrices: 1 word (momentum) + 4 bytes per row; other params: AdamW's 2 words + step",
        roles=("hidden_matrix", "expert_stack"),
        distributed=WHOLE_MATRIX,
    ),
    OptimizerSpec(
        "adamuon",
        "swift_optim_zoo.muon:AdaMuon",
        summary="AdaMuon: Muon with an element-wise second moment of the orthogonalised update, RMS-matched to AdamW",
        reference="arXiv:2507.11005",
        state_bytes="hidden matrices: 1 word (momentum) + 4 bytes (float32 second moment); others: AdamW's",
        roles=("hidden_matrix", "expert_stack"),
        distributed=WHOLE_MATRIX,
    ),
    OptimizerSpec(
        "muon_clip",
        "swift_optim_zoo.muon:MuonClip",
        summary="MuonClip (Kimi K2): RMS-matched Muon plus QK-clip of attention heads whose max logit exceeds tau",
        reference="arXiv:2507.20534",
        state_bytes="as muon: hidden matrices 1 word (momentum); other params AdamW's 2 words + step",
        roles=("hidden_matrix", "expert_stack"),
        needs_model=True,
        hooks=(),
        distributed=MUON_CLIP,
    ),
]
