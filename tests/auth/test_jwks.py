"""JWKS fetching and caching against a real local issuer (twisted.web, loopback)."""

from __future__ import annotations

import base64
import json

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from convex_backend.auth.jwks import (
    JwksCache,
    JwksError,
    decode_data_uri,
    matching_keys,
    parse_jwks,
)
from tests.auth.issuer import LocalIssuer, SigningKey


def data_uri(document: dict) -> str:
    return (
        "data:text/plain;charset=utf-8;base64,"
        + base64.b64encode(json.dumps(document).encode()).decode()
    )


class ParseJwksTests(SynchronousTestCase):
    def test_only_asymmetric_signing_keys_are_kept(self) -> None:
        rsa_key, ec_key = SigningKey.rsa("r"), SigningKey.ec("e")
        document = {
            "keys": [
                rsa_key.public_jwk(),
                ec_key.public_jwk(with_alg=False),
                {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"},
                {**SigningKey.rsa("enc").public_jwk(), "use": "enc"},
                {"kty": "RSA", "kid": "broken", "n": "AQAB"},
                {**SigningKey.rsa("hs").public_jwk(), "alg": "HS256"},
                "not a key",
            ]
        }
        keys = parse_jwks(document, "test")
        self.assertEqual(
            [(k.key_id, k.algorithm_name) for k in keys], [("r", "RS256"), ("e", "ES256")]
        )

    def test_bad_documents(self) -> None:
        for document in (
            {},
            [],
            {"keys": "x"},
            {"keys": []},
            {"keys": [{"kty": "oct", "k": "AA"}]},
        ):
            self.assertRaises(JwksError, parse_jwks, document, "test")

    def test_matching_keys(self) -> None:
        a, b = SigningKey.rsa("a").public_jwk(), SigningKey.rsa("b").public_jwk()
        anonymous = {k: v for k, v in SigningKey.rsa("c").public_jwk().items() if k != "kid"}
        keys = parse_jwks({"keys": [a, b]}, "t")
        self.assertEqual([k.key_id for k in matching_keys(keys, "b")], ["b"])
        self.assertEqual(matching_keys(keys, "zzz"), [])
        self.assertEqual(len(matching_keys(keys, None)), 2)
        with_anonymous = parse_jwks({"keys": [a, anonymous]}, "t")
        self.assertEqual([k.key_id for k in matching_keys(with_anonymous, "zzz")], [None])

    def test_data_uri(self) -> None:
        self.assertEqual(decode_data_uri(data_uri({"a": 1})), b'{"a": 1}')
        self.assertEqual(decode_data_uri("data:,%7B%7D"), b"{}")


class _Slow(Resource):
    isLeaf = True

    def render_GET(self, request):
        return NOT_DONE_YET


class _Fixed(Resource):
    isLeaf = True

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__()
        self.status, self.body = status, body

    def render_GET(self, request):
        request.setResponseCode(self.status)
        return self.body


class JwksCacheTests(TestCase):
    timeout = 60

    async def setUp(self) -> None:
        self.issuer = await LocalIssuer().start()
        self.addCleanup(self.issuer.stop)
        self.clock = Clock()
        self.clock.advance(1000)
        self.cache = JwksCache(self.clock, fetch_timeout=2.0)

    async def test_oidc_discovery_then_cached(self) -> None:
        kid = self.issuer.oidc_keys[0].kid
        keys = await self.cache.keys(self.issuer.url, kid, discovery=True)
        self.assertEqual([k.key_id for k in keys], [kid])
        self.assertEqual(self.issuer.requests, {"discovery": 1, "jwks": 1, "custom": 0})
        await self.cache.keys(self.issuer.url + "/", kid, discovery=True)
        await self.cache.keys(self.issuer.url, kid, discovery=True)
        # The second spelling is another source; the third call is served from memory.
        self.assertEqual(self.issuer.requests["jwks"], 2)

    async def test_concurrent_callers_share_one_fetch(self) -> None:
        source = self.issuer.url + "/custom/jwks"
        results = await defer.gatherResults(
            [defer.ensureDeferred(self.cache.keys(source, "ec-1")) for _ in range(5)]
        )
        self.assertEqual({r[0].key_id for r in results}, {"ec-1"})
        self.assertEqual(self.issuer.requests["custom"], 1)

    async def test_unknown_kid_refreshes_at_most_once_per_interval(self) -> None:
        url = self.issuer.url
        await self.cache.keys(url, "rsa-1", discovery=True)
        new = self.issuer.rotate()
        # Right after a fetch, a new kid does not make us fetch again.
        self.clock.advance(5)
        with self.assertRaises(JwksError) as caught:
            await self.cache.keys(url, new.kid, discovery=True)
        self.assertIn(repr(new.kid), str(caught.exception))
        self.assertEqual(self.issuer.requests["jwks"], 1)
        # Once the interval has passed, the rotated key is picked up.
        self.clock.advance(30)
        keys = await self.cache.keys(url, new.kid, discovery=True)
        self.assertEqual([k.key_id for k in keys], [new.kid])
        self.assertEqual(self.issuer.requests["jwks"], 2)
        # Made-up kids now are refused without another fetch.
        for i in range(5):
            with self.assertRaises(JwksError):
                await self.cache.keys(url, f"made-up-{i}", discovery=True)
        self.assertEqual(self.issuer.requests["jwks"], 2)

    async def test_keys_are_fetched_again_after_max_age(self) -> None:
        source = self.issuer.url + "/custom/jwks"
        await self.cache.keys(source, "ec-1")
        self.clock.advance(self.cache.max_age + 1)
        await self.cache.keys(source, "ec-1")
        self.assertEqual(self.issuer.requests["custom"], 2)
        # If that fetch fails, the old keys still serve.
        await self.issuer.stop()
        self.clock.advance(self.cache.max_age + 1)
        keys = await self.cache.keys(source, "ec-1")
        self.assertEqual(keys[0].key_id, "ec-1")
        self.flushLoggedErrors()

    async def test_data_uri_needs_no_network(self) -> None:
        key = SigningKey.ec("inline")
        keys = await self.cache.keys(data_uri({"keys": [key.public_jwk()]}), "inline")
        self.assertEqual(keys[0].key_id, "inline")
        self.assertEqual(self.cache.fetches, 0)
        with self.assertRaises(JwksError):
            await self.cache.keys("data:,not-json", None)

    async def test_fetch_failures_are_reported(self) -> None:
        root = Resource()
        root.putChild(b"slow", _Slow())
        root.putChild(b"missing", _Fixed(404, b"{}"))
        root.putChild(b"html", _Fixed(200, b"<html>"))
        root.putChild(b"big", _Fixed(200, b"x" * (1024 * 1024 + 10)))
        root.putChild(b"nojwks", _Fixed(200, b'{"issuer": "x"}'))
        port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        base = f"http://127.0.0.1:{port.getHost().port}"
        self.cache.fetch_timeout = 0.5
        cases = [
            (base + "/missing", False, "answered HTTP 404"),
            (base + "/html", False, "did not answer JSON"),
            (base + "/big", False, "more than 1048576 bytes"),
            (base + "/slow", False, "did not answer within 0.5 s"),
            (base + "/nojwks", True, "no http(s) `jwks_uri`"),
            ("http://127.0.0.1:1/jwks", False, "could not fetch"),
        ]
        for source, discovery, expected in cases:
            with self.assertRaises(JwksError, msg=source) as caught:
                await self.cache.keys(source, "k", discovery=discovery)
            self.assertIn(expected, str(caught.exception))
        # A failed fetch is not retried at once (rate limit), the error is kept.
        count = self.cache.fetches
        with self.assertRaises(JwksError) as caught:
            await self.cache.keys(base + "/missing", "k")
        self.assertIn("HTTP 404", str(caught.exception))
        self.assertEqual(self.cache.fetches, count)
