"""An independent float64 reference of the policy losses, written token by token with Python control flow.

It follows the published formulas (and, for the shared options, TRL's and verl's documented semantics)
without any code of the zoo: loops over rows and counted tokens, scalar autograd tensors, so values and
gradients can be compared with the vectorised losses.
"""

from __future__ import annotations

import math

import torch

F64 = torch.float64


def _scalar(value: float) -> torch.Tensor:
    return torch.tensor(value, dtype=F64)


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default, ``torch.quantile``'s)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def kl_value(x: torch.Tensor, estimator: str) -> torch.Tensor:
    """KL estimate from x = log pi_ref - log pi_theta."""
    if estimator == "k1":
        return -x
    if estimator == "k2":
        return 0.5 * x * x
    if estimator == "k3":
        return torch.exp(x) - 1 - x
    if estimator == "abs":
        return torch.abs(x)
    base = kl_value(x, estimator[:-1]).detach()
    carrier = 0.5 * x * x
    return carrier - carrier.detach() + base


def clipped_term(r: torch.Tensor, a: float, eps_low, eps_high, delta=None, dual_clip=None) -> torch.Tensor:
    rv = r.item()
    low = -math.inf if eps_low is None else 1 - eps_low
    high = math.inf if eps_high is None else 1 + eps_high
    clipped = r if low <= rv <= high else _scalar(min(max(rv, low), high))
    capped = r if delta is None or rv <= delta else _scalar(delta)
    value = -min(capped * a, clipped * a, key=lambda v: v.item())
    if dual_clip is not None and a < 0 and value.item() > -a * dual_clip:
        value = _scalar(-a * dual_clip)
    return value


def rollout_weight(old, rollout, i, tokens, t, mode, low, high) -> float:
    if mode.startswith("sequence"):
        w = math.exp(min(max(sum(old[i, s].item() - rollout[i, s].item() for s in tokens), -20), 20))
    else:
        w = math.exp(old[i, t].item() - rollout[i, t].item())
    if mode.endswith("truncate"):
        if low is not None:
            w = max(w, low)
        if high is not None:
            w = min(w, high)
        return w
    inside = (low is None or w >= low) and (high is None or w <= high)
    return w if inside else 0.0


def reference_loss(kind, lp, old, adv, mask, *, ref=None, rollout=None, entropy=None, eps_low=0.2, eps_high=0.2,
                   delta=None, dual_clip=None, beta=0.0, kl_estimator="k3", bias_correction=False,
                   mode="seq-mean-token-mean", scale=None, rollout_mode=None, rollout_min=None, rollout_max=2.0,
                   off_policy=None, entropy_coef=0.0, top_entropy=1.0, tau_pos=1.0, tau_neg=1.05,
                   vespo=(2.0, 3.0, 3.0, 2.0), chosen=None, kl_cov_coef=1.0, gspo_level="sequence"):
    """The loss of ``kind`` on one batch. ``old`` None = on-policy; ``chosen`` = the (i, t) set of clip_cov /
    kl_cov (the covariance selection is tested separately)."""
    if old is None:
        old = lp.detach()
    batch, length = lp.shape
    rows = [[t for t in range(length) if mask[i, t]] for i in range(batch)]

    def a_of(i, t):
        return float(adv[i]) if adv.dim() == 1 else float(adv[i, t])

    def a_seq(i):
        return float(adv[i]) if adv.dim() == 1 else sum(float(adv[i, t]) for t in rows[i]) / len(rows[i])

    keep_token = None
    if top_entropy < 1.0:
        # torch.quantile in float32 as the primitive (as TRL): at an exact quantile position float32 rounding of the
        # level decides the tie, which an interpolation written here in float64 would decide differently
        values = torch.tensor([entropy[i, t].item() for i in range(batch) for t in rows[i]], dtype=torch.float32)
        threshold = torch.quantile(values, 1 - top_entropy).item()
        keep_token = {(i, t) for i in range(batch) for t in rows[i] if entropy[i, t].item() >= threshold}
    units = []
    for i in range(batch):
        tokens = rows[i]
        if not tokens:
            continue
        sampler = old if rollout is None else rollout
        keep_seq = True
        if off_policy is not None:
            divergence = sum(sampler[i, t].item() - lp[i, t].item() for t in tokens) / len(tokens)
            keep_seq = a_seq(i) >= 0 or divergence <= off_policy
        seq_log_ratio = sum(lp[i, t] - old[i, t] for t in tokens) / len(tokens)
        seq_ratio = torch.exp(seq_log_ratio)
        token_values = []
        for t in tokens:
            a = a_of(i, t)
            r = torch.exp(lp[i, t] - old[i, t])
            if kind in ("grpo", "bnpo", "dapo", "dr_grpo", "clip_cov"):
                policy = clipped_term(r, a, eps_low, eps_high, delta, dual_clip)
                if kind == "clip_cov" and (i, t) in chosen:
                    policy = policy * 0.0
            elif kind in ("gspo", "luspo"):
                # "sequence": s_i on every token (gradient through the mean); "sequence_token": GSPO-token
                s = seq_ratio if gspo_level == "sequence" else torch.exp(
                    lp[i, t] - lp[i, t].detach() + seq_log_ratio.detach())
                policy = clipped_term(s, a, eps_low, eps_high, delta, dual_clip)
            elif kind == "cispo":
                w = min(r.item(), 1 + eps_high) if eps_low is None else min(max(r.item(), 1 - eps_low), 1 + eps_high)
                policy = -w * a * lp[i, t]
            elif kind == "sapo":
                tau = tau_pos if a > 0 else tau_neg
                policy = -(4.0 / tau) * torch.sigmoid(tau * (r - 1.0)) * a
            elif kind == "gpg":
                policy = -a * lp[i, t]
            elif kind == "kl_cov":
                policy = -a * r
                if (i, t) in chosen:
                    policy = policy + kl_cov_coef * torch.abs(lp[i, t] - old[i, t])
            elif kind == "vespo":
                k_pos, l_pos, k_neg, l_neg = vespo
                log_w = sum(min(max(lp[i, s].item() - old[i, s].item(), -20), 20) for s in tokens)
                if rollout_mode is not None:
                    log_w += sum(min(max(math.log(max(rollout_weight(old, rollout, i, tokens, s, rollout_mode,
                                                                         rollout_min, rollout_max), 1e-300)),
                                         math.log(1e-8)), 20) for s in tokens)
                log_w = min(max(log_w, math.log(1e-8)), 20)
                k, lam = (k_pos, l_pos) if a >= 0 else (k_neg, l_neg)
                phi = math.exp(lam + k * log_w - lam * math.exp(log_w))
                policy = -phi * a * lp[i, t]
            elif kind == "gmpo":
                policy = _scalar(0.0)
            else:
                raise ValueError(kind)
            if rollout_mode is not None and kind not in ("vespo", "gmpo"):
                policy = policy * rollout_weight(old, rollout, i, tokens, t, rollout_mode, rollout_min, rollout_max)
            if not keep_seq or (keep_token is not None and (i, t) not in keep_token):
                policy = policy * 0.0
            value = policy
            if beta:
                kl = kl_value(ref[i, t] - lp[i, t], kl_estimator)
                if bias_correction:
                    kl = kl * (seq_ratio if kind in ("gspo", "luspo") else r)
                value = value + beta * kl
            if entropy_coef:
                value = value - entropy_coef * entropy[i, t]
            token_values.append(value)
        if mode == "token-mean":
            units.extend(token_values)
            continue
        total = sum(token_values)
        if mode == "seq-mean-token-mean":
            unit = total / len(tokens)
        elif mode == "seq-mean-token-sum":
            unit = total
        else:
            unit = total / (scale or length)
        if kind == "gmpo":
            unit = unit + gmpo_term(lp, old, i, tokens, a_seq(i), [a_of(i, t) for t in range(length)], eps_low,
                                    eps_high, keep_seq, keep_token, rollout, rollout_mode, rollout_min, rollout_max)
        units.append(unit)
    return sum(units) / max(len(units), 1)


