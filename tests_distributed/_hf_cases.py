"""What each rank runs for the HF Trainer test: ``ZooTrainer`` with ``muon`` and an FSDP2 config, on CPU.

Returns what accelerate did with the config (its distributed type), whether the optimizer's parameters are
DTensors (FSDP2 applied) and the final parameters, so the test can state what happens.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import torch

LENGTHS = (6, 9, 5, 12, 7, 8, 10, 11)


def _rows() -> list[dict[str, list[int]]]:
    generator = torch.Generator().manual_seed(1)
    rows = []
    for n in LENGTHS:
        ids = torch.randint(0, 50, (n,), generator=generator)
        labels = ids.clone()
        labels[:2] = -100
        rows.append({"input_ids": ids.tolist(), "labels": labels.tolist()})
    return rows


def _collate(rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
    longest = max(len(r["input_ids"]) for r in rows)
    pad = [longest - len(r["input_ids"]) for r in rows]
    return {
        "input_ids": torch.tensor([r["input_ids"] + [0] * p for r, p in zip(rows, pad)]),
        "labels": torch.tensor([r["labels"] + [-100] * p for r, p in zip(rows, pad)]),
        "attention_mask": torch.tensor([[1] * len(r["input_ids"]) + [0] * p for r, p in zip(rows, pad)]),
    }


def run(rank: int, world_size: int, payload: Any = None) -> dict[str, Any]:
    import transformers

    from swift_zoo.integrations.hf import ZooTrainer

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_WORLD_SIZE=str(world_size))
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32)
    model = transformers.LlamaForCausalLM(config)
    with tempfile.TemporaryDirectory() as out:
        args = transformers.TrainingArguments(
            output_dir=out, per_device_train_batch_size=2, max_steps=2, learning_rate=0.02, report_to=[],
            use_cpu=True, save_strategy="no", logging_strategy="no", seed=0, data_seed=0, max_grad_norm=0.0,
            lr_scheduler_type="constant", remove_unused_columns=False, fsdp=True,
            fsdp_config={"fsdp_version": 2, "transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"]},
        )
        trainer = ZooTrainer(model=model, args=args, train_dataset=_rows(), data_collator=_collate,
                             zoo_config={"loss_type": "cross_entropy", "optimizer_type": "muon",
                                         "optimizer_kwargs": {"lr": 0.02, "adamw_lr": 1e-2}})
        trainer.train()
    optimizer = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
    params = [p for group in optimizer.param_groups for p in group["params"]]
    return {
        "distributed_type": str(trainer.accelerator.state.distributed_type),
        "dtensor_params": sum(type(p).__name__ == "DTensor" for p in params),
        "params": len(params),
        "optimizer": type(optimizer).__name__,
    }
