"""Fast construction of frozen slotted dataclasses from already validated parts (decoder hot paths).

A frozen dataclass's ``__init__`` sets every field through ``object.__setattr__``, several times
the cost of a plain attribute store; the forwarder builds a Name, an Interest or a Data for every
packet it decodes. :func:`trusted_constructor` returns a function taking every field positionally
(in declaration order, init-less ones included) that fills the slots of a mutable twin class with
the same slot layout and then gives the object the frozen class; Python allows that ``__class__``
assignment because the layouts are identical. The result is indistinguishable from an instance
built by ``__init__``; no ``__post_init__`` runs, so only callers that validated the values use it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def trusted_constructor(cls: type[T]) -> Callable[..., T]:
    """A constructor ``make(field1, field2, ...)`` for the frozen slotted dataclass ``cls``."""
    slots: tuple[str, ...] = tuple(getattr(cls, "__slots__"))
    if any(not name.isidentifier() or name.startswith("__") for name in slots):
        raise TypeError(f"{cls.__name__}: unexpected slots {slots}")
    params = ", ".join(slots)
    body = "; ".join(f"self.{name} = {name}" for name in slots) or "pass"
    namespace: dict[str, Any] = {}
    exec(f"def __init__(self, {params}):\n    {body}\n", namespace)  # noqa: S102 - fixed field names
    twin = type(f"_Trusted{cls.__name__}", (), {"__slots__": slots, "__init__": namespace["__init__"]})
    scope: dict[str, Any] = {"twin": twin, "cls": cls}
    exec(f"def make({params}):\n    obj = twin({params})\n    obj.__class__ = cls\n    return obj\n", scope)
    make: Callable[..., T] = scope["make"]
    make.__doc__ = f"A {cls.__name__} from its fields ({params}), without validation."
    return make
