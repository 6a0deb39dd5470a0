"""Every registered optimizer under FSDP2 leaves one process's parameters, and resumes at another world size.

One spawn of four gloo processes (``_fsdp_cases.run``) trains :class:`_tiny_lm.BlockLM` with every optimizer on a
two-rank and a four-rank mesh (``fully_shard`` per block and at the root; rows split unevenly, a 3-row matrix
leaves a rank empty on four), saving a ``torch.distributed.checkpoint`` after 2 of 4 steps, and resumes each
checkpoint at the other size. This process trains the same on one process (no ``torch.distributed``) and
resumes the two-rank checkpoint there too, through ``dcp_to_torch_save`` and ``torch.load(weights_only=True)``.

What each optimizer's spec declares for FSDP2 decides what is asserted: ``supported`` -- bitwise-equal
parameters for element-wise methods (``swift_zoo.optim.bitwise_under_fsdp2``: ``cls.elementwise`` and no
``cls.whole_tensor_sums``), within :data:`RTOL` normwise per parameter for whole-matrix ones and for element-wise
ones whose whole-tensor sums are all-reduced (added in another order than one process adds them);
``refused`` -- the run raises ``UnsupportedShardingError``; ``untested`` -- skipped, saying so. The cases are
:func:`_fsdp_cases.fsdp_cases`: every registered optimizer with its example kwargs (a few overridden so the
sharded code path has work on this model) and the cautious variants of ``adamw`` and ``lion``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _fsdp_cases import (
    EXCHANGE_ROWS,
    SAVE_AT,
    STEPS,
    bitwise,
    case_dir,
    fsdp_cases,
    is_elementwise,
    resume_single_process,
    single_process,
    without_weight_decay,
)
from _launch import run_on_ranks

import swift_zoo

WORLD_SIZE = 4
RTOL = 1e-6  # whole-matrix methods: max over parameters of ||p - p_ref|| / ||p_ref||
CASES = fsdp_cases()
IDS = [case.case_id for case in CASES]


def _entry(case_id: str):
    case = next(c for c in CASES if c.case_id == case_id)
    return case, next(e for e in swift_zoo.list_optimizers() if e.qualified_name == case.name)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fsdp-checkpoints")


@pytest.fixture(scope="module")
def ranks(require_gloo, checkpoints):
    return run_on_ranks("_fsdp_cases:run", {"dir": str(checkpoints)}, world_size=WORLD_SIZE, timeout=900,
                        collective_timeout_s=120)[0]


@pytest.fixture(scope="module")
def references():
    return {}


def _reference(references: dict, case_id: str) -> dict:
    if case_id not in references:
        references[case_id] = single_process(_entry(case_id)[0])
    return references[case_id]


def _result(ranks: dict, key: tuple) -> dict:
    result = ranks.get(key)
    if result is None:
        pytest.fail(f"no result for {key} (rank 0 did not run it)")
    return result


def _expect(case_id: str, result: dict, reference: dict, what: str) -> None:
    """Assert ``result`` holds what the spec's FSDP2 record promises against ``reference``."""
    case, entry = _entry(case_id)
    support = entry.spec.distributed.fsdp2
    if support.status == "untested":
        pytest.skip(f"{case.name} declares FSDP2 'untested' ({support.how}); nothing is promised")
    if support.refused:
        assert "UnsupportedShardingError" in result.get("error", ""), f"{case_id}: FSDP2 refused, but {what} ran"
        return
    if "error" in result:
        pytest.fail(f"{case_id} {what} raised:\n{result['error']}")
    for key in ("params", "eval_params"):
        if key not in reference:
            continue
        got, want = result[key], reference[key]
        if bitwise(case):
            differing = sorted(n for n in want if not torch.equal(got[n], want[n]))
            assert not differing, f"{case_id} {what}: element-wise, expected bitwise-equal {key}; differ: {differing}"
        else:
            worst = max((float((got[n] - want[n]).norm() / want[n].norm()), n) for n in want)
            assert worst[0] <= RTOL, f"{case_id} {what}: {key} {worst[1]} differs by {worst[0]:.3g} normwise (> {RTOL})"


@pytest.mark.parametrize("world", [2, WORLD_SIZE])
@pytest.mark.parametrize("case_id", IDS)
def test_fsdp2_equals_one_process(case_id, world, ranks, references):
    result = _result(ranks, ("run", world, case_id))
    reference = _reference(references, case_id)
    if "grads" in result:  # the wrapper's part: FSDP2 averages the ranks' identical first gradients exactly
        got, want = result["grads"][0], reference["grads"][0]
        differing = sorted(n for n in want if not torch.equal(got[n], want[n]))
        assert not differing, f"{case_id}: FSDP2's first gradients differ from one process: {differing}"
    _expect(case_id, result, reference, f"on {world} ranks")


