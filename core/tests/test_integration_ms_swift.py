"""The ms-swift integration's pieces that need no ms-swift: names, families, kwargs, optim_args, hooks, CLI.

Training through ms-swift itself is tested in tests_integrations/ms_swift (``nox -s ms_swift``).
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from swift_zoo import ConfigError, UnknownLossError, UnknownOptimizerError
from swift_zoo._cli.main import main
from swift_zoo.integrations.ms_swift import _bindings, _families, _names, _optim_args, _plan, _post_import

REPO = Path(__file__).resolve().parents[2]

pytest.importorskip("swift_loss_zoo", reason="the families are read off swift-loss-zoo's losses")


def test_cli_prints_the_external_plugin_file():
    out = io.StringIO()
    assert main(["ms-swift-plugin"], out=out) == 0
    path = Path(out.getvalue().strip())
    assert path.name == "external_plugin.py" and path.is_absolute()
    assert 'install(source="--external_plugins")' in path.read_text()


def test_importing_the_integration_imports_neither_torch_nor_ms_swift():
    code = ("import sys, swift_zoo.integrations.ms_swift as m; m.install(); "
            "print(sorted(k for k in ('torch', 'swift', 'transformers') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_host_names_cover_every_spelling_under_the_prefix():
    names = _names.host_names("loss")
    assert names["zoo:dpo"] == "dpo" and names["zoo:cdpo"] == "cdpo"
    assert names["zoo:loss_zoo:dpo"] == "loss_zoo:dpo"
    assert all(key.startswith("zoo:") for key in names)
    assert _names.canonical(" zoo:Loss-Zoo:Robust-DPO ") == "zoo:loss_zoo:robust_dpo"
    assert _names.is_zoo_name("ZOO:dpo") and not _names.is_zoo_name("sigmoid") and not _names.is_zoo_name(None)


def test_unknown_names_are_spelled_as_ms_swift_takes_them():
    with pytest.raises(UnknownLossError, match=r"unknown loss 'zoo:simpoo'; did you mean 'zoo:simpo'"):
        _names.resolve("loss", "zoo:simpoo")
    with pytest.raises(UnknownOptimizerError, match=r"did you mean 'zoo:lion'"):
        _names.resolve("optimizer", "zoo:lino")


@pytest.mark.parametrize(("name", "family"), [
    ("cross_entropy", "token"), ("dft", "token"), ("dpo", "paired_reference"), ("ipo", "paired_reference"),
    ("simpo", "paired"), ("orpo", "paired"), ("kto", "unpaired"), ("bco", "unpaired"),
    ("cosine_similarity", "embedding_pair"), ("infonce", "infonce"), ("pointwise_reranker", "pointwise_reranker"),
    ("listwise_reranker", "listwise_reranker"), ("grpo", "policy"), ("ppo", "policy"), ("forward_kl", "distill"),
    ("bradley_terry", "reward"), ("fused_linear_cross_entropy", "other"),
])
def test_families_are_read_off_the_declared_inputs(name, family):
    import swift_zoo

    assert _families.classify(swift_zoo.get_loss(name).inputs).name == family


def test_route_errors_name_the_command_to_use():
    import swift_zoo

    inputs = swift_zoo.get_loss("simpo").inputs
    family = _families.classify(inputs)
    _families.check_route(family, "zoo:simpo", inputs, rlhf_type="simpo")  # simpo runs on the CPO trainer
    with pytest.raises(ConfigError, match=r"run it with `swift rlhf --rlhf_type dpo\|cpo\|orpo --loss_type "
                                          r"zoo:simpo`, not with swift sft/pt with task_type causal_lm"):
        _families.check_route(family, "zoo:simpo", inputs)
    grpo = swift_zoo.get_loss("grpo").inputs
    with pytest.raises(ConfigError, match=r"cannot run under swift rlhf --rlhf_type grpo: ms-swift 4.6 computes"):
        _families.check_route(_families.classify(grpo), "zoo:grpo", grpo, rlhf_type="grpo")


def test_environment_kwargs(monkeypatch):
    monkeypatch.delenv(_bindings.KWARGS_ENV, raising=False)
    assert _bindings.env_kwargs("zoo:dpo") == {}
    monkeypatch.setenv(_bindings.KWARGS_ENV, '{"beta": 0.3}')
    assert _bindings.env_kwargs("zoo:dpo") == {"beta": 0.3}
    monkeypatch.setenv(_bindings.KWARGS_ENV, '{"zoo:DPO": {"beta": 0.3}, "zoo:hinge": {}}')
    assert _bindings.env_kwargs("zoo:dpo") == {"beta": 0.3} and _bindings.env_kwargs("zoo:ipo") == {}
    monkeypatch.setenv(_bindings.KWARGS_ENV, "[1, 2]")
    with pytest.raises(ConfigError, match=r"must be a JSON object.*got list"):
        _bindings.env_kwargs("zoo:dpo")
    monkeypatch.setenv(_bindings.KWARGS_ENV, "{beta: 1}")
    with pytest.raises(ConfigError, match=r"not valid JSON"):
        _bindings.env_kwargs("zoo:dpo")


def test_bindings_apply_only_where_they_mean_the_same_thing():
    args = SimpleNamespace(beta=2.0, simpo_gamma=1.0, label_smoothing=0.0, rpo_alpha=0.5, cpo_alpha=1.0)
    by = {(b.kwarg, b.source): b for b in _bindings.BINDINGS}
    ratio = by["gamma_beta_ratio", "--simpo_gamma / --beta"]
    assert ratio.value_for(args, "simpo", "cpo") == 0.5
    assert ratio.value_for(args, "simpo", None) is None  # not under swift sft
    rpo = by["alpha", "--rpo_alpha"]
    assert rpo.value_for(args, "rpo", "dpo") == 0.5 and rpo.value_for(args, "alphapo", "dpo") is None
    smoothing = by["label_smoothing", "--label_smoothing"]
    assert smoothing.value_for(args, "exo_pair", "dpo") is None and smoothing.value_for(args, "dpo", "dpo") == 0.0


def test_plan_takes_arguments_then_the_environment(monkeypatch):
    monkeypatch.setenv(_bindings.KWARGS_ENV, '{"label_smoothing": 0.1}')
    args = SimpleNamespace(beta=2.0, simpo_gamma=1.0, label_smoothing=0.0, cpo_alpha=0.0)
    plan = _plan.plan_loss("zoo:SimPO", args, rlhf_type="simpo")
    assert plan.kwargs == {"beta": 2.0, "gamma_beta_ratio": 0.5, "label_smoothing": 0.1}
    assert plan.sources["label_smoothing"] == "SWIFT_ZOO_LOSS_KWARGS" and plan.reference_free
    assert "zoo:simpo -> loss_zoo:simpo SimPOLoss(beta=2.0 (--beta)" in plan.describe()
    monkeypatch.setenv(_bindings.KWARGS_ENV, '{"gama_beta_ratio": 1}')
    with pytest.raises(ConfigError, match=r"unknown kwarg 'gama_beta_ratio'; did you mean 'gamma_beta_ratio'"):
        _plan.plan_loss("zoo:simpo", args, rlhf_type="cpo")


def test_a_term_inside_the_loss_switches_the_trainer_term_off(monkeypatch):
    monkeypatch.delenv(_bindings.KWARGS_ENV, raising=False)
    plan = _plan.plan_loss("zoo:cpo", SimpleNamespace(beta=0.1, cpo_alpha=0.5, label_smoothing=0.0), rlhf_type="cpo")
    assert plan.kwargs["cpo_alpha"] == 0.5 and plan.host_terms_off == ("cpo_alpha",)


def test_optim_args_are_parsed_then_typed():
    assert _optim_args.parse_optim_args(" rank=16, betas=[0.9,0.99] ,scale=0.25") == {
        "rank": "16", "betas": [0.9, 0.99], "scale": "0.25"}
    assert _optim_args.parse_optim_args(None) == {}
    with pytest.raises(ConfigError, match=r"must look like 'key=value,key2=value2'"):
        _optim_args.parse_optim_args("rank")
    name, kwargs = _optim_args.optimizer_kwargs(
        "zoo:galore_adamw", SimpleNamespace(learning_rate=1e-3, weight_decay=0.1, optim_args="rank=16,update_proj_gap=2"))
    assert name == "optim_zoo:galore_adamw"
    assert kwargs == {"lr": 1e-3, "weight_decay": 0.1, "rank": 16, "update_proj_gap": 2}
    with pytest.raises(ConfigError, match=r"unknown kwarg 'rnak'; did you mean 'rank'"):
        _optim_args.optimizer_kwargs("zoo:galore_adamw", SimpleNamespace(optim_args="rnak=4"))


def test_post_import_callback_runs_after_the_module_body(tmp_path, monkeypatch):
    (tmp_path / "zoo_probe_module.py").write_text("VALUE = 41\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []
    _post_import.when_imported("zoo_probe_module", lambda module: seen.append(module.VALUE + 1))
    assert seen == []
    import zoo_probe_module  # noqa: F401

    assert seen == [42]
    _post_import.when_imported("zoo_probe_module", lambda module: seen.append(module.VALUE))
    assert seen == [42, 41]  # already imported: called at once
    del sys.modules["zoo_probe_module"]


def test_install_is_idempotent_and_lazy():
    code = textwrap.dedent("""
        import sys
        from swift_zoo.integrations.ms_swift import install
        from swift_zoo.integrations.ms_swift._post_import import _FINDER
        print(install(), install(), sorted(_FINDER.callbacks)[:2], 'swift' in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False", "['swift.loss.mapping',", "'swift.optimizers.mapping']", "False"]


def test_docs_tables_are_current():
    done = subprocess.run([sys.executable, str(REPO / "tools" / "gen_ms_swift_docs.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
