"""Importance ratios and per-token KL estimators, with the bounds that keep them finite.

``log_ratio`` arguments are differences of log-probabilities at counted positions (0 elsewhere).
They are clamped to ``[-LOG_RATIO_BOUND, LOG_RATIO_BOUND]`` before any ``exp``: beyond
``exp(20) ~ 4.9e8`` a ratio carries no usable signal, and an unbounded one overflows float32 (or
half precision) into ``inf`` and then ``nan`` gradients. Inside the bound nothing changes.
"""

from __future__ import annotations

import torch

LOG_RATIO_BOUND = 20.0
KL_ESTIMATORS = ("k1", "k2", "k3", "abs", "k1+", "k3+")


def bounded(log_ratio: torch.Tensor) -> torch.Tensor:
    """``log_ratio`` clamped to ``[-LOG_RATIO_BOUND, LOG_RATIO_BOUND]``."""
    return torch.clamp(log_ratio, -LOG_RATIO_BOUND, LOG_RATIO_BOUND)


def importance_ratio(log_ratio: torch.Tensor) -> torch.Tensor:
    """``exp(log pi_theta - log pi_old)``, bounded (see the module docstring)."""
    return torch.exp(bounded(log_ratio))


def kl_estimate(ref_minus_policy: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    r"""Per-token estimate of :math:`\mathrm{KL}(\pi_\theta \| \pi_\mathrm{ref})` from a token sampled by
    :math:`\pi_\theta` (Schulman, "Approximating KL divergence", 2020).

    With :math:`x = \log\pi_\mathrm{ref} - \log\pi_\theta` (``ref_minus_policy``):
    ``k1 = -x`` (unbiased, high variance, can be negative), ``k2 = x^2 / 2`` (biased, low variance),
    ``k3 = (e^x - 1) - x`` (unbiased, low variance, always >= 0; the GRPO penalty), ``abs = |x|``.
    ``k1+`` and ``k3+`` have the value of k1 / k3 and the gradient of k2 (straight-through:
    ``k2 - sg(k2) + sg(k)``), because in expectation k2's gradient is the reverse-KL gradient and
    k1's and k3's are not (verl ``kl_penalty="k3+"``).
    """
    if estimator == "k1":
        return -ref_minus_policy
    if estimator == "k2":
        return 0.5 * ref_minus_policy.square()
    if estimator == "k3":
        x = bounded(ref_minus_policy)
        return torch.expm1(x) - x
    if estimator == "abs":
        return ref_minus_policy.abs()
    if estimator in ("k1+", "k3+"):
        value = kl_estimate(ref_minus_policy, estimator[:-1]).detach()
        gradient_carrier = kl_estimate(ref_minus_policy, "k2")
        return gradient_carrier - gradient_carrier.detach() + value
    message = f"kl_estimate: estimator must be one of {', '.join(KL_ESTIMATORS)}, got {estimator!r}"
    raise ValueError(message)
