"""The Convex value model as Python objects.

A Convex value is one of::

    null     -> None
    int64    -> Int64
    float64  -> float
    boolean  -> bool
    string   -> str
    bytes    -> bytes
    array    -> list
    object   -> dict[str, Value]

This is the canonical, internal representation used by every other layer.
Python's ``int`` is *not* a canonical value: as in the official Python client,
user code's ``int`` means float64 and is converted at the boundary
(:mod:`convex_backend.values.python`); an int64 must be written ``Int64(n)``.

:data:`UNDEFINED` stands for a missing field. It is not a value, but it takes
part in the total order (it sorts before ``null``) because an index key over a
document that lacks the field holds it.
"""

from __future__ import annotations

from typing import Union

from convex_backend.values.errors import ConvexValueError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class Int64:
    """A Convex int64 (a JavaScript ``bigint``), distinct from a float64.

    ``Int64(3) != 3.0`` because Convex keeps the two types apart, and they
    sort differently.
    """

    __slots__ = ("value",)

    value: int

    def __init__(self, value: int) -> None:
        if isinstance(value, Int64):
            value = value.value
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConvexValueError(f"Int64 needs an int, got {type(value).__name__}")
        if not INT64_MIN <= value <= INT64_MAX:
            raise ConvexValueError(f"{value} does not fit into a 64-bit signed integer")
        object.__setattr__(self, "value", value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Int64 is immutable")

    def __repr__(self) -> str:
        return f"Int64({self.value})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Int64):
            return self.value == other.value
        return NotImplemented

    def __hash__(self) -> int:
        return hash((Int64, self.value))

    def __lt__(self, other: Int64) -> bool:
        if isinstance(other, Int64):
            return self.value < other.value
        return NotImplemented

    def __le__(self, other: Int64) -> bool:
        if isinstance(other, Int64):
            return self.value <= other.value
        return NotImplemented

    def __gt__(self, other: Int64) -> bool:
        if isinstance(other, Int64):
            return self.value > other.value
        return NotImplemented

    def __ge__(self, other: Int64) -> bool:
        if isinstance(other, Int64):
            return self.value >= other.value
        return NotImplemented

    def __int__(self) -> int:
        return self.value

    def __index__(self) -> int:
        return self.value

    def __reduce__(self):  # pickling (worker pipes may use it)
        return (Int64, (self.value,))


class _Undefined:
    """The singleton marking a missing field; see the module docstring."""

    __slots__ = ()
    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self):
        return (_Undefined, ())


UNDEFINED = _Undefined()

Value = Union[None, Int64, float, bool, str, bytes, list, dict]

__all__ = ["INT64_MAX", "INT64_MIN", "Int64", "UNDEFINED", "Value"]
