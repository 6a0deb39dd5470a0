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
