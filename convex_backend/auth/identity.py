"""User identities: the shape functions see from ``ctx.auth.get_user_identity()``.

An identity always has ``tokenIdentifier``, ``subject`` and ``issuer``; when an
admin acts as a user without giving ``tokenIdentifier``, it is built as
``issuer|subject``, as Convex does.

:func:`identity_from_claims` makes the identity of a verified JWT: the standard
OpenID Connect claims under Convex's camelCase names (``given_name`` becomes
``givenName``, ``picture`` becomes ``pictureUrl``, ...), and every other
claim as it is, except the ones that only describe the token itself (``aud``,
``exp``, ``iat``, ``nonce``, ...).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

#: OpenID Connect standard claim → UserIdentity field (Convex's names).
STANDARD_CLAIMS = {
    "name": "name",
    "given_name": "givenName",
    "family_name": "familyName",
    "nickname": "nickname",
    "preferred_username": "preferredUsername",
    "profile": "profileUrl",
    "picture": "pictureUrl",
    "email": "email",
    "email_verified": "emailVerified",
    "gender": "gender",
    "birthdate": "birthday",
    "zoneinfo": "timezone",
    "locale": "language",
    "phone_number": "phoneNumber",
    "phone_number_verified": "phoneNumberVerified",
    "address": "address",
    "updated_at": "updatedAt",
}
#: Claims about the token rather than the user: not part of the identity.
TOKEN_CLAIMS = frozenset(
    {
        "iss",
        "sub",
        "aud",
        "exp",
        "nbf",
        "iat",
        "jti",
        "azp",
        "auth_time",
        "nonce",
        "acr",
        "amr",
        "at_hash",
        "c_hash",
        "sid",
    }
)


class IdentityError(ValueError):
    """An identity object that cannot be used."""


def normalize_identity(identity: dict) -> dict:
    if not isinstance(identity, dict):
        raise IdentityError("an identity must be a JSON object")
    result = dict(identity)
    token = result.get("tokenIdentifier")
    subject, issuer = result.get("subject"), result.get("issuer")
    if token is None:
        if not isinstance(subject, str) or not isinstance(issuer, str):
            raise IdentityError(
                "an identity needs `tokenIdentifier`, or both `subject` and `issuer`"
            )
        result["tokenIdentifier"] = f"{issuer}|{subject}"
    elif not isinstance(token, str):
        raise IdentityError("`tokenIdentifier` must be a string")
    return result


def identity_from_claims(claims: dict[str, Any]) -> dict[str, Any]:
    """The identity of a verified token's claims (``iss`` and ``sub`` must be strings)."""
    issuer, subject = claims["iss"], claims["sub"]
    identity: dict[str, Any] = {
        "tokenIdentifier": f"{issuer}|{subject}",
        "subject": subject,
        "issuer": issuer,
    }
    custom = {}
    for claim, value in claims.items():
        if claim in TOKEN_CLAIMS or value is None:
            continue
        field = STANDARD_CLAIMS.get(claim)
        if field is None:
            custom[claim] = value
        else:
            identity[field] = _standard_value(claim, value)
    # Custom claims keep their names but never replace a field set above.
    for claim, value in custom.items():
        identity.setdefault(claim, value)
    return identity


def _standard_value(claim: str, value: Any) -> Any:
    if claim == "updated_at" and isinstance(value, (int, float)) and not isinstance(value, bool):
        # Seconds since the epoch in the token; an RFC 3339 string in the identity.
        try:
            return datetime.fromtimestamp(value, tz=timezone.utc).isoformat()
        except (OverflowError, OSError, ValueError):
            return str(value)
    if claim == "address" and isinstance(value, dict):
        formatted = value.get("formatted")
        return formatted if isinstance(formatted, str) else json.dumps(value, sort_keys=True)
    return value
