"""Order-preserving byte encoding of Convex values, for index keys.

This module owns the key format stored in the ``indexes`` table: for any two
values ``a`` and ``b``, ``encode_key(a) < encode_key(b)`` bytewise exactly when
``a`` sorts before ``b`` in Convex's total order
(:func:`convex_backend.values.order.compare_values`), and the encodings are
equal exactly when the values are. Because SQLite and PostgreSQL compare blobs
bytewise, index range scans become plain ``key >= ? AND key < ?``.

Format (every encoding is self-delimiting, so a tuple of values is just the
concatenation of their encodings, and a shorter tuple sorts before its
extensions)::

    UNDEFINED  01                       (top level only: a missing field)
    null       02
    int64      03 + 8 bytes big-endian, sign bit flipped
    float64    04 + 8 bytes: IEEE bits big-endian; negative -> all bits
                    inverted, otherwise sign bit set (IEEE total order)
    false      05
    true       06
    string     07 + escaped UTF-8 + 00 01
    bytes      08 + escaped bytes + 00 01
    array      09 + element encodings + 00
    object     0A + per field, by key in UTF-8 order: 01 + escaped key + 00 01
                    + value encoding; then 00

Escaping turns each 00 byte into 00 FF, so the terminator 00 01 sorts below
any continuation and no encoding is a prefix of another. The object field
marker 01 keeps ``{}`` (0A 00) below ``{"": x}`` (0A 01 00 01 ...) even when
the object is followed by more bytes inside an array or an index tuple.

The decoder accepts only canonical encodings (sorted, unique keys; valid
UTF-8; no stray escapes; no trailing bytes), so decoding then re-encoding
always gives back the input bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

from convex_backend.values.errors import ConvexValueError
from convex_backend.values.types import UNDEFINED, Int64, Value

__all__ = [
    "MAX_DEPTH",
    "decode_index_key",
    "decode_key",
    "encode_index_key",
    "encode_key",
    "prefix_successor",
]

# A guard against RecursionError, well above Convex's own MAX_NESTING of 64
# (which the limits layer enforces on documents before they reach an index).
MAX_DEPTH = 256

_UNDEFINED_TYPE = type(UNDEFINED)

_TAG_UNDEFINED = 0x01
_TAG_NULL = 0x02
_TAG_INT64 = 0x03
_TAG_FLOAT64 = 0x04
_TAG_FALSE = 0x05
_TAG_TRUE = 0x06
_TAG_STRING = 0x07
_TAG_BYTES = 0x08
_TAG_ARRAY = 0x09
_TAG_OBJECT = 0x0A

_END = b"\x00\x01"
_FIELD = b"\x01"
_CLOSE = b"\x00"

_SIGN = 1 << 63
_ALL = (1 << 64) - 1

_pack_tag_u64 = struct.Struct(">BQ").pack
_u64 = struct.Struct(">Q")
_f64 = struct.Struct(">d")
_pack_u64 = _u64.pack
_unpack_u64 = _u64.unpack
_unpack_u64_from = _u64.unpack_from
_pack_f64 = _f64.pack
_unpack_f64 = _f64.unpack

Encoder = Callable[[Any, list, int], None]


def utf8(s: str) -> bytes:
    """The UTF-8 bytes of ``s``; a lone surrogate is not a Convex string."""
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        raise ConvexValueError("String is not valid Unicode (it contains a lone surrogate)")


def float_order_bits(f: float) -> int:
    """``f``'s IEEE-754 bits mapped so that unsigned order is total order."""
    bits = _unpack_u64(_pack_f64(f))[0]
    return bits ^ _ALL if bits & _SIGN else bits | _SIGN


# --- encoding ---------------------------------------------------------------


def _enc_undefined(v: Any, out: list, depth: int) -> None:
    out.append(b"\x01")


def _enc_null(v: Any, out: list, depth: int) -> None:
    out.append(b"\x02")


def _enc_int64(v: Int64, out: list, depth: int) -> None:
    # Adding 2^63 is the two's complement sign-bit flip on an unbounded int.
    out.append(_pack_tag_u64(_TAG_INT64, v.value + _SIGN))


def _enc_float(v: float, out: list, depth: int) -> None:
    out.append(_pack_tag_u64(_TAG_FLOAT64, float_order_bits(v)))


def _enc_bool(v: bool, out: list, depth: int) -> None:
    out.append(b"\x06" if v else b"\x05")


def _enc_str(v: str, out: list, depth: int) -> None:
    out += (b"\x07", utf8(v).replace(b"\x00", b"\x00\xff"), _END)


def _enc_bytes(v: bytes, out: list, depth: int) -> None:
    out += (b"\x08", v.replace(b"\x00", b"\x00\xff"), _END)


def _enc_list(v: list, out: list, depth: int) -> None:
    depth += 1
    if depth > MAX_DEPTH:
        raise ConvexValueError(f"Value is nested more than {MAX_DEPTH} levels deep")
    out.append(b"\x09")
    table = _NESTED_ENCODERS
    for item in v:
        enc = table.get(type(item))
        if enc is None:
            enc = _fallback_encoder(item, nested=True)
        enc(item, out, depth)
    out.append(_CLOSE)


