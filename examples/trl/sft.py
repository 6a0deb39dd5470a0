"""SFT of the tiny chat model with a zoo loss inside TRL's SFTTrainer: ``python examples/trl/sft.py``."""

from __future__ import annotations

import tiny
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig

from swift_zoo.integrations.trl import ZooSFTTrainer


def main() -> dict:
    model_dir, steps, out = tiny.parse_args(__doc__)
    trainer = ZooSFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        args=SFTConfig(**tiny.config_kwargs(out, steps)),
        train_dataset=tiny.sft_dataset(),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        # the LM head never builds [B, T, V] logits; a zoo optimizer and schedule too
        zoo_config={"loss_type": "fused_linear_cross_entropy", "optimizer_type": "lion",
                    "optimizer_kwargs": {"lr": 3e-4}, "lr_scheduler_type": "cosine"},
    )
    trainer.train()
    return tiny.report("sft", trainer)


if __name__ == "__main__":
    main()
