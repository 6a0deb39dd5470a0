"""A zoo loss, optimizer and LR schedule inside ``transformers.Trainer`` (``swift_zoo.integrations.hf.ZooTrainer``).

A tiny ``LlamaForCausalLM`` built from a config (nothing downloaded, no tokenizer: token ids are used
directly) learns to copy a prompt (``BOS p SEP p EOS``, the copy half of the examples' task) with the
zoo's ``cross_entropy``, ``muon`` and a ``cosine`` schedule, on a CPU in well under a minute:

    python examples/hf_trainer.py                      # prints the loss falling and held-out accuracy
    python examples/hf_trainer.py --optimizer adamw --lr 3e-3 --check

``--check`` exits 1 unless the training loss falls to under a fifth of its first value and held-out
greedy next-token accuracy on the completions reaches 0.9.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tinylm.tasks import IGNORE, CopyTask

HELD_OUT_SEED = 12345


class CopyDataset(torch.utils.data.Dataset):
    """``n`` copy examples (fixed length, so the default collator stacks them)."""

    def __init__(self, task: CopyTask, n: int, seed: int) -> None:
        prompts = task.prompts(n, torch.Generator().manual_seed(seed))
        self.input_ids, self.labels = task.sequence(prompts, prompts)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[i], "labels": self.labels[i]}


def tiny_llama(vocab_size: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=32,
                         bos_token_id=1, eos_token_id=3, pad_token_id=0, tie_word_embeddings=False)
    return LlamaForCausalLM(config)


@torch.no_grad()
def held_out_accuracy(model, task: CopyTask, n: int = 256) -> float:
    """Greedy next-token accuracy on the completions of unseen prompts (chance 1/8)."""
    data = CopyDataset(task, n, HELD_OUT_SEED)
    model.eval()
    predicted = model(input_ids=data.input_ids).logits.argmax(-1)[:, :-1]
    model.train()
    targets = data.labels[:, 1:]
    keep = targets != IGNORE
    return ((predicted == targets) & keep).sum().item() / keep.sum().item()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loss", default="cross_entropy", help="a registered token loss (default cross_entropy)")
    parser.add_argument("--optimizer", default="muon", help="a registered optimizer (default muon)")
    parser.add_argument("--lr", type=float, default=0.02, help="learning rate (default 0.02, for muon)")
    parser.add_argument("--scheduler", default="cosine", help="a registered LR schedule (default cosine)")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--check", action="store_true", help="exit 1 unless the loss falls and accuracy >= 0.9")
    args = parser.parse_args()
    try:
        from swift_zoo.integrations.hf import ZooTrainer  # names the [hf] extra when transformers is missing
    except ModuleNotFoundError as exc:
        print(f"hf_trainer.py: error: {exc}", file=sys.stderr)
        return 2
    import transformers

    torch.set_num_threads(1)  # a tiny model gains nothing from intra-op threads on a shared CPU
    transformers.set_seed(0)
    transformers.logging.set_verbosity_error()
    task = CopyTask(symbols=8, prompt_length=6)
    model = tiny_llama(task.vocab_size)
    zoo_config = {"loss_type": args.loss, "optimizer_type": args.optimizer, "optimizer_kwargs": {"lr": args.lr}}
    if args.optimizer == "muon":
        zoo_config["optimizer_kwargs"]["adamw_lr"] = 3e-3  # embeddings, head and norms take AdamW inside Muon
    if args.scheduler:
        zoo_config.update(lr_scheduler_type=args.scheduler, lr_scheduler_kwargs={"warmup_steps": 10})
    before = held_out_accuracy(model, task)
    with tempfile.TemporaryDirectory() as out:
        training_args = transformers.TrainingArguments(
            output_dir=out, max_steps=args.steps, per_device_train_batch_size=32, gradient_accumulation_steps=2,
            logging_steps=10, save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True,
            dataloader_num_workers=0, max_grad_norm=1.0, seed=0,
        )
        trainer = ZooTrainer(model=model, args=training_args, train_dataset=CopyDataset(task, 8192, 0),
                             zoo_config=zoo_config)
        trainer.remove_callback(transformers.PrinterCallback)  # the loss is printed below, once
        print(f"ZooTrainer: loss {args.loss}, optimizer {type(trainer.create_optimizer()).__name__} "
              f"(lr {args.lr}), schedule {args.scheduler or 'the Trainer default (linear)'}, "
              f"{sum(p.numel() for p in model.parameters())} parameters")
        trainer.train()
    losses = [(row["step"], row["loss"]) for row in trainer.state.log_history if "loss" in row]
    for step, value in losses:
        print(f"  step {step:4d}  loss {value:.4f}")
    after = held_out_accuracy(model, task)
    first, last = losses[0][1], losses[-1][1]
    passed = last <= 0.2 * first and after >= 0.9
    print(f"[hf_trainer] training loss {first:.3f} -> {last:.3f}; held-out token accuracy {before:.3f} -> {after:.3f} "
          f"(loss <= 0.2 x first and accuracy >= 0.9: {'PASSED' if passed else 'FAILED'})")
    return 0 if (passed or not args.check) else 1


if __name__ == "__main__":
    raise SystemExit(main())
