"""Attacks on user-token verification, table-driven, against a real local issuer.

Every row is a token an attacker (or a broken provider) could send, with the
code and the part of the message the refusal must have. The OIDC provider's
JWKS mixes RSA and EC keys so that ``kid``/``alg`` confusion has something to
confuse; keys are fetched over loopback HTTP from tests/auth/issuer.py, and
the JWKS documents of misbehaving providers come from small twisted.web
servers in this process.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from convex_backend.auth.jwks import JwksCache, JwksError
from convex_backend.auth.jwt import MAX_TOKEN_BYTES, AuthenticationError, TokenVerifier
from convex_backend.auth.providers import parse_providers
from tests.auth.issuer import AUDIENCE, LocalIssuer, SigningKey, b64url

NOW = int(time.time())


def segment(value: object) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return b64url(raw)


def compact(header: object, payload: object, signature: bytes = b"s" * 64) -> str:
    """A token with these (unsigned) parts: for what no signer would produce."""
    return f"{segment(header)}.{segment(payload)}.{b64url(signature)}"


def hmac_token(header: dict, claims: dict, secret: bytes) -> str:
    signing_input = f"{segment(header)}.{segment(claims)}".encode()
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return f"{signing_input.decode()}.{b64url(signature)}"


def raw_claims_token(key: SigningKey, claims_json: bytes, **headers: object) -> str:
    """Signed for real, with a payload that is exactly ``claims_json`` (NaN, 1e999...)."""
    return jwt.api_jws.encode(
        claims_json, key.private, algorithm=key.alg, headers={"kid": key.kid, **headers}
    )


@dataclass
class Case:
    name: str
    make: Callable[[AttackTests], object]
    code: str | None
    #: A part of the refusal's message; None when the token must be accepted.
    says: str | None


def refused(name: str, make, code: str, says: str) -> Case:
    return Case(name, make, code, says)


def accepted(name: str, make) -> Case:
    return Case(name, make, None, None)


class _Counting(Resource):
    """Answers anything, counting requests (a server an attacker points us at)."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.hits = 0

    def render(self, request) -> bytes:
        self.hits += 1
        request.setHeader(b"content-type", b"application/json")
        return b'{"keys": []}'


class _Redirect(Resource):
    isLeaf = True

    def __init__(self, location: bytes) -> None:
        super().__init__()
        self.location = location
        self.hits = 0

    def render(self, request) -> bytes:
        self.hits += 1
        request.setResponseCode(302)
        request.setHeader(b"location", self.location)
        return b""


class _Fixed(Resource):
    isLeaf = True

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body

    def render(self, request) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        return self.body


