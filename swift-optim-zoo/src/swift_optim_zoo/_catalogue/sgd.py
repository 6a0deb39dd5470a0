"""SGD with heavy-ball or Nesterov momentum and decoupled (or L2) weight decay."""

from swift_optim_zoo._catalogue._distributed import ELEMENT_WISE
from swift_zoo import OptimizerSpec

OPTIMIZERS = [
    OptimizerSpec(
        "sgd",
        "swift_optim_zoo.sgd:SGD",
        summary="SGD with heavy-ball or Nesterov momentum and decoupled (or L2) weight decay",
        reference="arXiv:1711.05101",
        state_bytes="1 word (momentum_buffer; parameter dtype)",
        roles=("all",),
        distributed=ELEMENT_WISE,
    ),
]
