"""Opaque, tamper-proof pagination cursors.

This module owns the cursor strings of ``paginate()``
(``continueCursor``, ``splitCursor``, the ``cursor``/``endCursor`` options):
what they hold, how they are sealed, and which query they belong to.

A :class:`Cursor` is a position in the result of one query: the
:func:`query_fingerprint` of that query and the index key of the last row
returned (the next page starts strictly after it), or ``None`` once the whole
range has been read. :class:`CursorCodec` seals it with AES-256-GCM under a
key derived from the instance secret, so clients cannot read or forge cursors
and a cursor from another instance (or another secret) is refused::

    cursor = base64url-unpadded( version(1) | nonce(12) | AES-GCM(plaintext) )
    plaintext = fingerprint(16) | kind(1) [ | position ]

with kind 0 for "done" (no position) and 1 for a position. The version byte
is authenticated as associated data.

Every way a string can fail to be a valid cursor for the query at hand raises
:class:`InvalidCursor`, whose message contains ``"InvalidCursor"``: the React
client looks for that word and resets the pagination
(reference/client-protocol.md §4.3).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from convex_backend.auth.admin_key import derive_key_material
from convex_backend.database.query import (
    Filter,
    FullTableScan,
    IndexRange,
    Query,
    SearchSource,
)
from convex_backend.values import ConvexValueError, encode_key
from convex_backend.values.keys import utf8

__all__ = [
    "FINGERPRINT_SIZE",
    "MAX_CURSOR_LENGTH",
    "Cursor",
    "CursorCodec",
    "InvalidCursor",
    "query_fingerprint",
]

#: Bytes in a query fingerprint.
FINGERPRINT_SIZE = 16
#: The longest cursor string accepted, so a huge string is refused before any
#: decoding work. Positions are index keys, bounded by the document limits.
MAX_CURSOR_LENGTH = 4 * 1024 * 1024

_VERSION = 1
_NONCE_SIZE = 12
_TAG_SIZE = 16
_KIND_DONE = 0
_KIND_POSITION = 1
_MIN_RAW = 1 + _NONCE_SIZE + _TAG_SIZE + FINGERPRINT_SIZE + 1
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_pack_len = struct.Struct(">I").pack


class InvalidCursor(ConvexValueError):
    """A cursor string is malformed, forged, or belongs to another query."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"InvalidCursor: {reason}")


@dataclass(frozen=True)
class Cursor:
    """Where a paginated query stands.

    ``position`` is the index key of the last row returned; the next page
    starts strictly after it. ``None`` means the end of the range: done.
    """

    query_fingerprint: bytes
    position: bytes | None


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise InvalidCursor("the cursor is not valid base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidCursor("the cursor is not valid base64url") from None
    # The last character may carry unused bits; only the canonical spelling
    # is accepted, so that every changed character changes the bytes.
    if _b64encode(data) != text:
        raise InvalidCursor("the cursor is not canonical base64url")
    return data


class CursorCodec:
    """Seals and opens cursors with a key derived from the instance secret."""

    def __init__(self, instance_secret_hex: str) -> None:
        key = derive_key_material(instance_secret_hex, "cursor", b"", 32)
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "CursorCodec(<redacted>)"

    def encode(self, cursor: Cursor) -> str:
        """The opaque string for ``cursor`` (different on every call)."""
        fp = cursor.query_fingerprint
        if type(fp) is not bytes or len(fp) != FINGERPRINT_SIZE:
            raise ValueError(f"A query fingerprint is {FINGERPRINT_SIZE} bytes")
        position = cursor.position
        if position is None:
            plaintext = fp + bytes((_KIND_DONE,))
        elif type(position) is bytes:
            plaintext = fp + bytes((_KIND_POSITION,)) + position
        else:
            raise ValueError("A cursor position is an index key (bytes) or None")
        header = bytes((_VERSION,))
        # A random 96-bit nonce per cursor: collisions are negligible for far
        # more cursors than an instance will ever hand out.
        nonce = os.urandom(_NONCE_SIZE)
        sealed = self._aead.encrypt(nonce, plaintext, header)
        return _b64encode(header + nonce + sealed)

    def decode(self, text: object, expected_fingerprint: bytes) -> Cursor:
        """Open a cursor string made by :meth:`encode` for the same query.

        Raises :class:`InvalidCursor`, and nothing else, unless ``text`` is a
        genuine cursor of this instance whose fingerprint is
        ``expected_fingerprint``. (``null``, the start of a query, is the
        caller's to handle before calling this.)
        """
        if not isinstance(text, str):
            raise InvalidCursor(f"a cursor must be a string, got {type(text).__name__}")
        if len(text) > MAX_CURSOR_LENGTH:
            raise InvalidCursor("the cursor is too long")
        raw = _b64decode(text)
        if len(raw) < _MIN_RAW:
            raise InvalidCursor("the cursor is too short")
        if raw[0] != _VERSION:
            raise InvalidCursor(f"unknown cursor version {raw[0]}")
        nonce = raw[1 : 1 + _NONCE_SIZE]
        try:
            plaintext = self._aead.decrypt(nonce, raw[1 + _NONCE_SIZE :], raw[:1])
        except InvalidTag:
            raise InvalidCursor("the cursor was altered or comes from another deployment") from None
        fp = plaintext[:FINGERPRINT_SIZE]
        if not hmac.compare_digest(fp, expected_fingerprint):
            raise InvalidCursor("the cursor belongs to a different query")
        kind = plaintext[FINGERPRINT_SIZE]
        rest = plaintext[FINGERPRINT_SIZE + 1 :]
        if kind == _KIND_DONE and not rest:
            return Cursor(fp, None)
        if kind == _KIND_POSITION:
            return Cursor(fp, rest)
        # Authentic yet unreadable: only a bug or a future format gets here.
        raise InvalidCursor("the cursor's contents are not understood")


# --- fingerprints --------------------------------------------------------------


def _part(data: bytes) -> bytes:
    return _pack_len(len(data)) + data


def _str(s: str) -> bytes:
    return _part(utf8(s))


def _filters(filters: Sequence[Filter]) -> bytes:
    return _pack_len(len(filters)) + b"".join(_part(f.canonical) for f in filters)


def query_fingerprint(query: Query) -> bytes:
    """16 bytes identifying the query a cursor may be used with.

    It covers the source (table, index, range expressions, order) and the
    filters, in order: a cursor is a position in one particular result set.
    It leaves out the limits, so that a page size can change between pages.
    """
    src = query.source
    parts: list[bytes] = [b"convex-query-fingerprint/1"]
    if isinstance(src, FullTableScan):
        parts += (b"F", _str(src.table_name), _str(src.order))
    elif isinstance(src, IndexRange):
        parts += (b"I", _str(src.table_name), _str(src.index_name), _str(src.order))
        parts.append(_pack_len(len(src.range)))
        for e in src.range:
            parts += (_str(e.op), _str(e.field_path), _part(encode_key(e.value)))
    elif isinstance(src, SearchSource):
        parts += (
            b"S",
            _str(src.table_name),
            _str(src.index_name),
            _str(src.search_field),
            _str(src.query_text),
            _pack_len(len(src.filters)),
        )
        for path, value in src.filters:
            parts += (_str(path), _part(encode_key(value)))
    else:
        raise TypeError(f"Unknown query source {src!r}")
    parts.append(_filters(query.filters))
    return hashlib.sha256(b"".join(parts)).digest()[:FINGERPRINT_SIZE]
