"""Which ms-swift trainer a zoo loss runs under, read off the inputs it declares.

A loss's family is decided by the keys of its declared inputs (the instance's ``inputs``, so a
composition such as ``weighted_sum`` is classified by what its terms read). Each family lists the
keys ms-swift can supply and where ms-swift computes them:

=====================  =====================================================  ==========================
family                 reads                                                  runs under
=====================  =====================================================  ==========================
token                  ``logits [B, T, V]``, ``labels [B, T]``                ``swift sft/pt``, task causal_lm
embedding_pair         ``embeddings_a``, ``embeddings_b [B, D]``, ``labels``  ``--task_type embedding``
infonce                ``query_/positive_/negative_embeddings``               ``--task_type embedding``
pointwise_reranker     ``logits [B]``, ``labels [B]``                         ``--task_type reranker``
listwise_reranker      ``logits [B, G]``, ``candidate_mask``                  ``--task_type reranker``
paired_reference       summed chosen/rejected log-probs, reference, lengths   ``swift rlhf --rlhf_type dpo``
paired                 the same without reference                             ``--rlhf_type dpo|cpo|orpo``
unpaired               ``policy_logps``, ``is_desirable``, reference, KL      ``--rlhf_type kto``
=====================  =====================================================  ==========================

Policy-gradient (GRPO family), distillation and reward-model losses have no seam in ms-swift 4.6
that an adapter can wrap without copying the trainer; they are refused with the reason.
Torch-free: classification reads only the declarations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from swift_zoo._errors import ConfigError

DOCS = "docs/ms_swift.md"
GRPO_REASON = (
    "ms-swift 4.6 computes the GRPO-family loss inline in GRPOTrainer._compute_loss_and_metrics (per-token "
    "ratio, clipping, masks and normaliser in one ~200-line method), so there is no seam to wrap without "
    f"copying the trainer; see 'GRPO' in {DOCS} for the upstream change that would allow it"
)

_PAIR_KEYS = ("policy_chosen_logps", "policy_rejected_logps", "chosen_lengths", "rejected_lengths")
_REFERENCE_KEYS = ("reference_chosen_logps", "reference_rejected_logps")


@dataclass(frozen=True)
class Family:
    """A kind of loss, the input keys ms-swift's adapter supplies for it, and where it runs.

    :param markers: keys that identify the family (all must be declared).
    :param provided: every key the adapter can supply; a loss requiring another key does not fit.
    :param task_types: ``swift sft/pt --task_type`` values it runs under.
    :param rlhf_types: ``swift rlhf --rlhf_type`` values it runs under (``simpo`` counts as ``cpo``).
    :param logits_dims: the rank ``logits`` must have, when the family reads logits.
    :param unsupported: why it cannot run in ms-swift, when it cannot.
    """

    name: str
    summary: str
    markers: frozenset[str]
    provided: frozenset[str] = frozenset()
    task_types: tuple[str, ...] = ()
    rlhf_types: tuple[str, ...] = ()
    logits_dims: int | None = None
    unsupported: str = ""

    @property
    def where(self) -> str:
        """How to run a loss of this family, as a command fragment."""
        if self.rlhf_types:
            return f"swift rlhf --rlhf_type {'|'.join(self.rlhf_types)}"
        if self.task_types == ("causal_lm",):
            return "swift sft or swift pt (--task_type causal_lm, the default)"
        if self.task_types:
            return f"swift sft --task_type {'|'.join(self.task_types)}"
        return "nowhere in ms-swift 4.6"

    def runs_under(self, *, rlhf_type: str | None = None, task_type: str | None = None) -> bool:
        if rlhf_type is not None:
            return ("cpo" if rlhf_type == "simpo" else rlhf_type) in self.rlhf_types
        return (task_type or "causal_lm") in self.task_types


TOKEN = Family("token", "token-level causal-LM loss", frozenset({"logits", "labels"}),
               frozenset({"logits", "labels"}), task_types=("causal_lm",), logits_dims=3)
EMBEDDING_PAIR = Family("embedding_pair", "sentence-pair embedding loss",
                        frozenset({"embeddings_a", "embeddings_b", "labels"}),
                        frozenset({"embeddings_a", "embeddings_b", "labels"}), task_types=("embedding",))
INFONCE = Family("infonce", "query/positive/negatives embedding loss",
                 frozenset({"query_embeddings", "positive_embeddings"}),
                 frozenset({"query_embeddings", "positive_embeddings", "negative_embeddings", "negative_mask"}),
                 task_types=("embedding",))
POINTWISE_RERANKER = Family("pointwise_reranker", "one relevance logit per (query, document)",
                            frozenset({"logits", "labels"}), frozenset({"logits", "labels"}),
                            task_types=("reranker", "generative_reranker"), logits_dims=1)
LISTWISE_RERANKER = Family("listwise_reranker", "candidate lists with the positive first",
                           frozenset({"logits"}), frozenset({"logits", "candidate_mask"}),
                           task_types=("reranker", "generative_reranker"), logits_dims=2)
PAIRED_REFERENCE = Family("paired_reference", "paired preference loss against a reference model",
                          frozenset({"policy_chosen_logps", "policy_rejected_logps", *_REFERENCE_KEYS}),
                          frozenset({*_PAIR_KEYS, *_REFERENCE_KEYS}), rlhf_types=("dpo",))
PAIRED = Family("paired", "reference-free paired preference loss",
                frozenset({"policy_chosen_logps"}), frozenset(_PAIR_KEYS),  # "sft" reads the chosen side only
                rlhf_types=("dpo", "cpo", "orpo"))
UNPAIRED = Family("unpaired", "unpaired (desirable / undesirable) preference loss",
                  frozenset({"policy_logps", "is_desirable"}),
                  frozenset({"policy_logps", "is_desirable", "reference_logps", "kl_baseline", "policy_kl_logps",
                             "reference_kl_logps"}), rlhf_types=("kto",))
POLICY = Family("policy", "policy-gradient (GRPO family) loss", frozenset({"advantages"}), unsupported=GRPO_REASON)
DISTILL = Family("distill", "teacher-student distillation loss", frozenset({"teacher_logits"}),
                 unsupported="ms-swift's GKD trainer computes its divergence inline (gkd_trainer.py) with no "
                             "per-loss seam; use these losses with the zoo's own loop or the HF Trainer adapter")
REWARD = Family("reward", "reward-model loss", frozenset({"chosen_rewards"}),
                unsupported="ms-swift's reward trainer is TRL's RewardTrainer, whose loss is inline; use the "
                            "zoo's own loop or the HF Trainer adapter")
OTHER = Family("other", "a loss whose inputs no ms-swift trainer supplies", frozenset(),
               unsupported="no ms-swift trainer supplies the inputs it declares")

FAMILIES: tuple[Family, ...] = (
    POLICY, DISTILL, REWARD, TOKEN, POINTWISE_RERANKER, LISTWISE_RERANKER, EMBEDDING_PAIR, INFONCE,
    PAIRED_REFERENCE, PAIRED, UNPAIRED,
)


def classify(inputs: Sequence[Any]) -> Family:
    """The family of a loss declaring ``inputs`` (``TensorInput`` records), or :data:`OTHER`."""
    declared = {spec.key: spec for spec in inputs}
    required = {key for key, spec in declared.items() if not spec.optional}
    for family in FAMILIES:
        if not family.markers <= declared.keys():
            continue
        if family.unsupported:
            return family
        if not required <= family.provided:
            continue
        if family.logits_dims is not None and len(declared["logits"].shape) != family.logits_dims:
            continue
        if family is PAIRED and any(key in declared for key in _REFERENCE_KEYS):
            continue
        return family
    return OTHER


def check_route(family: Family, host_name: str, inputs: Sequence[Any], *, rlhf_type: str | None = None,
                task_type: str | None = None) -> None:
    """Raise :class:`ConfigError` unless a ``family`` loss runs where the user asked for it."""
    keys = ", ".join(spec.key for spec in inputs)
    asked = f"swift rlhf --rlhf_type {rlhf_type}" if rlhf_type is not None else (
        f"swift sft/pt with task_type {task_type or 'causal_lm'}")
    if family.unsupported:
        message = (f"--loss_type {host_name}: a {family.summary} (reads {keys}) cannot run under {asked}: "
                   f"{family.unsupported}")
        raise ConfigError(message, key="loss_type", expected="a loss ms-swift can feed", found=host_name)
    if family.runs_under(rlhf_type=rlhf_type, task_type=task_type):
        return
    message = (f"--loss_type {host_name} is a {family.summary} (reads {keys}): run it with "
               f"`{family.where} --loss_type {host_name}`, not with {asked}")
    raise ConfigError(message, key="loss_type", expected=family.where, found=asked)
