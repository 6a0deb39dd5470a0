"""The policy losses' and advantage estimators' records: which library compares each, and ms-swift's status.

Each comparison module parametrizes over every equal record of its library (``policy_records`` /
``advantage_records``), so a new record runs at once, and fails there if its spelling has no driver. This module
checks the libraries themselves: every equal record belongs to a library a comparison drives, or is ms-swift's,
documented from its source (ms-swift's GRPO loss is computed inside its trainer, and ms-swift pins trl<1.0, so it
cannot share the references venv).
"""

from __future__ import annotations

import pytest
from _policy_references import advantage_records, policy_records, record_id

DRIVEN = {  # library -> the module that compares its records
    "trl": "test_policy_trl.py",
    "verl": "test_policy_verl.py / test_advantage_verl.py",
    "liger": "test_policy_liger.py",
}
LIBRARIES = ("trl", "verl", "liger", "ms-swift", "openrlhf", "transformers")
EQUAL = [item for library in LIBRARIES for item in [*policy_records(library), *advantage_records(library)]]


@pytest.mark.parametrize("item", EQUAL, ids=[f"{record_id(i)}:{i[1].library}" for i in EQUAL])
def test_every_equal_record_is_compared_or_documented(item):
    name, record = item
    if record.library == "ms-swift":
        pytest.skip(f"{name}: ms-swift {record.name!r} is documented from ms-swift 4.6's source; its GRPO loss is "
                    "computed inside its trainer and ms-swift pins trl<1.0 (not in the references venv)")
    assert record.library in DRIVEN, f"{name} declares itself equal to {record.library} {record.name!r}: no comparison"
    assert record.versions, f"{name}: the {record.library} record names no version"


def test_every_policy_loss_and_estimator_declares_at_least_one_equal_record():
    import swift_zoo

    named = {name for name, _ in EQUAL}
    losses = {e.name for e in swift_zoo.list_losses() if e.spec.target_path.startswith("swift_loss_zoo.policy.")}
    estimators = {e.name for e in swift_zoo.list_advantages() if e.spec.target_path.startswith("swift_loss_zoo.")}
    assert losses - {"clip_cov"} <= named, losses - named  # clip_cov declares its difference from verl
    assert estimators <= named, estimators - named
