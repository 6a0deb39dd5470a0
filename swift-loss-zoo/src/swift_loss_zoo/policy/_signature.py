"""Constructor signatures that list inherited hyperparameters, so a subclass states only its own.

Every policy loss takes the options of its base class (KL term, aggregation mode, rollout
correction, entropy terms...). A subclass writes::

    def __init__(self, *, temperature_pos: float = 1.0, **options: Any) -> None:
        super().__init__(**options)

and :func:`inherit_signature` gives that ``__init__`` the signature ``(self, *, temperature_pos:
float = 1.0, <every keyword of the base __init__, in its order>)``, with resolved type hints. ``swift_zoo.build_loss`` (unknown kwargs and YAML coercion), ``hyperparameters()``, the
conformance suite and the docs read that signature, so they see one flat list of keyword-only
hyperparameters, never ``**options``. Redeclaring an inherited keyword changes its default; naming it
in the class attribute ``hidden_options`` leaves it out (the subclass sets it itself).
"""

from __future__ import annotations

import inspect
import typing


def inherit_signature(cls: type) -> None:
    """Merge the parent's keyword-only parameters into ``cls.__init__``'s signature (when it takes ``**options``)."""
    init = cls.__dict__.get("__init__")
    if init is None:
        return
    own = inspect.signature(init)
    if not any(p.kind is p.VAR_KEYWORD for p in own.parameters.values()):
        return
    parent = inspect.signature(cls.__mro__[1].__init__)
    inherited = [p for p in parent.parameters.values() if p.kind is p.KEYWORD_ONLY]
    own_params = {p.name: p for p in own.parameters.values() if p.kind is not p.VAR_KEYWORD}
    hidden = set(cls.__dict__.get("hidden_options", ()))
    new = [p for name, p in own_params.items() if name not in {q.name for q in inherited}]
    kept = [own_params.get(p.name, p) for p in inherited if p.name not in hidden]
    hints = {**typing.get_type_hints(cls.__mro__[1].__init__), **typing.get_type_hints(init)}
    hints.pop("options", None)
    resolved = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in (*new, *kept)]
    init.__signature__ = own.replace(parameters=resolved)
    init.__annotations__ = hints
