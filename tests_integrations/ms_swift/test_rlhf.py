"""Preference losses through ``swift rlhf`` with ``--loss_type zoo:<name>``, against ms-swift's own."""

from __future__ import annotations

import pytest


def test_zoo_dpo_equals_sigmoid(tiny_run, same_steps):
    same_steps(tiny_run("rlhf", "--rlhf_type", "dpo", "--loss_type", "zoo:dpo", data_name="dpo"),
               tiny_run("rlhf", "--rlhf_type", "dpo", "--loss_type", "sigmoid", data_name="dpo"))


def test_zoo_robust_dpo_equals_robust(tiny_run, same_steps):
    flags = ("--rlhf_type", "dpo", "--label_smoothing", "0.1")
    same_steps(tiny_run("rlhf", *flags, "--loss_type", "zoo:robust_dpo", data_name="dpo"),
               tiny_run("rlhf", *flags, "--loss_type", "robust", data_name="dpo"))


@pytest.mark.parametrize("route", [("--rlhf_type", "simpo"), ("--rlhf_type", "cpo"), ("--rlhf_type", "dpo")])
def test_zoo_simpo_equals_rlhf_type_simpo(tiny_run, same_steps, route):
    """SimPO on the CPO trainer (simpo, cpo) and on the DPO trainer (no reference pass) equals ms-swift's simpo."""
    builtin = tiny_run("rlhf", "--rlhf_type", "simpo", "--cpo_alpha", "0", data_name="dpo")
    zoo = tiny_run("rlhf", *route, "--loss_type", "zoo:simpo", "--beta", "2", "--cpo_alpha", "0", data_name="dpo")
    same_steps(zoo, builtin, rel=5e-6)


def test_reference_free_loss_skips_the_reference(tiny_run, monkeypatch):
    """zoo:simpo under --rlhf_type dpo: no reference model is loaded and no reference forward runs."""
    from swift.rlhf_trainers.dpo_trainer import DPOTrainer

    calls = []
    original = DPOTrainer.concatenated_forward
    monkeypatch.setattr(DPOTrainer, "concatenated_forward",
                        lambda self, model, batch, is_ref_model=False: calls.append(is_ref_model)
                        or original(self, model, batch, is_ref_model))
    tiny_run("rlhf", "--rlhf_type", "dpo", "--loss_type", "zoo:simpo", "--beta", "2", data_name="dpo")
    assert calls and not any(calls)
    calls.clear()
    tiny_run("rlhf", "--rlhf_type", "dpo", "--loss_type", "zoo:dpo", data_name="dpo")
    assert calls.count(True) == calls.count(False) > 0


def test_zoo_sft_equals_dpo_sft(tiny_run, same_steps):
    """The chosen NLL under the DPO trainer: reference-free in the zoo (no reference pass), equal to ms-swift's."""
    same_steps(tiny_run("rlhf", "--rlhf_type", "dpo", "--loss_type", "zoo:sft", data_name="dpo"),
               tiny_run("rlhf", "--rlhf_type", "dpo", "--loss_type", "sft", data_name="dpo"))


def test_zoo_and_builtin_loss_types_mix(tiny_run, same_steps):
    """--loss_type zoo:dpo sigmoid --loss_weights 0.5 0.5 is plain DPO."""
    same_steps(tiny_run("rlhf", "--rlhf_type", "dpo", "--loss_type", "zoo:dpo", "sigmoid",
                        "--loss_weights", "0.5", "0.5", data_name="dpo"),
               tiny_run("rlhf", "--rlhf_type", "dpo", "--loss_type", "sigmoid", data_name="dpo"))


def test_zoo_kto_equals_kto(tiny_run, same_steps):
    same_steps(tiny_run("rlhf", "--rlhf_type", "kto", "--loss_type", "zoo:kto", data_name="kto"),
               tiny_run("rlhf", "--rlhf_type", "kto", "--loss_type", "kto", data_name="kto"))


def test_zoo_apo_zero_unpaired_equals_builtin(tiny_run, same_steps):
    same_steps(tiny_run("rlhf", "--rlhf_type", "kto", "--loss_type", "zoo:apo_zero_unpaired", data_name="kto"),
               tiny_run("rlhf", "--rlhf_type", "kto", "--loss_type", "apo_zero_unpaired", data_name="kto"))


def test_zoo_orpo_equals_orpo(tiny_run, same_steps):
    """Under --rlhf_type orpo the loss is the zoo's ORPO alone (TRL's NLL cancelled); with ms-swift's NLL
    convention (one token mean over the batch's chosen tokens) it is ms-swift's ORPO."""
    builtin = tiny_run("rlhf", "--rlhf_type", "orpo", data_name="dpo")
    zoo = tiny_run("rlhf", "--rlhf_type", "orpo", "--loss_type", "zoo:orpo", data_name="dpo",
                   env={"SWIFT_ZOO_LOSS_KWARGS": '{"nll_convention": "ms_swift"}'})
    same_steps(zoo, builtin, rel=5e-6)
    logged = [log for log in tiny_run.last_logs if "loss" in log]
    assert all("zoo/nll_chosen" in log for log in logged)