def _field_key(k: Any) -> bytes:
    if type(k) is not str and not isinstance(k, str):
        raise ConvexValueError(f"Object field names must be strings, got {type(k).__name__}")
    return utf8(k)


def _enc_dict(v: dict, out: list, depth: int) -> None:
    depth += 1
    if depth > MAX_DEPTH:
        raise ConvexValueError(f"Value is nested more than {MAX_DEPTH} levels deep")
    out.append(b"\x0a")
    # Distinct str keys have distinct UTF-8, so sorting never compares values.
    fields = sorted([(_field_key(k), item) for k, item in v.items()])
    table = _NESTED_ENCODERS
    for key, item in fields:
        out += (_FIELD, key.replace(b"\x00", b"\x00\xff"), _END)
        enc = table.get(type(item))
        if enc is None:
            enc = _fallback_encoder(item, nested=True)
        enc(item, out, depth)
    out.append(_CLOSE)


_NESTED_ENCODERS: dict[type, Encoder] = {
    type(None): _enc_null,
    Int64: _enc_int64,
    float: _enc_float,
    bool: _enc_bool,
    str: _enc_str,
    bytes: _enc_bytes,
    list: _enc_list,
    dict: _enc_dict,
}
_TOP_ENCODERS: dict[type, Encoder] = {
    _UNDEFINED_TYPE: _enc_undefined,
    **_NESTED_ENCODERS,
}

# Subclasses (a str enum, numpy's float64, an OrderedDict) behave as their
# base; checked in this order, off the hot path.
_BASES: tuple[type, ...] = (Int64, float, str, bytes, list, dict)


def _fallback_encoder(v: Any, nested: bool) -> Encoder:
    for base in _BASES:
        if isinstance(v, base):
            return _NESTED_ENCODERS[base]
    raise not_a_value(v, nested)


def not_a_value(v: Any, nested: bool) -> ConvexValueError:
    """The error for something that is not a Convex value (where it was)."""
    if v is UNDEFINED and nested:
        return ConvexValueError(
            "UNDEFINED (a missing field) cannot appear inside an array or object"
        )
    if isinstance(v, int):
        return ConvexValueError(
            "A Python int is not a Convex value: use Int64(n) for an int64 "
            "or float(n) for a float64"
        )
    return ConvexValueError(f"{type(v).__name__} is not a Convex value")


def encode_key(value: Value) -> bytes:
    """The order-preserving, self-delimiting encoding of one value.

    ``value`` may be :data:`UNDEFINED` (a missing field), but only at the top.
    """
    enc = _TOP_ENCODERS.get(type(value))
    if enc is None:
        enc = _fallback_encoder(value, nested=False)
    out: list[bytes] = []
    enc(value, out, 0)
    return b"".join(out)


def encode_index_key(values: Sequence[Value]) -> bytes:
    """The key of an index entry: the values of the indexed fields, in order.

    Keys compare tuple-wise; a shorter tuple sorts before its extensions, so
    ``encode_index_key(prefix)`` with :func:`prefix_successor` bounds a scan.
    """
    out: list[bytes] = []
    table = _TOP_ENCODERS
    for value in values:
        enc = table.get(type(value))
        if enc is None:
            enc = _fallback_encoder(value, nested=False)
        enc(value, out, 0)
    return b"".join(out)


def prefix_successor(key: bytes) -> bytes | None:
    """The smallest byte string above every string that starts with ``key``.

    ``None`` when there is none (``key`` is empty or all 0xFF): the scan then
    has no upper bound.
    """
    stripped = key.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes((stripped[-1] + 1,))


# --- decoding ---------------------------------------------------------------

Decoder = Callable[[bytes, int, int], "tuple[Any, int]"]


def _truncated() -> ConvexValueError:
    return ConvexValueError("Corrupt index key: truncated")


def _read_escaped(buf: bytes, pos: int) -> tuple[bytes, int]:
    end = buf.find(b"\x00", pos)
    if end < 0 or end + 1 >= len(buf):
        raise _truncated()
    marker = buf[end + 1]
    if marker == 0x01:
        return buf[pos:end], end + 2
    parts = []
    while True:
        if marker != 0xFF:
            raise ConvexValueError(f"Corrupt index key: bad escape 00 {marker:02x} at offset {end}")
        parts.append(buf[pos:end])
        pos = end + 2
        end = buf.find(b"\x00", pos)
        if end < 0 or end + 1 >= len(buf):
            raise _truncated()
        marker = buf[end + 1]
        if marker == 0x01:
            parts.append(buf[pos:end])
            return b"\x00".join(parts), end + 2


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConvexValueError("Corrupt index key: string is not valid UTF-8")


