"""Builders of the ``equivalents`` records of the zoo's losses: one spelling per library, torch-free.

A record's ``name`` is the library's own spelling -- a config or function call written as Python
(``DPOConfig(loss_type='sigmoid', beta=0.1)``) or command-line flags (``--rlhf_type dpo --loss_type
sigmoid``) -- so the comparisons in ``tests_references/losses`` parse it and run exactly what is
documented. ``zoo_kwargs`` are the zoo's constructor kwargs that give the same loss.
"""

from __future__ import annotations

from typing import Any

from swift_zoo import Equivalence

TRL = "trl==1.16.0"
MS_SWIFT = "ms-swift==4.6.0"
LIGER = "liger-kernel==0.8.5"
VERL = "verl==0.9.1"
TRANSFORMERS = "transformers==5.23.0"


def call(function: str, **kwargs: Any) -> str:
    """``function(k=v, ...)`` with ``repr`` values: a spelling the reference tests can parse."""
    return f"{function}(" + ", ".join(f"{key}={value!r}" for key, value in kwargs.items()) + ")"


def flags(**kwargs: Any) -> str:
    """``--key value ...`` (ms-swift's command line)."""
    return " ".join(f"--{key} {value}" for key, value in kwargs.items())


def trl(name: str, zoo: dict[str, Any] | None = None, *, settings: str = "", differs: str = "") -> Equivalence:
    return Equivalence("trl", name, TRL, zoo or {}, settings, differs)


def ms_swift(name: str, zoo: dict[str, Any] | None = None, *, settings: str = "", differs: str = "") -> Equivalence:
    return Equivalence("ms-swift", name, MS_SWIFT, zoo or {}, settings, differs)


def liger(name: str, zoo: dict[str, Any] | None = None, *, settings: str = "", differs: str = "") -> Equivalence:
    return Equivalence("liger", name, LIGER, zoo or {}, settings, differs)


def verl(name: str, zoo: dict[str, Any] | None = None, *, settings: str = "", differs: str = "") -> Equivalence:
    return Equivalence("verl", name, VERL, zoo or {}, settings, differs)


def transformers(name: str, zoo: dict[str, Any] | None = None, *, settings: str = "",
                 differs: str = "") -> Equivalence:
    return Equivalence("transformers", name, TRANSFORMERS, zoo or {}, settings, differs)


def dpo_family(loss_type: str, zoo: dict[str, Any] | None = None, *, trl_kwargs: dict[str, Any] | None = None,
               swift_flags: dict[str, Any] | None = None, liger_kwargs: dict[str, Any] | None = None,
               swift_differs: str = "", liger_differs: str = "") -> tuple[Equivalence, ...]:
    """The usual three records of a DPO-family loss: TRL ``DPOConfig``, ms-swift ``--rlhf_type dpo`` and Liger.

    ``None`` for ``swift_flags`` / ``liger_kwargs`` leaves that library out (it has no such loss).
    """
    zoo = zoo or {}
    found = [trl(call("DPOConfig", loss_type=loss_type, **(trl_kwargs or {})), zoo)]
    if swift_flags is not None:
        found.append(ms_swift(flags(rlhf_type="dpo", loss_type=loss_type, **swift_flags), zoo,
                              settings="DPOTrainer.dpo_loss (vendored from TRL <= 0.28)", differs=swift_differs))
    if liger_kwargs is not None:
        found.append(liger(call("LigerFusedLinearDPOLoss", loss_type=loss_type, **liger_kwargs), zoo,
                           differs=liger_differs))
    return tuple(found)
