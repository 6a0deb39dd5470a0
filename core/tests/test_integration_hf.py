"""The HF Trainer path: a zoo loss as compute_loss_func, zoo optimizer/schedule through its hooks, and the
2024 gradient-accumulation bug ruled out: GA 4 x micro-batch 1 == 1 x batch 4 on sequences of different
lengths. Skipped when transformers (the ``[hf]`` extra) is not installed."""

from __future__ import annotations

import copy

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from swift_zoo import BaseLoss, TensorInput, UnitLosses  # noqa: E402
from swift_zoo.integrations.hf import ZooLossFunction, ZooTrainer  # noqa: E402
from swift_zoo.ops import shift_labels  # noqa: E402

LENGTHS = (3, 9, 5, 12)


class TokenCE(BaseLoss):
    """Causal token cross-entropy -log p(y_{t+1} | x_{<=t}), as the zoo's cross_entropy (kept local:
    core is tested without the loss zoo installed). arXiv:0000.00000"""

    name = "token_ce_for_tests"
    reference = "arXiv:0000.00000"
    inputs = (TensorInput("logits", ("B", "T", "V"), differentiable=True, masked_by="labels", mask_shift=1),
              TensorInput("labels", ("B", "T"), dtype="int", role="labels"))

    def per_unit_loss(self, inputs):
        targets = shift_labels(inputs["labels"])
        logits = inputs["logits"].float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-100, reduction="none")
        return UnitLosses(nll, targets != -100)


def tiny_llama():
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32)
    return transformers.LlamaForCausalLM(config)


def dataset():
    g = torch.Generator().manual_seed(1)
    rows = []
    for n in LENGTHS:
        ids = torch.randint(0, 50, (n,), generator=g)
        labels = ids.clone()
        labels[:2] = -100  # a prompt
        rows.append({"input_ids": ids.tolist(), "labels": labels.tolist()})
    return rows


def collate(rows):
    longest = max(len(r["input_ids"]) for r in rows)
    pad = [longest - len(r["input_ids"]) for r in rows]
    return {
        "input_ids": torch.tensor([r["input_ids"] + [0] * p for r, p in zip(rows, pad)]),
        "labels": torch.tensor([r["labels"] + [-100] * p for r, p in zip(rows, pad)]),
        "attention_mask": torch.tensor([[1] * len(r["input_ids"]) + [0] * p for r, p in zip(rows, pad)]),
    }


def one_step_update(tmp_path, *, accumulation, micro_batch):
    model = tiny_llama()
    before = copy.deepcopy(model.state_dict())
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / f"ga{accumulation}"), per_device_train_batch_size=micro_batch,
        gradient_accumulation_steps=accumulation, max_steps=1, learning_rate=1.0, max_grad_norm=0.0,
        report_to=[], use_cpu=True, save_strategy="no", logging_strategy="no", seed=0, data_seed=0,
        lr_scheduler_type="constant", dataloader_drop_last=False, remove_unused_columns=False,
    )
    sgd = torch.optim.SGD(model.parameters(), lr=1.0)
    trainer = ZooTrainer(model=model, args=args, train_dataset=dataset(), data_collator=collate,
                         zoo_loss=TokenCE(), optimizers=(sgd, None))
    trainer.train()
    # with SGD at lr 1 the parameter change is exactly minus the gradient
    return {k: before[k] - v for k, v in model.state_dict().items()}


def test_gradient_accumulation_equals_full_batch(tmp_path):
    accumulated = one_step_update(tmp_path, accumulation=4, micro_batch=1)
    full = one_step_update(tmp_path, accumulation=1, micro_batch=4)
    assert any(g.abs().max() > 0 for g in full.values())
    for name, grad in full.items():
        torch.testing.assert_close(accumulated[name], grad, rtol=1e-4, atol=1e-6,
                                   msg=lambda m, name=name: f"gradient of {name}: {m}")


def test_the_count_comes_from_the_zoo_loss_declarations():
    labels = torch.tensor([[-100, 5, 6, -100], [7, 8, -100, -100]])
    # shifted labels: [5, 6, -100, pad] and [8, -100, -100, pad] -> 3 counted tokens
    assert TokenCE().count_units_from_labels(labels).item() == 3


def test_without_a_count_the_adapter_divides_by_accumulation_steps_once():
    class Fake:
        current_gradient_accumulation_steps = 4
        model = torch.nn.Linear(1, 1)

    loss = TokenCE()
    logits = torch.randn(1, 4, 7)
    labels = torch.tensor([[1, 2, 3, 4]])
    adapter = ZooLossFunction(loss, trainer=Fake())
    assert adapter({"logits": logits}, labels).item() == pytest.approx(loss({"logits": logits}, labels).item() / 4)
    assert adapter({"logits": logits}, labels, num_items_in_batch=6).item() == pytest.approx(
        loss({"logits": logits}, labels, num_items_in_batch=6).item())


@pytest.mark.parametrize(("key", "value", "message"), [
    ("loss_kwarg", {}, "training_args: unknown key 'loss_kwarg'; did you mean 'loss_kwargs'?"),
    ("max_grad_norm", 1.0, "ZooTrainer: zoo_config.max_grad_norm would be ignored: the Trainer reads it from "
                           "TrainingArguments"),
])
def test_zoo_config_keys_the_trainer_would_ignore_are_errors(key, value, message):
    from swift_zoo import ConfigError

    with pytest.raises(ConfigError, match=message):  # raised before the Trainer is built
        ZooTrainer(model=tiny_llama(), zoo_config={"optimizer_type": "sgd_for_tests", key: value})


@pytest.mark.usefixtures("zoo_plain_sgd")
def test_zoo_config_nonfinite_grads_reaches_the_optimizer(tmp_path):
    args = transformers.TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, save_strategy="no")
    trainer = ZooTrainer(model=tiny_llama(), args=args, zoo_config={"optimizer_type": "zoo_plain_sgd",
                                                                    "nonfinite_grads": "raise"})
    assert trainer.create_optimizer().nonfinite_grads == "raise"
