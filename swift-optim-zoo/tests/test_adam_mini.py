"""Adam-mini: block partition from roles and module structure, update rule vs float64, state contract."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

import swift_zoo
from swift_optim_zoo.adam_mini import AdamMini, block_layouts
from swift_zoo.optim import declared_state_bytes, measure_state_bytes

D, HEADS, KV_HEADS, V = 8, 4, 2, 11
HEAD_DIM = D // HEADS


class Attention(nn.Module):
    def __init__(self, num_heads: int | None = HEADS) -> None:
        super().__init__()
        if num_heads is not None:
            self.num_heads = num_heads
        self.q_proj = nn.Linear(D, D, bias=False)
        self.k_proj = nn.Linear(D, KV_HEADS * HEAD_DIM, bias=False)
        self.v_proj = nn.Linear(D, KV_HEADS * HEAD_DIM, bias=False)
        self.o_proj = nn.Linear(KV_HEADS * HEAD_DIM, D, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        q = self.q_proj(h)[..., : KV_HEADS * HEAD_DIM]
        gate = torch.sigmoid((q * self.k_proj(h)).sum(-1, keepdim=True))
        return self.o_proj(self.v_proj(h) * gate)


class LlamaLike(nn.Module):
    def __init__(self, num_heads: int | None = HEADS) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(V, D)
        self.self_attn = Attention(num_heads)
        self.input_layernorm = nn.RMSNorm(D)
        self.up_proj = nn.Linear(D, 12)
        self.down_proj = nn.Linear(12, D)
        self.norm = nn.RMSNorm(D)
        self.lm_head = nn.Linear(D, V, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed_tokens(ids)
        h = h + self.self_attn(self.input_layernorm(h))
        h = h + self.down_proj(torch.relu(self.up_proj(h)))
        return self.lm_head(self.norm(h))


def expected_blocks(name: str, param: torch.Tensor) -> list[torch.Tensor]:
    """Flat index sets of each block, written out from the paper's rules for this model."""
    flat = torch.arange(param.numel()).view(param.shape)
    if name.endswith(("q_proj.weight", "k_proj.weight")):
        return [flat[h * HEAD_DIM:(h + 1) * HEAD_DIM].flatten() for h in range(param.shape[0] // HEAD_DIM)]
    if param.dim() == 2:  # embedding / head: per token; other matrices: per output neuron
        return [flat[i] for i in range(param.shape[0])]
    return [flat.flatten()]


def reference_adam_mini(named, grads_per_step, *, lr, beta1, beta2, eps, wd):
    """Float64 Adam-mini over explicit index blocks; norms and biases are not decayed."""
    out = {}
    for name, p0 in named:
        w = p0.double().clone().flatten()
        blocks = expected_blocks(name, p0)
        m = torch.zeros_like(w)
        v = [0.0] * len(blocks)
        decay = 0.0 if (p0.dim() == 1) else wd
        for t, grads in enumerate(grads_per_step, start=1):
            g = grads[name].double().flatten()
            m = beta1 * m + (1 - beta1) * g
            w = w * (1 - lr * decay)
            new_w = w.clone()
            for b, idx in enumerate(blocks):
                v[b] = beta2 * v[b] + (1 - beta2) * float((g[idx] ** 2).sum()) / len(idx)
                denom = (v[b] / (1 - beta2**t)) ** 0.5 + eps
                new_w[idx] = w[idx] - lr * (m[idx] / (1 - beta1**t)) / denom
            w = new_w
        out[name] = w.view(p0.shape)
    return out


def test_blocks_follow_roles_and_module_structure() -> None:
    model = LlamaLike()
    kinds = {name: (layout.kind, layout.num_blocks) for name, _, _, layout in block_layouts(model)}
    assert kinds["embed_tokens.weight"] == ("token", V)
    assert kinds["lm_head.weight"] == ("token", V)
    assert kinds["self_attn.q_proj.weight"] == ("head", HEADS)
    assert kinds["self_attn.k_proj.weight"] == ("head", KV_HEADS)
    assert kinds["self_attn.v_proj.weight"] == ("neuron", KV_HEADS * HEAD_DIM)
    assert kinds["up_proj.weight"] == ("neuron", 12)
    assert kinds["norm.weight"] == ("tensor", 1)
    assert kinds["up_proj.bias"] == ("tensor", 1)


def test_multihead_attention_in_proj_gets_q_k_heads_and_v_neurons() -> None:
    mha = nn.MultiheadAttention(embed_dim=8, num_heads=2)
    layouts = {name: layout for name, _, _, layout in block_layouts(mha)}
    assert layouts["in_proj_weight"].block_rows == ((8, 4), (8, 4), (8, 1))
    assert layouts["in_proj_weight"].num_blocks == 2 + 2 + 8


def test_missing_head_count_warns_and_num_heads_kwarg_fixes_it() -> None:
    model = LlamaLike(num_heads=None)
    with pytest.warns(UserWarning, match="no head count.*Pass num_heads"):
        layouts = {n: lay for n, _, _, lay in block_layouts(model)}
    assert layouts["self_attn.q_proj.weight"].kind == "neuron"
    layouts = {n: lay for n, _, _, lay in block_layouts(model, num_heads=HEADS)}
    assert layouts["self_attn.q_proj.weight"].num_blocks == HEADS
    with pytest.raises(swift_zoo.ConfigError, match="not a multiple of num_heads=3"):
        AdamMini(model, num_heads=3)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_update_matches_float64_reference(seed: int, fused: bool) -> None:
    torch.manual_seed(seed)
    model = LlamaLike().double()
    named = [(n, p.detach().clone()) for n, p in model.named_parameters()]
    opt = swift_zoo.build_optimizer("adam_mini", model, lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1,
                                    fused=fused)
    gen = torch.Generator().manual_seed(seed)
    grads_per_step = []
    for _ in range(3):
        grads = {n: torch.randn(p.shape, generator=gen, dtype=torch.float64) for n, p in named}
        for n, p in model.named_parameters():
            p.grad = grads[n].clone()
        opt.step()
        grads_per_step.append(grads)
    expected = reference_adam_mini(named, grads_per_step, lr=0.01, beta1=0.8, beta2=0.9, eps=1e-6, wd=0.1)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), expected[n], rtol=1e-10, atol=1e-12, msg=lambda m, n=n: f"{n}: {m}")


