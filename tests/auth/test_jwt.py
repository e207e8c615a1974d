"""Token verification against a real local OIDC issuer and a customJwt provider."""

from __future__ import annotations

import time

import jwt
from twisted.trial.unittest import TestCase

from convex_backend.auth.jwks import JwksCache
from convex_backend.auth.jwt import MAX_TOKEN_BYTES, AuthenticationError, TokenVerifier
from convex_backend.auth.providers import parse_providers
from tests.auth.issuer import AUDIENCE, LocalIssuer, SigningKey


class VerifierTestCase(TestCase):
    timeout = 60

    async def setUp(self) -> None:
        self.issuer = await LocalIssuer().start()
        self.addCleanup(self.issuer.stop)
        self.cache = JwksCache(min_refresh_interval=0.0, fetch_timeout=5.0)
        self.verifier = TokenVerifier(self.cache)
        self.providers = parse_providers(self.issuer.providers())

    async def refused(self, token, providers=None, code: str | None = None) -> str:
        with self.assertRaises(AuthenticationError) as caught:
            await self.verifier.verify(token, self.providers if providers is None else providers)
        if code is not None:
            self.assertEqual(caught.exception.code, code)
        message = caught.exception.message
        if isinstance(token, str) and len(token) > 20:
            self.assertNotIn(token, message)
        return message


class VerifyTests(VerifierTestCase):
    async def test_oidc_token(self) -> None:
        token = self.issuer.token(claims={"name": "Ada", "given_name": "Ada", "team": "red"})
        verified = await self.verifier.verify(token, self.providers)
        self.assertEqual(
            verified.identity,
            {
                "tokenIdentifier": f"{self.issuer.url}|user-1",
                "subject": "user-1",
                "issuer": self.issuer.url,
                "name": "Ada",
                "givenName": "Ada",
                "team": "red",
            },
        )
        self.assertLess(abs(verified.expires_at - (time.time() + 300)), 5)
        self.assertEqual(verified.provider, self.providers[0])

    async def test_custom_jwt_es256(self) -> None:
        token = self.issuer.token(kind="custom", claims={"sub": "svc"})
        verified = await self.verifier.verify(token, self.providers)
        self.assertEqual(verified.identity["tokenIdentifier"], f"{self.issuer.custom_issuer}|svc")
        self.assertEqual(verified.provider, self.providers[1])

    async def test_custom_jwt_without_application_id_skips_audience(self) -> None:
        config = self.issuer.providers()[1]
        del config["applicationID"]
        providers = parse_providers([config])
        for aud in ("anything", None):
            claims = self.issuer.claims("custom", aud=aud)
            if aud is None:
                del claims["aud"]
            token = self.issuer.sign(claims, self.issuer.custom_keys[0])
            verified = await self.verifier.verify(token, providers)
            self.assertEqual(verified.identity["subject"], "user-1")

    async def test_issuer_trailing_slash_and_audience_list(self) -> None:
        claims = self.issuer.claims(iss=self.issuer.url + "/", aud=["other", AUDIENCE])
        verified = await self.verifier.verify(self.issuer.sign(claims), self.providers)
        self.assertEqual(verified.identity["issuer"], self.issuer.url + "/")
        providers = parse_providers([{"domain": self.issuer.url + "/", "applicationID": AUDIENCE}])
        await self.verifier.verify(self.issuer.token(), providers)

    async def test_rotated_key_is_picked_up(self) -> None:
        await self.verifier.verify(self.issuer.token(), self.providers)
        self.issuer.rotate()
        verified = await self.verifier.verify(self.issuer.token(), self.providers)
        self.assertEqual(verified.identity["subject"], "user-1")
        self.assertEqual(self.issuer.requests["jwks"], 2)