@pytest.mark.parametrize("transition", ["2->4", "4->2"])
@pytest.mark.parametrize("case_id", IDS)
def test_resume_at_another_world_size(case_id, transition, ranks, references):
    """Saved after 2 steps at one size, loaded into a fresh model and optimizer at the other, 2 more steps:
    the uninterrupted single-process run's parameters (projector bases, step counters, schedule-free mode and
    averaged weights included)."""
    _expect(case_id, _result(ranks, ("resume", transition, case_id)), _reference(references, case_id),
            f"resumed {transition}")


@pytest.mark.parametrize("case_id", IDS)
def test_resume_on_one_process(case_id, ranks, references, checkpoints, tmp_path):
    """2 -> 1: ``dcp_to_torch_save``, ``torch.load(weights_only=True)``, ``set_optimizer_state_dict`` without a
    process group, 2 more steps."""
    case, entry = _entry(case_id)
    if not entry.spec.distributed.fsdp2.supported:
        pytest.skip(f"{case.name} does not declare FSDP2 support")
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    assert "error" not in _result(ranks, ("run", 2, case_id))
    converted = tmp_path / "checkpoint.pt"
    dcp_to_torch_save(case_dir(checkpoints, case, 2), converted)
    _expect(case_id, resume_single_process(case, converted), _reference(references, case_id), "resumed 2->1")


def test_the_runs_are_long_enough_to_show_a_difference(references):
    """A resume that lost its state would differ: the reference moves every parameter after the save point."""
    case = next(c for c in CASES if c.name.endswith(":galore_adamw"))
    first = single_process(case, steps=SAVE_AT)["params"]
    final = _reference(references, case.case_id)["params"]
    assert all(not torch.equal(first[n], final[n]) for n in final), "parameters did not move after the save point"
    assert STEPS > SAVE_AT


@pytest.mark.parametrize("case_id", [c.case_id for c in CASES if is_elementwise(c)])
def test_element_wise_methods_under_fsdp1_flat_parameters(case_id, ranks):
    """FSDP1 with ``use_orig_params=False`` on four ranks: the optimizer steps 1-D shards of flat parameters,
    with ``weight_decay=0`` (a flat parameter mixes norms and matrices: role-based decay exclusion cannot apply).
    Bitwise, except torch's fused CPU AdamW, whose scalar tail (the last ``numel % vector width`` elements of
    each tensor it is given) rounds differently: within 1e-6 (``fused=False`` is bitwise: test_zero_partitions).
    What the record says decides: refused (whole-tensor sums cut by flat shards) -- the run raises; a record whose
    note says it was "tested equal to one process" -- held to it; any other -- nothing claimed, skipped."""
    result = _result(ranks, ("fsdp1", case_id))
    case, entry = _entry(case_id)
    built = swift_zoo.build_optimizer(case.name, torch.nn.Linear(2, 2), **case.kwargs)
    support = getattr(built, "distributed", entry.spec.distributed).fsdp1_flat  # an option may narrow it
    if support.refused:
        assert "UnsupportedShardingError" in result.get("error", ""), f"{case_id}: FSDP1 refused, but it ran"
        return
    if "tested equal to one process" not in support.how:
        pytest.skip(f"{case.name} claims nothing under FSDP1 flat parameters ({support.status}: {support.how})")
    if "error" in result:
        pytest.fail(f"{case_id} under FSDP1 raised:\n{result['error']}")
    reference = single_process(without_weight_decay(_entry(case_id)[0]))
    key = "eval_params" if "eval_params" in result else "params"
    got, want = result[key], reference[key]
    if case_id.endswith((":adamw", ":lora_plus")):
        worst = max(float((got[n] - want[n]).norm() / want[n].norm()) for n in want)
        assert worst <= RTOL, f"{case_id} under FSDP1 differs by {worst:.3g} normwise"
        return
    differing = sorted(n for n in want if not torch.equal(got[n], want[n]))
    assert not differing, f"{case_id} under FSDP1 flat parameters differs from one process: {differing}"


