"""GaLore-AdamW with ``galore_torch_compat=True`` against galore-torch 1.0's ``GaLoreAdamW``, across refreshes."""

from __future__ import annotations

import pytest
import torch

galore_torch = pytest.importorskip("galore_torch", reason="galore-torch is not installed (tests_references/requirements.txt)")

from swift_optim_zoo.galore import GaLoreAdamW  # noqa: E402


@pytest.mark.parametrize("shape", [(12, 8), (8, 12)])
def test_compat_mode_matches_galore_torch_over_three_refreshes(shape: tuple[int, int]) -> None:
    g = torch.Generator().manual_seed(0)
    w0, b0 = torch.randn(*shape, generator=g), torch.randn(shape[0], generator=g)
    ours = [torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())]
    theirs = [torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())]
    opt = GaLoreAdamW([{"params": ours[:1]}, {"params": ours[1:]}], lr=0.01, weight_decay=0.1, rank=3,
                      update_proj_gap=5, scale=0.25, galore_torch_compat=True)
    reference = galore_torch.GaLoreAdamW(
        [{"params": theirs[:1], "rank": 3, "update_proj_gap": 5, "scale": 0.25, "proj_type": "std"},
         {"params": theirs[1:]}], lr=0.01, weight_decay=0.1, no_deprecation_warning=True)
    for _ in range(13):  # refreshes at steps 1, 6 and 11
        for p, q in zip(ours, theirs):
            grad = torch.randn(p.shape, generator=g)
            p.grad, q.grad = grad.clone(), grad.clone()
        opt.step()
        reference.step()
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_default_mode_differs_from_galore_torch() -> None:
    """Without compat the same run differs (torch's AdamW for the bias, aligned signs), so the test above is not
    vacuous."""
    g = torch.Generator().manual_seed(1)
    b0 = torch.randn(8, generator=g)
    ours, theirs = torch.nn.Parameter(b0.clone()), torch.nn.Parameter(b0.clone())
    opt = GaLoreAdamW([ours], lr=0.01, weight_decay=0.1, rank=3, eps=1e-3)
    reference = galore_torch.GaLoreAdamW([theirs], lr=0.01, weight_decay=0.1, eps=1e-3, no_deprecation_warning=True)
    for _ in range(5):
        grad = torch.randn(8, generator=g) * 1e-2
        ours.grad, theirs.grad = grad.clone(), grad.clone()
        opt.step()
        reference.step()
    assert (ours - theirs).abs().max() > 1e-5
