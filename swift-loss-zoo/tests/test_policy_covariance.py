"""Clip-Cov and KL-Cov: the covariance selection written with Python loops, then the loss against the reference."""

from __future__ import annotations

import pytest
import torch
from policy_reference import make_batch, reference_run, run

from swift_loss_zoo.policy import ClipCovLoss, KLCovLoss


def assert_close(actual, expected, *, rtol=1e-10, atol=1e-12):
    assert torch.allclose(actual, expected, rtol=rtol, atol=atol), (actual, expected)


def covariances(batch):
    """{(i, t): (A - mean A)(logp - mean logp)} over counted tokens, means over counted tokens."""
    mask, lp, adv = batch["completion_mask"], batch["per_token_logps"], batch["advantages"]
    tokens = [(i, t) for i in range(mask.shape[0]) for t in range(mask.shape[1]) if mask[i, t]]

    def a(i, t):
        return float(adv[i]) if adv.dim() == 1 else float(adv[i, t])

    mean_a = sum(a(i, t) for i, t in tokens) / len(tokens)
    mean_lp = sum(float(lp[i, t]) for i, t in tokens) / len(tokens)
    return {(i, t): (a(i, t) - mean_a) * (float(lp[i, t]) - mean_lp) for i, t in tokens}


def kl_cov_selection(batch, ratio):
    cov = covariances(batch)
    count = max(1, int(len(cov) * ratio))
    return set(sorted(cov, key=cov.get, reverse=True)[:count])


def clip_cov_selection(batch, ratio, lb, ub, eps_low=0.2, eps_high=0.2):
    cov = covariances(batch)
    lp, old, adv = batch["per_token_logps"], batch["old_per_token_logps"], batch["advantages"]
    candidates = []
    for (i, t), c in cov.items():
        a = float(adv[i]) if adv.dim() == 1 else float(adv[i, t])
        r = float(torch.exp(lp[i, t] - old[i, t]))
        clip_active = -a * min(max(r, 1 - eps_low), 1 + eps_high) > -a * r
        if lb < c < ub and not clip_active:
            candidates.append((i, t))
    count = max(1, int(len(cov) * ratio))
    return set(sorted(candidates, key=cov.get, reverse=True)[:count]), candidates


@pytest.mark.parametrize("token_advantages", [False, True])
@pytest.mark.parametrize(("ratio", "coef"), [(0.0002, 1.0), (0.1, 0.5), (0.4, 2.0)])
def test_kl_cov_matches_reference(token_advantages, ratio, coef):
    batch = make_batch(20, 5, 8, token_advantages=token_advantages)
    chosen = kl_cov_selection(batch, ratio)
    loss = KLCovLoss(kl_cov_ratio=ratio, kl_cov_coef=coef, beta=0.05)
    value, grads = run(loss, batch)
    expected, expected_grads = reference_run("kl_cov", batch, chosen=chosen, kl_cov_coef=coef, beta=0.05,
                                             mode="token-mean")
    assert_close(value, expected)
    assert_close(grads["per_token_logps"], expected_grads["per_token_logps"])
    assert loss.metrics["kl_cov_fraction"].item() == pytest.approx(len(chosen) / int(batch["completion_mask"].sum()))


@pytest.mark.parametrize("token_advantages", [False, True])
@pytest.mark.parametrize(("ratio", "lb", "ub"), [(0.0002, 1.0, 5.0), (0.1, 0.0, 5.0), (0.5, -0.2, 0.3)])
def test_clip_cov_matches_reference(token_advantages, ratio, lb, ub):
    batch = make_batch(21, 5, 8, token_advantages=token_advantages)
    chosen, candidates = clip_cov_selection(batch, ratio, lb, ub)
    loss = ClipCovLoss(clip_cov_ratio=ratio, clip_cov_lb=lb, clip_cov_ub=ub, beta=0.05)
    value, grads = run(loss, batch)
    expected, expected_grads = reference_run("clip_cov", batch, chosen=chosen, beta=0.05, mode="token-mean")
    assert_close(value, expected)
    assert_close(grads["per_token_logps"], expected_grads["per_token_logps"])
    if lb < 1.0:  # the wide bands have candidates, so the comparison exercises the selection
        assert chosen and len(candidates) >= len(chosen)


def test_clip_cov_takes_the_largest_covariances_when_there_are_more_candidates():
    batch = make_batch(22, 6, 8)
    chosen, candidates = clip_cov_selection(batch, 0.05, -10.0, 10.0)
    assert len(candidates) > len(chosen) > 0
    cov = covariances(batch)
    assert min(cov[k] for k in chosen) >= max(cov[k] for k in candidates if k not in chosen)


def test_covariance_losses_are_deterministic_and_declare_batch_dependence():
    batch = make_batch(23, 5, 8)
    for loss in (ClipCovLoss(clip_cov_ratio=0.2, clip_cov_lb=-1.0), KLCovLoss(kl_cov_ratio=0.2)):
        first, second = run(loss, batch), run(loss, batch)
        assert torch.equal(first[0], second[0])
        assert torch.equal(first[1]["per_token_logps"], second[1]["per_token_logps"])
        assert "micro-batch" in type(loss).batch_dependent