def test_the_overrides_give_the_sharded_paths_work():
    """The kwargs :data:`_fsdp_cases.OVERRIDES` sets make the comparisons above exercise what sharding changes:
    ``adamw_8bit`` keeps 8-bit states for matrices whose quantisation blocks a 4-rank shard boundary cuts, and
    ``muon_clip`` clips some heads and leaves others within 4 steps."""
    from _fsdp_cases import build_optimizer, loss_at
    from _tiny_lm import build_block_lm

    from swift_zoo.optim import row_range

    case = next(c for c in CASES if c.case_id.endswith(":adamw_8bit"))
    model = build_block_lm()
    optimizer = build_optimizer(case, model)
    loss_at(model, 0).backward()
    optimizer.step()
    weight = model.blocks[0].q_proj.weight
    assert "exp_avg_codes" in optimizer.state[weight], "q_proj's moments are not quantised"
    starts = [row_range(weight.shape[0], WORLD_SIZE, rank)[0] * weight.shape[1] for rank in range(WORLD_SIZE)]
    assert any(start % case.kwargs["block_size"] for start in starts), "no shard boundary cuts a block"

    case = next(c for c in CASES if c.case_id.endswith(":muon_clip"))
    model = build_block_lm()
    optimizer = build_optimizer(case, model)
    seen = []
    for step in range(STEPS):
        optimizer.zero_grad(set_to_none=True)
        loss_at(model, step).backward()
        optimizer.step()
        seen += [float(x) for logits in optimizer.last_max_logits.values() for x in logits]
    threshold = case.kwargs["qk_clip_threshold"]
    assert min(seen) < threshold < max(seen), f"QK-clip: logits {seen} all on one side of {threshold}"


def test_every_registered_optimizer_has_a_case():
    assert {e.qualified_name for e in swift_zoo.list_optimizers()} <= {c.name for c in CASES}


# ----------------------------------------------------------------------------- exchange helpers
@pytest.mark.parametrize("world", [2, WORLD_SIZE])
def test_exchange_is_exact_on_uneven_and_empty_shards(world, ranks):
    checks = _result(ranks, ("exchange", world))
    assert "error" not in checks, checks.get("error")
    assert checks["gather_exact"], "an owner did not get the exact whole tensor (or a non-owner got one)"
    assert checks["scatter_rows_exact"], "a rank did not get exactly its rows back"
    assert checks["scatter_whole_exact"], "rows=False did not give every rank the whole tensor"
    assert checks["sums_close"], "sum_over_shards differs from the whole tensor's sums"


@pytest.mark.parametrize("world", [2, WORLD_SIZE])
def test_owners_are_balanced_and_bytes_counted_exactly(world, ranks):
    from swift_zoo.optim import row_range

    checks = _result(ranks, ("exchange", world))
    shapes = [(rows, 5) for rows in EXCHANGE_ROWS] + [(6, 2, 3)]
    numels = [rows * rest for rows, *more in shapes for rest in [int(torch.tensor(more).prod())]]
    loads = next(iter(checks["loads"].values()))
    assert max(loads) - min(loads) <= max(numels), f"owner loads {loads} not balanced for numels {numels}"
    sent = 0
    for (rows, *more), owner in zip(shapes, checks["owners"]):
        start, stop = row_range(rows, world, 0)
        if owner != 0:  # rank 0 sends its rows (bf16: 2 bytes) to every owner but itself
            sent += (stop - start) * int(torch.tensor(more).prod()) * 2
    assert checks["gather_bytes"] == sent
    assert checks["shard_sum_exact"], "ShardSums.sum differs from the whole tensor's sum"
    assert checks["shard_sum_bytes"] == 2 * (world - 1) / world * 4, "a float32 all-reduce (ring) not counted"


# ----------------------------------------------------------------------------- refusals
REFUSED = {
    "fsdp1/muon": ("'muon'", "FSDP1 flat parameters"),
    "fsdp1/galore_adamw": ("'galore_adamw'", "FSDP1 flat parameters"),
    "shard1/muon": ("'muon'", "Shard(dim=1)"),
    "shard1/soap": ("'soap'", "Shard(dim=1)"),
    "mesh2d/muon": ("'muon'", "2-D device mesh"),
}


@pytest.mark.parametrize("attempt", sorted(REFUSED))
def test_whole_matrix_methods_refuse_layouts_they_cannot_compute(attempt, ranks):
    found = _result(ranks, ("refusals",))
    assert "error" not in found, found.get("error")
    message = found[attempt]
    assert message.startswith("UnsupportedShardingError"), f"{attempt}: expected a refusal, got {message!r}"
    for needle in REFUSED[attempt]:
        assert needle in message, f"{attempt}: {needle!r} not in {message!r}"
    assert "use" in message.lower(), f"{attempt}: the message does not say what to do instead: {message!r}"


@pytest.mark.parametrize("attempt", ["shard1/lion", "mesh2d/lion"])
def test_element_wise_methods_step_on_any_layout(attempt, ranks):
    assert _result(ranks, ("refusals",))[attempt] == "ok"
