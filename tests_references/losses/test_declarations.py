"""Every equivalence declared equal, for a library the ``references`` session installs, has a comparison here.

A record's spelling decides which comparison runs it (``test_trl_dpo`` takes ``DPOConfig(...)``, ...); a
record no comparison takes would be an untested promise, so it fails here. ms-swift's records are compared
by ``test_ms_swift_dpo`` where ms-swift is installed (its DPO family) and documented otherwise.
"""

from __future__ import annotations

import pytest
from _loss_equivalences import declared, record_id

DRIVEN = {
    "trl": ("DPOConfig(", "CPOConfig(", "ORPOConfig(", "KTOConfig(", "RewardConfig(",
            "GKDTrainer.generalized_jsd_loss(", "ServerDistillationConfig(", "SFTConfig("),
    "liger": ("LigerFusedLinearDPOLoss(", "LigerFusedLinearSimPOLoss(", "LigerFusedLinearCPOLoss(",
              "LigerFusedLinearORPOLoss(", "LigerFusedLinearJSDLoss("),
    "verl": ("DistillationLossConfig(",),
    "transformers": ("ForCausalLMLoss(",),
}
# the policy-family losses are compared by their own modules (added with them)
LOSS_FAMILIES_HERE = ("preference", "reference_free", "unpaired", "reward", "lm", "distill", "embedding",
                      "composition")
RECORDS = [item for library in DRIVEN for item in declared(library)]


def _family(name: str) -> str:
    import swift_zoo

    return swift_zoo.get_loss(name).__module__.split(".")[1]


@pytest.mark.parametrize("item", RECORDS, ids=[record_id(item) for item in RECORDS])
def test_every_equal_record_has_a_comparison(item):
    name, record = item
    if _family(name) not in LOSS_FAMILIES_HERE:
        pytest.skip(f"{name} belongs to a family whose comparisons live with it")
    assert record.name.startswith(DRIVEN[record.library]), (
        f"{name} declares itself equal to {record.library} {record.name!r}, but no comparison in "
        f"tests_references/losses runs that spelling (driven: {', '.join(DRIVEN[record.library])})"
    )
