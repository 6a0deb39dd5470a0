"""Schedule-Free AdamW."""

from swift_optim_zoo._catalogue._distributed import ELEMENT_WISE
from swift_zoo import OptimizerSpec

OPTIMIZERS = [
    OptimizerSpec(
        "schedule_free_adamw",
        "swift_optim_zoo.schedule_free:ScheduleFreeAdamW",
        aliases=("adamw_schedule_free",),
        summary="Schedule-Free AdamW: interpolation + averaging instead of an LR schedule; call train()/eval()",
        reference="arXiv:2405.15682",
        state_bytes="2 words (z, exp_avg_sq; parameter dtype)",
        roles=("all",),
        hooks=("train", "eval"),
        distributed=ELEMENT_WISE,
    ),
]
