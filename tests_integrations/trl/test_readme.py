"""The README's TRL name table is the one generated from ``TRL_EQUIVALENTS``, and its TRL example runs."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import make_trainer

from swift_zoo.integrations.trl import equivalents_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_table_is_generated_from_the_data():
    assert equivalents_markdown() in README.read_text(), (
        "README's TRL table is stale: paste swift_zoo.integrations.trl.equivalents_markdown() into it")


def test_readme_example_runs(model_dir, tmp_path):
    section = README.read_text().split("### Use it from TRL", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    trainer = make_trainer("DPOTrainer", model_dir, tmp_path, zoo={"loss_type": "dpo"})  # the README's names
    namespace = {"model": trainer.model, "ref_model": trainer.ref_model, "pairs": trainer.train_dataset,
                 "tokenizer": trainer.processing_class}
    code = code.replace('output_dir="out"', f'output_dir="{tmp_path}", use_cpu=True, bf16=False, max_steps=1, '
                                              'report_to="none", save_strategy="no"')
    exec(compile(code, "README", "exec"), namespace)  # the README's own snippet
    assert namespace["trainer"].state.global_step == 1
