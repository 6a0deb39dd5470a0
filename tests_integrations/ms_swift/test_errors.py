"""Wrong names, kwargs and routes fail while ms-swift parses arguments: before any model is loaded.

The arguments classes are built directly (their ``__post_init__`` is where ms-swift runs
``--external_plugins`` and ``TrainerFactory.get_training_args``), so nothing here loads a model.
"""

from __future__ import annotations

import pytest

from swift_zoo import ConfigError, UnknownLossError, UnknownOptimizerError


@pytest.fixture(scope="module")
def make_args(tiny_run):
    from swift.arguments import RLHFArguments, SftArguments

    from swift_zoo.integrations.ms_swift import external_plugin_path

    def make(command: str = "sft", **overrides):
        data = tiny_run.data["sft" if command == "sft" else "dpo"]
        kwargs = dict(model=str(tiny_run.model_dir), model_type="llama", template="chatml", check_model=False,
                      dataset=[str(data)], tuner_type="full", torch_dtype="float32", report_to=["none"],
                      output_dir=str(tiny_run.model_dir.parent / "args"), split_dataset_ratio=0.0,
                      external_plugins=[str(external_plugin_path())])
        kwargs.update(overrides)
        return (SftArguments if command == "sft" else RLHFArguments)(**kwargs)

    return make


def test_unknown_loss_suggests_the_zoo_name(make_args):
    with pytest.raises(UnknownLossError, match=r"unknown loss 'zoo:simpoo'; did you mean 'zoo:simpo'"):
        make_args(loss_type="zoo:simpoo")


def test_unknown_loss_under_rlhf(make_args):
    with pytest.raises(UnknownLossError, match=r"did you mean 'zoo:robust_dpo'"):
        make_args("rlhf", rlhf_type="dpo", loss_type=["zoo:robust_dpoo"])


def test_unknown_optimizer_suggests_the_zoo_name(make_args):
    with pytest.raises(UnknownOptimizerError, match=r"did you mean 'zoo:galore_adamw'"):
        make_args(loss_type="zoo:cross_entropy", optimizer="zoo:galore_adamww")


def test_pair_loss_under_sft_names_the_rlhf_type(make_args):
    with pytest.raises(ConfigError, match=r"--loss_type zoo:simpo is a reference-free paired preference loss .*"
                                          r"`swift rlhf --rlhf_type dpo\|cpo\|orpo --loss_type zoo:simpo`"):
        make_args(loss_type="zoo:simpo")


def test_reference_loss_under_cpo_names_dpo(make_args):
    with pytest.raises(ConfigError, match=r"`swift rlhf --rlhf_type dpo --loss_type zoo:dpo`, not with swift rlhf "
                                          r"--rlhf_type cpo"):
        make_args("rlhf", rlhf_type="cpo", loss_type=["zoo:dpo"])


def test_token_loss_under_rlhf_names_sft(make_args):
    with pytest.raises(ConfigError, match=r"run it with `swift sft or swift pt"):
        make_args("rlhf", rlhf_type="dpo", loss_type=["zoo:cross_entropy"])


def test_grpo_family_is_refused_with_the_reason(make_args):
    with pytest.raises(ConfigError, match=r"GRPOTrainer._compute_loss_and_metrics .* docs/ms_swift.md"):
        make_args("rlhf", rlhf_type="dpo", loss_type=["zoo:grpo"])


def test_kwarg_typo_in_the_environment_suggests(make_args, monkeypatch):
    monkeypatch.setenv("SWIFT_ZOO_LOSS_KWARGS", '{"gamma_beta_ration": 0.3}')
    with pytest.raises(ConfigError, match=r"unknown kwarg 'gamma_beta_ration'; did you mean 'gamma_beta_ratio'"):
        make_args("rlhf", rlhf_type="cpo", loss_type=["zoo:simpo"])


def test_environment_must_hold_a_json_object(make_args, monkeypatch):
    monkeypatch.setenv("SWIFT_ZOO_LOSS_KWARGS", "beta=0.1")
    with pytest.raises(ConfigError, match=r"SWIFT_ZOO_LOSS_KWARGS must be a JSON object"):
        make_args(loss_type="zoo:cross_entropy")


def test_optim_args_typo_suggests(make_args):
    with pytest.raises(ConfigError, match=r"unknown kwarg 'rnak'; did you mean 'rank'"):
        make_args(loss_type="zoo:cross_entropy", optimizer="zoo:galore_adamw", optim_args="rnak=16")


