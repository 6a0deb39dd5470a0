"""How verl (and TRL) spell the advantage estimators: :class:`swift_zoo.Equivalence` builders.

The ``references`` nox session compares every equal verl declaration numerically
(``tests_references/losses/test_advantage_equivalence.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from swift_zoo import Equivalence

VERL = "verl==0.9.1"
TRL = "trl==1.16.0"
GROUPS = "index = group_ids; groups of 2+ responses (verl gives a lone response its raw reward, here 0)"
TOKENS = "token_level_rewards = token_rewards with rewards added on each response's last counted token"


def verl_advantage(function: str, estimator: str, *, zoo_kwargs: Mapping[str, Any] | None = None,
                   settings: str = "", differs: str = "") -> Equivalence:
    """verl ``algorithm.adv_estimator=<estimator>``, computed by ``core_algos.<function>``."""
    name = f"algorithm.adv_estimator={estimator!r} (core_algos.{function})"
    return Equivalence("verl", name, VERL, dict(zoo_kwargs or {}), settings, differs)
