"""Parsing of the ``Authorization`` header that Convex clients send.

``Convex <admin key>`` is an admin; ``Convex <admin key>:<base64 JSON>`` is an
admin acting as the identity in the JSON; ``Bearer <jwt>`` is a user.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from convex_backend.auth.identity import IdentityError, normalize_identity


class AuthorizationError(ValueError):
    """The header is present but cannot be understood."""


@dataclass(frozen=True)
class AdminCredentials:
    key: str
    acting_as: dict | None = None

    def __repr__(self) -> str:
        return "AdminCredentials(<redacted>)"


@dataclass(frozen=True)
class UserCredentials:
    token: str

    def __repr__(self) -> str:
        return "UserCredentials(<redacted>)"


Credentials = AdminCredentials | UserCredentials


def parse_authorization(header: str | bytes | None) -> Credentials | None:
    """Return the credentials in an ``Authorization`` value, or None if absent."""
    if header is None:
        return None
    if isinstance(header, bytes):
        try:
            header = header.decode("ascii")
        except UnicodeDecodeError:
            raise AuthorizationError("the Authorization header is not ASCII")
    scheme, _, rest = header.strip().partition(" ")
    rest = rest.strip()
    if not rest:
        raise AuthorizationError("the Authorization header has no credentials")
    if scheme.lower() == "convex":
        key, sep, encoded = rest.partition(":")
        if not sep:
            return AdminCredentials(key)
        return AdminCredentials(key, _decode_identity(encoded))
    if scheme.lower() == "bearer":
        return UserCredentials(rest)
    raise AuthorizationError(
        "the Authorization header must be 'Convex <admin key>' or 'Bearer <token>'"
    )


def _decode_identity(encoded: str) -> dict:
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        identity = json.loads(raw)
    except (binascii.Error, ValueError):
        raise AuthorizationError("the identity after the admin key must be base64-encoded JSON")
    if not isinstance(identity, dict):
        raise AuthorizationError("the identity after the admin key must be a JSON object")
    try:
        return normalize_identity(identity)
    except IdentityError as e:
        raise AuthorizationError(f"invalid identity after the admin key: {e}")
