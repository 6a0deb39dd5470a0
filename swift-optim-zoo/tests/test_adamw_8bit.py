"""adamw_8bit: the dynamic map, block-wise quantisation, the update against a float64 re-computation, state size,
weights_only resume, bf16 stochastic rounding."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

import swift_zoo
from swift_optim_zoo.adamw_8bit import AdamW8bit, dequantize_blockwise, dynamic_map, quantize_blockwise
from swift_optim_zoo.adamw_8bit.adamw_8bit import stochastic_round_to_bf16
from swift_optim_zoo.adamw_8bit.quantization import midpoints
from swift_zoo.optim import declared_state_bytes, measure_state_bytes


@pytest.mark.parametrize("signed", [True, False])
def test_dynamic_map_is_256_sorted_distinct_values_with_0_and_1(signed: bool) -> None:
    code_map = dynamic_map(signed)
    assert code_map.shape == (256,) and bool((code_map[1:] > code_map[:-1]).all())
    assert 0.0 in code_map.tolist() and float(code_map.max()) == 1.0
    assert float(code_map.min()) == (pytest.approx(-0.99296875, abs=1e-7) if signed else 0.0)
    if signed:  # symmetric except +1, which has no negative twin
        values = code_map.tolist()
        assert sorted(v for v in values if 0 < v < 1) == sorted(-v for v in values if v < 0)
    assert code_map.abs()[code_map.abs() > 0].min() < 1e-6  # small magnitudes have codes of their own


def test_quantize_picks_the_nearest_map_value_per_block() -> None:
    gen = torch.Generator().manual_seed(0)
    values = torch.randn(8, 64, generator=gen, dtype=torch.float64) * torch.logspace(-4, 1, 8).double()[:, None]
    code_map = dynamic_map(True)
    codes, absmax = quantize_blockwise(values.float(), midpoints(code_map))
    torch.testing.assert_close(absmax.double(), values.abs().amax(1), rtol=1e-6, atol=0)
    normalised = values / values.abs().amax(1, keepdim=True)
    nearest = (normalised.unsqueeze(-1) - code_map.double()).abs().argmin(-1)
    assert float((codes.long() == nearest).double().mean()) > 0.999
    restored = dequantize_blockwise(codes, absmax, code_map).double()
    assert float(((restored - values).abs() / values.abs().amax(1, keepdim=True)).max()) < 0.04


def _reference(w, grads, *, lr, b1, b2, eps, wd, block):
    """Float64 AdamW whose moments are stored as the nearest dynamic-map codes (per block absmax) between steps."""
    signed, unsigned = dynamic_map(True).double(), dynamic_map(False).double()

    def store(x, code_map):
        blocks = x.reshape(-1, block)
        absmax = blocks.abs().amax(1, keepdim=True).clamp(min=1e-12)
        codes = ((blocks / absmax).unsqueeze(-1) - code_map).abs().argmin(-1)
        return (code_map[codes] * absmax).reshape(x.shape)

    m, v = torch.zeros_like(w), torch.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w * (1 - lr * wd) - lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)
        m, v = store(m, signed), store(v, unsigned)
    return w


@pytest.mark.parametrize("fused", [False, True])
def test_update_matches_float64_recomputation_with_quantised_moments(fused: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    w0 = torch.randn(64, 32, generator=gen)
    grads = [torch.randn(64, 32, generator=gen) for _ in range(5)]
    p = nn.Parameter(w0.clone())
    opt = AdamW8bit([p], lr=1e-2, weight_decay=0.1, block_size=64, min_8bit_size=0, fused=fused)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    expected = _reference(w0.double(), [g.double() for g in grads], lr=1e-2, b1=0.9, b2=0.999, eps=1e-8, wd=0.1,
                          block=64)
    torch.testing.assert_close(p.detach().double(), expected, rtol=0, atol=1e-4)
    assert set(opt.state[p]) == {"step", "exp_avg_codes", "exp_avg_absmax", "exp_avg_sq_codes", "exp_avg_sq_absmax"}


def test_small_or_ragged_tensors_keep_full_precision_moments_and_follow_adamw() -> None:
    gen = torch.Generator().manual_seed(1)
    small, ragged = nn.Parameter(torch.randn(10, generator=gen)), nn.Parameter(torch.randn(4100, generator=gen))
    twins = [nn.Parameter(small.detach().clone()), nn.Parameter(ragged.detach().clone())]
    opt = AdamW8bit([small, ragged], lr=1e-2)
    reference = torch.optim.AdamW(twins, lr=1e-2)
    for _ in range(4):
        for p, q in zip([small, ragged], twins):
            g = torch.randn(p.shape, generator=gen)
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        reference.step()
    assert set(opt.state[small]) == set(opt.state[ragged]) == {"step", "exp_avg", "exp_avg_sq"}
    for p, q in zip([small, ragged], twins):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_state_is_about_a_quarter_of_adamw_and_resume_is_exact() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 512), nn.GELU(), nn.LayerNorm(512), nn.Linear(512, 256))
    opt = swift_zoo.build_optimizer("adamw_8bit", model, lr=1e-3)
    x = torch.randn(8, 256)

    def train(o, m, n):
        for _ in range(n):
            o.zero_grad()
            m(x).square().mean().backward()
            o.step()

    train(opt, model, 3)
    adamw_bytes = 8 * sum(p.numel() for p in model.parameters())
    ratio = measure_state_bytes(opt) / adamw_bytes
    assert measure_state_bytes(opt) <= declared_state_bytes(opt)
    assert 0.25 < ratio < 0.26, ratio
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    twin = nn.Sequential(nn.Linear(256, 512), nn.GELU(), nn.LayerNorm(512), nn.Linear(512, 256))
    twin.load_state_dict(model.state_dict())
    opt2 = swift_zoo.build_optimizer("adamw_8bit", twin, lr=1e-3)
    buffer.seek(0)
    opt2.load_state_dict(torch.load(buffer, weights_only=True))
    train(opt, model, 3)
    train(opt2, twin, 3)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q)


def test_stochastic_rounding_is_unbiased_and_moves_bf16_weights_by_sub_ulp_updates() -> None:
    torch.manual_seed(0)
    x = torch.full((200_000,), 1.0 + 2**-10, dtype=torch.float32)  # between two bf16 neighbours of 1
    rounded = stochastic_round_to_bf16(x).float()
    assert set(rounded.unique().tolist()) == {1.0, 1.0078125}
    assert float(rounded.mean()) == pytest.approx(1.0 + 2**-10, abs=2e-4)
    weights = {}
    for rounding in (False, True):
        p = nn.Parameter(torch.ones(4096, dtype=torch.bfloat16))
        opt = AdamW8bit([p], lr=1e-4, weight_decay=0.0, bf16_stochastic_rounding=rounding)
        for _ in range(20):
            p.grad = torch.ones_like(p)
            opt.step()
        weights[rounding] = p.detach().float()
    assert torch.equal(weights[False], torch.ones(4096))  # 1e-4 steps are lost to round-to-nearest at 1.0
    assert float(weights[True].mean()) == pytest.approx(1 - 20 * 1e-4, abs=3e-4)


def test_bf16_stochastic_rounding_is_a_bool_and_block_size_bounded() -> None:
    p = [nn.Parameter(torch.zeros(4))]
    with pytest.raises(swift_zoo.ConfigError, match=r"bf16_stochastic_rounding must be a bool, got 1"):
        AdamW8bit(p, bf16_stochastic_rounding=1)
    with pytest.raises(swift_zoo.ConfigError, match=r"block_size must be an integer in \[16, 65536\], got 8"):
        AdamW8bit(p, block_size=8)


def test_quantised_step_count_and_bias_correction_use_the_per_parameter_step() -> None:
    p = nn.Parameter(torch.zeros(4096))
    opt = AdamW8bit([p], lr=1.0, weight_decay=0.0, eps=0.0)
    p.grad = torch.full((4096,), 2.0)
    opt.step()
    # first step of Adam moves every coordinate by exactly lr (m_hat / sqrt(v_hat) = sign(g)), even from 8 bits
    torch.testing.assert_close(p.detach(), torch.full((4096,), -1.0))
    assert opt.state[p]["step"] == 1 and not math.isnan(float(p[0]))


@pytest.mark.parametrize(("rows", "cols", "world", "block"), [(13, 5, 4, 16), (12, 12, 4, 16), (3, 48, 4, 16),
                                                            (12, 12, 2, 32)])
def test_flat_shards_tile_the_whole_tensor_and_touch_their_blocks(rows: int, cols: int, world: int,
                                                                  block: int) -> None:
    """FSDP2 layout of the 8-bit state: each rank's flat range is its rows' elements, the ranges tile the tensor
    in rank order, and the touched blocks are exactly those holding one of its elements (empty ranks: none)."""
    from types import SimpleNamespace

    from swift_optim_zoo.adamw_8bit._sharded import FlatShard

    param = SimpleNamespace(shape=(rows, cols), numel=lambda: rows * cols,
                            device_mesh=SimpleNamespace(size=lambda: world, get_local_rank=lambda: 0))
    shards = [FlatShard.of(param, block, rank) for rank in range(world)]
    assert [s.start for s in shards[1:]] == [s.stop for s in shards[:-1]] and shards[0].start == 0
    assert shards[-1].stop == rows * cols
    for shard in shards:
        touched = sorted({i // block for i in range(shard.start, shard.stop)})
        assert list(range(shard.first_block, shard.stop_block)) == touched
        values = torch.arange(shard.start, shard.stop, dtype=torch.float32) + 1
        padded = shard.padded(values, block).reshape(-1)
        offset = shard.first_block * block
        assert torch.equal(padded[shard.start - offset:shard.stop - offset], values)
        assert int((padded != 0).sum()) == values.numel()
        index = shard.block_index(block, torch.device("cpu"))
        assert torch.equal(index + shard.first_block, torch.arange(shard.start, shard.stop) // block)


# ------------------------------------------------------------------ fused=True on float32 CPU parameters: the C kernel
def _native_or_skip() -> None:
    from swift_optim_zoo import _native

    if _native.find_compiler() is None:
        pytest.skip("no C compiler here: the kernel cannot be built (the compiled rule runs instead)")
    assert _native.library() is not None, _native._failure


@pytest.mark.parametrize("vector", [True, False], ids=["avx512-if-present", "scalar"])
@pytest.mark.parametrize("signed", [True, False])
def test_table_encoding_is_torch_bucketize_exactly(signed: bool, vector: bool) -> None:
    """The one-read code table against torch.bucketize on the values where a search could go wrong: every midpoint,
    the floats next to it, the map values, 0, -0, +-1, values below the smallest midpoint, NaN, and random values
    over every exponent, as y = x / absmax."""
    from swift_optim_zoo.adamw_8bit._code_tables import code_table
    from swift_optim_zoo.adamw_8bit._native_step import encode

    _native_or_skip()
    code_map = dynamic_map(signed)
    bounds = midpoints(code_map)
    edges = torch.cat([bounds, -bounds, code_map, -code_map])
    up = torch.nextafter(edges, torch.tensor(float("inf")))
    down = torch.nextafter(edges, torch.tensor(float("-inf")))
    gen = torch.Generator().manual_seed(0)
    spread = torch.rand(20_000, generator=gen) * torch.pow(10.0, -torch.rand(20_000, generator=gen) * 9)
    special = torch.tensor([0.0, -0.0, 1.0, -1.0, 1e-9, -1e-9, 2.0**-24, -(2.0**-24), 1e-30, float("nan")])
    values = torch.cat([edges, up, down, spread, -spread, special]).float()
    values = values[values.abs() <= 1].contiguous()  # past +-1: test_values_past_one_take_the_end_codes
    values = torch.cat([values, torch.tensor([float("nan")])])
    got = encode(values, 1.0, code_table(bounds), vector=vector)
    expected = torch.bucketize(values, bounds, right=True).to(torch.uint8)
    assert torch.equal(got, expected), (values[got != expected][:5], got[got != expected][:5])
    scaled = encode(values * 0.37, 0.37, code_table(bounds), vector=vector)  # through the scaling, as in a step
    inverse = torch.tensor(0.37).reciprocal()
    assert torch.equal(scaled, torch.bucketize(values * 0.37 * inverse, bounds, right=True).to(torch.uint8))


@pytest.mark.parametrize("signed", [True, False])
def test_arithmetic_encoding_is_exact_around_every_midpoint(signed: bool) -> None:
    """The AVX-512 encode finds codes by arithmetic on the map's decades and sends values within 2^-10 of a grid
    point to the table: every float within 300 ulps of every midpoint (both signs), and a million random values
    over every exponent, against torch.bucketize (every float32 of [-1, 1]: the next test)."""
    from swift_optim_zoo.adamw_8bit._code_tables import code_table
    from swift_optim_zoo.adamw_8bit._native_step import encode

    _native_or_skip()
    bounds = midpoints(dynamic_map(signed))
    steps = torch.arange(-300, 301, dtype=torch.int32)
    near = torch.cat([bounds, -bounds]).view(torch.int32)[:, None] + steps[None, :]
    gen = torch.Generator().manual_seed(1)
    spread = torch.rand(500_000, generator=gen) * torch.pow(10.0, -torch.rand(500_000, generator=gen) * 10)
    values = torch.cat([near.flatten().view(torch.float32), spread, -spread])
    values = values[values.abs() <= 1].contiguous()
    got = encode(values, 1.0, code_table(bounds), vector=True)
    expected = torch.bucketize(values, bounds, right=True).to(torch.uint8)
    assert torch.equal(got, expected), (values[got != expected][:5], got[got != expected][:5])


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("negative", [False, True])
def test_arithmetic_encoding_is_exact_on_every_float32(signed: bool, negative: bool) -> None:
    """Every float32 of [0, 1] (or of [-1, -0]), about 10^9 values, through the AVX-512 encode against
    torch.bucketize, in slices of 2^25."""
    from swift_optim_zoo.adamw_8bit._code_tables import code_table
    from swift_optim_zoo.adamw_8bit._native_step import encode

    _native_or_skip()
    bounds = midpoints(dynamic_map(signed))
    table = code_table(bounds)
    one = 0x3F800000  # the bits of 1.0
    for start in range(0, one + 1, 1 << 25):
        bits = torch.arange(start, min(start + (1 << 25), one + 1), dtype=torch.int64)
        values = (bits - (1 << 32) + (1 << 31) if negative else bits).to(torch.int32).view(torch.float32)
        got = encode(values, 1.0, table, vector=True)
        expected = torch.bucketize(values, bounds, right=True).to(torch.uint8)
        assert torch.equal(got, expected), (values[got != expected][:5], got[got != expected][:5])


@pytest.mark.parametrize("vector", [True, False])
@pytest.mark.parametrize("signed", [True, False])
def test_values_past_one_take_the_end_codes(signed: bool, vector: bool) -> None:
    """A step's x * (1 / absmax) stays in [-1, 1] (round to nearest: absmax * fl(1 / absmax) <= 1), but the encode is
    exact on any float: the 2000 floats above 1 (and below -1), 2, 1e30 and the infinities encode as torch.bucketize
    does, to the end codes."""
    from swift_optim_zoo.adamw_8bit._code_tables import code_table
    from swift_optim_zoo.adamw_8bit._native_step import encode

    _native_or_skip()
    bounds = midpoints(dynamic_map(signed))
    past = (torch.tensor([1.0]).view(torch.int32) + torch.arange(1, 2001, dtype=torch.int32)).view(torch.float32)
    values = torch.cat([past, -past, torch.tensor([2.0, -2.0, 1e30, -1e30, float("inf"), float("-inf")])])
    got = encode(values, 1.0, code_table(bounds), vector=vector)
    expected = torch.bucketize(values, bounds, right=True).to(torch.uint8)
    assert torch.equal(got, expected), (values[got != expected][:5], got[got != expected][:5])
    assert set(expected.tolist()) == {0, 255}


def test_segment_tables_refuse_midpoints_without_the_decade_structure() -> None:
    from swift_optim_zoo.adamw_8bit._code_segments import segment_words

    uneven = torch.sort(torch.rand(255, generator=torch.Generator().manual_seed(0)) * 2 - 1).values
    with pytest.raises(ValueError, match="segments, room for 32"):
        segment_words(uneven)


@pytest.mark.parametrize("block_size", [256, 40, 100])
def test_c_kernel_step_is_the_eager_rule(block_size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """fused=True on float32 CPU runs the C kernel (no compilation) and keeps the eager rule's codes and absmax bit
    for bit over several steps (its scalars derived in double, as the eager rule's); the vector and scalar loops
    (AVX-512 with and without the byte-wise decode, and scalar) agree bit for bit; block sizes that leave 64-,
    16-element and scalar tails included."""
    from swift_optim_zoo.adamw_8bit import _native_step, adamw_8bit

    _native_or_skip()

    def refuse(*args, **kwargs):
        raise AssertionError("torch.compile called for a float32 CPU step")

    monkeypatch.setattr(torch, "compile", refuse)
    gen = torch.Generator().manual_seed(3)
    w0 = torch.randn(96, block_size, generator=gen)
    scales = torch.pow(10.0, -torch.randint(0, 7, (96, 1), generator=gen).float())
    grads = [torch.randn(96, block_size, generator=gen) * scales for _ in range(4)]
    runs = {}
    for name, fused, vector in (("eager", False, True), ("vector", True, True), ("no-vbmi", True, 2),
                                ("scalar", True, False)):
        monkeypatch.setattr(adamw_8bit, "quantized_step", _with_vector(_native_step.quantized_step, vector))
        p = nn.Parameter(w0.clone())
        opt = AdamW8bit([p], lr=3e-2, betas=(0.85, 0.97), weight_decay=0.1, block_size=block_size, min_8bit_size=0,
                        fused=fused)
        for g in grads:
            p.grad = g.clone()
            opt.step()
        runs[name] = (p.detach().clone(), dict(opt.state[p]))
    for key in ("exp_avg_codes", "exp_avg_sq_codes", "exp_avg_absmax", "exp_avg_sq_absmax"):
        assert torch.equal(runs["vector"][1][key], runs["eager"][1][key]), key
        assert torch.equal(runs["vector"][1][key], runs["scalar"][1][key]), key
        assert torch.equal(runs["vector"][1][key], runs["no-vbmi"][1][key]), key
    assert torch.equal(runs["vector"][0], runs["scalar"][0])
    assert torch.equal(runs["vector"][0], runs["no-vbmi"][0])
    torch.testing.assert_close(runs["vector"][0], runs["eager"][0], rtol=1e-6, atol=1e-7)


def _with_vector(step, vector: bool | int):
    def run(*args, **kwargs):
        return step(*args, **kwargs, vector=vector)

    return run


def test_fused_small_tensors_take_the_c_adamw_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tensors below min_8bit_size keep float32 moments; fused=True steps them with the C kernel, as eager does."""
    from swift_optim_zoo.adamw_8bit.adamw_8bit import ADAMW_FULL_KERNEL

    _native_or_skip()
    gen = torch.Generator().manual_seed(4)
    w0 = torch.randn(100, generator=gen)
    grads = [torch.randn(100, generator=gen) for _ in range(3)]
    params = [nn.Parameter(w0.clone()) for _ in range(2)]
    opts = [AdamW8bit([params[0]], lr=1e-2, fused=False), AdamW8bit([params[1]], lr=1e-2, fused=True)]
    calls = ADAMW_FULL_KERNEL.native_calls
    for g in grads:
        for p, o in zip(params, opts):
            p.grad = g.clone()
            o.step()
    assert ADAMW_FULL_KERNEL.native_calls == calls + 3
    torch.testing.assert_close(params[1], params[0], rtol=1e-6, atol=1e-7)
