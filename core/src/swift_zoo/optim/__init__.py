"""The optimizer contract: the :class:`ZooOptimizer` frame, state accounting, parameter roles of groups,
sharding detection, owner compute under FSDP2 (:class:`MatrixOwners`), and the shared validation vocabulary."""

from swift_zoo._validation import (
    require_betas,
    require_bool,
    require_choice,
    require_finite,
    require_in_range,
    require_int,
    require_non_negative,
    require_positive,
)
from swift_zoo.optim._base import (
    NONFINITE_ENV,
    NONFINITE_POLICIES,
    NonFiniteGradientWarning,
    UntestedShardingWarning,
    ZooOptimizer,
    all_finite,
)
from swift_zoo.optim._contract import declared_state_bytes, group_role, measure_state_bytes
from swift_zoo.optim._sharding import (
    CommunicationLedger,
    MatrixOwners,
    as_row_sharded,
    communication_ledger,
    is_row_sharded,
    placeholder,
    plan_owners,
    row_range,
    sharded_zeros,
    sum_over_shards,
)
from swift_zoo.optim._state_dtypes import PreserveStateDtypes, restore_state_dtypes
from swift_zoo.optim._wrappers import MATRIX_ROLES, dtensor_layout_problem, is_dtensor, local_tensor, wrapper_of

__all__ = [
    "MATRIX_ROLES",
    "NONFINITE_ENV",
    "NONFINITE_POLICIES",
    "CommunicationLedger",
    "MatrixOwners",
    "NonFiniteGradientWarning",
    "PreserveStateDtypes",
    "UntestedShardingWarning",
    "ZooOptimizer",
    "all_finite",
    "as_row_sharded",
    "communication_ledger",
    "declared_state_bytes",
    "dtensor_layout_problem",
    "group_role",
    "is_dtensor",
    "is_row_sharded",
    "local_tensor",
    "measure_state_bytes",
    "placeholder",
    "plan_owners",
    "require_betas",
    "require_bool",
    "require_choice",
    "require_finite",
    "require_in_range",
    "require_int",
    "require_non_negative",
    "require_positive",
    "restore_state_dtypes",
    "row_range",
    "sharded_zeros",
    "sum_over_shards",
    "wrapper_of",
]
