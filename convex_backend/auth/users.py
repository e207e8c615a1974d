"""User authentication for one deployment: its providers and one token verifier.

The providers are those of the deployed code's ``auth_config.py``: the
function analysis carries them as ``authConfig`` and the Deployer keeps that
analysis (in memory and in the ``_deployment`` table, so a restart keeps them).
:func:`user_authenticator` gives the HTTP API and the sync sessions the one
:class:`UserAuthenticator` of a deployment (made on first use), whose JWKS
cache is therefore shared by every request.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from convex_backend.auth.jwks import JwksCache
from convex_backend.auth.jwt import LEEWAY, TokenVerifier, VerifiedToken
from convex_backend.auth.providers import Provider, ProviderConfigError, parse_providers

log = Logger(namespace="convex.auth")


class UserAuthenticator:
    def __init__(self, deployment: Any, verifier: TokenVerifier | None = None) -> None:
        self.deployment = deployment
        self.verifier = verifier if verifier is not None else TokenVerifier(JwksCache())
        self._parsed: tuple[Any, tuple[Provider, ...]] | None = None

    def providers(self) -> tuple[Provider, ...]:
        """The providers of the code deployed now (parsed once per deployment)."""
        deployer = getattr(self.deployment, "deployer", None)
        analysis = getattr(deployer, "analysis", None) or {}
        config = analysis.get("authConfig")
        parsed = self._parsed
        if parsed is not None and parsed[0] is config:
            return parsed[1]
        try:
            providers = parse_providers(config)
        except ProviderConfigError as e:
            # Deploys validate auth_config.py, so only a hand-edited table gets here.
            log.error("The deployed auth_config.py is invalid, ignoring it: {error}", error=e)
            providers = ()
        self._parsed = (config, providers)
        return providers

    async def authenticate(self, token: str) -> VerifiedToken:
        """The identity of a user token; raises ``AuthenticationError`` with the reason."""
        return await self.verifier.verify(token, self.providers())

    def seconds_left(self, verified: VerifiedToken) -> float:
        """Seconds until the token is refused as expired (its exp plus the leeway)."""
        return verified.expires_at + LEEWAY - self.verifier.now()


def user_authenticator(deployment: Any) -> UserAuthenticator:
    """The deployment's authenticator, made on first use."""
    authenticator = getattr(deployment, "user_auth", None)
    if authenticator is None:
        authenticator = UserAuthenticator(deployment)
        deployment.user_auth = authenticator
    return authenticator


__all__ = ["UserAuthenticator", "user_authenticator"]
