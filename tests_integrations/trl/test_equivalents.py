"""Every ``compared`` row of ``TRL_EQUIVALENTS``: the zoo trainer with the zoo loss against the TRL trainer with
its own ``loss_type``, same seed, same data, same config: equal loss and gradient norm at each of 4 logged
steps (bs 2 x GA 2; GRPO bs 4 x GA 2 with 4 generations of 8 tokens)."""

from __future__ import annotations

import pytest
from conftest import assert_same_steps, make_trainer, train_steps

from swift_zoo.integrations.trl import TRL_EQUIVALENTS

COMPARED = [row for row in TRL_EQUIVALENTS if row.compared]


@pytest.mark.parametrize("row", COMPARED, ids=[f"{r.trainer}-{r.trl_loss_type}-{r.zoo_loss}" for r in COMPARED])
def test_zoo_trainer_equals_trl_per_step(row, model_dir, tmp_path):
    trl_config = dict(row.trl_config)
    loss_type = [row.trl_loss_type] if row.trainer == "DPOTrainer" else row.trl_loss_type
    trl_run = train_steps(make_trainer(row.trainer, model_dir, tmp_path / "trl", loss_type=loss_type, **trl_config))
    zoo = {"loss_type": row.zoo_loss, "loss_kwargs": dict(row.zoo_kwargs)}
    zoo_run = train_steps(make_trainer(row.trainer, model_dir, tmp_path / "zoo", zoo=zoo, **trl_config))
    assert_same_steps(zoo_run, trl_run)
    assert zoo_run[-1]["loss"] != trl_run[0]["loss"] or row.trainer == "GRPOTrainer"  # the runs really trained


def test_every_equivalent_names_a_registered_zoo_loss():
    import swift_zoo

    for row in TRL_EQUIVALENTS:
        swift_zoo.get_loss(row.zoo_loss)
