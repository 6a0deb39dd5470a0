"""The plugin module named by the entry point. No torch import here: listing must stay cheap."""

from __future__ import annotations

from my_swift_loss._capability import SIGNUM
from swift_zoo import LossSpec, OptimizerSpec, hookimpl


@hookimpl
def swift_zoo_register_losses():
    return [
        LossSpec("focal_token", "my_swift_loss.focal:FocalTokenLoss",
                 summary="Focal loss on next-token prediction", reference="arXiv:1708.02002"),
    ]


@hookimpl
def swift_zoo_register_optimizers():
    return [
        OptimizerSpec("signum", "my_swift_loss.signum:Signum", summary="signSGD with momentum",
                      reference="arXiv:1802.04434", state_bytes="1 momentum buffer in the parameter's dtype",
                      # the same record as the class's: a wrapper is "supported" once a test shows it equal to
                      # one process; the rest stay "untested" (a warning) or "refused" (an error)
                      distributed=SIGNUM),
    ]
