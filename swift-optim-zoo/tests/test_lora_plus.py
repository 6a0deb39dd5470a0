"""LoRA+: B matrices found by module structure, lr ratio, ratio 1 == AdamW, update vs float64."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

import swift_zoo
from swift_optim_zoo.lora_plus import LoraPlusAdamW, lora_b_parameter_ids
from swift_zoo.optim import declared_state_bytes, measure_state_bytes


class LoraLinear(nn.Module):
    """PEFT's layout: a frozen base layer plus ModuleDicts ``lora_A`` / ``lora_B`` per adapter."""

    def __init__(self, d_in: int, d_out: int, rank: int = 2) -> None:
        super().__init__()
        self.base_layer = nn.Linear(d_in, d_out)
        self.base_layer.requires_grad_(False)
        self.lora_A = nn.ModuleDict({"default": nn.Linear(d_in, rank, bias=False)})
        self.lora_B = nn.ModuleDict({"default": nn.Linear(rank, d_out, bias=False)})
        nn.init.normal_(self.lora_B["default"].weight, std=0.1)  # non-zero, so A gets gradients too

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base_layer(x) + self.lora_B["default"](self.lora_A["default"](x))


class LoraEmbedding(nn.Module):
    """PEFT's embedding LoRA: ParameterDicts ``lora_embedding_A`` [r, V] / ``lora_embedding_B`` [D, r]."""

    def __init__(self, vocab: int, dim: int, rank: int = 2) -> None:
        super().__init__()
        self.base_layer = nn.Embedding(vocab, dim)
        self.base_layer.requires_grad_(False)
        self.lora_embedding_A = nn.ParameterDict({"default": nn.Parameter(torch.randn(rank, vocab) * 0.1)})
        self.lora_embedding_B = nn.ParameterDict({"default": nn.Parameter(torch.randn(dim, rank) * 0.1)})

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        a = self.lora_embedding_A["default"].t()[ids]
        return self.base_layer(ids) + a @ self.lora_embedding_B["default"].t()


