"""NorMuon and AdaMuon against float64 re-computations; MuonClip's logit recording, QK-clip and refusals."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import swift_zoo
from swift_optim_zoo.muon import AdaMuon, MuonClip, NorMuon
from swift_zoo.optim import declared_state_bytes, measure_state_bytes
from swift_zoo.testing import TinyLM

COEFFS = (3.4445, -4.7750, 2.0315)


def ns(g: torch.Tensor) -> torch.Tensor:
    """Quintic Newton-Schulz in float64: X <- aX + b(XX^T)X + c(XX^T)^2 X on the wide orientation."""
    a, b, c = COEFFS
    x = g.double()
    tall = x.shape[0] > x.shape[1]
    x = x.t() if tall else x
    x = x / max(float(x.norm()), 1e-7)
    for _ in range(5):
        gram = x @ x.t()
        x = a * x + b * gram @ x + c * gram @ gram @ x
    return x.t() if tall else x


def ref_normuon(w, grads, *, lr, mu, beta2, wd, eps=1e-10):
    buf, v = torch.zeros_like(w), torch.zeros(w.shape[0], 1, dtype=torch.float64)
    for g in grads:
        buf = mu * buf + (1 - mu) * g
        o = ns((1 - mu) * g + mu * buf)
        norm = o.norm()
        v = beta2 * v + (1 - beta2) * (o * o).mean(dim=1, keepdim=True)
        o = o / (v.sqrt() + eps)
        o = o * norm / (o.norm() + eps)
        scale = math.sqrt(max(1.0, w.shape[0] / w.shape[1]))
        w = w * (1 - lr * wd) - lr * scale * o
    return w


def ref_adamuon(w, grads, *, lr, mu, beta2, wd, eps=1e-10):
    buf, v = torch.zeros_like(w), torch.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        buf = mu * buf + (1 - mu) * g
        o = ns(buf)
        v = beta2 * v + (1 - beta2) * o * o
        o = o / ((v / (1 - beta2**t)).sqrt() + eps)
        o = o * 0.2 * math.sqrt(w.numel()) / (o.norm() + eps)
        w = w * (1 - lr * wd) - lr * o
    return w


@pytest.mark.parametrize(("cls", "reference"), [(NorMuon, ref_normuon), (AdaMuon, ref_adamuon)])
@pytest.mark.parametrize("shape", [(12, 7), (7, 12)])
def test_update_matches_float64_reference(cls, reference, shape) -> None:
    gen = torch.Generator().manual_seed(0)
    w0 = torch.randn(shape, generator=gen, dtype=torch.float64)
    grads = [torch.randn(shape, generator=gen, dtype=torch.float64) for _ in range(4)]
    p = nn.Parameter(w0.clone())
    opt = cls([p], lr=0.05, momentum=0.9, beta2=0.9, weight_decay=0.1, ns_dtype="float64")
    for g in grads:
        p.grad = g.clone()
        opt.step()
    expected = reference(w0, grads, lr=0.05, mu=0.9, beta2=0.9, wd=0.1)
    torch.testing.assert_close(p.detach(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["normuon", "adamuon"])
def test_routing_state_bytes_and_inner_adamw(name: str) -> None:
    model = TinyLM()
    opt = swift_zoo.build_optimizer(name, model, lr=0.02, adamw_lr=1e-2)
    tokens = torch.randint(0, 32, (2, 6), generator=torch.Generator().manual_seed(0))
    for _ in range(2):
        opt.zero_grad()
        nn.functional.cross_entropy(model(tokens).flatten(0, 1), tokens.flatten()).backward()
        opt.step()
    assert measure_state_bytes(opt) <= declared_state_bytes(opt)
    hidden = model.block.q_proj.weight
    embedding = model.embed_tokens.weight
    assert "momentum_buffer" in opt.state[hidden] and "exp_avg" in opt.state[embedding]


# ------------------------------------------------------------------------------------------------ MuonClip
def _tiny_llama(attn: str = "eager"):
    transformers = pytest.importorskip("transformers", reason="transformers builds the Llama test model")
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                      attn_implementation=attn)
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config)


def _llama_max_logits(model, tokens) -> list[torch.Tensor]:
    """Per layer, per head: max of q k^T / sqrt(d) over causal positions, from the projections and RoPE directly."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    captured = []
    with torch.no_grad():
        inputs = model(tokens, output_hidden_states=True).hidden_states  # the input of every layer
        positions = torch.arange(tokens.shape[1])[None]
        cos, sin = model.model.rotary_emb(inputs[0], positions)
        for layer, hidden in zip(model.model.layers, inputs):
            attn = layer.self_attn
            h = layer.input_layernorm(hidden)
            shape = (*h.shape[:-1], -1, attn.head_dim)
            q = attn.q_proj(h).view(shape).transpose(1, 2)
            k = attn.k_proj(h).view(shape).transpose(1, 2)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
            logits = (q @ k.transpose(-1, -2)) * attn.scaling
            t = tokens.shape[1]
            logits = logits.masked_fill(~torch.ones(t, t, dtype=torch.bool).tril(), float("-inf"))
            captured.append(logits.amax(dim=(0, 2, 3)))
    return captured


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_llama_records_per_head_max_logits_and_keeps_outputs(attn: str) -> None:
    model = _tiny_llama(attn)
    tokens = torch.randint(0, 64, (2, 10), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = model(tokens).logits
    opt = MuonClip(model, qk_clip_threshold=1e9)
    assert [a.name for a in opt.attention] == ["model.layers.0.self_attn", "model.layers.1.self_attn"]
    with torch.no_grad():
        after = model(tokens).logits
    torch.testing.assert_close(after, before, rtol=0, atol=0)  # recording leaves the outputs alone
    for item in opt.attention:
        item.max_logits = None
    expected = _llama_max_logits(model, tokens)  # its own forward is recorded too
    for item, want in zip(opt.attention, expected):
        torch.testing.assert_close(item.max_logits, want.float(), rtol=1e-5, atol=1e-5)


def test_qk_clip_brings_every_head_to_the_threshold_and_leaves_others() -> None:
    model = _tiny_llama()
    with torch.no_grad():  # make the logits of layer 0 large
        model.model.layers[0].self_attn.q_proj.weight.mul_(8.0)
        model.model.layers[0].self_attn.k_proj.weight.mul_(8.0)
    tokens = torch.randint(0, 64, (2, 10), generator=torch.Generator().manual_seed(2))
    first = _llama_max_logits(model, tokens)
    group_max = first[0].view(2, 2).amax(dim=1)  # 4 query heads share 2 key heads
    threshold = float(group_max.mean())  # one key group above the threshold, the other below
    opt = MuonClip(model, lr=0.0, adamw_lr=0.0, weight_decay=0.0, adamw_wd=0.0, qk_clip_threshold=threshold)
    untouched = model.model.layers[1].self_attn.q_proj.weight.detach().clone()
    loss = model(tokens, labels=tokens).loss
    loss.backward()
    opt.step()
    after = _llama_max_logits(model, tokens)
    assert float(after[0].max()) <= threshold * (1 + 1e-4)
    below = (group_max <= threshold).repeat_interleave(2)  # heads whose whole key group stayed below: untouched
    assert bool(below.any()) and not bool(below.all())
    torch.testing.assert_close(after[0][below], first[0][below], rtol=1e-5, atol=1e-5)
    assert float(after[0][~below].max()) == pytest.approx(threshold, rel=1e-4)  # the largest lands on tau
    assert torch.equal(model.model.layers[1].self_attn.q_proj.weight, untouched)
    assert set(opt.last_max_logits) == {"model.layers.0.self_attn", "model.layers.1.self_attn"}


def test_tiny_block_logits_are_recorded() -> None:
    model = TinyLM()
    opt = MuonClip(model)
    tokens = torch.randint(0, 32, (3, 7), generator=torch.Generator().manual_seed(3))
    model(tokens)
    with torch.no_grad():
        h = model.block.attn_norm(model.embed_tokens(tokens))
        q, k = model.block.q_proj(h), model.block.k_proj(h)
        logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        logits = logits.masked_fill(~torch.ones(7, 7, dtype=torch.bool).tril(), float("-inf"))
    torch.testing.assert_close(opt.attention[0].max_logits, logits.amax().reshape(1), rtol=1e-6, atol=1e-6)


def test_unsupported_attention_is_refused_with_the_supported_list() -> None:
    transformers = pytest.importorskip("transformers", reason="transformers builds the test models")
    qwen3 = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(
        vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, head_dim=8))
    with pytest.raises(swift_zoo.ConfigError, match=r"is not supported by QK-clip: it normalises q and k \(QK-norm\)"):
        MuonClip(qwen3)
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=32))
    with pytest.raises(swift_zoo.ConfigError, match=r"'transformer.h.0.attn' .* per-head pre-softmax logits cannot "
                                                     r"be observed\. Supported: transformers attention modules"):
        MuonClip(gpt2)
    plain = nn.Sequential(nn.MultiheadAttention(8, 2))
    with pytest.raises(swift_zoo.ConfigError, match="Pass qk_clip_threshold=None"):
        MuonClip(plain)
    assert MuonClip(gpt2, qk_clip_threshold=None).attention == []


