"""fused_linear_cross_entropy against plain float64 math on the full logits."""

from __future__ import annotations

import pytest
import torch

import swift_zoo
from swift_loss_zoo.lm import CrossEntropyLoss, FusedLinearCrossEntropyLoss
from swift_zoo import ConfigError


def _problem(seed, rows=40, width=6, vocab=17, ignored=0.3, bias=True, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(rows, width, generator=gen, dtype=torch.float64)
    weight = torch.randn(vocab, width, generator=gen, dtype=torch.float64)
    b = torch.randn(vocab, generator=gen, dtype=torch.float64) if bias else None
    labels = torch.randint(0, vocab, (rows,), generator=gen)
    labels[torch.rand(rows, generator=gen) < ignored] = -100
    leaves = [t.to(dtype).requires_grad_() for t in (hidden, weight) + ((b,) if bias else ())]
    return leaves, labels


def _reference(hidden, weight, bias, labels, eps=0.0, z_loss=0.0, num_items=None):
    """Explicit per-row loop on float64: (1-eps) nll + eps mean_v(-log p_v) + z lse^2, summed / N."""
    total = torch.zeros((), dtype=torch.float64)
    count = 0
    for i in range(hidden.shape[0]):
        if labels[i] == -100:
            continue
        z = weight.double() @ hidden[i].double()
        if bias is not None:
            z = z + bias.double()
        lse = torch.log(torch.exp(z - z.max()).sum()) + z.max()
        logp = z - lse
        total = total + (1 - eps) * (-logp[labels[i]]) + eps * (-logp).mean() + z_loss * lse**2
        count += 1
    return total / (num_items if num_items is not None else max(count, 1))


def _outputs(leaves):
    names = ("hidden_states", "lm_head_weight", "lm_head_bias")
    return dict(zip(names, leaves))


@pytest.mark.parametrize(("seed", "eps", "z_loss", "chunk"), [(0, 0.0, 0.0, 3), (1, 0.1, 0.0, 7), (2, 0.0, 1e-2, 5),
                                                               (3, 0.2, 1e-3, 1000)])
def test_matches_float64_reference_loss_and_grads(seed, eps, z_loss, chunk):
    leaves, labels = _problem(seed)
    loss = FusedLinearCrossEntropyLoss(label_smoothing=eps, z_loss=z_loss, chunk_size=chunk)
    value = loss(_outputs(leaves), labels)
    grads = torch.autograd.grad(value, leaves)
    ref_leaves = [t.detach().clone().requires_grad_() for t in leaves]
    ref = _reference(*ref_leaves, labels, eps, z_loss)
    ref_grads = torch.autograd.grad(ref, ref_leaves)
    torch.testing.assert_close(value, ref, rtol=1e-10, atol=1e-12)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_matches_cross_entropy_on_materialised_logits_float32():
    leaves, labels = _problem(4, rows=300, width=16, vocab=50, dtype=torch.float32)
    hidden, weight, bias = leaves
    flce = FusedLinearCrossEntropyLoss(label_smoothing=0.1, z_loss=1e-4, chunk_size=64)
    value = flce(_outputs(leaves), labels)
    grads = torch.autograd.grad(value, leaves)
    ref_leaves = [t.detach().clone().requires_grad_() for t in leaves]
    logits = (ref_leaves[0] @ ref_leaves[1].T + ref_leaves[2]).unsqueeze(0)
    # cross_entropy shifts; undo it by placing the labels one step later.
    shifted = torch.cat([torch.full((1,), -100), labels]).unsqueeze(0)
    ce = CrossEntropyLoss(label_smoothing=0.1, z_loss=1e-4)
    ref = ce({"logits": torch.cat([logits, logits[:, :1]], dim=1)}, shifted)
    ref_grads = torch.autograd.grad(ref, ref_leaves)
    torch.testing.assert_close(value, ref, rtol=1e-5, atol=1e-6)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6 * want.abs().max().item())
    assert flce.metrics["token_accuracy"] == ce.metrics["token_accuracy"]


def test_chunk_size_does_not_change_result():
    leaves, labels = _problem(5, rows=33)
    results = []
    for chunk in (1, 4, 33, None):
        value = FusedLinearCrossEntropyLoss(chunk_size=chunk)(_outputs(leaves), labels)
        results.append((value, *torch.autograd.grad(value, leaves)))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_num_items_in_batch_micro_batches_sum_to_full_batch():
    leaves, labels = _problem(6, rows=24)
    loss = FusedLinearCrossEntropyLoss(chunk_size=5)
    full = loss(_outputs(leaves), labels)
    full_grads = torch.autograd.grad(full, leaves)
    total_units = int(loss.count_units(_outputs(leaves), labels))
    hidden, weight, bias = leaves
    parts = [loss({"hidden_states": hidden[s], "lm_head_weight": weight, "lm_head_bias": bias}, labels[s],
                  num_items_in_batch=total_units) for s in (slice(0, 10), slice(10, 24))]
    summed = parts[0] + parts[1]
    torch.testing.assert_close(summed, full)
    for got, want in zip(torch.autograd.grad(summed, leaves), full_grads):
        torch.testing.assert_close(got, want)
    ref = _reference(*[t.detach() for t in leaves], labels, num_items=total_units)
    torch.testing.assert_close(full, ref)