class CustomLora(nn.Module):
    """A hand-written LoRA layer: only the parameter names say which is B."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.lora_A_weight = nn.Parameter(torch.randn(2, dim) * 0.1)
        self.lora_B_weight = nn.Parameter(torch.randn(dim, 2) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + x @ self.lora_A_weight.t() @ self.lora_B_weight.t()


class TinyLoraModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = LoraEmbedding(10, 6)
        self.proj = LoraLinear(6, 6)
        self.custom = CustomLora(6)
        self.norm = nn.LayerNorm(6)
        self.head = nn.Linear(6, 10)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.custom(self.proj(self.embed(ids)))))


def _train(opt: torch.optim.Optimizer, model: nn.Module, steps: int, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        ids = torch.randint(0, 10, (3, 4), generator=gen)
        opt.zero_grad()
        nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten()).backward()
        opt.step()


def test_b_matrices_found_by_structure_and_name_fallback() -> None:
    model = TinyLoraModel()
    found = lora_b_parameter_ids(model)
    expected = {id(model.proj.lora_B["default"].weight), id(model.embed.lora_embedding_B["default"]),
                id(model.custom.lora_B_weight)}
    assert found == expected


def test_groups_and_lr_ratio_kept_by_a_schedule() -> None:
    model = TinyLoraModel()
    opt = swift_zoo.build_optimizer("lora_plus", model, lr=1e-3, loraplus_lr_ratio=8)
    b_groups = [g for g in opt.param_groups if g["lora"] == "B"]
    assert {n for g in b_groups for n in g["param_names"]} == {
        "proj.lora_B.default.weight", "embed.lora_embedding_B.default", "custom.lora_B_weight"}
    assert all(g["lr"] == pytest.approx(8e-3) for g in b_groups)
    assert all(g["lr"] == pytest.approx(1e-3) for g in opt.param_groups if g["lora"] != "B")
    assert all(g["weight_decay"] == 0.0 for g in opt.param_groups if g["role"] in ("norm", "bias"))
    scheduler = swift_zoo.build_scheduler("cosine", opt, num_training_steps=10, warmup_steps=2)
    for _ in range(5):
        opt.step()
        scheduler.step()
    lrs = {g["lora"]: g["lr"] for g in opt.param_groups}
    assert lrs["B"] == pytest.approx(8 * lrs["other"]) and 0 < lrs["other"] < 1e-3


def test_ratio_one_equals_plain_adamw_exactly() -> None:
    torch.manual_seed(0)
    model = TinyLoraModel()
    twin = TinyLoraModel()
    twin.load_state_dict(model.state_dict())
    ours = swift_zoo.build_optimizer("lora_plus", model, lr=1e-2, weight_decay=0.1, loraplus_lr_ratio=1)
    plain = swift_zoo.build_optimizer("adamw", twin, lr=1e-2, weight_decay=0.1)
    _train(ours, model, 4)
    _train(plain, twin, 4)
    for (n, p), q in zip(model.named_parameters(), twin.parameters()):
        assert torch.equal(p, q), n


def reference_adamw(w, grads, *, lr, beta1=0.9, beta2=0.999, eps=1e-8, wd=0.0):
    """Float64 AdamW: w = w(1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps)."""
    w, m, v = w.double().clone(), torch.zeros_like(w, dtype=torch.float64), torch.zeros_like(w, dtype=torch.float64)
    for t, g in enumerate(grads, start=1):
        g = g.double()
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        w = w * (1 - lr * wd) - lr * (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + eps)
    return w


def test_update_matches_float64_reference_with_ratio() -> None:
    model = TinyLoraModel().double()
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = LoraPlusAdamW(model, lr=0.01, weight_decay=0.05, loraplus_lr_ratio=16)
    gen = torch.Generator().manual_seed(0)
    grads = {n: [] for n, p in model.named_parameters() if p.requires_grad}
    for _ in range(3):
        for n, p in model.named_parameters():
            if p.requires_grad:
                p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64)
                grads[n].append(p.grad.clone())
        opt.step()
    b_names = {"proj.lora_B.default.weight", "embed.lora_embedding_B.default", "custom.lora_B_weight"}
    for n, p in model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, start[n])
            continue
        wd = 0.0 if n in ("norm.weight", "norm.bias", "head.bias") else 0.05
        lr = 0.16 if n in b_names else 0.01
        torch.testing.assert_close(p.detach(), reference_adamw(start[n], grads[n], lr=lr, wd=wd),
                                   msg=lambda m, n=n: f"{n}: {m}")


def test_param_groups_tagged_b_get_the_ratio_and_state_roundtrip() -> None:
    a, b = nn.Parameter(torch.randn(3, 2)), nn.Parameter(torch.randn(2, 3))
    opt = LoraPlusAdamW([{"params": [a]}, {"params": [b], "lora": "B"}], lr=1e-3, loraplus_lr_ratio=4)
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 4e-3]
    torch.manual_seed(0)
    model = TinyLoraModel()
    opt = swift_zoo.build_optimizer("lora_plus", model, lr=1e-2)
    _train(opt, model, 2)
    assert measure_state_bytes(opt) <= declared_state_bytes(opt)
    assert model.proj.base_layer.weight not in opt.state
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    twin = TinyLoraModel()
    twin.load_state_dict(model.state_dict())
    opt2 = swift_zoo.build_optimizer("lora_plus", twin, lr=1e-2)
    buffer.seek(0)
    opt2.load_state_dict(torch.load(buffer, weights_only=True))
    _train(opt, model, 2, seed=1)
    _train(opt2, twin, 2, seed=1)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q)


def test_invalid_ratio_message() -> None:
    with pytest.raises(swift_zoo.ConfigError, match="optimizer 'lora_plus': loraplus_lr_ratio must be > 0, got 0"):
        LoraPlusAdamW(TinyLoraModel(), loraplus_lr_ratio=0)
