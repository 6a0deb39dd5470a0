"""Declared inputs and example batches shared by every preference loss.

The currency is per-sequence **summed** completion log-probabilities (``swift_zoo.ops.sequence_logps``)
plus the number of scored tokens, so a length-normalised variant divides by the length itself:

* paired: ``policy_chosen_logps``, ``policy_rejected_logps`` ``[B]`` (differentiable),
  ``reference_chosen_logps``, ``reference_rejected_logps`` ``[B]`` (reference-based losses),
  ``chosen_lengths``, ``rejected_lengths`` ``[B]`` (int token counts; length-normalised losses);
* options of the DPO family (optional inputs, required only when the option is on): LD-DPO's tail sums
  ``policy_chosen_tail_logps``, ``policy_rejected_tail_logps``, ``reference_chosen_tail_logps``,
  ``reference_rejected_tail_logps`` ``[B]``; WPO's ``policy_chosen_log_sum_sq_probs``,
  ``policy_rejected_log_sum_sq_probs`` ``[B]`` (with the lengths);
* unpaired: ``policy_logps``, ``reference_logps``, ``lengths`` ``[B]`` and ``is_desirable`` ``[B]``
  (bool), plus the KL-baseline completions ``policy_kl_logps``, ``reference_kl_logps`` ``[B]``.
"""

from __future__ import annotations

import dataclasses

import torch

from swift_zoo.losses import LossExample, TensorInput

LD_INPUTS = (
    TensorInput("policy_chosen_tail_logps", ("B",), optional=True,
                doc="LD-DPO: policy log p of the chosen tokens past the pair's common length"),
    TensorInput("policy_rejected_tail_logps", ("B",), optional=True,
                doc="LD-DPO: policy log p of the rejected tokens past the pair's common length"),
    TensorInput("reference_chosen_tail_logps", ("B",), optional=True,
                doc="LD-DPO: reference log p of the chosen tokens past the pair's common length"),
    TensorInput("reference_rejected_tail_logps", ("B",), optional=True,
                doc="LD-DPO: reference log p of the rejected tokens past the pair's common length"),
)
LD_DIFFERENTIABLE = ("policy_chosen_tail_logps", "policy_rejected_tail_logps")
WPO_INPUTS = (
    TensorInput("policy_chosen_log_sum_sq_probs", ("B",), optional=True,
                doc="WPO: sum over chosen tokens of log sum_v p_v^2 under the policy"),
    TensorInput("policy_rejected_log_sum_sq_probs", ("B",), optional=True,
                doc="WPO: sum over rejected tokens of log sum_v p_v^2 under the policy"),
    TensorInput("chosen_lengths", ("B",), dtype="int", optional=True, doc="scored tokens of chosen"),
    TensorInput("rejected_lengths", ("B",), dtype="int", optional=True, doc="scored tokens of rejected"),
)


def with_options(inputs: tuple[TensorInput, ...], *, ld: bool = True, wpo: bool = True) -> tuple[TensorInput, ...]:
    """``inputs`` plus the optional inputs of the LD-DPO / WPO options that it does not declare yet."""
    keys = {spec.key for spec in inputs}
    extra = (LD_INPUTS if ld else ()) + (WPO_INPUTS if wpo else ())
    return inputs + tuple(spec for spec in extra if spec.key not in keys)


def requiring(inputs: tuple[TensorInput, ...], keys: set[str], differentiable: set[str]) -> tuple[TensorInput, ...]:
    """``inputs`` with ``keys`` made required and ``differentiable`` marked differentiable (an option is on)."""
    return tuple(
        dataclasses.replace(spec, optional=spec.optional and spec.key not in keys,
                            differentiable=spec.differentiable or spec.key in differentiable)
        for spec in inputs
    )


def paired_inputs(*, reference: bool, lengths: bool = False, rejected_lengths: bool = True,
                  lengths_optional: bool = False) -> tuple[TensorInput, ...]:
    """The declared inputs of a paired preference loss.

    ``lengths`` adds ``chosen_lengths`` and, unless ``rejected_lengths=False`` (a loss that reads only
    the chosen length, e.g. an NLL term on chosen), ``rejected_lengths``; ``lengths_optional`` adds
    them as optional inputs.
    """
    found = [
        TensorInput("policy_chosen_logps", ("B",), differentiable=True, doc="summed log p(chosen) under the policy"),
        TensorInput("policy_rejected_logps", ("B",), differentiable=True,
                    doc="summed log p(rejected) under the policy"),
    ]
    if reference:
        found += [
            TensorInput("reference_chosen_logps", ("B",), doc="summed log p(chosen) under the reference"),
            TensorInput("reference_rejected_logps", ("B",), doc="summed log p(rejected) under the reference"),
        ]
    if lengths or lengths_optional:
        found.append(TensorInput("chosen_lengths", ("B",), dtype="int", optional=lengths_optional,
                                 doc="scored tokens of chosen"))
        if rejected_lengths:
            found.append(TensorInput("rejected_lengths", ("B",), dtype="int", optional=lengths_optional,
                                     doc="scored tokens of rejected"))
    return tuple(found)