def test_ignored_rows_have_no_influence_and_zero_gradient():
    leaves, labels = _problem(7, rows=20)
    hidden = leaves[0]
    value = FusedLinearCrossEntropyLoss()(_outputs(leaves), labels)
    grad_h = torch.autograd.grad(value, hidden)[0]
    ignored = labels == -100
    assert ignored.any() and (~ignored).any()
    assert torch.all(grad_h[ignored] == 0)
    assert torch.all(grad_h[~ignored].abs().sum(-1) > 0)
    moved = hidden.detach().clone()
    moved[ignored] = 1e6
    again = FusedLinearCrossEntropyLoss()(_outputs([moved, *leaves[1:]]), labels)
    torch.testing.assert_close(again, value.detach())


def test_all_ignored_batch_and_all_ignored_chunk():
    leaves, labels = _problem(8, rows=12)
    labels[:] = -100
    value = FusedLinearCrossEntropyLoss()(_outputs(leaves), labels)
    assert value.item() == 0.0
    grads = torch.autograd.grad(value, leaves)
    assert all(torch.all(g == 0) for g in grads)
    # rows 0..5 all ignored: with chunk_size 3 and rows order, whole chunks of kept rows come later
    leaves, labels = _problem(9, rows=12, ignored=0.0)
    labels[:6] = -100
    value = FusedLinearCrossEntropyLoss(chunk_size=3)(_outputs(leaves), labels)
    ref = _reference(*[t.detach() for t in leaves], labels)
    torch.testing.assert_close(value, ref)


def test_non_uniform_incoming_gradient_takes_exact_recompute_path():
    from swift_loss_zoo.lm._fused_linear_ce_function import FusedLinearCrossEntropyFunction

    leaves, labels = _problem(10, rows=15)
    hidden, weight, bias = leaves
    weights = torch.linspace(0.5, 2.0, 15, dtype=torch.float64)
    losses, _ = FusedLinearCrossEntropyFunction.apply(hidden, weight, bias, labels, -100, 0.1, 1e-3, 4,
                                                      (True, True, True))
    grads = torch.autograd.grad((losses * weights).sum(), leaves)
    ref_leaves = [t.detach().clone().requires_grad_() for t in leaves]
    z = ref_leaves[0] @ ref_leaves[1].T + ref_leaves[2]
    logp = torch.log_softmax(z, -1)
    keep = labels != -100
    nll = -logp.gather(1, labels.clamp(min=0).unsqueeze(1)).squeeze(1)
    per_row = 0.9 * nll + 0.1 * (-logp).mean(-1) + 1e-3 * torch.logsumexp(z, -1) ** 2
    ref = (torch.where(keep, per_row, 0.0) * weights).sum()
    for got, want in zip(grads, torch.autograd.grad(ref, ref_leaves)):
        torch.testing.assert_close(got, want)


def test_second_backward_with_retain_graph_is_still_exact():
    leaves, labels = _problem(11, rows=10)
    value = FusedLinearCrossEntropyLoss(chunk_size=4)(_outputs(leaves), labels)
    first = torch.autograd.grad(value, leaves, retain_graph=True)
    second = torch.autograd.grad(value, leaves)
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b)


def test_gradcheck_float64_tiny():
    leaves, labels = _problem(12, rows=7, width=3, vocab=5)
    loss = FusedLinearCrossEntropyLoss(label_smoothing=0.1, z_loss=1e-2, chunk_size=2)
    assert torch.autograd.gradcheck(lambda h, w, b: loss(_outputs([h, w, b]), labels), leaves, fast_mode=True)


def test_bf16_inputs_finite_and_close_to_float32():
    leaves, labels = _problem(13, rows=64, width=16, vocab=40, dtype=torch.bfloat16, bias=False)
    value = FusedLinearCrossEntropyLoss(chunk_size=16)(_outputs(leaves), labels)
    grads = torch.autograd.grad(value, leaves)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert all(g.dtype == torch.bfloat16 and torch.isfinite(g).all() for g in grads)
    ref = _reference(*[t.detach() for t in leaves], None, labels)
    torch.testing.assert_close(value.double(), ref, rtol=1e-5, atol=1e-5)  # same bf16 values, fp32 math
    huge = [(t.detach() * 1e4).requires_grad_() for t in leaves]
    value = FusedLinearCrossEntropyLoss()(_outputs(huge), labels)
    assert torch.isfinite(value) and all(torch.isfinite(g).all() for g in torch.autograd.grad(value, huge))


