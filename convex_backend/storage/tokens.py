"""Upload tokens: what makes an upload URL a capability.

``ctx.storage.generate_upload_url()`` hands out
``<origin>/api/storage/upload?token=<token>``. A token is the URL-safe base64
(no padding) of::

    version (1 byte, 1) | expiry (8 bytes, big-endian ms since the epoch)
    | nonce (16 random bytes) | tag (first 16 bytes of HMAC-SHA256 of the above)

The HMAC key is derived from the instance secret for this purpose only
(label ``"upload token"``, context the instance name), so tokens are refused
by any other instance or after the secret is rotated. The tag is checked in
constant time before the expiry is looked at, so an edited expiry reads as a
forged token. Tokens are not single-use: like Convex's upload URLs, one may be
used until it expires (one hour).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import struct
import time
from collections.abc import Callable

from convex_backend.auth.admin_key import derive_key_material
from convex_backend.storage.errors import StorageError

TOKEN_LIFETIME_SECONDS = 3600.0
_VERSION = 1
_HEADER = struct.Struct(">BQ")
_NONCE_BYTES = 16
_TAG_BYTES = 16
_PAYLOAD_BYTES = _HEADER.size + _NONCE_BYTES
_TOKEN_BYTES = _PAYLOAD_BYTES + _TAG_BYTES
_TOKEN_TEXT = re.compile(r"[A-Za-z0-9_-]{1,128}")


def invalid_token(message: str) -> StorageError:
    return StorageError(401, "InvalidUploadToken", message)


class UploadTokens:
    """Issues and checks upload tokens; ``clock`` (seconds) is injectable for tests."""

    def __init__(
        self,
        instance_secret: str,
        instance_name: str,
        *,
        clock: Callable[[], float] = time.time,
        lifetime: float = TOKEN_LIFETIME_SECONDS,
    ) -> None:
        self._key = derive_key_material(instance_secret, "upload token", instance_name.encode(), 32)
        self.clock = clock
        self.lifetime = lifetime

    def __repr__(self) -> str:
        return "UploadTokens(<redacted>)"

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_TAG_BYTES]

    def issue(self) -> str:
        """A fresh token valid for :attr:`lifetime` seconds from now."""
        expiry_ms = int((self.clock() + self.lifetime) * 1000)
        payload = _HEADER.pack(_VERSION, expiry_ms) + os.urandom(_NONCE_BYTES)
        raw = payload + self._tag(payload)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def check(self, token: object, now: float | None = None) -> None:
        """Raise :class:`StorageError` unless ``token`` is genuine and unexpired at
        ``now`` (default: the clock)."""
        if token is None or token == "":
            raise StorageError(
                400,
                "MissingUploadToken",
                "The upload URL has no token: use an upload URL "
                "from ctx.storage.generate_upload_url()",
            )
        if not isinstance(token, str) or not _TOKEN_TEXT.fullmatch(token):
            raise invalid_token("The upload token is malformed")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise invalid_token("The upload token is malformed")
        if len(raw) != _TOKEN_BYTES:
            raise invalid_token("The upload token is malformed")
        payload, tag = raw[:_PAYLOAD_BYTES], raw[_PAYLOAD_BYTES:]
        if not hmac.compare_digest(tag, self._tag(payload)):
            raise invalid_token("The upload token is not valid for this deployment")
        version, expiry_ms = _HEADER.unpack_from(payload)
        if version != _VERSION:
            raise invalid_token("The upload token is not valid for this deployment")
        current = self.clock() if now is None else now
        if current * 1000 > expiry_ms:
            raise StorageError(
                401,
                "UploadTokenExpired",
                "The upload URL has expired (upload URLs are valid for one hour); "
                "generate a new one",
            )


__all__ = ["TOKEN_LIFETIME_SECONDS", "UploadTokens", "invalid_token"]