def _dec_undefined(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    return UNDEFINED, pos


def _dec_null(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    return None, pos


def _dec_int64(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    if pos + 8 > len(buf):
        raise _truncated()
    return Int64(_unpack_u64_from(buf, pos)[0] - _SIGN), pos + 8


def _dec_float(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    if pos + 8 > len(buf):
        raise _truncated()
    bits = _unpack_u64_from(buf, pos)[0]
    bits = bits ^ _SIGN if bits & _SIGN else bits ^ _ALL
    return _unpack_f64(_pack_u64(bits))[0], pos + 8


def _dec_false(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    return False, pos


def _dec_true(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    return True, pos


def _dec_str(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    raw, pos = _read_escaped(buf, pos)
    return _text(raw), pos


def _dec_bytes(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    return _read_escaped(buf, pos)


def _dec_list(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    depth += 1
    if depth > MAX_DEPTH:
        raise ConvexValueError(f"Corrupt index key: nested over {MAX_DEPTH} deep")
    items = []
    n = len(buf)
    table = _NESTED_DECODERS
    while True:
        if pos >= n:
            raise _truncated()
        if buf[pos] == 0:
            return items, pos + 1
        dec = table[buf[pos]]
        if dec is None:
            raise _bad_tag(buf[pos], pos, nested=True)
        item, pos = dec(buf, pos + 1, depth)
        items.append(item)


def _dec_dict(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    depth += 1
    if depth > MAX_DEPTH:
        raise ConvexValueError(f"Corrupt index key: nested over {MAX_DEPTH} deep")
    obj: dict[str, Any] = {}
    previous: bytes | None = None
    n = len(buf)
    table = _NESTED_DECODERS
    while True:
        if pos >= n:
            raise _truncated()
        marker = buf[pos]
        if marker == 0:
            return obj, pos + 1
        if marker != 1:
            raise ConvexValueError(
                f"Corrupt index key: bad object field marker {marker:02x} at offset {pos}"
            )
        raw, pos = _read_escaped(buf, pos + 1)
        # Only the canonical (sorted, duplicate-free) form re-encodes to itself.
        if previous is not None and raw <= previous:
            raise ConvexValueError("Corrupt index key: object fields are not in sorted order")
        previous = raw
        key = _text(raw)
        if pos >= n:
            raise _truncated()
        dec = table[buf[pos]]
        if dec is None:
            raise _bad_tag(buf[pos], pos, nested=True)
        obj[key], pos = dec(buf, pos + 1, depth)


def _bad_tag(tag: int, pos: int, nested: bool) -> ConvexValueError:
    if tag == _TAG_UNDEFINED and nested:
        return ConvexValueError("Corrupt index key: UNDEFINED inside an array or object")
    return ConvexValueError(f"Corrupt index key: bad tag {tag:02x} at offset {pos}")


_NESTED_DECODERS: list[Decoder | None] = [None] * 256
for _tag, _dec in (
    (_TAG_NULL, _dec_null),
    (_TAG_INT64, _dec_int64),
    (_TAG_FLOAT64, _dec_float),
    (_TAG_FALSE, _dec_false),
    (_TAG_TRUE, _dec_true),
    (_TAG_STRING, _dec_str),
    (_TAG_BYTES, _dec_bytes),
    (_TAG_ARRAY, _dec_list),
    (_TAG_OBJECT, _dec_dict),
):
    _NESTED_DECODERS[_tag] = _dec
_TOP_DECODERS: list[Decoder | None] = list(_NESTED_DECODERS)
_TOP_DECODERS[_TAG_UNDEFINED] = _dec_undefined
del _tag, _dec


def _as_bytes(data: Any) -> bytes:
    if type(data) is bytes:
        return data
    try:
        # memoryview, not bytes(): bytes(5) would be five zero bytes.
        return memoryview(data).tobytes()
    except TypeError:
        raise ConvexValueError(f"An index key must be bytes, got {type(data).__name__}")


def _dec_top(buf: bytes, pos: int) -> tuple[Any, int]:
    dec = _TOP_DECODERS[buf[pos]]
    if dec is None:
        raise _bad_tag(buf[pos], pos, nested=False)
    return dec(buf, pos + 1, 0)


def decode_key(data: bytes) -> Value:
    """The value whose :func:`encode_key` is ``data`` (bytes-like).

    Raises :class:`ConvexValueError` if ``data`` is not exactly one canonical
    encoding.
    """
    buf = _as_bytes(data)
    if not buf:
        raise _truncated()
    value, pos = _dec_top(buf, 0)
    if pos != len(buf):
        raise ConvexValueError(
            f"Corrupt index key: {len(buf) - pos} trailing bytes after the value"
        )
    return value


def decode_index_key(data: bytes) -> list[Value]:
    """The values whose :func:`encode_index_key` is ``data`` (bytes-like)."""
    buf = _as_bytes(data)
    values = []
    pos = 0
    n = len(buf)
    while pos < n:
        value, pos = _dec_top(buf, pos)
        values.append(value)
    return values
