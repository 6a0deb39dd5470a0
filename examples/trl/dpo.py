"""Preference training of the tiny chat model inside TRL's DPOTrainer: the zoo's ``robust_dpo`` against a
reference model, then the reference-free ``simpo`` (no reference model is loaded):
``python examples/trl/dpo.py``."""

from __future__ import annotations

import tiny
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig

from swift_zoo.integrations.trl import ZooDPOTrainer


def main() -> list[dict]:
    model_dir, steps, out = tiny.parse_args(__doc__)
    results = []
    for zoo_config, ref in (({"loss_type": "robust_dpo", "loss_kwargs": {"label_smoothing": 0.1}}, True),
                            ({"loss_type": "simpo", "loss_kwargs": {"beta": 2.0, "gamma_beta_ratio": 0.5}}, False)):
        trainer = ZooDPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(model_dir),
            ref_model=AutoModelForCausalLM.from_pretrained(model_dir) if ref else None,
            args=DPOConfig(**tiny.config_kwargs(out / zoo_config["loss_type"], steps)),
            train_dataset=tiny.preference_dataset(),
            processing_class=AutoTokenizer.from_pretrained(model_dir),
            zoo_config=zoo_config,
        )
        trainer.train()
        results.append(tiny.report("dpo", trainer))
    return results


if __name__ == "__main__":
    main()