def test_muon_clip_needs_the_model() -> None:
    with pytest.raises(swift_zoo.ConfigError, match=r"expected the model \(an nn.Module"):
        MuonClip([nn.Parameter(torch.zeros(4, 4))])
    spec = swift_zoo.REGISTRY.resolve("optimizer", "muon_clip").spec
    assert spec.needs_model


class _DeclaredAttention(nn.Module):
    """A custom attention that declares its logits come straight from q_proj and k_proj (no rotation)."""

    qk_logits_from_projections = True
    num_heads = 2

    def __init__(self) -> None:
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(8, 8, bias=False) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (proj(x).view(b, t, 2, 4).transpose(1, 2) for proj in (self.q_proj, self.k_proj, self.v_proj))
        return nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, 8)


def test_declared_multi_head_attention_is_recorded_per_head() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(_DeclaredAttention())
    opt = MuonClip(model)
    x = torch.randn(3, 5, 8)
    model(x)
    attn = model[0]
    with torch.no_grad():
        q = attn.q_proj(x).view(3, 5, 2, 4).transpose(1, 2)
        k = attn.k_proj(x).view(3, 5, 2, 4).transpose(1, 2)
        logits = (q @ k.transpose(-1, -2)) / 2.0
        logits = logits.masked_fill(~torch.ones(5, 5, dtype=torch.bool).tril(), float("-inf"))
    torch.testing.assert_close(opt.attention[0].max_logits, logits.amax(dim=(0, 2, 3)), rtol=1e-6, atol=1e-6)
