"""The spawn launcher of the installed core (:mod:`swift_zoo.testing._spawn`), under the name these tests use."""

from __future__ import annotations

from swift_zoo.testing._spawn import LOOPBACK, free_port, gloo_unavailable_reason, loopback_env, run_on_ranks

__all__ = ["LOOPBACK", "free_port", "gloo_unavailable_reason", "loopback_env", "run_on_ranks"]
