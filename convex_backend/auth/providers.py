"""Auth providers: the ``providers`` list of a deployment's ``auth_config.py``.

The same content as Convex's ``auth.config.ts``::

    providers = [
        # OpenID Connect: keys found through ${domain}/.well-known/openid-configuration
        {"domain": "https://issuer.example.com", "applicationID": "my-app"},
        # Custom JWT: keys at a JWKS URL (or a data: URI), one fixed algorithm
        {
            "type": "customJwt",
            "issuer": "https://auth.example.com",
            "jwks": "https://auth.example.com/.well-known/jwks.json",
            "algorithm": "RS256",  # or "ES256"
            "applicationID": "my-app",  # optional: checked against `aud` when given
        },
    ]

:func:`parse_providers` checks the shapes (at deploy time, so a bad config is
refused with a message naming ``auth_config.py``) and turns them into
:class:`OidcProvider` / :class:`CustomJwtProvider`. Unknown keys are refused
rather than ignored: a misspelt ``applicationId`` would otherwise silently
turn the audience check off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

#: Algorithms a customJwt provider may name (as Convex allows).
CUSTOM_JWT_ALGORITHMS = ("RS256", "ES256")
MAX_PROVIDERS = 100
_MAX_STRING = 2048
_MAX_DATA_URI = 64 * 1024


class ProviderConfigError(ValueError):
    """``auth_config.py`` does not describe a usable list of providers."""


@dataclass(frozen=True)
class OidcProvider:
    """An OpenID Connect issuer: ``iss`` is the domain, ``aud`` the application id."""

    domain: str
    application_id: str

    @property
    def issuer(self) -> str:
        return self.domain

    def describe(self) -> str:
        return f"OIDC(domain={self.domain}, applicationID={self.application_id})"

    def auth_info(self) -> dict:
        return {"applicationID": self.application_id, "domain": self.domain}


@dataclass(frozen=True)
class CustomJwtProvider:
    """JWTs of one issuer, signed with ``algorithm`` by a key of the JWKS at ``jwks``."""

    issuer: str
    jwks: str
    algorithm: str
    application_id: str | None = None

    def describe(self) -> str:
        return f"CustomJWT(issuer={self.issuer}, applicationID={self.application_id})"

    def auth_info(self) -> dict:
        info = {
            "type": "customJwt",
            "issuer": self.issuer,
            "jwks": self.jwks,
            "algorithm": self.algorithm,
        }
        if self.application_id is not None:
            info["applicationID"] = self.application_id
        return info


Provider = OidcProvider | CustomJwtProvider


def same_issuer(a: str, b: str) -> bool:
    """Issuers compare equal up to one trailing slash, as Convex compares them."""
    return a.rstrip("/") == b.rstrip("/")


def parse_providers(config: Any) -> tuple[Provider, ...]:
    """The providers of an ``authConfig`` (the ``providers`` list), checked.

    ``None`` (no ``auth_config.py``) means no providers.
    """
    if config is None:
        return ()
    if not isinstance(config, list):
        raise ProviderConfigError(
            f"`providers` must be a list of provider dicts, not {type(config).__name__}"
        )
    if len(config) > MAX_PROVIDERS:
        raise ProviderConfigError(f"too many providers (limit {MAX_PROVIDERS})")
    return tuple(_parse_one(i, entry) for i, entry in enumerate(config))


def auth_info(providers: tuple[Provider, ...]) -> list[dict]:
    """The providers as Convex reports them (``authInfo``)."""
    return [provider.auth_info() for provider in providers]


def _parse_one(index: int, entry: Any) -> Provider:
    where = f"providers[{index}]"
    if not isinstance(entry, dict):
        raise ProviderConfigError(f"{where} must be a dict, not {type(entry).__name__}")
    kind = entry.get("type")
    if kind is None or kind == "oidc":
        _only(where, entry, {"type", "domain", "applicationID"})
        domain = _url(where, entry, "domain")
        application_id = _string(where, entry, "applicationID", required=True)
        return OidcProvider(domain, application_id)
    if kind == "customJwt":
        _only(where, entry, {"type", "issuer", "jwks", "algorithm", "applicationID"})
        issuer = _string(where, entry, "issuer", required=True)
        jwks = _jwks_location(where, entry)
        algorithm = entry.get("algorithm")
        if algorithm not in CUSTOM_JWT_ALGORITHMS:
            raise ProviderConfigError(
                f"{where}: `algorithm` must be one of {', '.join(CUSTOM_JWT_ALGORITHMS)}, "
                f"not {_show(algorithm)}"
            )
        application_id = _string(where, entry, "applicationID", required=False)
        return CustomJwtProvider(issuer, jwks, algorithm, application_id)
    raise ProviderConfigError(
        f'{where}: unknown provider `type` {_show(kind)} (use "customJwt", or no type '
        "with `domain` and `applicationID` for OpenID Connect)"
    )


def _only(where: str, entry: dict, allowed: set[str]) -> None:
    unknown = sorted(str(key) for key in entry if key not in allowed)
    if unknown:
        raise ProviderConfigError(
            f"{where}: unknown key(s) {', '.join(map(_show, unknown))}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )


def _string(
    where: str, entry: dict, key: str, *, required: bool, limit: int = _MAX_STRING
) -> str | None:
    value = entry.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ProviderConfigError(f"{where}: `{key}` must be a non-empty string")
    if len(value) > limit:
        raise ProviderConfigError(f"{where}: `{key}` is too long")
    return value


def _url(where: str, entry: dict, key: str) -> str:
    value = _string(where, entry, key, required=True)
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ProviderConfigError(
            f"{where}: `{key}` must be an http(s) URL such as https://issuer.example.com, "
            f"not {_show(value)}"
        )
    return value


def _jwks_location(where: str, entry: dict) -> str:
    # A data: URI carries the JWKS itself, so it may be long.
    value = _string(where, entry, "jwks", required=True, limit=_MAX_DATA_URI)
    if value.startswith("data:"):
        if "," not in value:
            raise ProviderConfigError(f"{where}: `jwks` is a data: URI without data")
        return value
    if len(value) > _MAX_STRING:
        raise ProviderConfigError(f"{where}: `jwks` is too long")
    return _url(where, entry, "jwks")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


__all__ = [
    "CUSTOM_JWT_ALGORITHMS",
    "CustomJwtProvider",
    "OidcProvider",
    "Provider",
    "ProviderConfigError",
    "auth_info",
    "parse_providers",
    "same_issuer",
]