def unpaired_inputs(*, reference: bool, kl: bool = False, kl_optional: bool = False,
                    lengths: bool = False) -> tuple[TensorInput, ...]:
    """The declared inputs of an unpaired (KTO-style) preference loss.

    ``kl`` adds the mismatched-completion log-probs (the KL reference point); ``kl_optional`` adds them
    as optional inputs (for a loss that can take the reference point from elsewhere).
    """
    found = [
        TensorInput("policy_logps", ("B",), differentiable=True, doc="summed log p(completion) under the policy"),
        TensorInput("is_desirable", ("B",), dtype="bool", doc="True for desirable completions"),
    ]
    if reference:
        found.append(TensorInput("reference_logps", ("B",), doc="summed log p(completion) under the reference"))
    if kl or kl_optional:
        found += [
            TensorInput("policy_kl_logps", ("B",), optional=kl_optional,
                        doc="policy log p of mismatched (prompt, completion) pairs"),
            TensorInput("reference_kl_logps", ("B",), optional=kl_optional,
                        doc="reference log p of the same mismatched pairs"),
        ]
    if lengths:
        found.append(TensorInput("lengths", ("B",), dtype="int", doc="scored tokens of the completion"))
    return tuple(found)


def _logps(n: int, lengths: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    # summed log-probs of realistic size: about -1.5 nats per token, with noise
    per_token = -1.5 + 0.5 * torch.randn(n, generator=generator, dtype=torch.float64)
    return per_token * lengths.to(torch.float64)


def _declared(
    inputs: tuple[TensorInput, ...],
    floats: dict[str, torch.Tensor],
    others: dict[str, torch.Tensor],
    *,
    dtype: torch.dtype,
    device: str | torch.device,
) -> LossExample:
    """The declared keys among ``floats`` (cast to ``dtype``) and ``others`` (kept as they are), on ``device``."""
    keys = {spec.key for spec in inputs}
    outputs = {k: v.to(device=device, dtype=dtype) for k, v in floats.items() if k in keys}
    outputs.update({k: v.to(device) for k, v in others.items() if k in keys})
    return LossExample(outputs)


def paired_example(
    inputs: tuple[TensorInput, ...],
    *,
    batch_size: int = 4,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> LossExample:
    """A batch for any paired loss: every declared key (and only those) filled with realistic values."""
    chosen_len = torch.randint(3, 12, (batch_size,), generator=generator)
    rejected_len = torch.randint(3, 12, (batch_size,), generator=generator)
    values = {
        "policy_chosen_logps": _logps(batch_size, chosen_len, generator),
        "policy_rejected_logps": _logps(batch_size, rejected_len, generator),
        "reference_chosen_logps": _logps(batch_size, chosen_len, generator),
        "reference_rejected_logps": _logps(batch_size, rejected_len, generator),
    }
    # option inputs, drawn after the others so that adding them left the other values unchanged
    common = torch.minimum(chosen_len, rejected_len)
    for side, length in (("chosen", chosen_len), ("rejected", rejected_len)):
        for model in ("policy", "reference"):
            values[f"{model}_{side}_tail_logps"] = _logps(batch_size, length - common, generator)
        per_token = -1.0 + 0.3 * torch.rand(batch_size, generator=generator, dtype=torch.float64)
        values[f"policy_{side}_log_sum_sq_probs"] = per_token * length.to(torch.float64)
    prompt_len = torch.randint(2, 9, (batch_size,), generator=generator)
    values["policy_chosen_prompt_logps"] = _logps(batch_size, prompt_len, generator)
    lengths = {"chosen_lengths": chosen_len, "rejected_lengths": rejected_len, "chosen_prompt_lengths": prompt_len}
    return _declared(inputs, values, lengths, dtype=dtype, device=device)


def unpaired_example(
    inputs: tuple[TensorInput, ...],
    *,
    batch_size: int = 4,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> LossExample:
    """A batch for any unpaired loss, with both desirable and undesirable completions."""
    lengths = torch.randint(3, 12, (batch_size,), generator=generator)
    desirable = torch.arange(batch_size) % 2 == 0
    values = {
        "policy_logps": _logps(batch_size, lengths, generator),
        "reference_logps": _logps(batch_size, lengths, generator),
        "policy_kl_logps": _logps(batch_size, lengths, generator),
        "reference_kl_logps": _logps(batch_size, lengths, generator),
    }
    return _declared(inputs, values, {"is_desirable": desirable, "lengths": lengths}, dtype=dtype, device=device)