def test_frozen_head_and_no_grad_mode():
    leaves, labels = _problem(14, rows=9, bias=False)
    hidden, weight = leaves
    frozen = weight.detach()
    value = FusedLinearCrossEntropyLoss()({"hidden_states": hidden, "lm_head_weight": frozen}, labels)
    (grad_h,) = torch.autograd.grad(value, hidden)
    ref_h = hidden.detach().clone().requires_grad_()
    (want,) = torch.autograd.grad(_reference(ref_h, frozen, None, labels), ref_h)
    torch.testing.assert_close(grad_h, want)
    with torch.no_grad():
        again = FusedLinearCrossEntropyLoss()({"hidden_states": hidden, "lm_head_weight": weight}, labels)
    torch.testing.assert_close(again, value.detach())


def test_registered_and_declares_unbatched_weight():
    loss = swift_zoo.build_loss("flce", label_smoothing=0.1)
    assert isinstance(loss, FusedLinearCrossEntropyLoss)
    shapes = {spec.key: spec.shape for spec in loss.inputs}
    assert loss.batch_symbol == "N" and shapes["hidden_states"][0] == "N" and shapes["lm_head_weight"][0] == "V"
    example = FusedLinearCrossEntropyLoss.example_inputs(generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss(example.model_outputs, example.labels))


@pytest.mark.parametrize(("kwargs", "key", "found"), [({"label_smoothing": 1.0}, "label_smoothing", "1.0"),
                                                      ({"z_loss": -1.0}, "z_loss", "-1.0"),
                                                      ({"z_loss": float("nan")}, "z_loss", "nan"),
                                                      ({"chunk_size": 0}, "chunk_size", "0")])
def test_bad_hyperparameters_name_expected_and_found(kwargs, key, found):
    with pytest.raises(ConfigError) as info:
        FusedLinearCrossEntropyLoss(**kwargs)
    text = str(info.value)
    assert "fused_linear_cross_entropy" in text and key in text and found in text


def test_int32_labels_accepted():
    leaves, labels = _problem(15, rows=10)
    value = FusedLinearCrossEntropyLoss()(_outputs(leaves), labels.to(torch.int32))
    torch.testing.assert_close(value, _reference(*[t.detach() for t in leaves], labels))


def test_never_builds_or_saves_full_logits():
    leaves, labels = _problem(16, rows=64, width=4, vocab=300, dtype=torch.float32)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        value = FusedLinearCrossEntropyLoss(chunk_size=8)(_outputs(leaves), labels)
    assert all(t.numel() < 64 * 300 for t in saved), [tuple(t.shape) for t in saved]
    assert torch.isfinite(value)


@pytest.mark.parametrize("inplace_softmax", [True, False], ids=["row_softmax", "separate_ops"])
@pytest.mark.parametrize(("eps", "z_loss", "dtype"), [(0.0, 0.0, torch.float64), (0.1, 1e-2, torch.float64),
                                                      (0.0, 0.0, torch.float32), (0.2, 1e-3, torch.float32)])
def test_both_softmax_paths_match_float64_per_row_loss_and_dlogits(inplace_softmax, eps, z_loss, dtype):
    """Each way a chunk computes its softmax (ATen's row kernel over the logits on CPU, separate ops
    elsewhere), into a reused buffer: per-row loss and d loss / d z against float64 autograd."""
    from swift_loss_zoo.lm._fused_linear_ce_function import _chunk_loss_and_dlogits

    gen = torch.Generator().manual_seed(11)
    x = torch.randn(9, 6, generator=gen, dtype=torch.float64) * 3
    w = torch.randn(17, 6, generator=gen, dtype=torch.float64)
    b = torch.randn(17, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 17, (9,), generator=gen)
    z = (x @ w.T + b).requires_grad_()
    lse = torch.logsumexp(z, dim=1)
    logp = z - lse.unsqueeze(1)
    want = (1 - eps) * -logp.gather(1, y.unsqueeze(1)).squeeze(1) + eps * -logp.mean(dim=1) + z_loss * lse**2
    (want_dz,) = torch.autograd.grad(want.sum(), z)
    buffer = torch.full((12, 17), float("nan"), dtype=dtype)  # larger than the chunk, stale contents
    loss, correct, dz = _chunk_loss_and_dlogits(x.to(dtype), y, w.to(dtype), b.to(dtype), eps, z_loss, True,
                                                out=buffer[:9], inplace_softmax=inplace_softmax)
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(loss.double(), want.detach(), **tol)
    torch.testing.assert_close(dz.double(), want_dz, **tol)
    assert dz.data_ptr() == buffer.data_ptr()
    assert torch.equal(correct, z.argmax(dim=1) == y)
