"""The TRL examples run as written (2 steps each, on the session's tiny model) and train."""

from __future__ import annotations

import importlib
import sys

import pytest
from conftest import EXAMPLES


@pytest.mark.parametrize("script", ["sft", "dpo", "kto", "grpo"])
def test_example_runs(script, model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / f"{script}.py"), "--model", str(model_dir), "--steps", "2",
                                      "--out", str(tmp_path)])
    result = importlib.import_module(script).main()
    for run in result if isinstance(result, list) else [result]:
        assert run["last"]["step"] == 2
    assert f"[{script}]" in capsys.readouterr().out


def test_tiny_model_is_the_documented_size(model_dir):
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(model_dir)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (64, 2, 4)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert len(tokenizer) <= 400 and "<|im_start|>" in tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False)