class RefusedTests(VerifierTestCase):
    async def test_wrong_audience(self) -> None:
        message = await self.refused(self.issuer.token(variant="wrong_aud"), code="NoAuthProvider")
        self.assertIn("No auth provider found matching the given token", message)
        self.assertIn("audience", message)
        self.assertIn("'someone-else'", message)

    async def test_wrong_issuer(self) -> None:
        message = await self.refused(self.issuer.token(variant="wrong_iss"), code="NoAuthProvider")
        self.assertIn("issuer (iss) 'https://evil.example.com'", message)
        self.assertIn(f"OIDC(domain={self.issuer.url}, applicationID={AUDIENCE})", message)

    async def test_expired(self) -> None:
        message = await self.refused(self.issuer.token(variant="expired"), code="Unauthenticated")
        self.assertRegex(message, r"^Token expired 1[12]\d seconds ago")

    async def test_expiry_leeway(self) -> None:
        claims = self.issuer.claims(exp=int(time.time()) - 3)
        await self.verifier.verify(self.issuer.sign(claims), self.providers)
        claims = self.issuer.claims(exp=int(time.time()) - 30)
        self.assertIn("expired", await self.refused(self.issuer.sign(claims)))

    async def test_not_yet_valid_and_issued_in_the_future(self) -> None:
        self.assertIn("not valid yet", await self.refused(self.issuer.token(variant="not_yet")))
        future = self.issuer.claims(iat=int(time.time()) + 600, exp=int(time.time()) + 900)
        self.assertIn("not valid yet", await self.refused(self.issuer.sign(future)))

    async def test_missing_claims(self) -> None:
        self.assertIn("no `exp` claim", await self.refused(self.issuer.token(variant="no_exp")))
        claims = self.issuer.claims()
        del claims["iat"]
        self.assertIn("no `iat` claim", await self.refused(self.issuer.sign(claims)))
        claims = self.issuer.claims()
        del claims["sub"]
        self.assertIn("no `sub` claim", await self.refused(self.issuer.sign(claims)))

    async def test_tampered(self) -> None:
        for kind in ("oidc", "custom"):
            message = await self.refused(self.issuer.token(kind=kind, variant="tampered"))
            self.assertIn("signature does not verify", message)

    async def test_signed_by_another_key_with_a_known_kid(self) -> None:
        impostor = SigningKey.rsa(self.issuer.oidc_keys[0].kid)
        token = self.issuer.sign(self.issuer.claims(), impostor)
        self.assertIn("signature does not verify", await self.refused(token))

    async def test_unknown_kid(self) -> None:
        token = self.issuer.sign(self.issuer.claims(), SigningKey.rsa("nobody"))
        message = await self.refused(token)
        self.assertIn("no key with kid 'nobody'", message)

    async def test_alg_none(self) -> None:
        message = await self.refused(self.issuer.none_token(), code="InvalidAuthHeader")
        self.assertIn("alg `none`", message)
        # Even spelled differently, and before any key is fetched.
        header = jwt.utils.base64url_encode(b'{"alg":"None"}').decode()
        self.assertIn("alg `none`", await self.refused(header + ".e30.", code="InvalidAuthHeader"))
        self.assertEqual(self.cache.fetches, 0)

    async def test_hs256_signed_with_the_public_key(self) -> None:
        message = await self.refused(self.issuer.hs256_with_public_key(), code="InvalidAuthHeader")
        self.assertIn("HS256", message)
        self.assertEqual(self.cache.fetches, 0)
        # The same token would verify if the public key were taken as an HMAC secret.
        token = self.issuer.hs256_with_public_key()
        with self.assertRaises(jwt.exceptions.InvalidKeyError):
            jwt.decode(
                token,
                self.issuer.oidc_keys[0].public_pem(),
                algorithms=["HS256"],
                audience=AUDIENCE,
            )

    async def test_algorithm_comes_from_the_provider(self) -> None:
        # An RS256 token for the ES256 customJwt provider.
        rsa_key = SigningKey.rsa("ec-1")
        token = self.issuer.sign(self.issuer.claims("custom"), rsa_key)
        message = await self.refused(token)
        self.assertIn("signed with RS256", message)
        self.assertIn("configured for ES256", message)
        # An ES256 token whose kid names the OIDC provider's RSA key.
        ec_key = SigningKey.ec(self.issuer.oidc_keys[0].kid)
        token = self.issuer.sign(self.issuer.claims(), ec_key)
        message = await self.refused(token)
        self.assertIn("signed with ES256", message)
        self.assertIn("are for RS256", message)
        # RS384 with the RS256 key (header says RS384; the key's alg says RS256).
        key = self.issuer.oidc_keys[0]
        token = jwt.encode(
            self.issuer.claims(), key.private, algorithm="RS384", headers={"kid": key.kid}
        )
        self.assertIn("signed with RS384", await self.refused(token))

    async def test_malformed_tokens(self) -> None:
        cases = [
            ("", "non-empty string"),
            (None, "non-empty string"),
            ("abc", "not a JWT"),
            ("a.b", "not a JWT"),
            ("a.b.c", "Could not decode"),
            ("x" * (MAX_TOKEN_BYTES + 1), "too long"),
            ("e30.W10.sig", "Could not decode"),
        ]
        for token, expected in cases:
            self.assertIn(expected, await self.refused(token, code="InvalidAuthHeader"))

    async def test_no_providers(self) -> None:
        message = await self.refused(self.issuer.token(), providers=(), code="Unauthenticated")
        self.assertIn("no auth providers are configured", message)
        self.assertIn("auth_config.py", message)

    async def test_provider_keys_unavailable(self) -> None:
        token = self.issuer.token()
        await self.issuer.stop()
        message = await self.refused(token)
        self.assertIn("Could not get the signing keys of auth provider OIDC(", message)
