"""A tiny chat model and the four TRL datasets, built offline in seconds (nothing downloaded).

* tokenizer: byte-level BPE (vocabulary at most 400) trained here with ``tokenizers`` on the task's own text,
  special tokens ``<pad> <unk> <s> </s> <|im_start|> <|im_end|>``, a ChatML chat template;
* model: ``LlamaForCausalLM`` with hidden size 64, 2 layers, 4 attention heads (2 key/value heads);
* task: "Say W twice." -> "W W" over a small word list; the preference data prefers the right
  answer to a wrong one, KTO labels each answer, GRPO rewards an answer that starts with the word.

``build(folder)`` saves the model and tokenizer there (TRL loads a reference model from that path
when it needs one) and returns the folder.
"""

from __future__ import annotations

from pathlib import Path

WORDS = ("apple", "river", "stone", "cloud", "tiger", "lemon", "music", "green", "paper", "light",
         "ocean", "piano", "chair", "bread", "sugar", "smile")
SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>")
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def prompt(word: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Say {word} twice."}]


def answer(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def right(word: str) -> str:
    return f"{word} {word}"


def wrong(index: int) -> str:
    other = WORDS[(index + 5) % len(WORDS)]
    return f"{other} please" if index % 2 else other


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [f"<|im_start|>user\nSay {w} twice.<|im_end|>\n<|im_start|>assistant\n{w} {w} please<|im_end|>\n"
              for w in WORDS] * 4
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", unk_token="<unk>",
                                   bos_token="<s>", eos_token="<|im_end|>")
    fast.chat_template = CHATML
    return fast


def build_model(tokenizer, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(config)


def build(folder: str | Path, seed: int = 0) -> Path:
    """Save a fresh tiny model and its tokenizer to ``folder``; return it."""
    folder = Path(folder)
    tokenizer = build_tokenizer()
    build_model(tokenizer, seed).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def sft_dataset(rows: int = 16):
    from datasets import Dataset

    return Dataset.from_list([{"prompt": prompt(WORDS[i % len(WORDS)]), "completion": answer(right(WORDS[i % len(WORDS)]))}
                              for i in range(rows)])


def preference_dataset(rows: int = 16):
    from datasets import Dataset

    return Dataset.from_list([{"prompt": prompt(WORDS[i % len(WORDS)]), "chosen": answer(right(WORDS[i % len(WORDS)])),
                               "rejected": answer(wrong(i))} for i in range(rows)])


def unpaired_dataset(rows: int = 16):
    from datasets import Dataset

    items = []
    for i in range(rows):
        word = WORDS[i % len(WORDS)]
        desirable = i % 3 != 2
        items.append({"prompt": prompt(word), "completion": answer(right(word) if desirable else wrong(i)),
                      "label": desirable})
    return Dataset.from_list(items)


def prompt_dataset(rows: int = 16):
    from datasets import Dataset

    return Dataset.from_list([{"prompt": prompt(WORDS[i % len(WORDS)]), "word": WORDS[i % len(WORDS)]}
                              for i in range(rows)])


def word_reward(completions, word, **_) -> list[float]:
    """1 when the completion starts with the prompt's word, else the share of its characters it has."""
    rewards = []
    for completion, target in zip(completions, word):
        text = completion[0]["content"] if isinstance(completion, list) else completion
        rewards.append(1.0 if text.strip().startswith(target) else sum(c in target for c in text) / max(len(text), 1))
    return rewards


def config_kwargs(output_dir: str | Path, steps: int) -> dict:
    """TRL config arguments for a short CPU run in float32 (TRL configs default to bf16 autocast)."""
    return {"output_dir": str(output_dir), "max_steps": steps, "logging_steps": 1, "learning_rate": 1e-3,
            "per_device_train_batch_size": 4, "gradient_accumulation_steps": 2, "seed": 42, "use_cpu": True,
            "bf16": False, "report_to": "none", "save_strategy": "no", "disable_tqdm": True}


def parse_args(description: str):
    """``--model DIR`` (built there when missing), ``--steps N``, ``--out DIR``."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default=None, help="tiny model folder (default: built in a temporary folder)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", default=None, help="output folder (default: a temporary folder)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="swift-zoo-trl-"))
    model = Path(args.model) if args.model else scratch / "model"
    if not (model / "config.json").exists():
        build(model)
    return model, args.steps, Path(args.out) if args.out else scratch / "out"


def report(name: str, trainer) -> dict:
    """Print and return the first and last logged loss (and the zoo metrics of the last step)."""
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    first, last = logged[0], logged[-1]
    metrics = {k: round(v, 4) for k, v in last.items() if k in trainer.zoo_loss.metrics}
    print(f"[{name}] {trainer.zoo_loss.display_name}: loss {first['loss']:.4f} -> {last['loss']:.4f} "
          f"over {len(logged)} steps; last metrics {metrics}")
    return {"first": first, "last": last}


if __name__ == "__main__":
    import sys

    print(build(sys.argv[1] if len(sys.argv) > 1 else "tiny-model"))
