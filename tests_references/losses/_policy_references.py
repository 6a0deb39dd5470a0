"""What the policy-family and advantage comparisons share: the declared records, random batches, tolerances.

Records come from the classes (``BaseLoss.equivalents`` / ``BaseAdvantage.equivalents``) of the policy losses
(``swift_loss_zoo.policy``) and the advantage estimators (``swift_loss_zoo.advantages``). Batches are float64,
with ragged right padding, a masked tool span, off-policy ratios around 1 (some clipped) and no all-padding
row (TRL and Liger divide by the row count; the zoo counts only completions with a token).
"""

from __future__ import annotations

from typing import Any

import torch

import swift_zoo

DISTRIBUTION = "swift-loss-zoo"
F64 = torch.float64
RTOL, ATOL = 1e-7, 1e-9
# TRL and Liger take SAPO's temperatures through torch.where(A > 0, tau_pos, tau_neg): a float32 tensor
FLOAT32_TEMPERATURES = {"rtol": 1e-6, "atol": 1e-7}
SEEDS = (0, 1, 2)


def _ours(entry: Any) -> bool:
    return (entry.distribution or "").replace("_", "-").lower() == DISTRIBUTION


def policy_records(library: str, *, equal: bool = True) -> list[tuple[str, Any]]:
    """``(loss name, record)`` for the policy losses' records of ``library``."""
    found = []
    for entry in sorted(swift_zoo.list_losses(), key=lambda e: e.name):
        if not _ours(entry) or not entry.spec.target_path.startswith("swift_loss_zoo.policy."):
            continue
        for record in swift_zoo.REGISTRY.load_entry(entry).equivalents:
            if record.library == library and record.equal == equal:
                found.append((entry.name, record))
    return found


def advantage_records(library: str, *, equal: bool = True) -> list[tuple[str, Any]]:
    """``(estimator name, record)`` for the advantage estimators' records of ``library``."""
    found = []
    for entry in sorted(swift_zoo.list_advantages(), key=lambda e: e.name):
        if not _ours(entry):
            continue
        for record in swift_zoo.REGISTRY.load_entry(entry).equivalents:
            if record.library == library and record.equal == equal:
                found.append((entry.name, record))
    return found


def record_id(item: tuple[str, Any]) -> str:
    name, record = item
    kwargs = ",".join(f"{k}={v}" for k, v in record.zoo_kwargs.items())
    return f"{name}[{kwargs}]" if kwargs else name


def policy_batch(seed: int, *, batch: int = 6, seq: int = 7, token_advantages: bool = False,
                 spread: float = 0.25) -> dict[str, torch.Tensor]:
    """Every input a policy loss declares, float64; no row without a counted token."""
    g = torch.Generator().manual_seed(seed)
    lp = -(0.05 + 2.0 * torch.rand(batch, seq, generator=g, dtype=F64))
    old = lp + spread * torch.randn(batch, seq, generator=g, dtype=F64)
    lengths = torch.randint(2, seq + 1, (batch,), generator=g)
    mask = (torch.arange(seq)[None] < lengths[:, None]).long()
    mask[1, 1] = 0
    return {
        "per_token_logps": lp,
        "old_per_token_logps": old,
        "ref_per_token_logps": lp + 0.3 * torch.randn(batch, seq, generator=g, dtype=F64),
        "rollout_per_token_logps": old + 0.2 * torch.randn(batch, seq, generator=g, dtype=F64),
        # float32 values (as a model's entropies are): TRL takes the quantile threshold in float32
        "entropy": (0.2 + 2.0 * torch.rand(batch, seq, generator=g, dtype=F64)).float().double(),
        "advantages": torch.randn((batch, seq) if token_advantages else (batch,), generator=g, dtype=F64),
        "completion_mask": mask,
    }


def zoo_value_and_grad(loss: Any, batch: dict[str, torch.Tensor], *, num_items_in_batch: Any = None,
                       keys: tuple[str, ...] = ("per_token_logps",)) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The zoo loss and the gradients of ``keys``."""
    leaves = {k: batch[k].clone().requires_grad_(True) for k in keys}
    value = loss({**batch, **leaves}, num_items_in_batch=num_items_in_batch)
    value.backward()
    return value.detach(), {k: leaf.grad for k, leaf in leaves.items()}


def assert_close(found: torch.Tensor, expected: torch.Tensor, what: str, *, rtol: float = RTOL,
                 atol: float = ATOL) -> None:
    found, expected = found.detach().double(), expected.detach().double()
    assert found.shape == expected.shape, f"{what}: shape {tuple(found.shape)} != {tuple(expected.shape)}"
    assert torch.allclose(found, expected, rtol=rtol, atol=atol), (
        f"{what}: max |diff| {(found - expected).abs().max().item():.3e} (zoo {found.flatten()[:4].tolist()}, "
        f"library {expected.flatten()[:4].tolist()})"
    )
