"""Forward KL from a teacher that gives only its top-k log-probabilities (a teacher server, vLLM)."""

from __future__ import annotations

import torch

from swift_loss_zoo._equivalents import call, flags, ms_swift, trl, verl
from swift_loss_zoo.distill._divergence import LogitDivergenceLoss
from swift_zoo import LossExample, LossInputError, TensorInput, UnitLosses
from swift_zoo.losses import require_choice, require_finite, require_positive
from swift_zoo.ops import upcast

NORMALIZATIONS = ("none", "renormalize", "tail")
_MAX_LOG_MASS = -1e-7  # as TRL: the top-k mass stays below 1 so the tail bucket keeps a finite log


def _masked_logsumexp(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(values.masked_fill(~valid, -torch.inf), dim=-1, keepdim=True)


def _tail(logps: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``log(1 - sum_k exp(logps_k))`` over the valid entries, ``[N, 1]``."""
    log_mass = _masked_logsumexp(logps, valid).clamp(max=_MAX_LOG_MASS)
    return torch.log(-torch.expm1(log_mass))


class ForwardKLTopKLoss(LogitDivergenceLoss):
    r"""Forward KL :math:`\mathrm{KL}(p_T \| p_S)` restricted to the teacher's top-k tokens.

    Per counted token, with the teacher's top-k log-probs :math:`t_k` at token ids :math:`i_k` and the
    student's :math:`s_k = \log\mathrm{softmax}(z/\tau)_{i_k}` (full-vocabulary log-softmax, gathered):

    * ``normalization="none"`` (verl ``forward_kl_topk``): :math:`\ell = \max\big(0, \sum_k e^{t_k}(t_k - s_k)\big)`
      -- the top-k terms of the full KL; neither side sums to 1, so the sum can be negative and is
      clamped at 0 as verl does (no gradient there);
    * ``"renormalize"`` (ms-swift ``gkd_logits_topk``, TRL's server distillation with
      ``loss_add_tail=False``): both restricted to the top-k and renormalised,
      :math:`t'_k = t_k - \log\sum_j e^{t_j}`, :math:`s'_k = s_k - \log\sum_j e^{s_j}`,
      :math:`\ell = \sum_k e^{t'_k}(t'_k - s'_k)`;
    * ``"tail"`` (TRL's server distillation, ``loss_add_tail=True``): a (k+1)-th bucket holds the rest of
      the mass, :math:`t_{tail} = \log(1 - \sum_k e^{t_k})` (the log-mass clamped at :math:`-10^{-7}`),
      likewise :math:`s_{tail}`, and :math:`\ell = \sum_{k} e^{t_k}(t_k - s_k) + e^{t_{tail}}(t_{tail} - s_{tail})`,
      a true KL between two (k+1)-point distributions.

    Entries whose teacher log-prob is :math:`-\infty` are absent (a teacher that returned fewer than k
    tokens pads with ``-inf``, as TRL's server does); a position with none left contributes 0 and is still
    counted. The temperature :math:`\tau` softens the **student** only: the teacher's log-probs are used as
    given (compute them at the temperature you distil at). Unit: a **token**, counted as for the other
    distillation losses (labels at :math:`t+1` not ``-100``), so ``num_items_in_batch`` is the number of
    counted tokens.

    References: verl 0.9.1 ``forward_kl_topk`` (``trainer/distillation``); ms-swift 4.6 GKD with
    ``--gkd_logits_topk``; TRL ``experimental.server_distillation``. Paper: GKD, Agarwal et al.,
    arXiv:2306.13649 (the forward-KL objective).

    Clamps (verl's ``DistillationLossConfig``, whose defaults are -10 and 10; off here by default):
    ``log_prob_min_clamp`` floors :math:`t_k` and :math:`s_k` before the divergence, ``loss_max_clamp`` caps
    each token's loss at that value (and floors it at minus that value).

    Defaults: ``normalization="none"``, ``temperature=1.0``, ``log_prob_min_clamp=None``,
    ``loss_max_clamp=None``, ``ignore_index=-100``.

    Inputs: ``student_logits`` ``[B, T, V]`` (differentiable), ``teacher_topk_logps`` ``[B, T, K]``,
    ``teacher_topk_indices`` ``[B, T, K]`` (int, in ``[0, V)`` at counted positions), ``labels`` ``[B, T]``.
    Metrics: ``teacher_mass``, ``student_mass`` (mean top-k probability mass over counted tokens).

    .. code-block:: yaml

        training_args:
          loss_type: forward_kl_topk
          loss_kwargs: {normalization: renormalize}
    """

    name = "forward_kl_topk"
    reference = "arXiv:2306.13649"
    equivalents = (
        verl(call("DistillationLossConfig", loss_mode="forward_kl_topk", use_policy_gradient=False),
             {"normalization": "none", "log_prob_min_clamp": -10.0, "loss_max_clamp": 10.0},
             settings="fsdp compute_forward_kl_topk, then the clamp_min(0) of the forward_kl_topk loss and "
                      "distillation_loss's loss_max_clamp"),
        verl(call("DistillationLossConfig", loss_mode="forward_kl_topk", use_policy_gradient=False,
                  log_prob_min_clamp=None, loss_max_clamp=None),
             {"normalization": "none"},
             settings="fsdp compute_forward_kl_topk, then the clamp_min(0) of the forward_kl_topk loss"),
        trl(call("ServerDistillationConfig", loss_top_k=3, loss_add_tail=True), {"normalization": "tail"},
            settings="ServerDistillationTrainer._compute_server_forward_kl_loss (beta=0)"),
        trl(call("ServerDistillationConfig", loss_top_k=3, loss_add_tail=False), {"normalization": "renormalize"},
            settings="ServerDistillationTrainer._compute_server_forward_kl_loss (beta=0)"),
        ms_swift(flags(rlhf_type="gkd", beta=0, gkd_logits_topk=3, temperature=1.0), {"normalization": "renormalize"},
                 settings="at temperature 1: ms-swift also divides the teacher's top-k log-probs by --temperature "
                          "(default 0.9), the zoo takes them as given"),
    )
    inputs = (
        TensorInput("student_logits", ("B", "T", "V"), differentiable=True, masked_by="labels", mask_shift=1,
                    doc="next-token logits of the student"),
        TensorInput("teacher_topk_logps", ("B", "T", "K"), masked_by="labels", mask_shift=1,
                    doc="the teacher's top-k next-token log-probs (-inf = no entry)"),
        TensorInput("teacher_topk_indices", ("B", "T", "K"), dtype="int",
                    doc="vocabulary ids of the teacher's top-k entries"),
        TensorInput("labels", ("B", "T"), dtype="int", role="labels",
                    doc="token ids, -100 where nothing is distilled (only the mask is used)"),
    )

    def __init__(
        self,
        *,
        normalization: str = "none",
        temperature: float = 1.0,
        log_prob_min_clamp: float | None = None,
        loss_max_clamp: float | None = None,
        ignore_index: int = -100,
    ) -> None:
        super().__init__()
        self.normalization = require_choice(self.name, "normalization", normalization, NORMALIZATIONS)
        self.configure_temperature(temperature, ignore_index)
        self.log_prob_min_clamp = (None if log_prob_min_clamp is None
                                   else require_finite(self.name, "log_prob_min_clamp", log_prob_min_clamp))
        self.loss_max_clamp = (None if loss_max_clamp is None
                               else require_positive(self.name, "loss_max_clamp", loss_max_clamp))

    def per_unit_loss(self, inputs: dict[str, torch.Tensor]) -> UnitLosses:
        keep = self.counted_positions(inputs["labels"])
        indices = inputs["teacher_topk_indices"][keep]
        vocab = inputs["student_logits"].shape[-1]
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= vocab):
            message = (
                f"{self.name}: teacher_topk_indices must lie in [0, {vocab}) (the student's vocabulary) at counted "
                f"positions, found values in [{int(indices.min())}, {int(indices.max())}]"
            )
            raise LossInputError(message)
        student = torch.log_softmax(upcast(inputs["student_logits"][keep]) / self.temperature, dim=-1)
        teacher = upcast(inputs["teacher_topk_logps"][keep]).to(student.dtype)
        student_topk = student.gather(-1, indices.to(student.device))
        valid = teacher > -torch.inf
        if self.log_prob_min_clamp is not None:
            floor = self.log_prob_min_clamp
            student_topk = student_topk.clamp(min=floor)
            teacher = torch.where(valid, teacher.clamp(min=floor), teacher)
        covered = valid.any(-1)
        losses = torch.zeros(student.shape[0], dtype=student.dtype, device=student.device)
        if bool(covered.any()):
            losses = losses.index_put((covered.nonzero()[:, 0],),
                                      self._divergence(teacher[covered], student_topk[covered], valid[covered]))
        with torch.no_grad():
            zero = torch.zeros((), dtype=student.dtype, device=student.device)
            teacher_mass = torch.where(valid, teacher.exp(), zero).sum(-1)
            student_mass = torch.where(valid, student_topk.exp(), zero).sum(-1)
            count = max(int(keep.sum()), 1)
            self.record_metrics(teacher_mass=teacher_mass.sum() / count, student_mass=student_mass.sum() / count)
        if self.loss_max_clamp is not None:
            losses = losses.clamp(min=-self.loss_max_clamp, max=self.loss_max_clamp)
        return UnitLosses(losses)

    def _divergence(self, teacher: torch.Tensor, student: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``[N]`` divergences of positions with at least one valid entry."""
        zero = torch.zeros((), dtype=teacher.dtype, device=teacher.device)
        if self.normalization == "renormalize":
            teacher = teacher - _masked_logsumexp(teacher, valid)
            student = student - _masked_logsumexp(student, valid)
        safe_teacher = torch.where(valid, teacher, zero)
        safe_student = torch.where(valid, student, zero)
        terms = torch.where(valid, safe_teacher.exp() * (safe_teacher - safe_student), zero).sum(-1)
        if self.normalization == "none":
            return terms.clamp(min=0.0)
        if self.normalization == "tail":
            teacher_tail, student_tail = _tail(teacher, valid), _tail(student, valid)
            terms = terms + (teacher_tail.exp() * (teacher_tail - student_tail)).squeeze(-1)
        return terms

    @classmethod
    def example_inputs(cls, *, batch_size=4, generator=None, dtype=torch.float32, device="cpu") -> LossExample:
        seq, vocab, k = 6, 9, 3
        teacher = 2.0 * torch.randn(batch_size, seq, vocab, generator=generator, dtype=torch.float64)
        student = teacher + torch.randn(batch_size, seq, vocab, generator=generator, dtype=torch.float64)
        top = torch.log_softmax(teacher, dim=-1).topk(k, dim=-1)
        labels = torch.randint(0, vocab, (batch_size, seq), generator=generator)
        labels[:, :2] = -100  # the prompt: its positions are not distilled
        labels[1::3, -1] = -100  # padding at the end of some rows
        outputs = {
            "student_logits": student.to(device, dtype),
            "teacher_topk_logps": top.values.to(device, dtype),
            "teacher_topk_indices": top.indices.to(device),
        }
        return LossExample(outputs, labels.to(device))