def test_bare_params_rows_for_matrices_one_block_for_vectors() -> None:
    w, b = nn.Parameter(torch.randn(5, 3)), nn.Parameter(torch.randn(5))
    opt = AdamMini([w, b])
    assert [g["block_rows"] for g in opt.param_groups] == [[[5, 1]], [[1, 1]]]


def test_state_dict_roundtrip_bytes_bf16_and_gradless() -> None:
    torch.manual_seed(0)
    model = LlamaLike().to(torch.bfloat16)
    model.up_proj.weight.requires_grad_(False)
    ids = torch.randint(0, V, (2, 5))

    def train(o: torch.optim.Optimizer, m: nn.Module, n: int) -> None:
        for _ in range(n):
            o.zero_grad()
            nn.functional.cross_entropy(m(ids).flatten(0, 1).float(), ids.flatten()).backward()
            o.step()

    opt = swift_zoo.build_optimizer("adam_mini", model, lr=1e-2)
    train(opt, model, 2)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    assert model.up_proj.weight not in opt.state
    assert measure_state_bytes(opt) <= declared_state_bytes(opt)
    adamw_bytes = sum(2 * p.numel() * 2 for p in model.parameters() if p.requires_grad)
    assert declared_state_bytes(opt) < 0.6 * adamw_bytes
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    twin = LlamaLike().to(torch.bfloat16)
    twin.load_state_dict(model.state_dict())
    twin.up_proj.weight.requires_grad_(False)
    opt2 = swift_zoo.build_optimizer("adam_mini", twin, lr=1e-2)
    buffer.seek(0)
    opt2.load_state_dict(torch.load(buffer, weights_only=True))
    train(opt, model, 2)
    train(opt2, twin, 2)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q)
