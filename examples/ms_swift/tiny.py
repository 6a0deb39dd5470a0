"""A tiny Llama and its datasets, built offline, for running ms-swift with swift zoo on a CPU.

``python examples/ms_swift/tiny.py DIR`` writes

* ``DIR/model``: a byte-level BPE tokenizer trained here with ``tokenizers`` (vocabulary 400, ChatML
  template) and a ``LlamaForCausalLM`` (hidden 64, 2 layers, 4 heads, 2 KV heads, ~125 k parameters)
  saved with ``save_pretrained``; nothing is downloaded;
* ``DIR/data``: ``sft.jsonl`` (messages), ``dpo.jsonl`` (messages + ``rejected_response``), ``kto.jsonl``
  (messages + ``label``), ``embedding.jsonl`` (anchor, positive, 2 negatives), ``embedding_pairs.jsonl``
  (anchor, positive, a similar (1) or dissimilar (0) ``label``), ``reranker.jsonl`` (query, positive,
  3 negatives), 64 rows each, in ms-swift's dataset formats (``--task_type embedding`` / ``reranker``
  for the last three).

ms-swift needs ``--model_type llama --template chatml --check_model false`` for this model (a bare
``LlamaForCausalLM`` matches several model types, and the model check calls the hub).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

SPECIAL_TOKENS = ["<pad>", "<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
WORDS = ("red green blue cat dog bird one two three sun moon star tree leaf river stone apple pear "
         "run walk jump fast slow big small hot cold up down left right yes no").split()
ROWS = 64
MODEL_ARGS = ["--model_type", "llama", "--template", "chatml", "--check_model", "false"]


def _sentence(rng: random.Random, length: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(length))


def _rows(seed: int) -> list[tuple[str, str, str]]:
    """``(prompt, good answer, bad answer)``: the good answer repeats the prompt, the bad one reverses it."""
    rng = random.Random(seed)
    rows = []
    for _ in range(ROWS):
        words = _sentence(rng, rng.randint(2, 6)).split()
        prompt = "repeat: " + " ".join(words)
        rows.append((prompt, " ".join(words), " ".join(reversed(words)) + " " + _sentence(rng, rng.randint(0, 3))))
    return rows


def write_datasets(folder: str | Path, seed: int = 0) -> dict[str, Path]:
    """The jsonl files in ms-swift's formats (see the module docstring); returns their paths by name."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = _rows(seed)
    records = {
        "sft": [{"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": good}]}
                for p, good, _ in rows],
        "dpo": [{"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": good}],
                 "rejected_response": bad} for p, good, bad in rows],
        "kto": [{"messages": [{"role": "user", "content": p},
                              {"role": "assistant", "content": good if i % 2 == 0 else bad}],
                 "label": i % 2 == 0} for i, (p, good, bad) in enumerate(rows)],
    }
    rng = random.Random(seed + 1)
    user = [{"role": "user", "content": p} for p, _, _ in rows]
    records["embedding"] = [
        {"messages": [u], "positive_messages": [[{"role": "user", "content": good}]],
         "negative_messages": [[{"role": "user", "content": _sentence(rng, 4)}] for _ in range(2)]}
        for u, (_, good, _) in zip(user, rows)]
    records["embedding_pairs"] = [
        {"messages": [u], "positive_messages": [[{"role": "user", "content": good if i % 2 else bad}]],
         "label": 1.0 if i % 2 else 0.0}
        for i, (u, (_, good, bad)) in enumerate(zip(user, rows))]
    records["reranker"] = [
        {"messages": [u], "positive_messages": [[{"role": "assistant", "content": good}]],
         "negative_messages": [[{"role": "assistant", "content": _sentence(rng, 4)}] for _ in range(3)]}
        for u, (_, good, _) in zip(user, rows)]
    paths = {}
    for name, items in records.items():
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
        paths[name] = path
    return paths


def build_tokenizer(seed: int = 0):
    """A byte-level BPE ``PreTrainedTokenizerFast`` with ChatML special tokens, trained on the data's words."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    corpus = [" ".join(row) for row in _rows(seed)] + ["user assistant system repeat:"] * 4
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="<|im_end|>", pad_token="<pad>",
        unk_token="<unk>", additional_special_tokens=["<|im_start|>", "<|im_end|>"], chat_template=CHATML,
    )


def build_model(folder: str | Path, seed: int = 0) -> Path:
    """Save the tokenizer and a seeded tiny ``LlamaForCausalLM`` (float32) to ``folder``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    tokenizer = build_tokenizer(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False, torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build(folder: str | Path, seed: int = 0) -> tuple[Path, dict[str, Path]]:
    """``folder/model`` and ``folder/data``; reused when already there."""
    folder = Path(folder)
    model_dir = folder / "model"
    if not (model_dir / "config.json").exists():
        build_model(model_dir, seed)
    return model_dir, write_datasets(folder / "data", seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="where to write model/ and data/")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model_dir, data = build(args.folder, args.seed)
    print(f"model: {model_dir}")
    for name, path in data.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
