"""A small correct loss and deliberately broken variants, one defect each, for the meta-tests."""

from __future__ import annotations

import torch

from swift_zoo import BaseLoss, LossExample, TensorInput, UnitLosses
from swift_zoo.ops import masked_mean, shift_labels, upcast


class TokenLoss(BaseLoss):
    r"""Token negative log-likelihood of a causal LM (the reference the broken variants start from).

    .. math::
        \ell_t = -\log\mathrm{softmax}(z_t)_{y_{t+1}}

    averaged over tokens whose label is not ``ignore_index``.
    """

    name = "token_loss"
    reference = "arXiv:1512.00567"
    reduction_unit = "token"
    inputs = (
        TensorInput("logits", ("B", "T", "V"), differentiable=True, masked_by="labels", mask_shift=1),
        TensorInput("labels", ("B", "T"), dtype="int", role="labels"),
    )

    def __init__(self, *, ignore_index: int = -100) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(upcast(logits), dim=-1)

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        targets = shift_labels(inputs["labels"], self.ignore_index)
        keep = targets != self.ignore_index
        logps = self.log_probs(inputs["logits"])
        picked = logps.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return UnitLosses(-picked, keep)

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        logits = torch.randn(batch_size, 5, 7, generator=generator).to(device, dtype)
        labels = torch.randint(0, 7, (batch_size, 5), generator=generator).to(device)
        labels[::2, :2] = -100
        labels[1::3, -1] = -100
        return LossExample({"logits": logits}, labels)


class VectorLoss(TokenLoss):
    """Returns the per-token vector instead of a scalar: ``\\ell_t = -\\log p``."""

    name = "vector_loss"

    def forward(self, model_outputs, labels=None, *, num_items_in_batch=None):
        inputs = self.validate(model_outputs, labels)
        return self.per_unit_loss(inputs).losses.flatten()


class DetachedLoss(TokenLoss):
    """Detaches its input: no gradient reaches the logits."""

    name = "detached_loss"

    def log_probs(self, logits):
        return torch.log_softmax(upcast(logits.detach()), dim=-1)


class ArgmaxLoss(TokenLoss):
    """Uses a piecewise-constant function of the logits (argmax): gradients are all zero."""

    name = "argmax_loss"

    def log_probs(self, logits):
        hard = torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
        return logits * 0.0 + hard