def test_optim_args_value_must_fit_the_annotation(make_args):
    with pytest.raises(ConfigError, match=r"'rank' expects an int, got 'sixteen'"):
        make_args(optimizer="zoo:galore_adamw", optim_args="rank=sixteen")


def test_enable_dft_loss_with_a_zoo_loss_is_refused(make_args):
    with pytest.raises(ConfigError, match=r"use --loss_type zoo:dft"):
        make_args(loss_type="zoo:cross_entropy", enable_dft_loss=True)


def test_bindings_and_canonical_names(make_args):
    """ms-swift's own arguments give the kwargs; spelling variants become the registered key."""
    args = make_args("rlhf", rlhf_type="simpo", loss_type=["zoo:Loss-Zoo:SimPO"], simpo_gamma=0.6, cpo_alpha=0.0)
    assert args.loss_type == "zoo:loss_zoo:simpo"
    stored = args.training_args.swift_zoo_loss_kwargs["zoo:loss_zoo:simpo"]
    assert stored["kwargs"] == {"beta": 2.0, "label_smoothing": 0.0, "gamma_beta_ratio": pytest.approx(0.3)}
    assert stored["sources"]["gamma_beta_ratio"] == "--simpo_gamma / --beta"


def test_environment_wins_over_a_binding(make_args, monkeypatch):
    monkeypatch.setenv("SWIFT_ZOO_LOSS_KWARGS", '{"zoo:dpo": {"beta": 0.5}}')
    args = make_args("rlhf", rlhf_type="dpo", loss_type=["zoo:dpo", "zoo:hinge"], loss_weights=[1.0, 1.0])
    plans = args.training_args.swift_zoo_loss_kwargs
    assert plans["zoo:dpo"]["kwargs"]["beta"] == 0.5 and plans["zoo:dpo"]["sources"]["beta"] == "SWIFT_ZOO_LOSS_KWARGS"
    assert plans["zoo:hinge"]["kwargs"]["beta"] == 0.1 and plans["zoo:hinge"]["sources"]["beta"] == "--beta"


def test_a_host_term_inside_the_loss_is_switched_off(make_args):
    """zoo:rpo takes --rpo_alpha as its alpha; ms-swift's own rpo_alpha term is then off (not counted twice)."""
    args = make_args("rlhf", rlhf_type="dpo", loss_type=["zoo:rpo"], rpo_alpha=0.5)
    stored = args.training_args.swift_zoo_loss_kwargs["zoo:rpo"]
    assert stored["kwargs"]["alpha"] == 0.5 and stored["host_terms_off"] == ["rpo_alpha"]


def test_every_registered_name_is_in_the_ms_swift_tables(make_args):
    make_args(loss_type="zoo:cross_entropy")
    from swift.loss import loss_map
    from swift.optimizers import optimizers_map

    import swift_zoo

    for entry in swift_zoo.list_losses():
        for spelling in (entry.name, *entry.spec.aliases, entry.qualified_name):
            assert f"zoo:{spelling}" in loss_map
    for entry in swift_zoo.list_optimizers():
        assert f"zoo:{entry.name}" in optimizers_map and f"zoo:{entry.qualified_name}" in optimizers_map
    assert {"cross_entropy", "infonce", "default", "galore"} <= set(loss_map) | set(optimizers_map)
    assert loss_map["cross_entropy"].__module__.startswith("swift.")  # ms-swift's names stay ms-swift's


def test_weighted_sum_of_one_family_runs_under_its_trainer(make_args, monkeypatch):
    monkeypatch.setenv("SWIFT_ZOO_LOSS_KWARGS",
                       '{"losses": [{"type": "dpo", "weight": 1.0}, {"type": "bco_pair", "weight": 0.2}]}')
    args = make_args("rlhf", rlhf_type="dpo", loss_type=["zoo:weighted_sum"])
    assert args.loss_type == "zoo:weighted_sum"


def test_weighted_sum_across_families_is_refused(make_args, monkeypatch):
    """TRL's MPO (a DPO term plus an SFT term) reads inputs no single ms-swift trainer supplies."""
    monkeypatch.setenv("SWIFT_ZOO_LOSS_KWARGS",
                       '{"losses": [{"type": "dpo", "weight": 1.0}, {"type": "cross_entropy", "weight": 0.2}]}')
    with pytest.raises(ConfigError, match=r"cannot run under swift rlhf --rlhf_type dpo: no ms-swift trainer"):
        make_args("rlhf", rlhf_type="dpo", loss_type=["zoo:weighted_sum"])
