"""The zoo's element-wise optimizers and CAME against pytorch_optimizer 4.1 (and torch's SGD), 20 steps in lockstep.

Where the two follow different conventions the comparison picks the settings under which both compute the same
rule, and says which convention the zoo follows (see each class's docstring).
"""

from __future__ import annotations

import pytest
import torch

pytorch_optimizer = pytest.importorskip(
    "pytorch_optimizer", reason="pytorch_optimizer is not installed (tests_references/requirements.txt)")

from _lockstep import lockstep  # noqa: E402

from swift_optim_zoo.adan import Adan  # noqa: E402
from swift_optim_zoo.ademamix import AdEMAMix  # noqa: E402
from swift_optim_zoo.adopt import ADOPT  # noqa: E402
from swift_optim_zoo.came import CAME  # noqa: E402
from swift_optim_zoo.lamb import LAMB  # noqa: E402
from swift_optim_zoo.mars import MARS  # noqa: E402
from swift_optim_zoo.prodigy import Prodigy  # noqa: E402
from swift_optim_zoo.sgd import SGD  # noqa: E402
from swift_optim_zoo.stable_adamw import StableAdamW  # noqa: E402

PO = pytorch_optimizer
TOLERANCE = 2e-5  # float32 over 20 steps: rounding differences of reordered arithmetic only

CASES = {
    "adopt": (lambda p: ADOPT(p, lr=1e-2, weight_decay=0.1),
              lambda p: PO.ADOPT(p, lr=1e-2, weight_decay=0.1, foreach=False)),
    "adopt_decoupled_cautious": (
        lambda p: ADOPT(p, lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True, cautious=True),
        lambda p: PO.ADOPT(p, lr=1e-2, weight_decay=0.1, weight_decouple=True, cautious=True, foreach=False)),
    # pytorch_optimizer's default weight decay is L2 (weight_decouple=False); the paper's Algorithm 1 decouples it
    "ademamix": (lambda p: AdEMAMix(p, lr=1e-2, weight_decay=0.1, warmup_steps=10),
                 lambda p: PO.AdEMAMix(p, lr=1e-2, weight_decay=0.1, weight_decouple=True, t_alpha_beta3=10,
                                       foreach=False)),
    "mars": (lambda p: MARS(p, lr=1e-2, weight_decay=0.1),
             lambda p: PO.MARS(p, lr=1e-2, lr_1d=1e-2, weight_decay=0.1, weight_decay_1d=0.1, foreach=False)),
    "mars_cautious": (lambda p: MARS(p, lr=1e-2, cautious=True),
                      lambda p: PO.MARS(p, lr=1e-2, lr_1d=1e-2, weight_decay_1d=0.0, cautious=True, foreach=False)),
    "adan": (lambda p: Adan(p, lr=1e-2, weight_decay=0.1),
             lambda p: PO.Adan(p, lr=1e-2, weight_decay=0.1, foreach=False)),
    "adan_decoupled": (lambda p: Adan(p, lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True),
                       lambda p: PO.Adan(p, lr=1e-2, weight_decay=0.1, weight_decouple=True, foreach=False)),
    "stable_adamw": (lambda p: StableAdamW(p, lr=1e-2, weight_decay=0.1),
                     lambda p: PO.StableAdamW(p, lr=1e-2, weight_decay=0.1, foreach=False)),
    "sgd_decoupled_nesterov": (
        lambda p: SGD(p, lr=1e-2, momentum=0.9, nesterov=True, weight_decay=0.1),
        lambda p: PO.SGDW(p, lr=1e-2, momentum=0.9, nesterov=True, weight_decay=0.1, foreach=False)),
    "sgd_l2_is_torch_sgd": (
        lambda p: SGD(p, lr=1e-2, momentum=0.9, dampening=0.1, weight_decay=0.1, decoupled_weight_decay=False),
        lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9, dampening=0.1, weight_decay=0.1)),
    "came": (lambda p: CAME(p, lr=1e-2, weight_decay=0.1),
             lambda p: PO.CAME(p, lr=1e-2, weight_decay=0.1, foreach=False)),
}


@pytest.mark.parametrize(("case", "fused"), [(case, fused) for case in sorted(CASES) for fused in (False, True)
                                             if not (fused and case == "came")])  # CAME: whole-matrix, no fused path
def test_matches_pytorch_optimizer(case: str, fused: bool) -> None:
    make_ours, make_theirs = CASES[case]

    def ours(params):
        opt = make_ours(params)
        for group in opt.param_groups:
            if "fused" in group:
                group["fused"] = fused
        return opt

    drift = lockstep(ours, make_theirs)
    assert drift < TOLERANCE, f"{case}: max |ours - pytorch_optimizer| = {drift:.3g} after 20 steps"


@pytest.mark.parametrize("fused", [False, True])
def test_prodigy_matches_pytorch_optimizer(fused: bool) -> None:
    """The per-tensor terms of the two global sums are float32 in both (the zoo adds them up in float64): d
    differs by rounding, and with lr 1 the parameters move by units, hence the looser bound."""
    drift = lockstep(lambda p: Prodigy(p, weight_decay=0.01, d0=1e-3, fused=fused),
                     lambda p: PO.Prodigy(p, weight_decay=0.01, d0=1e-3, foreach=False), grad_offset=0.5)
    assert drift < 1e-4


def test_lamb_matches_pytorch_optimizer_where_their_conventions_agree() -> None:
    """pytorch_optimizer leaves v uncorrected and divides the step by 1 - beta1^t outside the trust ratio; the paper
    (and the zoo) corrects both moments inside it. With beta1 = 0, eps -> 0 and no weight decay both give the same
    update, because the trust ratio cancels any rescaling of the Adam direction."""
    drift = lockstep(lambda p: LAMB(p, lr=1e-2, betas=(0.0, 0.999), eps=1e-12),
                     lambda p: PO.Lamb(p, lr=1e-2, betas=(0.0, 0.999), eps=1e-12, max_grad_norm=0.0))
    assert drift < TOLERANCE


def test_lamb_differs_from_pytorch_optimizer_with_momentum() -> None:
    """The convention difference is real with beta1 > 0 (early steps take 1/(1 - beta1^t) larger steps there)."""
    drift = lockstep(lambda p: LAMB(p, lr=1e-2, weight_decay=0.1),
                     lambda p: PO.Lamb(p, lr=1e-2, weight_decay=0.1, weight_decouple=False, max_grad_norm=0.0))
    assert drift > 1e-3