class _WrongSquare(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x  # wrong: d(x^2)/dx = 2x


class WrongBackwardLoss(TokenLoss):
    """Adds a squared-logit penalty through a custom autograd.Function with a wrong backward."""

    name = "wrong_backward_loss"

    def log_probs(self, logits):
        return super().log_probs(logits) - 0.1 * _WrongSquare.apply(upcast(logits))


class RandomLoss(TokenLoss):
    """Adds noise from the global RNG: two calls differ."""

    name = "random_loss"

    def log_probs(self, logits):
        return super().log_probs(logits) + 1e-3 * torch.rand_like(upcast(logits))


class MutatingLoss(TokenLoss):
    """Writes into the caller's labels (replaces ignore_index in place)."""

    name = "mutating_loss"

    def per_unit_loss(self, inputs):
        units = super().per_unit_loss(inputs)
        inputs["labels"].clamp_(min=0)
        return units


class VersionBumpLoss(TokenLoss):
    """Writes into the caller's labels without changing values (an in-place no-op)."""

    name = "version_bump_loss"

    def per_unit_loss(self, inputs):
        inputs["labels"].add_(0)
        return super().per_unit_loss(inputs)


class LocalMeanLoss(TokenLoss):
    """Ignores num_items_in_batch: always divides by the local token count."""

    name = "local_mean_loss"

    def reduce(self, units, num_items_in_batch):
        return super().reduce(units, None)


class RowMeanLoss(TokenLoss):
    """Declares token units but averages each row first (every row one unit): the tokens of short rows weigh
    more. Consistent with its own count_units, so only the declared masks expose it."""

    name = "row_mean_loss"

    def per_unit_loss(self, inputs):
        losses, keep = super().per_unit_loss(inputs)
        return UnitLosses(masked_mean(losses, keep, dim=1))


class WrongCountLoss(TokenLoss):
    """count_units counts every position, ignored ones included."""

    name = "wrong_count_loss"

    def count_units(self, model_outputs, labels=None):
        return torch.tensor(labels.numel())


class LeakyMaskLoss(TokenLoss):
    """Adds a term over every position, ignored ones included: masked logits leak."""

    name = "leaky_mask_loss"

    def per_unit_loss(self, inputs):
        losses, keep = super().per_unit_loss(inputs)
        leak = 1e-3 * upcast(inputs["logits"]).mean()
        return UnitLosses(losses + leak, keep)


class UnguardedMaskLoss(TokenLoss):
    """Skips BaseLoss.forward (as a composite that overrides it might) and takes log_softmax of every row:
    NaN logits at ignored positions reach their gradient (0 incoming gradient times NaN)."""

    name = "unguarded_mask_loss"

    def forward(self, model_outputs, labels=None, *, num_items_in_batch=None):
        inputs = self.validate(model_outputs, labels)
        return self.reduce(self.per_unit_loss(inputs), self._check_num_items(num_items_in_batch))


class NoUpcastLoss(TokenLoss):
    """Softmax via exp in the input dtype, no max subtraction, no upcast: overflows in bf16/fp16."""

    name = "no_upcast_loss"

    def log_probs(self, logits):
        e = torch.exp(logits)
        return torch.log(e / e.sum(-1, keepdim=True)).to(torch.float32)


class DtypeClampLoss(TokenLoss):
    """Clamps float16 logits to [-1, 1] (a guard chosen per input dtype): finite, but not the float32 loss."""

    name = "dtype_clamp_loss"

    def log_probs(self, logits):
        z = upcast(logits)
        if logits.dtype == torch.float16:
            z = z.clamp(-1.0, 1.0)
        return torch.log_softmax(z, dim=-1)


class NaiveExpLoss(TokenLoss):
    """Softmax via exp in float32 without subtracting the max: overflows at large logits."""

    name = "naive_exp_loss"

    def log_probs(self, logits):
        e = torch.exp(upcast(logits))
        return torch.log(e / e.sum(-1, keepdim=True))


class OrderLoss(TokenLoss):
    """Weights each row by its position in the batch: permuting the batch changes the loss."""

    name = "order_loss"

    def per_unit_loss(self, inputs):
        losses, keep = super().per_unit_loss(inputs)
        weights = torch.arange(1, losses.shape[0] + 1, dtype=losses.dtype).unsqueeze(-1)
        return UnitLosses(losses * weights, keep)


class DeclaredOrderLoss(OrderLoss):
    """Like OrderLoss, declared: ``\\ell = w_b \\ell_t``."""

    name = "declared_order_loss"
    order_dependent = "weights rows by their position (a curriculum)"


class BatchMeanLoss(TokenLoss):
    """Declares it cannot be split (subtracts the batch mean): ``\\ell = \\ell_t - mean``."""

    name = "batch_mean_loss"
    batch_dependent = "centres every row on the batch mean"


class KwargsLoss(TokenLoss):
    """Accepts anything: ``\\ell = -\\log p``."""

    name = "kwargs_loss"

    def __init__(self, **kwargs) -> None:
        super().__init__()


class BadMetadataLoss(TokenLoss):
    name = "Bad-Name"
    reference = ""
    reduction_unit = "tokens"


class UnmaskedLoss(TokenLoss):
    """No masking declared: ``\\ell = -\\log p``."""

    name = "unmasked_loss"
    inputs = (
        TensorInput("logits", ("B", "T", "V"), differentiable=True),
        TensorInput("labels", ("B", "T"), dtype="int", role="labels"),
    )


class ExemptVectorLoss(VectorLoss):
    """Vector output, declared as a known gap on the class."""

    name = "exempt_vector_loss"
    conformance_exemptions = {"check_scalar_output": "returns per-token losses for a custom trainer"}


class SequenceMaskLoss(BaseLoss):
    r"""Negative mean log-probability of completion tokens, a 0/1 float mask marking them.

    .. math::
        \ell_b = -\sum_t m_{b,t}\,\log p_{b,t}

    per sequence, averaged over sequences.
    """

    name = "sequence_mask_loss"
    reference = "arXiv:2402.03300"
    reduction_unit = "sequence"
    inputs = (
        TensorInput("per_token_logps", ("B", "T"), differentiable=True, masked_by="completion_mask"),
        TensorInput("completion_mask", ("B", "T"), dtype="mask", role="mask"),
    )

    def per_unit_loss(self, inputs):
        logps = upcast(inputs["per_token_logps"])
        mask = inputs["completion_mask"].to(logps.dtype)
        return UnitLosses(-(torch.where(mask > 0, logps, torch.zeros_like(logps))).sum(-1))

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        logps = -torch.rand(batch_size, 6, generator=generator).to(device, dtype)
        mask = torch.ones(batch_size, 6)
        mask[:, :2] = 0.0
        mask[::2, -1] = 0.0
        return LossExample({"per_token_logps": logps, "completion_mask": mask.to(device)})


class LeakySequenceMaskLoss(SequenceMaskLoss):
    """Multiplies by the mask after a log of the logps: ``0 * log(huge)`` leaks NaN into gradients."""

    name = "leaky_sequence_mask_loss"

    def per_unit_loss(self, inputs):
        logps = upcast(inputs["per_token_logps"])
        mask = inputs["completion_mask"].to(logps.dtype)
        return UnitLosses(-(logps * mask).sum(-1) + 1e-6 * (torch.exp(logps) * mask).sum(-1))


class TokenCountSequenceLoss(SequenceMaskLoss):
    """A sequence-level loss whose count_units counts tokens: the full-batch loss with num_items_in_batch
    disagrees with the plain one."""

    name = "token_count_sequence_loss"

    def count_units(self, model_outputs, labels=None):
        return (self.validate(model_outputs, labels)["completion_mask"] != 0).sum()
