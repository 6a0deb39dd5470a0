"""Declared inputs, distances and example batches shared by the sentence-pair embedding losses.

A pair batch holds two embedding matrices, ``embeddings_a`` and ``embeddings_b`` ``[B, D]`` (row
``i`` of each is one sentence of pair ``i``; ms-swift interleaves them as rows ``2i`` and ``2i+1``
of ``last_hidden_state``), and ``labels`` ``[B]``: a similarity score or a 1/0 similar flag.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from swift_zoo import ConfigError, LossExample, TensorInput
from swift_zoo.ops import upcast

DISTANCES = ("cosine", "euclidean", "manhattan")
_PAIRWISE_EPS = 1e-6  # as torch.nn.functional.pairwise_distance: keeps d(x, x) differentiable


def pair_inputs(*, label_dtype: str, label_doc: str, label_domain: str | None = None) -> tuple[TensorInput, ...]:
    """``embeddings_a``, ``embeddings_b`` (differentiable) and ``labels`` (in ``label_domain``), batched on ``B``."""
    return (
        TensorInput("embeddings_a", ("B", "D"), differentiable=True, doc="first sentence of each pair"),
        TensorInput("embeddings_b", ("B", "D"), differentiable=True, doc="second sentence of each pair"),
        TensorInput("labels", ("B",), dtype=label_dtype, domain=label_domain, doc=label_doc),
    )


def pair_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity ``[B]`` in at least float32."""
    return F.cosine_similarity(upcast(a), upcast(b), dim=-1)


def pair_distance(a: torch.Tensor, b: torch.Tensor, distance: str) -> torch.Tensor:
    """Row-wise distance ``[B]``: ``1 - cos`` (cosine), L2 (euclidean) or L1 (manhattan)."""
    a, b = upcast(a), upcast(b)
    if distance == "cosine":
        return 1.0 - F.cosine_similarity(a, b, dim=-1)
    difference = a - b + _PAIRWISE_EPS
    order = 2 if distance == "euclidean" else 1
    return torch.linalg.vector_norm(difference, ord=order, dim=-1)


def check_distance(loss: str, distance: str) -> None:
    if distance not in DISTANCES:
        message = f"{loss}: distance must be one of {', '.join(DISTANCES)}, got {distance!r}"
        raise ConfigError(message, key="distance", expected=f"one of {DISTANCES}", found=distance)


def check_margin(loss: str, margin: float) -> None:
    if not margin > 0.0:
        message = f"{loss}: margin must be a float > 0, got {margin!r}"
        raise ConfigError(message, key="margin", expected="float > 0", found=margin)


def example_pairs(
    batch_size: int,
    generator: torch.Generator | None,
    dtype: torch.dtype,
    device: str | torch.device,
    *,
    binary: bool,
    hard: bool = False,
) -> LossExample:
    """Pairs whose second sentence is the first plus noise; ``binary``: alternating 1/0 labels.

    ``hard``: similar pairs get more noise than dissimilar ones, so every pair is a hard one.
    """
    dim = 8
    a = torch.randn(batch_size, dim, generator=generator, dtype=torch.float32)
    noise = torch.randn(batch_size, dim, generator=generator, dtype=torch.float32)
    if binary:
        labels = (torch.arange(batch_size) % 2 == 0).to(torch.float32)
    else:
        labels = torch.rand(batch_size, generator=generator, dtype=torch.float32) * 2.0 - 1.0
    scale = torch.where(labels > 0.5, 2.0, 0.3) if hard else torch.full((batch_size,), 1.2)
    b = a + scale[:, None] * noise
    outputs = {"embeddings_a": a.to(device, dtype), "embeddings_b": b.to(device, dtype)}
    return LossExample(outputs, labels.to(device, dtype))
