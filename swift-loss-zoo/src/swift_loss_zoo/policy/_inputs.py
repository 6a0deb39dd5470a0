"""Declared inputs and example batches shared by the on-policy RL losses.

Every per-token tensor is ``[B, T]`` over the same positions as ``completion_mask`` (1 on the
completion tokens that are trained on, 0 on prompt, padding and tool-output tokens), so each one
is declared ``masked_by="completion_mask"`` with no shift: position ``t`` of a log-prob scores the
token at position ``t`` (the caller has already applied the causal shift, e.g. with
:func:`swift_zoo.ops.token_logps`).
"""

from __future__ import annotations

import torch

from swift_zoo.losses import LossExample, TensorInput

_TOKENS = ("B", "T")


def _per_token(key: str, doc: str, *, differentiable: bool = False, optional: bool = False) -> TensorInput:
    return TensorInput(key, _TOKENS, differentiable=differentiable, optional=optional,
                       masked_by="completion_mask", doc=doc)


COMPLETION_MASK = TensorInput("completion_mask", _TOKENS, dtype="mask", role="mask",
                              doc="1 on trained completion tokens, 0 on prompt / padding / tool output")
PER_TOKEN_LOGPS = _per_token("per_token_logps", "log pi_theta(token) of the current policy", differentiable=True)
OLD_PER_TOKEN_LOGPS = _per_token(
    "old_per_token_logps", "log pi_old(token) of the sampling policy; absent = on-policy (ratio 1)", optional=True)
REF_PER_TOKEN_LOGPS = _per_token(
    "ref_per_token_logps", "log pi_ref(token) of the reference policy; required when beta > 0", optional=True)
ROLLOUT_PER_TOKEN_LOGPS = _per_token(
    "rollout_per_token_logps",
    "log pi_rollout(token) the sampler (e.g. vLLM) reported; required by rollout_correction", optional=True)
ENTROPY = _per_token(
    "entropy", "per-token entropy of pi_theta; required when entropy_coef > 0 or top_entropy_quantile < 1",
    differentiable=True, optional=True)
SEQUENCE_ADVANTAGES = TensorInput(
    "advantages", ("B",), doc="one advantage per completion (group-normalised reward); [B, T] per-token ones too")
TOKEN_ADVANTAGES = _per_token("advantages", "per-token advantages (e.g. whitened GAE)")


def group_policy_inputs() -> tuple[TensorInput, ...]:
    """Inputs of the GRPO family: per-token log-probs and advantages per completion (``[B]``) or token (``[B, T]``).

    Declared with ``advantages [B]``; :meth:`GroupPolicyLoss.validate` swaps in
    :func:`with_token_advantages` when a ``[B, T]`` tensor comes.
    """
    return (
        PER_TOKEN_LOGPS,
        OLD_PER_TOKEN_LOGPS,
        REF_PER_TOKEN_LOGPS,
        ROLLOUT_PER_TOKEN_LOGPS,
        SEQUENCE_ADVANTAGES,
        ENTROPY,
        COMPLETION_MASK,
    )


def with_token_advantages(inputs: tuple[TensorInput, ...]) -> tuple[TensorInput, ...]:
    """``inputs`` with ``advantages`` declared ``[B, T]`` (masked by ``completion_mask``)."""
    return tuple(TOKEN_ADVANTAGES if spec.key == "advantages" else spec for spec in inputs)


def ppo_inputs() -> tuple[TensorInput, ...]:
    """Inputs of PPO: per-token advantages, returns and value-head outputs."""
    return (
        PER_TOKEN_LOGPS,
        OLD_PER_TOKEN_LOGPS,
        REF_PER_TOKEN_LOGPS,
        ROLLOUT_PER_TOKEN_LOGPS,
        TOKEN_ADVANTAGES,
        _per_token("returns", "per-token returns (GAE advantages + old values)"),
        _per_token("values", "value-head predictions of the current model", differentiable=True),
        _per_token("old_values", "value predictions at rollout time; absent = no value clipping", optional=True),
        ENTROPY,
        COMPLETION_MASK,
    )


