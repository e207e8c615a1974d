"""Convex document ids (the "v6" format): encoding, strict decoding, new ids.

An id is the lowercase Crockford base32 text of::

    VInt(table_number) || internal_id (16 bytes) || footer (2 bytes)

where VInt is the unsigned LEB128 of a u32 (1-5 bytes, never 0) and the footer
is the Fletcher-16 (mod 256) of the preceding bytes XOR the version (0),
little-endian. See ``shared/reference/document-ids.md``. Ids carry their table
number, so a document can be found from its id alone, and ids exported from
Convex keep working here.

Decoding is strict: every string that is not exactly what :func:`encode_id`
produces raises :class:`InvalidIdError`.
"""

from __future__ import annotations

import base64
import os
import re
from operator import mul
from typing import Any, NamedTuple

from convex_backend.values.errors import InvalidIdError

__all__ = [
    "DocumentId",
    "INTERNAL_ID_LENGTH",
    "MAX_TABLE_NUMBER",
    "base32_decode",
    "base32_encode",
    "decode_id",
    "encode_id",
    "is_id",
    "new_internal_id",
]

INTERNAL_ID_LENGTH = 16
MAX_TABLE_NUMBER = 2**32 - 1
_VERSION = 0
_MIN_ID_LENGTH = 31  # 19 bytes: 1-byte VInt
_MAX_ID_LENGTH = 37  # 23 bytes: 5-byte VInt

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_RFC4648 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
# base64 does the bit shuffling in (mostly) C; we only swap alphabets.
_TO_CROCKFORD = bytes.maketrans(_RFC4648.encode(), _ALPHABET.encode())
# int(s, 32) reads digits 0-9a-v, so decoding maps to those and parses in C.
_TO_INT_DIGITS = str.maketrans(_ALPHABET, "0123456789abcdefghijklmnopqrstuv")
_INVALID_CHAR = re.compile(r"[^0-9a-hjkmnp-tv-z]")
# Characters of an n-byte string are 8 per 5 bytes plus these for n % 5.
_CHARS_FOR_REST = (0, 2, 4, 5, 7)
_BYTES_FOR_CHARS = {c: r for r, c in enumerate(_CHARS_FOR_REST)}


class DocumentId(NamedTuple):
    """A decoded id: which table, and the 16-byte id inside it."""

    table_number: int
    internal_id: bytes

    def encode(self) -> str:
        """The id's string form."""
        return encode_id(self.table_number, self.internal_id)


def base32_encode(data: bytes) -> str:
    """Lowercase Crockford base32, most significant bits first, unpadded."""
    return base64.b32encode(data).translate(_TO_CROCKFORD).rstrip(b"=").decode()


def _base32_decode(s: str, what: str) -> bytes:
    bad = _INVALID_CHAR.search(s)
    if bad is not None:
        raise InvalidIdError(f"Invalid character {bad.group()!r} in {what}")
    n = len(s)
    full, rest = divmod(n, 8)
    rest_bytes = _BYTES_FOR_CHARS.get(rest)
    if rest_bytes is None:
        raise InvalidIdError(f"Invalid {what} length {n}")
    if not n:
        return b""
    nbytes = full * 5 + rest_bytes
    pad_bits = n * 5 - nbytes * 8
    value = int(s.translate(_TO_INT_DIGITS), 32)
    if value & ((1 << pad_bits) - 1):
        raise InvalidIdError(f"Invalid {what}: non-zero padding bits")
    return (value >> pad_bits).to_bytes(nbytes, "big")


def base32_decode(s: str) -> bytes:
    """The inverse of :func:`base32_encode`; strict (lowercase alphabet only,
    a valid length, zero padding bits). Raises :class:`InvalidIdError`."""
    if not isinstance(s, str):
        raise InvalidIdError(f"Base32 text must be a str, got {type(s).__name__}")
    return _base32_decode(s, "base32 string")


def _fletcher16(data: bytes) -> int:
    # c0 is the byte sum and c1 = sum((n - i) * b[i]); both mod 256, since
    # reducing at every step gives the same result as reducing at the end.
    n = len(data)
    c0 = sum(data) & 0xFF
    c1 = sum(map(mul, data, range(n, 0, -1))) & 0xFF
    return (c1 << 8) | c0


def _vint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode_id(table_number: int, internal_id: bytes) -> str:
    """The id string of document ``internal_id`` in table ``table_number``."""
    if (
        isinstance(table_number, bool)
        or not isinstance(table_number, int)
        or not 1 <= table_number <= MAX_TABLE_NUMBER
    ):
        raise InvalidIdError(
            f"Invalid table number {table_number!r}: must be an int from 1 to {MAX_TABLE_NUMBER}"
        )
    if not isinstance(internal_id, bytes) or len(internal_id) != INTERNAL_ID_LENGTH:
        raise InvalidIdError(
            f"Invalid internal id {internal_id!r}: must be {INTERNAL_ID_LENGTH} bytes"
        )
    body = _vint(table_number) + internal_id
    footer = _fletcher16(body) ^ _VERSION
    return base32_encode(body + footer.to_bytes(2, "little"))


def decode_id(s: str) -> DocumentId:
    """The table number and internal id of an id string.

    Raises :class:`InvalidIdError` (with the reason) for anything that
    :func:`encode_id` would not have produced, including non-strings.
    """
    if not isinstance(s, str):
        raise InvalidIdError(f"An ID must be a string, got {type(s).__name__}")
    n = len(s)
    if not _MIN_ID_LENGTH <= n <= _MAX_ID_LENGTH:
        raise InvalidIdError(f"Invalid ID length {n}")
    data = _base32_decode(s, "ID")

    table_number = 0
    shift = 0
    pos = 0
    while True:
        if pos == 5:
            raise InvalidIdError("Invalid ID: table number VInt is too long")
        byte = data[pos]
        pos += 1
        table_number |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    if pos > 1 and byte == 0:
        raise InvalidIdError("Invalid ID: table number VInt is not canonical")
    if table_number > MAX_TABLE_NUMBER:
        raise InvalidIdError("Invalid ID: table number does not fit in 32 bits")
    if table_number == 0:
        raise InvalidIdError("Invalid ID: table number 0")
    if len(data) - pos != INTERNAL_ID_LENGTH + 2:
        raise InvalidIdError(f"Invalid ID length {n} for its table number")

    body_end = pos + INTERNAL_ID_LENGTH
    footer = int.from_bytes(data[body_end:], "little") ^ _VERSION
    if footer != _fletcher16(data[:body_end]):
        raise InvalidIdError("Invalid ID checksum")
    return DocumentId(table_number, data[pos:body_end])


def is_id(s: Any) -> bool:
    """Whether ``s`` is a well-formed id string."""
    try:
        decode_id(s)
    except InvalidIdError:
        return False
    return True


def new_internal_id() -> bytes:
    """A fresh random internal id."""
    return os.urandom(INTERNAL_ID_LENGTH)