def gmpo_term(lp, old, i, tokens, a, token_a, eps_low, eps_high, keep_seq, keep_token, rollout, rollout_mode,
              rollout_min, rollout_max):
    """GMPO's sequence term: -A exp(mean of log-ratios clipped on the side of each token's advantage sign)."""
    used = tokens if keep_token is None else [t for t in tokens if (i, t) in keep_token]
    total = _scalar(0.0)
    for t in used:
        x = lp[i, t] - old[i, t]
        xv = x.item()
        if token_a[t] > 0 and xv > eps_high:
            x = _scalar(eps_high)
        elif token_a[t] < 0 and xv < -eps_low:
            x = _scalar(-eps_low)
        total = total + x
    term = -a * torch.exp(total / max(len(used), 1))
    if rollout_mode is not None:
        logs = [math.log(rollout_weight(old, rollout, i, tokens, t, rollout_mode, rollout_min, rollout_max) + 1e-10)
                for t in tokens]
        term = term * math.exp(sum(logs) / len(tokens))
    return term if keep_seq else term * 0.0


def make_batch(seed, batch, seq, *, spread=0.3, empty_row=False, token_advantages=False):
    """Float64 inputs of every policy loss: log-probs, old / reference / rollout log-probs, entropy, mask."""
    g = torch.Generator().manual_seed(seed)
    lp = -(0.05 + 2.0 * torch.rand(batch, seq, generator=g, dtype=F64))
    old = lp + spread * torch.randn(batch, seq, generator=g, dtype=F64)
    ref = lp + 0.2 * torch.randn(batch, seq, generator=g, dtype=F64)
    rollout = old + 0.3 * torch.randn(batch, seq, generator=g, dtype=F64)
    entropy = (0.2 + 2.0 * torch.rand(batch, seq, generator=g, dtype=F64)).float().double()  # a model's: float32
    adv = torch.randn((batch, seq) if token_advantages else (batch,), generator=g, dtype=F64)
    lengths = torch.randint(1, seq + 1, (batch,), generator=g)
    mask = (torch.arange(seq)[None] < lengths[:, None]).long()
    if seq > 3:
        mask[0, 1] = 0
    if empty_row:
        mask[-1] = 0
    return {"per_token_logps": lp, "old_per_token_logps": old, "ref_per_token_logps": ref,
            "rollout_per_token_logps": rollout, "entropy": entropy, "advantages": adv, "completion_mask": mask}


def run(loss, batch, *, num_items=None, differentiable=("per_token_logps",)):
    """The loss's value and the gradient of each key in ``differentiable``."""
    leaves = {k: batch[k].clone().requires_grad_(True) for k in differentiable}
    value = loss({**batch, **leaves}, num_items_in_batch=num_items)
    value.backward()
    return value.detach(), {k: leaf.grad for k, leaf in leaves.items()}


def reference_run(kind, batch, *, differentiable=("per_token_logps",), **kwargs):
    leaves = {k: batch[k].clone().requires_grad_(True) for k in differentiable}
    merged = {**batch, **leaves}
    value = reference_loss(kind, merged["per_token_logps"], merged.get("old_per_token_logps"), merged["advantages"],
                           merged["completion_mask"], ref=merged["ref_per_token_logps"],
                           rollout=merged["rollout_per_token_logps"], entropy=merged["entropy"], **kwargs)
    value.backward()
    return value.detach(), {k: leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
                            for k, leaf in leaves.items()}
