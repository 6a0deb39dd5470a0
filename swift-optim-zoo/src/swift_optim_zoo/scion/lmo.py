"""Linear minimisation oracles of Scion (arXiv:2502.07529, Table 2): for a direction ``d`` and a norm ball, the
point of the unit ball that minimises ``<d, x>`` (negated here: the step goes along the returned tensor).

Pure functions of whole tensors (some of them row by row: :func:`is_row_local`). ``spectral`` is the RMS->RMS operator norm's oracle (Newton-Schulz
orthogonalisation, scaled by ``sqrt(d_out / d_in)``; a convolution kernel ``[out, in, k...]`` is flattened and
divided by its kernel volume); ``sign`` the max-norm oracle of output layers (``sign(d) / d_in``); ``col`` the
oracle of input layers (each column, i.e. each token's vector of an embedding table, scaled to RMS 1); ``row``
each row to norm ``1 / sqrt(d_in)``; ``bias_rms`` a vector to RMS 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from swift_optim_zoo.muon.newton_schulz import newton_schulz_orthogonalize
from swift_zoo.params import ParamRole

EPS = 1e-8


def spectral(d: torch.Tensor, *, ns_steps: int = 5, ns_dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    matrix = d.reshape(d.shape[0], -1)
    kernel = math.prod(d.shape[2:]) if d.dim() > 2 else 1
    ortho = newton_schulz_orthogonalize(matrix, steps=ns_steps, dtype=ns_dtype).to(d.dtype)
    d_in = d.shape[1] if d.dim() > 1 else 1
    return ortho.reshape(d.shape) * (math.sqrt(d.shape[0] / d_in) / kernel)


def sign(d: torch.Tensor, **_: object) -> torch.Tensor:
    d_in = d.shape[1] if d.dim() > 1 else 1
    return torch.sign(d) / d_in


def col(d: torch.Tensor, *, transpose: bool = True, **_: object) -> torch.Tensor:
    """Embedding tables ``[vocab, dim]`` are seen transposed (``[dim, vocab]``: one column per token)."""
    x = d.mT if transpose else d
    rms = x.pow(2).sum(dim=0, keepdim=True).sqrt() / math.sqrt(x.shape[0])
    x = x / (rms + EPS)
    return x.mT if transpose else x


def row(d: torch.Tensor, **_: object) -> torch.Tensor:
    norm = d.pow(2).sum(dim=-1, keepdim=True).sqrt() * math.sqrt(d.shape[-1])
    return d / (norm + EPS)


def bias_rms(d: torch.Tensor, **_: object) -> torch.Tensor:
    return d / (d.pow(2).mean(dim=0, keepdim=True).sqrt() + EPS)


def is_row_local(name: str, ndim: int) -> bool:
    """Whether oracle ``name`` on a tensor of ``ndim`` dimensions computes each row (index of dimension 0) from
    that row alone: then it runs on the rows a rank holds under FSDP2, and others need the whole tensor. ``sign``
    always; ``row`` (norms over the last dimension) from 2-D on; ``col`` on 2-D tables (each token's row)."""
    return name == "sign" or (name == "row" and ndim >= 2) or (name == "col" and ndim == 2)


LMOS: dict[str, Callable[..., torch.Tensor]] = {
    "spectral": spectral, "sign": sign, "col": col, "row": row, "bias_rms": bias_rms,
}

_BY_ROLE = {
    ParamRole.HIDDEN_MATRIX: "spectral", ParamRole.EXPERT_STACK: "spectral", ParamRole.EMBEDDING: "col",
    ParamRole.TIED_EMBEDDING: "col", ParamRole.OUTPUT_HEAD: "sign", ParamRole.NORM: "bias_rms",
    ParamRole.BIAS: "bias_rms",
}


def lmo_for_role(role: ParamRole, param: torch.Tensor) -> str:
    """The paper's choice per layer kind: spectral for hidden matrices, column-wise for input embeddings (tied ones
    too: they are read as inputs first), sign for the output head, RMS for norms, biases and other vectors."""
    if role in _BY_ROLE:
        return _BY_ROLE[role]
    return "spectral" if param.dim() >= 2 else "bias_rms"