def completion_mask_example(batch_size: int, seq: int, generator: torch.Generator | None) -> torch.Tensor:
    """Right-padded completions of different lengths (at least 2 tokens), one with a masked tool span."""
    lengths = torch.randint(2, seq + 1, (batch_size,), generator=generator)
    mask = (torch.arange(seq).unsqueeze(0) < lengths.unsqueeze(1)).long()
    if batch_size > 1 and seq > 4:
        mask[1, 1] = 0  # a tool-output token inside the completion of row 1
    return mask


def per_token_logps_example(batch_size: int, seq: int, generator: torch.Generator | None) -> torch.Tensor:
    """Realistic per-token log-probabilities (negative, mostly between -3 and 0)."""
    return -(0.05 + torch.rand(batch_size, seq, generator=generator, dtype=torch.float64) * 2.5)


def _with_completion_mask(
    floats: dict[str, torch.Tensor],
    batch_size: int,
    seq: int,
    generator: torch.Generator | None,
    *,
    dtype: torch.dtype,
    device: str | torch.device,
) -> LossExample:
    """``floats`` cast to ``dtype`` plus a ``completion_mask`` drawn last from ``generator``."""
    outputs = {k: v.to(device=device, dtype=dtype) for k, v in floats.items()}
    outputs["completion_mask"] = completion_mask_example(batch_size, seq, generator).to(device)
    return LossExample(outputs)


def group_policy_example(
    *,
    batch_size: int = 4,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    token_advantages: bool = False,
) -> LossExample:
    """A batch for any GRPO-family loss: off-policy ratios around 1, some of them clipped; advantages ``[B]``
    (or ``[B, T]`` with ``token_advantages``)."""
    seq = 7
    logps = per_token_logps_example(batch_size, seq, generator)
    old = logps + 0.15 * torch.randn(batch_size, seq, generator=generator, dtype=torch.float64)
    ref = logps + 0.1 * torch.randn(batch_size, seq, generator=generator, dtype=torch.float64)
    shape = (batch_size, seq) if token_advantages else (batch_size,)
    advantages = torch.randn(shape, generator=generator, dtype=torch.float64)
    outputs = {
        "per_token_logps": logps,
        "old_per_token_logps": old,
        "ref_per_token_logps": ref,
        "rollout_per_token_logps": old + 0.1 * torch.randn(batch_size, seq, generator=generator, dtype=torch.float64),
        "advantages": advantages,
        "entropy": 0.5 + torch.rand(batch_size, seq, generator=generator, dtype=torch.float64),
    }
    return _with_completion_mask(outputs, batch_size, seq, generator, dtype=dtype, device=device)


def ppo_example(
    *,
    batch_size: int = 4,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> LossExample:
    """A batch for PPO: per-token advantages, returns, values near the returns, entropies."""
    seq = 7
    shape = (batch_size, seq)
    logps = per_token_logps_example(batch_size, seq, generator)
    old = logps + 0.15 * torch.randn(shape, generator=generator, dtype=torch.float64)
    returns = torch.randn(shape, generator=generator, dtype=torch.float64)
    old_values = returns + 0.3 * torch.randn(shape, generator=generator, dtype=torch.float64)
    values = old_values + 0.3 * torch.randn(shape, generator=generator, dtype=torch.float64)
    outputs = {
        "per_token_logps": logps,
        "old_per_token_logps": old,
        "advantages": torch.randn(shape, generator=generator, dtype=torch.float64),
        "returns": returns,
        "values": values,
        "old_values": old_values,
        "entropy": 0.5 + torch.rand(shape, generator=generator, dtype=torch.float64),
    }
    return _with_completion_mask(outputs, batch_size, seq, generator, dtype=dtype, device=device)
