"""KTO on unpaired feedback for the tiny chat model inside TRL's KTOTrainer: ``python examples/trl/kto.py``."""

from __future__ import annotations

import tiny
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import KTOConfig

from swift_zoo.integrations.trl import ZooKTOTrainer


def main() -> dict:
    model_dir, steps, out = tiny.parse_args(__doc__)
    trainer = ZooKTOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        ref_model=AutoModelForCausalLM.from_pretrained(model_dir),
        args=KTOConfig(beta=0.1, desirable_weight=0.5, **tiny.config_kwargs(out, steps)),  # 2 desirable : 1
        train_dataset=tiny.unpaired_dataset(),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        zoo_config={"loss_type": "kto"},
    )
    trainer.train()
    return tiny.report("kto", trainer)


if __name__ == "__main__":
    main()
