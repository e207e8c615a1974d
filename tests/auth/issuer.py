"""A local OpenID Connect issuer for the auth tests: twisted.web on a loopback port.

It serves what a real provider does, with keys generated at test time:

* ``/.well-known/openid-configuration`` (``issuer``, ``jwks_uri``) and ``/jwks``:
  the OIDC provider whose issuer is :attr:`LocalIssuer.url`, RSA keys (RS256);
* ``/custom/jwks``: the keys of a customJwt provider whose issuer is
  :attr:`LocalIssuer.custom_issuer`, an EC P-256 key (ES256);
* ``POST /mint`` with ``{"kind", "variant", "claims", "ttl"}``: a token, as text,
  for clients running in other processes (the npm and Python clients fetch
  their tokens here, as an app would from its auth provider).

:meth:`LocalIssuer.token` makes the same tokens in-process, including the bad
ones the tests need (wrong audience or issuer, expired, tampered, ``alg: none``,
HS256 signed with the public key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from twisted.internet import defer, reactor
from twisted.web.resource import Resource
from twisted.web.server import Site

AUDIENCE = "convex-test-app"
CUSTOM_AUDIENCE = "custom-app"
VARIANTS = ("valid", "wrong_aud", "wrong_iss", "expired", "tampered", "not_yet", "no_exp")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    @classmethod
    def rsa(cls, kid: str) -> SigningKey:
        return cls(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def ec(cls, kid: str) -> SigningKey:
        return cls(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    def public_jwk(self, with_alg: bool = True) -> dict:
        algorithm = RSAAlgorithm if self.alg.startswith("RS") else ECAlgorithm
        jwk = json.loads(algorithm.to_jwk(self.private.public_key()))
        jwk.update({"kid": self.kid, "use": "sig"})
        if with_alg:
            jwk["alg"] = self.alg
        return jwk

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class _Json(Resource):
    isLeaf = True

    def __init__(self, issuer: LocalIssuer, name: str) -> None:
        super().__init__()
        self.issuer, self.name = issuer, name

    def render_GET(self, request) -> bytes:
        self.issuer.requests[self.name] += 1
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(self.issuer.document(self.name)).encode()


class _Mint(Resource):
    isLeaf = True

    def __init__(self, issuer: LocalIssuer) -> None:
        super().__init__()
        self.issuer = issuer

    def render_POST(self, request) -> bytes:
        body = json.loads(request.content.read() or b"{}")
        self.issuer.minted += 1
        token = self.issuer.token(
            kind=body.get("kind", "oidc"),
            variant=body.get("variant", "valid"),
            claims=body.get("claims") or {},
            ttl=body.get("ttl", 300),
        )
        request.setHeader(b"content-type", b"text/plain")
        return token.encode()


class LocalIssuer:
    """The issuer; :meth:`start` it (it listens until :meth:`stop`)."""

    def __init__(self) -> None:
        self._kids = itertools.count(1)
        self.oidc_keys = [SigningKey.rsa(f"rsa-{next(self._kids)}")]
        self.custom_keys = [SigningKey.ec("ec-1")]
        self.requests = {"discovery": 0, "jwks": 0, "custom": 0}
        self.minted = 0
        self.url = ""
        self._port: Any = None

    # -- the server ------------------------------------------------------------

    async def start(self) -> LocalIssuer:
        root = Resource()
        well_known = Resource()
        well_known.putChild(b"openid-configuration", _Json(self, "discovery"))
        root.putChild(b".well-known", well_known)
        root.putChild(b"jwks", _Json(self, "jwks"))
        custom = Resource()
        custom.putChild(b"jwks", _Json(self, "custom"))
        root.putChild(b"custom", custom)
        root.putChild(b"mint", _Mint(self))
        self._port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
        self.url = f"http://127.0.0.1:{self._port.getHost().port}"
        return self

    def stop(self) -> defer.Deferred:
        port, self._port = self._port, None
        return defer.maybeDeferred(port.stopListening) if port else defer.succeed(None)

    @property
    def custom_issuer(self) -> str:
        return self.url + "/custom"

    def document(self, name: str) -> dict:
        if name == "discovery":
            return {"issuer": self.url, "jwks_uri": self.url + "/jwks"}
        keys = self.oidc_keys if name == "jwks" else self.custom_keys
        return {"keys": [key.public_jwk() for key in keys]}

    def providers(self) -> list[dict]:
        """An auth_config ``providers`` list with both providers."""
        return [
            {"domain": self.url, "applicationID": AUDIENCE},
            {
                "type": "customJwt",
                "issuer": self.custom_issuer,
                "jwks": self.url + "/custom/jwks",
                "algorithm": "ES256",
                "applicationID": CUSTOM_AUDIENCE,
            },
        ]

    def rotate(self, keep_old: bool = False) -> SigningKey:
        """Publish a new RSA key (a new kid); new tokens are signed with it."""
        key = SigningKey.rsa(f"rsa-{next(self._kids)}")
        self.oidc_keys = ([*self.oidc_keys] if keep_old else []) + [key]
        return key

    # -- tokens -------------------------------------------------------------------

    def claims(self, kind: str = "oidc", ttl: float = 300, **extra: Any) -> dict:
        now = int(time.time())
        base = {
            "iss": self.url if kind == "oidc" else self.custom_issuer,
            "sub": "user-1",
            "aud": AUDIENCE if kind == "oidc" else CUSTOM_AUDIENCE,
            "iat": now,
            "exp": now + int(ttl),
        }
        base.update(extra)
        return base

    def sign(self, claims: dict, key: SigningKey | None = None, **headers: Any) -> str:
        key = key or self.oidc_keys[-1]
        return jwt.encode(
            claims, key.private, algorithm=key.alg, headers={"kid": key.kid, **headers}
        )

    def token(
        self,
        kind: str = "oidc",
        variant: str = "valid",
        claims: dict | None = None,
        ttl: float = 300,
    ) -> str:
        key = self.oidc_keys[-1] if kind == "oidc" else self.custom_keys[-1]
        payload = self.claims(kind, ttl, **(claims or {}))
        if variant == "wrong_aud":
            payload["aud"] = "someone-else"
        elif variant == "wrong_iss":
            payload["iss"] = "https://evil.example.com"
        elif variant == "expired":
            payload["iat"] = payload["iat"] - 3600
            payload["exp"] = int(time.time()) - 120
        elif variant == "not_yet":
            payload["nbf"] = int(time.time()) + 600
        elif variant == "no_exp":
            del payload["exp"]
        elif variant not in ("valid", "tampered"):
            raise ValueError(f"unknown variant {variant!r}")
        token = self.sign(payload, key)
        if variant == "tampered":
            token = tamper(token, sub="admin")
        return token

    def none_token(self) -> str:
        """An unsigned token (``alg: none``) with otherwise valid claims."""
        header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        return f"{header}.{b64url(json.dumps(self.claims()).encode())}."

    def hs256_with_public_key(self) -> str:
        """HS256 "signed" with the provider's public key (the algorithm confusion attack)."""
        key = self.oidc_keys[-1]
        header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
        payload = b64url(json.dumps(self.claims()).encode())
        signing_input = f"{header}.{payload}".encode()
        signature = hmac.new(key.public_pem(), signing_input, hashlib.sha256).digest()
        return f"{header}.{payload}.{b64url(signature)}"


def tamper(token: str, **changes: Any) -> str:
    """The token with its payload changed and the original signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"
