"""The total order of Convex values (Convex's ``compareValues``).

This module owns the comparison semantics; :mod:`convex_backend.values.keys`
owns a byte encoding that sorts the same way, and :func:`sort_key` is that
encoding, for ``sorted(values, key=sort_key)``.

The order, by type first::

    UNDEFINED < null < int64 < float64 < boolean < string < bytes < array < object

and within a type: int64 numerically; float64 by IEEE-754 total order
(-NaN < -inf < ... < -0.0 < 0.0 < ... < inf < +NaN, NaNs by sign then raw
bits); false < true; strings by their UTF-8 bytes; bytes lexicographically
(a prefix first); arrays element-wise, a prefix first; objects as their list
of (key, value) fields sorted by key, key before value, a prefix first.

:data:`UNDEFINED` (a missing field) is accepted at the top level only, as in
index keys; inside an array or object it is an error, as in
:func:`~convex_backend.values.keys.encode_key`.
"""

from __future__ import annotations

from typing import Any

from convex_backend.values.errors import ConvexValueError
from convex_backend.values.keys import (
    MAX_DEPTH,
    encode_key,
    float_order_bits,
    not_a_value,
    utf8,
)
from convex_backend.values.types import UNDEFINED, Int64, Value

__all__ = ["compare_values", "sort_key", "type_rank"]

_NULL, _INT64, _FLOAT64, _BOOL, _STR, _BYTES, _LIST, _DICT = range(1, 9)

_NESTED_RANKS: dict[type, int] = {
    type(None): _NULL,
    Int64: _INT64,
    float: _FLOAT64,
    bool: _BOOL,
    str: _STR,
    bytes: _BYTES,
    list: _LIST,
    dict: _DICT,
}
_TOP_RANKS: dict[type, int] = {type(UNDEFINED): 0, **_NESTED_RANKS}
_BASES: tuple[type, ...] = (Int64, float, str, bytes, list, dict)


def sort_key(value: Value) -> bytes:
    """A bytes key that sorts like :func:`compare_values` (the index key)."""
    return encode_key(value)


def _rank(v: Any, ranks: dict[type, int]) -> int:
    r = ranks.get(type(v))
    if r is not None:
        return r
    # Subclasses (a str enum, numpy's float64) sort as their base type.
    for base in _BASES:
        if isinstance(v, base):
            return _NESTED_RANKS[base]
    raise not_a_value(v, nested=ranks is _NESTED_RANKS)


def type_rank(value: Value) -> int:
    """The position of ``value``'s type in the order (UNDEFINED is 0)."""
    return _rank(value, _TOP_RANKS)


def _cmp_str(a: str, b: str) -> int:
    # Code point order equals UTF-8 byte order for valid Unicode; the encode
    # also rejects lone surrogates, which have no UTF-8 form at all.
    if a.isascii() and b.isascii():
        return (a > b) - (a < b)
    x = utf8(a)
    y = utf8(b)
    return (x > y) - (x < y)


def _cmp_float(a: float, b: float) -> int:
    # For non-NaN floats < agrees with the total order, and it never reports
    # -0.0 < 0.0; everything else (ties, zeros, NaNs) goes to the bits.
    if a < b:
        return -1
    if a > b:
        return 1
    x = float_order_bits(a)
    y = float_order_bits(b)
    return (x > y) - (x < y)


def _field_list(d: dict) -> list[tuple[bytes, Any]]:
    fields = []
    for k, v in d.items():
        if not isinstance(k, str):
            raise ConvexValueError(f"Object field names must be strings, got {type(k).__name__}")
        fields.append((utf8(k), v))
    # Distinct keys have distinct UTF-8, so the values are never compared.
    fields.sort()
    return fields


def _cmp(a: Any, b: Any, ranks: dict[type, int], depth: int) -> int:
    ra = _rank(a, ranks)
    rb = _rank(b, ranks)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == _FLOAT64:
        return _cmp_float(a, b)
    if ra == _INT64:
        x, y = a.value, b.value
        return (x > y) - (x < y)
    if ra == _STR:
        return _cmp_str(a, b)
    if ra == _BOOL or ra == _BYTES:
        return (a > b) - (a < b)
    if ra == _LIST:
        depth += 1
        if depth > MAX_DEPTH:
            raise ConvexValueError(f"Value is nested more than {MAX_DEPTH} levels deep")
        for x, y in zip(a, b, strict=False):
            c = _cmp(x, y, _NESTED_RANKS, depth)
            if c:
                return c
        return (len(a) > len(b)) - (len(a) < len(b))
    if ra == _DICT:
        depth += 1
        if depth > MAX_DEPTH:
            raise ConvexValueError(f"Value is nested more than {MAX_DEPTH} levels deep")
        fa = _field_list(a)
        fb = _field_list(b)
        for (ka, va), (kb, vb) in zip(fa, fb, strict=False):
            if ka != kb:
                return -1 if ka < kb else 1
            c = _cmp(va, vb, _NESTED_RANKS, depth)
            if c:
                return c
        return (len(fa) > len(fb)) - (len(fa) < len(fb))
    return 0  # UNDEFINED and null: a single value each


def compare_values(a: Value, b: Value) -> int:
    """-1, 0 or 1 as ``a`` sorts before, with, or after ``b``.

    Raises :class:`ConvexValueError` for something that is not a Convex value.
    """
    return _cmp(a, b, _TOP_RANKS, 0)
