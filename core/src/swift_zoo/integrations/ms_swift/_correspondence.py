"""Which zoo loss equals which ms-swift loss, as data: the source of the name table in ``docs/ms_swift.md``.

Each :class:`Correspondence` names a zoo loss, the ms-swift selection it is compared with, and the
relation: ``equal`` (the same values and gradients on the same inputs, tested for every such row
by ``tests_integrations/ms_swift/test_equalities.py`` against ms-swift's and TRL's own functions),
``differs`` (the same idea, a stated difference), or ``not wired`` (the loss cannot run in ms-swift
4.6 and why). :func:`render_table` writes the markdown; ``tools/gen_ms_swift_docs.py`` keeps the
docs in sync (``--check`` fails when they are not). Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

EQUAL, DIFFERS, NOT_WIRED = "equal", "differs", "not wired"


@dataclass(frozen=True)
class Correspondence:
    """One zoo loss against one ms-swift selection.

    :param zoo: the zoo loss (registry name).
    :param host: how ms-swift's own loss is called: ``(kind, name)`` with kind ``loss_map``
        (``swift sft --loss_type name``), ``sft_flag`` (``swift sft --name true``), ``dpo`` / ``cpo`` /
        ``kto`` (``swift rlhf --rlhf_type kind --loss_type name``), ``orpo``, ``grpo``, ``gkd``, ``rm``,
        or ``("", "")`` when ms-swift has no counterpart.
    :param relation: :data:`EQUAL`, :data:`DIFFERS` or :data:`NOT_WIRED`.
    :param settings: ms-swift settings under which the relation holds (and the tests use).
    :param note: the difference, or what to know.
    """

    zoo: str
    host: tuple[str, str]
    relation: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def host_text(self) -> str:
        kind, name = self.host
        if not kind:
            return "none"
        if kind == "loss_map":
            return f"`--loss_type {name}`"
        if kind == "sft_flag":
            return f"`--{name} true`"
        if kind in ("orpo", "gkd", "rm", "ppo"):
            return f"`--rlhf_type {kind}`"
        return f"`--rlhf_type {kind} --loss_type {name}`"

    @property
    def settings_text(self) -> str:
        return " ".join(f"`--{k} {v}`" for k, v in self.settings.items())


_GRPO = "GRPO losses are inline in `GRPOTrainer._compute_loss_and_metrics`; see [GRPO](#grpo)"
_GKD = "the GKD trainer's divergence is inline; no seam"
_IPO = ("ms-swift divides its `ipo` log-probs by the token counts before `dpo_loss`; the zoo loss gets raw "
        "sums and the counts and divides itself (an adapter claiming the bare name `ipo` would divide twice)")
_NLL_MEAN = ("the NLL term: the zoo averages it per pair (exact under micro-batch splitting), TRL over all "
             "chosen tokens of the batch; equal when every chosen completion has the same length")

CORRESPONDENCES: tuple[Correspondence, ...] = (
    Correspondence("cross_entropy", ("loss_map", "cross_entropy"), EQUAL,
                   note="also equal to the model's own loss; loss and grad_norm equal at every step with "
                        "batch 2 x accumulation 2 and 1 x 4"),
    Correspondence("dft", ("sft_flag", "enable_dft_loss"), EQUAL),
    Correspondence("cosine_similarity", ("loss_map", "cosine_similarity"), EQUAL),
    Correspondence("contrastive", ("loss_map", "contrastive"), EQUAL),
    Correspondence("online_contrastive", ("loss_map", "online_contrastive"), DIFFERS,
                   note="ms-swift sums the selected pairs' losses; the zoo averages them over the batch's pairs"),
    Correspondence("infonce", ("loss_map", "infonce"), EQUAL,
                   note="equal unless a candidate equals a query's positive exactly: the zoo never counts a "
                        "copy of the positive as a negative. The zoo does not gather other ranks' embeddings"),
    Correspondence("pointwise_reranker", ("loss_map", "pointwise_reranker"), EQUAL),
    Correspondence("listwise_reranker", ("loss_map", "listwise_reranker"), EQUAL),
    Correspondence("dpo", ("dpo", "sigmoid"), EQUAL, {"label_smoothing": 0.1}),
    Correspondence("robust_dpo", ("dpo", "robust"), EQUAL, {"label_smoothing": 0.1}),
    Correspondence("hinge", ("dpo", "hinge"), EQUAL),
    Correspondence("ipo", ("dpo", "ipo"), EQUAL, note=_IPO),
    Correspondence("exo_pair", ("dpo", "exo_pair"), EQUAL,
                   note="`--label_smoothing 0` means 1e-3 in both"),
    Correspondence("nca_pair", ("dpo", "nca_pair"), EQUAL),
    Correspondence("sppo_hard", ("dpo", "sppo_hard"), EQUAL),
    Correspondence("aot", ("dpo", "aot"), EQUAL),
    Correspondence("aot_unpaired", ("dpo", "aot_unpaired"), EQUAL),
    Correspondence("apo_zero", ("dpo", "apo_zero"), EQUAL),
    Correspondence("apo_down", ("dpo", "apo_down"), EQUAL),
    Correspondence("discopop", ("dpo", "discopop"), EQUAL, {"discopop_tau": 0.05}),
    Correspondence("bco_pair", ("dpo", "bco_pair"), DIFFERS,
                   note="ms-swift shifts the rewards by a running mean of past batches (TRL's RunningMoments); "
                        "the zoo's `bco_pair` by a constant `delta` (default 0). The running-mean BCO is the "
                        "zoo's unpaired `bco`"),
    Correspondence("rpo", ("dpo", "sigmoid"), DIFFERS, {"rpo_alpha": 1.0}, note=_NLL_MEAN),
    Correspondence("dpo_norm", ("", ""), DIFFERS, note="TRL 1.x's `sigmoid_norm`; not in ms-swift 4.6"),
    Correspondence("sft", ("dpo", "sft"), EQUAL,
                   note="the chosen completions' NLL, one token mean over the batch, in both"),
    Correspondence("simpo", ("cpo", "simpo"), EQUAL, {"cpo_alpha": 0},
                   note="`--rlhf_type simpo` is this (CPO trainer, `--beta` 2); `zoo:simpo` also runs under "
                        "`--rlhf_type dpo` with no reference pass. With `--cpo_alpha` > 0 TRL's NLL term is "
                        "added to either, as for ms-swift's own `simpo`"),
    Correspondence("cpo", ("cpo", "sigmoid"), EQUAL, {"cpo_alpha": 0},
                   note=f"with `--cpo_alpha` > 0, {_NLL_MEAN}"),
    Correspondence("alphapo", ("", ""), DIFFERS,
                   note="TRL's CPO trainer has AlphaPO's `alpha`, but ms-swift 4.6 exposes no argument for it"),
    Correspondence("orpo", ("orpo", "orpo"), DIFFERS, note=_NLL_MEAN),
    Correspondence("kto", ("kto", "kto"), EQUAL,
                   note="the zoo loss gets TRL's KL reference point (gathered over processes) as `kl_baseline`"),
    Correspondence("apo_zero_unpaired", ("kto", "apo_zero_unpaired"), EQUAL),
    Correspondence("bco", ("", ""), DIFFERS, note="runs under `--rlhf_type kto`; ms-swift has no BCO trainer"),
    *(Correspondence(name, ("grpo", name), NOT_WIRED, note=_GRPO)
      for name in ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo")),
    *(Correspondence(name, ("", ""), NOT_WIRED, note=_GRPO)
      for name in ("gmpo", "gpg", "clip_cov", "kl_cov", "luspo", "vespo")),
    Correspondence("gspo", ("grpo", "grpo"), NOT_WIRED, note="ms-swift: `--importance_sampling_level sequence`. "
                   + _GRPO),
    Correspondence("kl_penalty", ("", ""), NOT_WIRED, note="the `--beta` KL term inside ms-swift's GRPO loss. " + _GRPO),
    Correspondence("ppo", ("ppo", "ppo"), NOT_WIRED, note="`--rlhf_type ppo` is TRL's PPOTrainer, whose loss is inline"),
    Correspondence("forward_kl", ("gkd", "gkd"), NOT_WIRED, note=f"`--beta 0`; {_GKD}"),
    Correspondence("reverse_kl", ("gkd", "gkd"), NOT_WIRED, note=f"`--beta 1`; {_GKD}"),
    Correspondence("generalized_jsd", ("gkd", "gkd"), NOT_WIRED, note=f"`--beta` in (0, 1); {_GKD}"),
    Correspondence("tvd", ("", ""), NOT_WIRED, note=_GKD),
    Correspondence("forward_kl_topk", ("", ""), NOT_WIRED, note=_GKD),
    Correspondence("bradley_terry", ("rm", "rm"), NOT_WIRED, note="TRL's RewardTrainer; its loss is inline"),
    Correspondence("fused_linear_cross_entropy", ("", ""), NOT_WIRED,
                   note="reads hidden states and the LM head weight; ms-swift hands a loss the logits "
                        "(use `zoo:cross_entropy`)"),
    Correspondence("matryoshka", ("", ""), "",
                   note="runs where the embedding loss it wraps runs; ms-swift's own Matryoshka is `--mrl_dims` "
                        "around any embedding `--loss_type` (zoo ones included); the two are not compared"),
    Correspondence("weighted_sum", ("", ""), "",
                   note="runs where all its terms run (e.g. `dpo` + `bco_pair` under `--rlhf_type dpo`); terms "
                        "of different families (TRL's MPO: `dpo` + `cross_entropy`) need inputs no single "
                        "ms-swift trainer supplies and are refused"),
)

BY_ZOO_NAME: dict[str, Correspondence] = {c.zoo: c for c in CORRESPONDENCES}


def render_table(rows: list[tuple[str, str, str]]) -> str:
    """The name table: one row per zoo loss ``(name, family where-text, family name)``, in registry order."""
    lines = ["| `--loss_type` | runs under | ms-swift's own | relation | settings | note |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, where, _family in rows:
        found = BY_ZOO_NAME.get(name)
        host = found.host_text if found else "none"
        relation = found.relation if found else ""
        settings = found.settings_text if found else ""
        note = found.note if found else ""
        cells = [f"`zoo:{name}`", where, host, relation or "—", settings, note]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)
