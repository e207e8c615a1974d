"""Verifying user JWTs against the deployment's auth providers.

:meth:`TokenVerifier.verify` takes a token and the configured providers and
either returns a :class:`VerifiedToken` (the identity functions will see, and
when the token expires) or raises :class:`AuthenticationError` with a message
fit for the client: it says what was wrong (expired, wrong audience, bad
signature...) and never echoes the token.

The checks, with PyJWT doing the cryptography and the registered claims:

1. The token is a compact JWS whose header ``alg`` is an asymmetric signature
   algorithm. ``none`` and the HMAC family are refused before any key is
   looked at: HS256 "signed" with an RSA public key (the classic algorithm
   confusion) never gets near a verifier.
2. A provider is chosen by the (not yet verified) ``iss`` and ``aud``: OIDC
   needs ``iss`` == domain (up to a trailing slash) and ``aud`` containing the
   applicationID; customJwt needs ``iss`` == issuer and, only when an
   applicationID is configured, ``aud`` containing it.
3. The algorithm comes from the provider, never from the token alone: a
   customJwt provider names it; for OIDC it is the one of the JWKS key the
   ``kid`` selects. The header must agree.
4. The signature is checked with the provider's key (:mod:`.jwks`); then
   ``exp`` (required), ``nbf`` and ``iat`` with :data:`LEEWAY` seconds of
   clock skew, ``aud``, and that ``iss`` and ``sub`` are strings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt as pyjwt
from jwt import PyJWK
from jwt.exceptions import (
    DecodeError,
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAlgorithmError,
    InvalidAudienceError,
    InvalidSignatureError,
    MissingRequiredClaimError,
    PyJWTError,
)

from convex_backend.auth.identity import identity_from_claims
from convex_backend.auth.jwks import ASYMMETRIC_ALGORITHMS, JwksCache, JwksError
from convex_backend.auth.providers import (
    CustomJwtProvider,
    OidcProvider,
    Provider,
    same_issuer,
)

#: Seconds of clock skew tolerated on exp, nbf and iat.
LEEWAY = 10.0
#: The longest token accepted (Convex's clients send tokens of a few KiB).
MAX_TOKEN_BYTES = 16 * 1024
#: The claims that are times (NumericDate), and the latest one that makes
#: sense (9999-12-31T23:59:59Z).
_NUMERIC_DATES = ("exp", "nbf", "iat")
MAX_NUMERIC_DATE = 253402300799


class AuthenticationError(Exception):
    """A user token was refused. ``code`` is the HTTP error code to answer with."""

    def __init__(self, message: str, code: str = "Unauthenticated") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class VerifiedToken:
    identity: dict
    #: Unix time of ``exp``.
    expires_at: float
    provider: Provider


class TokenVerifier:
    def __init__(self, jwks: JwksCache | None = None, clock: Any = None) -> None:
        self.jwks = jwks if jwks is not None else JwksCache()
        self._clock = clock

    def now(self) -> float:
        return self._clock.seconds() if self._clock is not None else time.time()

    async def verify(self, token: Any, providers: tuple[Provider, ...]) -> VerifiedToken:
        if not providers:
            raise AuthenticationError(
                "Bearer tokens (JWT) are not supported by this deployment: no auth providers "
                "are configured. Add an auth_config.py with `providers = [...]` to the deployed "
                "code, or call without user authentication.",
            )
        header, claims = _unverified(token)
        alg = header.get("alg")
        _check_algorithm(alg)
        _check_numeric_dates(claims)
        candidates = [p for p in providers if _matches(p, claims)]
        if not candidates:
            raise AuthenticationError(_no_provider_message(claims, providers), "NoAuthProvider")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthenticationError("Invalid token: the header's `kid` must be a string")
        errors: list[str] = []
        for provider in candidates:
            try:
                return await self._verify_with(token, alg, kid, provider)
            except AuthenticationError as e:
                errors.append(e.message)
        # Several providers share the issuer: the first one's reason is the useful one.
        raise AuthenticationError(errors[0])

    async def _verify_with(
        self, token: str, alg: str, kid: str | None, provider: Provider
    ) -> VerifiedToken:
        try:
            if isinstance(provider, OidcProvider):
                keys = await self.jwks.keys(provider.domain, kid, discovery=True)
            else:
                keys = await self.jwks.keys(provider.jwks, kid)
        except JwksError as e:
            raise AuthenticationError(
                f"Could not get the signing keys of auth provider {provider.describe()}: {e}"
            )
        if isinstance(provider, CustomJwtProvider):
            if alg != provider.algorithm:
                raise AuthenticationError(
                    f"Invalid token: it is signed with {alg}, but auth provider "
                    f"{provider.describe()} is configured for {provider.algorithm}"
                )
            usable = [key for key in keys if _key_fits(key, provider.algorithm)]
        else:
            # The key's own algorithm (its `alg`, or what its type implies) decides.
            usable = [key for key in keys if key.algorithm_name == alg]
        if not usable:
            algorithms = ", ".join(sorted({key.algorithm_name for key in keys}))
            raise AuthenticationError(
                f"Invalid token: it is signed with {alg}, but the keys of auth provider "
                f"{provider.describe()} are for {algorithms}"
            )
        keys = usable
        audience = provider.application_id
        # OpenID Connect ID tokens always carry `iat`; custom JWTs need not.
        required = ["exp", "iss", "sub"] + (["iat"] if isinstance(provider, OidcProvider) else [])
        last: AuthenticationError | None = None
        for key in keys:
            try:
                claims = pyjwt.decode(
                    token,
                    key=key.key,
                    algorithms=[alg],
                    audience=audience,
                    leeway=LEEWAY,
                    options={
                        "require": required,
                        "verify_aud": audience is not None,
                        "verify_iss": False,  # checked by _matches, slash-tolerant
                    },
                )
            except InvalidSignatureError:
                last = AuthenticationError(
                    "Invalid token: its signature does not verify with the keys of auth provider "
                    f"{provider.describe()} (was it altered, or signed with another key?)"
                )
                continue
            except PyJWTError as e:
                raise AuthenticationError(self._describe(e, token))
            if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("iss"), str):
                raise AuthenticationError("Invalid token: `iss` and `sub` must be strings")
            exp = claims["exp"]
            return VerifiedToken(identity_from_claims(claims), float(exp), provider)
        assert last is not None
        raise last

    def _describe(self, e: PyJWTError, token: str) -> str:
        if isinstance(e, ExpiredSignatureError):
            try:
                exp = pyjwt.decode(token, options={"verify_signature": False}).get("exp")
                ago = max(0, int(self.now() - float(exp)))
                return f"Token expired {ago} seconds ago (exp {int(exp)}); fetch a new token"
            except (PyJWTError, TypeError, ValueError):
                return "Token expired; fetch a new token"
        if isinstance(e, MissingRequiredClaimError):
            return f"Invalid token: it has no `{e.claim}` claim"
        for kind, prefix in _ERROR_PREFIXES:
            if isinstance(e, kind):
                return f"{prefix}: {e}"
        return f"Invalid token: {e}"


#: How PyJWT's refusals are worded for the client (first match wins).
_ERROR_PREFIXES = (
    (ImmatureSignatureError, "Token is not valid yet"),
    (InvalidAudienceError, "Invalid token audience"),
    (InvalidAlgorithmError, "Invalid token algorithm"),
    (DecodeError, "Could not decode the token"),
)


def _unverified(token: Any) -> tuple[dict, dict]:
    """The header and claims of a token, before any verification."""
    if not isinstance(token, str) or not token:
        raise AuthenticationError("The auth token must be a non-empty string", "InvalidAuthHeader")
    if len(token) > MAX_TOKEN_BYTES:
        raise AuthenticationError(
            f"The auth token is too long (limit {MAX_TOKEN_BYTES} bytes)", "InvalidAuthHeader"
        )
    if token.count(".") != 2:
        raise AuthenticationError(
            "The auth token is not a JWT (header.payload.signature)", "InvalidAuthHeader"
        )
    try:
        header = pyjwt.get_unverified_header(token)
        claims = pyjwt.decode(token, options={"verify_signature": False})
    except PyJWTError as e:
        raise AuthenticationError(
            f"Could not decode the auth token as a JWT: {e}", "InvalidAuthHeader"
        )
    if not isinstance(claims, dict):
        raise AuthenticationError(
            "The auth token's payload is not a JSON object", "InvalidAuthHeader"
        )
    return header, claims


def _check_algorithm(alg: Any) -> None:
    if not isinstance(alg, str) or alg.lower() == "none":
        raise AuthenticationError(
            "Invalid token: unsigned tokens (alg `none`) are not accepted", "InvalidAuthHeader"
        )
    if alg.upper().startswith("HS"):
        raise AuthenticationError(
            f"Invalid token: {alg} (a shared-secret algorithm) is not accepted; tokens must be "
            "signed with the provider's private key (RS256, ES256, ...)",
            "InvalidAuthHeader",
        )
    if alg not in ASYMMETRIC_ALGORITHMS:
        raise AuthenticationError(
            f"Invalid token: unsupported signature algorithm {alg[:20]!r}", "InvalidAuthHeader"
        )


def _check_numeric_dates(claims: dict) -> None:
    """``exp``, ``nbf`` and ``iat`` are JSON numbers of seconds (RFC 7519 §2).

    PyJWT would take ``"1700000000"`` (a string) and fail with an
    OverflowError on an ``exp`` too large for a float; both are refused here,
    before any key is fetched.
    """
    for claim in _NUMERIC_DATES:
        if claim not in claims:
            continue
        value = claims[claim]
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        # Also false for NaN, and for infinities (JSON's 1e999).
        if not is_number or not -MAX_NUMERIC_DATE <= value <= MAX_NUMERIC_DATE:
            raise AuthenticationError(
                f"Invalid token: `{claim}` must be a number of seconds since 1970, "
                f"not {_show(value)}"
            )


def _key_fits(key: PyJWK, algorithm: str) -> bool:
    """Whether a JWKS key can verify ``algorithm`` (customJwt: the config decides)."""
    if key.algorithm_name != algorithm:
        # The JWK's own `alg` (or, without one, its type and curve) must agree.
        return False
    return key.key_type == ("RSA" if algorithm == "RS256" else "EC")


def _audiences(claims: dict) -> list:
    aud = claims.get("aud")
    if aud is None:
        return []
    return aud if isinstance(aud, list) else [aud]


def _matches(provider: Provider, claims: dict) -> bool:
    iss = claims.get("iss")
    if not isinstance(iss, str) or not same_issuer(iss, provider.issuer):
        return False
    if provider.application_id is None:
        return True
    return provider.application_id in _audiences(claims)


def _no_provider_message(claims: dict, providers: tuple[Provider, ...]) -> str:
    iss, aud = claims.get("iss"), claims.get("aud")
    same_iss = [p for p in providers if isinstance(iss, str) and same_issuer(iss, p.issuer)]
    if same_iss:
        reason = (
            f"the token's audience (aud) {_show(aud)} is not the applicationID of the "
            f"provider(s) for issuer {_show(iss)}"
        )
    elif iss is None:
        reason = "the token has no issuer (iss)"
    else:
        reason = f"no provider has the token's issuer (iss) {_show(iss)}"
    configured = ", ".join(p.describe() for p in providers)
    return (
        f"No auth provider found matching the given token: {reason}. "
        f"Configured providers: {configured}"
    )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


__all__ = [
    "LEEWAY",
    "AuthenticationError",
    "TokenVerifier",
    "VerifiedToken",
]
