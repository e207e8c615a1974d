"""User identities: the shape functions see from ``ctx.auth.get_user_identity()``.

An identity always has ``tokenIdentifier``, ``subject`` and ``issuer``; when an
admin acts as a user without giving ``tokenIdentifier``, it is built as
``issuer|subject``, as Convex does.
"""

from __future__ import annotations


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
