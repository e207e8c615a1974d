"""The mapping between plain Python objects and canonical Convex values.

This module owns the boundary with user function code, and follows the
official ``convex`` Python client:

=====================================  =====================================
Python                                 Convex value
=====================================  =====================================
``None``, ``bool``, ``str``            null, boolean, string
``int``                                float64 (exact only; else use Int64)
``float``                              float64
``Int64(n)``                           int64
``bytes``/``bytearray``/``memoryview``  bytes
``list``/``tuple``                     array
``Mapping`` with ``str`` keys          object (``UNDEFINED`` fields dropped)
=====================================  =====================================

Going the other way needs no conversion: canonical values already are Python
objects (see :mod:`convex_backend.values.types`), so :func:`to_python`
returns its argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from convex_backend.values.codec import (
    MAX_NESTING_DEPTH_VALUE,
    _check_unicode,
    _good_key,
    _key_error,
    _PathError,
)
from convex_backend.values.errors import ConvexValueError
from convex_backend.values.types import UNDEFINED, Int64, Value

__all__ = ["from_python", "to_python"]


def _too_nested() -> _PathError:
    return _PathError(
        f"Value is nested too deeply (more than {MAX_NESTING_DEPTH_VALUE} "
        "levels of lists and dicts)"
    )


def _int(i: int) -> float:
    try:
        f = float(i)
    except OverflowError:
        f = None
    # int == float compares exactly, so this catches any rounding.
    if f is None or f != i:
        raise _PathError(
            f"int {i} cannot be represented exactly as a float64 (a Python int "
            f"means a Convex float64); use Int64({i}) for an int64"
        )
    return f


def _conv(o: Any, depth: int) -> Any:
    t = type(o)
    if t is str:
        if not o.isascii():
            _check_unicode(o)
        return o
    if t is float or o is None or t is bool or t is Int64 or t is bytes:
        return o
    if t is int:
        return _int(o)
    if t is dict or t is list or t is tuple:
        pass
    elif isinstance(o, int):
        return _int(int(o))
    elif isinstance(o, float):
        return float(o)
    elif isinstance(o, str):
        return _conv(str(o), depth)
    elif isinstance(o, Int64):
        return o
    elif isinstance(o, (bytes, bytearray)):
        return bytes(o)
    elif isinstance(o, memoryview):
        return o.tobytes()
    elif not isinstance(o, (Mapping, list, tuple)):
        if o is UNDEFINED:
            raise _PathError(
                "UNDEFINED is only allowed as a dict value (the field is then left out)"
            )
        raise _PathError(f"{type(o).__name__} cannot be converted to a Convex value")
    if depth >= MAX_NESTING_DEPTH_VALUE:
        raise _too_nested()
    depth += 1
    if isinstance(o, (list, tuple)):
        out: list = []
        append = out.append
        try:
            for x in o:
                append(_conv(x, depth))
        except _PathError as e:
            e.index(len(out))
            raise
        return out
    obj = {}
    k = None
    try:
        for k, x in o.items():
            if not _good_key(k):
                _key_error(k)
            if x is not UNDEFINED:
                obj[str(k)] = _conv(x, depth)
    except _PathError as e:
        e.key(k)
        raise
    return obj


def from_python(obj: Any) -> Value:
    """Convert a Python object from function code to a canonical value.

    ``bool`` stays boolean; any other ``int`` becomes a float64, and must be
    exactly representable (use ``Int64`` for an int64). Tuples become lists,
    mappings become dicts (keys must be valid field names; ``UNDEFINED``
    values are dropped), bytes-like objects become ``bytes``. Raises
    :class:`ConvexValueError`, with the path, for anything else.
    """
    try:
        return _conv(obj, 0)
    except _PathError as e:
        raise e.public() from None
    except RecursionError:
        raise ConvexValueError("Value is nested too deeply") from None


def to_python(value: Value) -> Any:
    """Return ``value`` for function code: canonical values already are the
    Python objects user code sees (``Int64`` stays ``Int64``, so an int64 read
    back is not confused with a float64)."""
    return value