class _Endless(Resource):
    """A chunked JSON body that never ends (until the client hangs up)."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0
        self.stopped = defer.Deferred()

    def render(self, request):
        request.setHeader(b"content-type", b"application/json")
        request.write(b'{"keys": [')
        chunk = b'{"kty": "oct", "k": "' + b"A" * 65000 + b'"},'

        def more() -> None:
            if request._disconnected:
                if not self.stopped.called:
                    self.stopped.callback(self.sent)
                return
            request.write(chunk)
            self.sent += len(chunk)
            reactor.callLater(0, more)

        more()
        return NOT_DONE_YET


class AttackTests(TestCase):
    timeout = 60

    async def setUp(self) -> None:
        self.issuer = await LocalIssuer().start()
        self.addCleanup(self.issuer.stop)
        self.rsa = self.issuer.oidc_keys[0]
        # One JWKS with keys of three algorithms: kid/alg confusion has material.
        self.ec = SigningKey.ec("ec-p256")
        self.ec384 = SigningKey("ec-p384", "ES384", ec.generate_private_key(ec.SECP384R1()))
        self.issuer.oidc_keys = [self.rsa, self.ec, self.ec384]
        self.attacker = SigningKey.rsa(self.rsa.kid)  # same kid, another key
        self.cache = JwksCache(fetch_timeout=5.0)
        self.verifier = TokenVerifier(self.cache)
        self.providers = parse_providers(self.issuer.providers())

    def claims(self, **changes: object) -> dict:
        claims = self.issuer.claims(**{k: v for k, v in changes.items() if v is not ...})
        for name, value in changes.items():
            if value is ...:
                del claims[name]
        return claims

    def sign(self, key: SigningKey | None = None, **changes: object) -> str:
        return self.issuer.sign(self.claims(**changes), key or self.rsa)

    def raw_signed(self, **changes: object) -> str:
        """Signed claims PyJWT would refuse to encode (``iss`` not a string...)."""
        return raw_claims_token(self.rsa, json.dumps(self.claims(**changes)).encode())

    async def verify(self, token: object):
        return await self.verifier.verify(token, self.providers)

    async def run_cases(self, cases: list[Case]) -> None:
        failures = []
        for case in cases:
            token = case.make(self)
            try:
                verified = await self.verify(token)
            except AuthenticationError as e:
                if case.says is None:
                    failures.append(f"{case.name}: refused ({e.code}: {e.message})")
                elif e.code != case.code or case.says not in e.message:
                    failures.append(
                        f"{case.name}: {e.code}: {e.message!r}, wanted {case.code} "
                        f"saying {case.says!r}"
                    )
                elif isinstance(token, str) and len(token) > 20 and token in e.message:
                    failures.append(f"{case.name}: the message echoes the token")
                continue
            if case.says is not None:
                failures.append(f"{case.name}: accepted as {verified.identity}")
        self.assertEqual(failures, [])

    # -- the algorithm -------------------------------------------------------------

    async def test_unsigned_and_shared_secret_tokens(self) -> None:
        pem = self.rsa.public_pem()
        der = self.rsa.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        jwk_text = json.dumps(self.rsa.public_jwk()).encode()
        none = "alg `none`"
        hmac_says = "shared-secret algorithm"
        cases = [
            refused(
                f"alg {alg!r}",
                lambda t, a=alg: compact({"alg": a}, t.claims(), b""),
                "InvalidAuthHeader",
                none,
            )
            for alg in ("none", "None", "NONE", "nOnE", None)
        ] + [
            refused(
                "alg none with a signature",
                lambda t: compact({"alg": "none", "kid": t.rsa.kid}, t.claims()),
                "InvalidAuthHeader",
                none,
            ),
            refused(
                "no alg at all",
                lambda t: compact({"typ": "JWT"}, t.claims()),
                "InvalidAuthHeader",
                none,
            ),
            refused(
                "alg a list",
                lambda t: compact({"alg": ["RS256"]}, t.claims()),
                "InvalidAuthHeader",
                none,
            ),
            refused(
                "alg with a space",
                lambda t: compact({"alg": "RS256 "}, t.claims()),
                "InvalidAuthHeader",
                "unsupported",
            ),
            refused(
                "alg unknown",
                lambda t: compact({"alg": "XS256"}, t.claims()),
                "InvalidAuthHeader",
                "unsupported",
            ),
        ]
        for alg in ("HS256", "HS384", "HS512", "hs256"):
            for what, secret in (("PEM", pem), ("DER", der), ("JWK", jwk_text)):
                cases.append(
                    refused(
                        f"{alg} keyed with the public key's {what}",
                        lambda t, a=alg, s=secret: hmac_token(
                            {"alg": a, "typ": "JWT", "kid": t.rsa.kid}, t.claims(), s
                        ),
                        "InvalidAuthHeader",
                        hmac_says,
                    )
                )
        await self.run_cases(cases)

    async def test_kid_naming_a_key_of_another_algorithm_or_curve(self) -> None:
        def rsa_signed_naming(kid: str) -> Callable[[AttackTests], str]:
            return lambda t: jwt.encode(
                t.claims(), t.rsa.private, algorithm="RS256", headers={"kid": kid}
            )

        def ec_signed_as(alg: str, kid: str) -> Callable[[AttackTests], str]:
            def make(t: AttackTests) -> str:
                # An ES256 signature relabelled: the header lies about the algorithm.
                token = jwt.encode(t.claims(), t.ec.private, algorithm="ES256")
                _header, payload, signature = token.split(".")
                return f"{segment({'alg': alg, 'kid': kid})}.{payload}.{signature}"

            return make

        await self.run_cases(
            [
                # The key's own algorithm decides, whatever the header says.
                refused(
                    "RS256 naming the EC key",
                    rsa_signed_naming("ec-p256"),
                    "Unauthenticated",
                    "are for ES256",
                ),
                refused(
                    "RS256 naming the P-384 key",
                    rsa_signed_naming("ec-p384"),
                    "Unauthenticated",
                    "are for ES384",
                ),
                refused(
                    "ES256 naming the RSA key",
                    ec_signed_as("ES256", "rsa-1"),
                    "Unauthenticated",
                    "are for RS256",
                ),
                refused(
                    "ES256 naming the P-384 key",
                    ec_signed_as("ES256", "ec-p384"),
                    "Unauthenticated",
                    "are for ES384",
                ),
                refused(
                    "ES384 header, P-256 signature",
                    ec_signed_as("ES384", "ec-p384"),
                    "Unauthenticated",
                    "signature does not verify",
                ),
                refused(
                    "PS256 naming the RSA key",
                    lambda t: jwt.encode(
                        t.claims(), t.rsa.private, algorithm="PS256", headers={"kid": "rsa-1"}
                    ),
                    "Unauthenticated",
                    "are for RS256",
                ),
                # Each genuine key verifies its own algorithm.
                accepted("ES256 with the EC key", lambda t: t.sign(t.ec)),
                accepted("ES384 with the P-384 key", lambda t: t.sign(t.ec384)),
                accepted("RS256 with the RSA key", lambda t: t.sign()),
            ]
        )

    async def test_keys_in_the_token_header_are_never_trusted(self) -> None:
        evil = Site(_Counting())
        port = reactor.listenTCP(0, evil, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        evil_url = f"http://127.0.0.1:{port.getHost().port}/jwks"
        mine = SigningKey.rsa("attacker-1")

        def with_header(key: SigningKey, **headers: object):
            return lambda t: t.issuer.sign(t.claims(), key, **headers)

        says = "no key with kid"
        await self.run_cases(
            [
                refused(
                    "own key embedded as jwk",
                    with_header(mine, jwk=mine.public_jwk()),
                    "Unauthenticated",
                    says,
                ),
                refused(
                    "own key, provider's kid, embedded jwk",
                    with_header(self.attacker, jwk=self.attacker.public_jwk()),
                    "Unauthenticated",
                    "signature does not verify",
                ),
                refused(
                    "jku to the attacker", with_header(mine, jku=evil_url), "Unauthenticated", says
                ),
                refused(
                    "x5u to the attacker", with_header(mine, x5u=evil_url), "Unauthenticated", says
                ),
                refused(
                    "provider's kid, attacker's signature",
                    with_header(self.attacker),
                    "Unauthenticated",
                    "signature does not verify",
                ),
            ]
        )
        self.assertEqual(evil.resource.hits, 0)

    async def test_symmetric_key_published_in_the_jwks(self) -> None:
        secret = secrets.token_bytes(32)
        jwks = {"keys": [{"kty": "oct", "kid": "sym", "k": b64url(secret)}, self.ec.public_jwk()]}
        uri = "data:application/json," + json.dumps(jwks)
        providers = parse_providers(
            [
                {
                    "type": "customJwt",
                    "issuer": "https://sym.example",
                    "jwks": uri,
                    "algorithm": "ES256",
                }
            ]
        )
        claims = {"iss": "https://sym.example", "sub": "u", "exp": NOW + 300}
        token = hmac_token({"alg": "HS256", "kid": "sym"}, claims, secret)
        with self.assertRaises(AuthenticationError) as caught:
            await self.verifier.verify(token, providers)
        self.assertEqual(caught.exception.code, "InvalidAuthHeader")
        # The oct key was dropped: even an ES256 header naming it finds nothing.
        relabelled = compact({"alg": "ES256", "kid": "sym"}, claims)
        with self.assertRaises(AuthenticationError) as caught:
            await self.verifier.verify(relabelled, providers)
        self.assertIn("no key with kid 'sym'", caught.exception.message)

    # -- the header ----------------------------------------------------------------

    async def test_header_parameters(self) -> None:
        def headed(**headers: object):
            return lambda t: t.issuer.sign(t.claims(), t.rsa, **headers)

        def nested(t: AttackTests) -> str:
            # A JWS whose payload is another JWT (cty: JWT), signed for real.
            inner = t.sign()
            return jwt.api_jws.encode(
                inner.encode(),
                t.rsa.private,
                algorithm="RS256",
                headers={"kid": "rsa-1", "cty": "JWT"},
            )

        await self.run_cases(
            [
                # typ is not checked (Convex's providers send JWT, at+jwt or none).
                accepted("typ JWT", headed(typ="JWT")),
                accepted("typ at+jwt", headed(typ="at+jwt")),
                accepted("typ missing", headed(typ=None)),
                accepted("extra header fields", headed(foo="bar", x5t="abc")),
                refused(
                    "crit naming an unknown extension",
                    headed(crit=["exp-ext"], **{"exp-ext": 1}),
                    "InvalidAuthHeader",
                    "critical extension",
                ),
                refused("crit empty list", headed(crit=[]), "InvalidAuthHeader", "crit"),
                refused("crit not a list", headed(crit="b64"), "InvalidAuthHeader", "crit"),
                refused(
                    "unencoded payload (b64: false)",
                    headed(b64=False, crit=["b64"]),
                    "InvalidAuthHeader",
                    "detached",
                ),
                refused("nested JWT", nested, "InvalidAuthHeader", "Invalid payload string"),
                refused(
                    "kid not a string",
                    lambda t: compact({"alg": "RS256", "kid": 7}, t.claims()),
                    "InvalidAuthHeader",
                    "Key ID",
                ),
                refused(
                    "header not an object",
                    lambda t: compact(["RS256"], t.claims()),
                    "InvalidAuthHeader",
                    "json object",
                ),
            ]
        )

    # -- the shape -----------------------------------------------------------------

    async def test_malformed_tokens(self) -> None:
        def padded(t: AttackTests) -> str:
            # base64 makes 3 bytes 4 characters.
            token = t.sign(pad="x" * (MAX_TOKEN_BYTES * 3 // 4 - 600))
            t.assertLess(len(token), MAX_TOKEN_BYTES)
            return token

        deep = b"[" * 5000 + b"]" * 5000
        not_jwt = "not a JWT"
        await self.run_cases(
            [
                refused(
                    "JWE (five parts)",
                    lambda t: ".".join(["eyJhbGciOiJSU0EtT0FFUCJ9"] * 5),
                    "InvalidAuthHeader",
                    not_jwt,
                ),
                refused("four parts", lambda t: t.sign() + ".x", "InvalidAuthHeader", not_jwt),
                refused(
                    "two parts", lambda t: t.sign().rsplit(".", 1)[0], "InvalidAuthHeader", not_jwt
                ),
                refused(
                    "over the size limit",
                    lambda t: t.sign(pad="x" * MAX_TOKEN_BYTES),
                    "InvalidAuthHeader",
                    "too long",
                ),
                accepted("just under the size limit", padded),
                refused(
                    "non-UTF-8 header",
                    lambda t: compact(b"\xff\xfe{}", t.claims()),
                    "InvalidAuthHeader",
                    "Could not decode",
                ),
                refused(
                    "non-UTF-8 payload",
                    lambda t: compact({"alg": "RS256"}, b"\xff\xfe\xfd"),
                    "InvalidAuthHeader",
                    "Could not decode",
                ),
                refused(
                    "non-ASCII text", lambda t: "é.é.é", "InvalidAuthHeader", "Could not decode"
                ),
                refused(
                    "deeply nested header",
                    lambda t: compact(deep, t.claims()),
                    "InvalidAuthHeader",
                    "Could not decode",
                ),
                refused(
                    "deeply nested payload",
                    lambda t: compact({"alg": "RS256"}, deep),
                    "InvalidAuthHeader",
                    "Could not decode",
                ),
                refused(
                    "payload a list",
                    lambda t: compact({"alg": "RS256"}, [1]),
                    "InvalidAuthHeader",
                    "json object",
                ),
                refused(
                    "bytes", lambda t: t.sign().encode(), "InvalidAuthHeader", "non-empty string"
                ),
                refused("a number", lambda t: 12, "InvalidAuthHeader", "non-empty string"),
                refused("empty", lambda t: "", "InvalidAuthHeader", "non-empty string"),
            ]
        )

    # -- the claims ----------------------------------------------------------------

    async def test_time_claims(self) -> None:
        number = "must be a number of seconds"
        rsa = self.rsa

        def raw(text: str):
            body = '{"iss": "%s", "sub": "u", "aud": "%s", "iat": %d, %s}'
            return lambda t: raw_claims_token(
                rsa, (body % (t.issuer.url, AUDIENCE, NOW, text)).encode()
            )

        await self.run_cases(
            [
                refused(
                    "exp a string", lambda t: t.sign(exp=str(NOW + 300)), "Unauthenticated", number
                ),
                refused("exp true", lambda t: t.sign(exp=True), "Unauthenticated", number),
                refused("exp null", lambda t: t.sign(exp=None), "Unauthenticated", number),
                refused(
                    "exp a huge integer", lambda t: t.sign(exp=10**400), "Unauthenticated", number
                ),
                refused("exp 1e308", lambda t: t.sign(exp=1e308), "Unauthenticated", number),
                refused("exp NaN", raw('"exp": NaN'), "Unauthenticated", number),
                refused("exp Infinity", raw('"exp": 1e999'), "Unauthenticated", number),
                refused(
                    "exp missing", lambda t: t.sign(exp=...), "Unauthenticated", "no `exp` claim"
                ),
                refused(
                    "exp past the leeway",
                    lambda t: t.sign(exp=NOW - 60),
                    "Unauthenticated",
                    "Token expired",
                ),
                accepted("exp within the leeway", lambda t: t.sign(exp=int(time.time()) - 2)),
                accepted("exp a float", lambda t: t.sign(exp=NOW + 300.5)),
                refused(
                    "nbf in the future",
                    lambda t: t.sign(nbf=NOW + 600),
                    "Unauthenticated",
                    "not valid yet",
                ),
                refused("nbf a string", lambda t: t.sign(nbf="0"), "Unauthenticated", number),
                accepted("nbf within the leeway", lambda t: t.sign(nbf=int(time.time()) + 3)),
                refused(
                    "iat in the future",
                    lambda t: t.sign(iat=NOW + 600),
                    "Unauthenticated",
                    "not valid yet",
                ),
                refused(
                    "iat a huge integer", lambda t: t.sign(iat=10**30), "Unauthenticated", number
                ),
                refused(
                    "iat missing (OIDC)",
                    lambda t: t.sign(iat=...),
                    "Unauthenticated",
                    "no `iat` claim",
                ),
                accepted("iat within the leeway", lambda t: t.sign(iat=int(time.time()) + 3)),
            ]
        )

    async def test_issuer_and_audience(self) -> None:
        url = self.issuer.url
        no_provider = "No auth provider found"
        await self.run_cases(
            [
                # As Convex: `aud` may be a list that contains the applicationID.
                accepted(
                    "aud a list holding the applicationID",
                    lambda t: t.sign(aud=["other", AUDIENCE]),
                ),
                refused(
                    "aud a list without it",
                    lambda t: t.sign(aud=["other", "more"]),
                    "NoAuthProvider",
                    no_provider,
                ),
                refused("aud missing", lambda t: t.sign(aud=...), "NoAuthProvider", no_provider),
                refused(
                    "aud an object",
                    lambda t: t.sign(aud={AUDIENCE: True}),
                    "NoAuthProvider",
                    no_provider,
                ),
                refused(
                    "aud prefix",
                    lambda t: t.sign(aud=AUDIENCE + "x"),
                    "NoAuthProvider",
                    no_provider,
                ),
                accepted("iss with a trailing slash", lambda t: t.sign(iss=url + "/")),
                refused(
                    "iss a longer host",
                    lambda t: t.sign(iss=url + "0"),
                    "NoAuthProvider",
                    no_provider,
                ),
                refused(
                    "iss with a path",
                    lambda t: t.sign(iss=url + "/evil"),
                    "NoAuthProvider",
                    no_provider,
                ),
                refused(
                    "iss with userinfo",
                    lambda t: t.sign(iss=url.replace("//", "//evil@")),
                    "NoAuthProvider",
                    no_provider,
                ),
                refused(
                    "iss not a string",
                    lambda t: t.raw_signed(iss=[url]),
                    "NoAuthProvider",
                    no_provider,
                ),
                refused(
                    "sub not a string",
                    lambda t: t.sign(sub=42),
                    "Unauthenticated",
                    "Subject must be a string",
                ),
                refused(
                    "sub missing", lambda t: t.sign(sub=...), "Unauthenticated", "no `sub` claim"
                ),
            ]
        )
        # A provider configured with the slash takes tokens without it, too.
        providers = parse_providers([{"domain": url + "/", "applicationID": AUDIENCE}])
        verified = await self.verifier.verify(self.sign(), providers)
        self.assertEqual(verified.identity["issuer"], url)

    async def test_claims_cannot_overwrite_the_identity(self) -> None:
        token = self.sign(
            tokenIdentifier="https://evil|root",
            subject="root",
            issuer="https://evil",
            given_name="Ada",
            givenName="Mallory",
            name="Ada L.",
        )
        verified = await self.verify(token)
        self.assertEqual(
            verified.identity,
            {
                "tokenIdentifier": f"{self.issuer.url}|user-1",
                "subject": "user-1",
                "issuer": self.issuer.url,
                "givenName": "Ada",
                "name": "Ada L.",
            },
        )


class JwksAbuseTests(TestCase):
    """Tokens and providers that try to make us fetch too much, or forever."""

    timeout = 60

    async def setUp(self) -> None:
        self.issuer = await LocalIssuer().start()
        self.addCleanup(self.issuer.stop)
        # The default refresh interval (30 s): the rate limit under test.
        self.cache = JwksCache(fetch_timeout=5.0)
        self.verifier = TokenVerifier(self.cache)
        self.providers = parse_providers(self.issuer.providers())

    def random_kid_token(self) -> str:
        claims = self.issuer.claims()
        key = SigningKey("kid-" + secrets.token_hex(8), "RS256", self.issuer.oidc_keys[0].private)
        return self.issuer.sign(claims, key)

    async def refuse_all(self, tokens: list[str]) -> list[str]:
        results = await defer.DeferredList(
            [defer.ensureDeferred(self.verifier.verify(t, self.providers)) for t in tokens],
            consumeErrors=True,
        )
        messages = []
        for ok, result in results:
            self.assertFalse(ok)
            result.trap(AuthenticationError)
            messages.append(result.value.message)
        return messages

    async def test_random_kids_fetch_at_most_once_per_interval(self) -> None:
        # A cold cache and 50 tokens at once: one discovery, one JWKS fetch.
        messages = await self.refuse_all([self.random_kid_token() for _ in range(50)])
        self.assertEqual(self.issuer.requests, {"discovery": 1, "jwks": 1, "custom": 0})
        self.assertTrue(all("no key with kid" in m for m in messages), messages[:3])
        # Warm, and in sequence: no fetch at all.
        await self.verifier.verify(self.issuer.token(), self.providers)
        for _ in range(30):
            await self.refuse_all([self.random_kid_token()])
        self.assertEqual(self.issuer.requests["jwks"], 1)

    async def test_a_provider_that_is_down_is_not_hammered(self) -> None:
        await self.issuer.stop()
        messages = await self.refuse_all([self.issuer.token() for _ in range(20)])
        for _ in range(20):
            messages += await self.refuse_all([self.random_kid_token()])
        self.assertEqual(self.cache.fetches, 1)
        self.assertTrue(all("Could not get the signing keys" in m for m in messages))

    async def serve(self, root: Resource) -> str:
        port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return f"http://127.0.0.1:{port.getHost().port}"

    async def test_misbehaving_jwks_servers(self) -> None:
        root = Resource()
        loop = _Redirect(b"/loop")
        root.putChild(b"loop", loop)
        root.putChild(b"to-file", _Redirect(b"file:///etc/passwd"))
        root.putChild(b"hop", _Redirect(b"/nan"))
        root.putChild(b"deep", _Fixed(b'{"keys": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"))
        root.putChild(b"keys-not-list", _Fixed(b'{"keys": {"kty": "RSA"}}'))
        root.putChild(b"nan", _Fixed(b'{"keys": NaN}'))
        endless = _Endless()
        root.putChild(b"endless", endless)
        base = await self.serve(root)
        cache = JwksCache(fetch_timeout=5.0)
        cases = [
            ("/loop", "redirects more than 5 times"),
            ("/to-file", "redirects to a non-https URL"),
            ("/hop", "not a JWKS document"),  # a redirect is followed
            ("/deep", "did not answer JSON"),
            ("/keys-not-list", "not a JWKS document"),
            ("/nan", "not a JWKS document"),
            ("/endless", "more than 1048576 bytes"),
        ]
        for path, says in cases:
            started = time.monotonic()
            with self.assertRaises(JwksError, msg=path) as caught:
                await cache.keys(base + path, "k")
            self.assertIn(says, str(caught.exception), path)
            self.assertLess(time.monotonic() - started, 4.5, path)
        # The loop was cut off after a bounded number of hops.
        self.assertEqual(loop.hits, 6)
        # The endless body's connection was dropped, not read to the end of time.
        sent = await endless.stopped
        self.assertLess(sent, 8 * 1024 * 1024)

    async def test_discovery_must_name_an_http_jwks_uri(self) -> None:
        root = Resource()
        well_known = Resource()
        root.putChild(b".well-known", well_known)
        well_known.putChild(b"openid-configuration", _Fixed(b'{"jwks_uri": "file:///etc/passwd"}'))
        base = await self.serve(root)
        with self.assertRaises(JwksError) as caught:
            await self.cache.keys(base, "k", discovery=True)
        self.assertIn("no http(s) `jwks_uri`", str(caught.exception))

    async def test_slow_provider_does_not_stall_other_requests(self) -> None:
        # While a provider's fetch hangs, the reactor keeps turning.
        class Hang(Resource):
            isLeaf = True

            def render(self, request):
                return NOT_DONE_YET

        base = await self.serve(Hang())
        cache = JwksCache(fetch_timeout=1.0)
        d = defer.ensureDeferred(cache.keys(base + "/jwks", "k"))
        ticks = 0
        while not d.called:
            await deferLater(reactor, 0.05, lambda: None)
            ticks += 1
        self.assertGreater(ticks, 5)
        with self.assertRaises(JwksError) as caught:
            await d
        self.assertIn("did not answer within 1 s", str(caught.exception))


class JwksRedirectTests(TestCase):
    async def test_an_https_source_is_never_redirected_to_http(self) -> None:
        from convex_backend.auth import jwks

        cache = JwksCache(fetch_timeout=5.0)
        answers = {
            "https://issuer.test/jwks": (302, "http://issuer.test/jwks"),
        }

        class Headers:
            def __init__(self, location):
                self.location = location

            def getRawHeaders(self, name, default=None):
                return [self.location.encode()] if self.location else default

        class Response:
            def __init__(self, code, location):
                self.code, self.headers = code, Headers(location)

        async def fake_get(url, **kwargs):
            self.assertFalse(kwargs["allow_redirects"])
            code, location = answers[url]
            return Response(code, location)

        self.patch(jwks.treq, "get", fake_get)
        self.patch(jwks.treq, "collect", lambda response, sink: defer.succeed(None))
        with self.assertRaises(JwksError) as caught:
            await cache._download("https://issuer.test/jwks")
        self.assertIn("redirects to a non-https URL", str(caught.exception))
