"""The zoo TRL trainers in one process or in two (DDP over gloo on CPU), for ``test_multiprocess.py``.

::

    python multiprocess_runs.py --model DIR --out DIR --cases sft,dpo              # one process: the reference
    torchrun --standalone --nproc_per_node 2 multiprocess_runs.py --model DIR --out DIR --cases sft,dpo

Both launches of a case see the same global batches: each rank's per-device batch is the case's ``batch``, and
the single process's is ``WORLD * batch``. Accelerate gives rank ``r`` the ``r``-th per-device slice of each
global batch, so rank 0 and rank 1 together hold exactly the single process's micro-batch, and the ranks hold
different numbers of loss units (tokens, pairs, completions). Rank 0 writes ``<case>-w<world>.json`` (the
logged loss and gradient norm per step, every rank's local unit count per count) and ``<case>-w<world>.pt``
(the final parameters).

GRPO needs two things fixed for that to hold: the completions (sampling differs with the batch split) come
from a scripted ``rollout_func``, a function of the prompt and of the completion's row in the global generation
batch; and TRL's ``shuffle_sequence_dict`` (a ``torch.randperm`` of each rank's generation batch before it is
cut into micro-batches) becomes a fixed order: the identity on each rank, and for the single process the
order that puts in its micro-batch ``k`` the rows that the two ranks hold in their micro-batch ``k``.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from trl_runs import STEPS, make_trainer, tiny, train_steps, uneven_sft

import swift_zoo.integrations.trl as zoo_trl

WORLD = 2  # the multi-process runs; the single process emulates its global batch


class CountRecorder:
    """Records each local unit count before it is summed over ranks (mixed in before the zoo trainer)."""

    def _sum_over_ranks(self, count: torch.Tensor) -> torch.Tensor:
        self.local_counts.append(int(count))
        return super()._sum_over_ranks(count)


class LocalCount:
    """The control: the pre-fix normalisation, each rank's local count and no factor for DDP's average."""

    def _zoo_gathers(self) -> bool:
        return False


@dataclass(frozen=True)
class Case:
    kind: str
    zoo: dict[str, Any]
    batch: int  # per-device batch of a rank; the single process gets WORLD times it
    dataset: Any = None
    config: dict[str, Any] = field(default_factory=dict)
    control: bool = False  # only run in several processes, with LocalCount


def scripted_rollout(prompts: list, trainer: Any) -> dict[str, Any]:
    """GRPO's completions as a function of the prompt's word and the row ``g`` in the global generation batch:
    right or wrong word by the row's parity, 1 to 3 repetitions, and every fifth row cut before the end of
    turn (masked by ``mask_truncated_completions``: a completion without trained tokens)."""
    prompt_ids = trainer._tokenize_prompts(prompts)[0]
    tokenizer = trainer.processing_class
    first = trainer.accelerator.process_index * len(prompts)
    completion_ids = []
    for row, prompt in enumerate(prompts, start=first):
        word = prompt[-1]["content"].split()[1]
        said = word if row % 2 == 0 else tiny.WORDS[(tiny.WORDS.index(word) + row) % len(tiny.WORDS)]
        ids = tokenizer(" ".join([said] * (1 + row // 2 % 3)), add_special_tokens=False)["input_ids"]
        completion_ids.append(ids if row % 5 == 3 else [*ids, tokenizer.eos_token_id])
    return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}


def fixed_order(world: int, batch: int):
    """``shuffle_sequence_dict`` replaced: rows ``r * n + k * batch + j`` (rank ``r``'s row ``k * batch + j``)
    in the order ``k, r, j``; the identity when ``world == 1``."""

    def order(seq_dict: dict[str, Any]) -> dict[str, Any]:
        size = len(next(v for v in seq_dict.values() if v is not None))
        per_rank = size // world
        index = [r * per_rank + k * batch + j for k in range(per_rank // batch) for r in range(world)
                 for j in range(batch)]

        def permute(value: Any) -> Any:
            if isinstance(value, torch.Tensor) and value.ndim >= 1:
                return value[index]
            if isinstance(value, list):
                return [value[i] for i in index]
            return value

        return {key: permute(value) for key, value in seq_dict.items()}

    return order


GRPO = {"num_generations": 4, "steps_per_generation": 4, "gradient_accumulation_steps": 2,
        "max_completion_length": 8, "mask_truncated_completions": True}

CASES = {
    # tokens: completions of 1 to 4 words
    "sft": Case("SFTTrainer", {"loss_type": "cross_entropy"}, 2, uneven_sft),
    # the same from the hidden states and the LM head, outside the model's forward (DDP must still reduce its grad)
    "sft_fused": Case("SFTTrainer", {"loss_type": "fused_linear_cross_entropy"}, 2, uneven_sft),
    # pairs: 15 pairs, so the last micro-batch of each epoch has 2 pairs on rank 0 and 1 on rank 1
    "dpo": Case("DPOTrainer", {"loss_type": "dpo"}, 2, lambda: tiny.preference_dataset(15),
                {"accelerator_config": {"even_batches": False}}),
    # tokens over a window of 2 micro-steps, 2 windows per generation batch (steps 2 and 4 off-policy)
    "grpo_dapo": Case("GRPOTrainer", {"loss_type": "dapo"}, 2, config=GRPO),
    # completions with a trained token, with the reference model's KL
    "grpo_grpo": Case("GRPOTrainer", {"loss_type": "grpo"}, 2, config={**GRPO, "beta": 0.04}),
    "sft_local_count": Case("SFTTrainer", {"loss_type": "cross_entropy"}, 2, uneven_sft, control=True),
}


def run_case(name: str, case: Case, model_dir: Path, out: Path, world: int, rank: int) -> None:
    base = getattr(zoo_trl, f"Zoo{case.kind}")
    mixins = (CountRecorder, LocalCount) if case.control else (CountRecorder,)
    trainer_class = type(f"Recording{base.__name__}", (*mixins, base), {})
    trainer_kwargs = {}
    if case.kind == "GRPOTrainer":
        from trl.trainer import grpo_trainer

        grpo_trainer.shuffle_sequence_dict = fixed_order(WORLD if world == 1 else 1, case.batch)
        trainer_kwargs["rollout_func"] = scripted_rollout
    batch = case.batch * (WORLD if world == 1 else 1)
    trainer = make_trainer(case.kind, model_dir, out / f"{name}-w{world}", zoo=case.zoo,
                           dataset=case.dataset() if case.dataset else None, trainer_class=trainer_class,
                           trainer_kwargs=trainer_kwargs, per_device_train_batch_size=batch, **case.config)
    trainer.local_counts = []
    steps = [{"loss": s["loss"], "grad_norm": s["grad_norm"]} for s in train_steps(trainer)]
    assert len(steps) == STEPS, steps
    counts = [trainer.local_counts]
    if world > 1:
        counts = [None] * world
        torch.distributed.all_gather_object(counts, trainer.local_counts)
    if rank == 0:
        params = {k: v.detach().clone() for k, v in trainer.accelerator.unwrap_model(trainer.model).state_dict().items()}
        torch.save(params, out / f"{name}-w{world}.pt")
        (out / f"{name}-w{world}.json").write_text(json.dumps({"steps": steps, "local_counts": counts}))
    trainer.accelerator.wait_for_everyone()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is experimental in TRL 1.16
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.cases.split(","):
        case = CASES[name]
        if case.control and world == 1:
            continue
        run_case(name, case, args.model, args.out, world, rank)


if __name__ == "__main__":
    main()
