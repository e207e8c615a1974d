"""HTTP actions: HEAD, body limits, and the site proxy (against a real loopback server)."""

from __future__ import annotations

import json

from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.web.resource import EncodingResourceWrapper, Resource
from twisted.web.server import NOT_DONE_YET, GzipEncoderFactory, Site

from convex_backend.http.site_actions import (
    HTTP_ACTION_MAX_REQUEST_BYTES,
    SiteApp,
    route_matches,
)
from tests.http.fixtures import ApiTestCase


class Upstream(Resource):
    """A stand-in for a frontend dev server: describes each request it gets."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict] = []

    def render(self, request):
        if request.uri == b"/stream":
            # A body in pieces, the last one a moment later.
            request.setHeader(b"content-type", b"text/plain")
            request.write(b"first ")
            reactor.callLater(0.05, lambda: (request.write(b"second"), request.finish()))
            return NOT_DONE_YET
        seen = {
            "method": request.method.decode(),
            "uri": request.uri.decode(),
            "headers": {
                k.decode().lower(): [v.decode() for v in vs]
                for k, vs in request.requestHeaders.getAllRawHeaders()
            },
            "body": request.content.read().decode(),
        }
        self.seen.append(seen)
        request.setResponseCode(201 if request.uri.startswith(b"/made") else 200)
        request.setHeader(b"x-upstream", b"yes")
        request.setHeader(b"content-type", b"application/json")
        request.addCookie(b"session", b"abc")
        return json.dumps(seen).encode()


def start_upstream(testcase, gzip: bool = False) -> tuple[Upstream, int]:
    upstream = Upstream()
    resource = EncodingResourceWrapper(upstream, [GzipEncoderFactory()]) if gzip else upstream
    port = reactor.listenTCP(0, Site(resource), interface="127.0.0.1")
    testcase.addCleanup(port.stopListening)
    return upstream, port.getHost().port


class HttpActionTests(ApiTestCase):
    def use_site_port(self) -> None:
        """Send the following requests to the site port's resource instead."""
        self.treq = StubTreq(SiteApp(self.deployment).resource())

    async def test_head_is_get_without_a_body(self) -> None:
        for prefix in ("/http", ""):
            if not prefix:
                self.use_site_port()
            response, body = await self.request("GET", prefix + "/hello")
            self.assertEqual((response.code, body), (200, b"hello GET"))
            head, head_body = await self.request("HEAD", prefix + "/hello")
            self.assertEqual((head.code, head_body), (200, b""))
            self.assertEqual(head.headers.getRawHeaders(b"x-handler"), [b"hello"])
            # The handler sees the HEAD method; the length is that of its answer.
            self.assertEqual(head.headers.getRawHeaders(b"content-length"), [b"10"])
            # HEAD where only POST is routed: the router's 404.
            head, _ = await self.request("HEAD", prefix + "/size")
            self.assertEqual(head.code, 404)

    async def test_body_limit(self) -> None:
        limit = HTTP_ACTION_MAX_REQUEST_BYTES
        for prefix in ("/http", ""):
            if not prefix:
                self.use_site_port()
            response, body = await self.request("POST", prefix + "/size", data=b"x" * limit)
            self.assertEqual(response.code, 200, body[:200])
            self.assertEqual(json.loads(body), {"size": limit, "method": "POST"})
            response, body = await self.request("POST", prefix + "/size", data=b"x" * (limit + 1))
            self.assertJsonError(response, body, 413, "PayloadTooLarge")

    async def test_no_proxy_configured(self) -> None:
        response, body = await self.request("GET", "/http/elsewhere")
        self.assertEqual(response.code, 404)
        self.assertIn(b"No HttpAction routed for /elsewhere", body)


class SiteProxyTests(ApiTestCase):
    def config_options(self) -> dict:
        self.upstream, self.upstream_port = start_upstream(self)
        return {"site_proxy": f"http://127.0.0.1:{self.upstream_port}"}

    async def test_unmatched_requests_are_forwarded(self) -> None:
        response, body = await self.request(
            "POST",
            "/http/made/thing?x=1&y=%20z",
            data=b"payload",
            headers={
                "Content-Type": "text/plain",
                "X-Custom": "kept",
                "Connection": "keep-alive, X-Hop",
                "X-Hop": "dropped",
                "Proxy-Authorization": "secret",
                "Authorization": "Bearer forwarded",
            },
        )
        self.assertEqual(response.code, 201)
        self.assertEqual(response.headers.getRawHeaders(b"x-upstream"), [b"yes"])
        self.assertTrue(response.headers.getRawHeaders(b"set-cookie")[0].startswith(b"session="))
        seen = json.loads(body)
        self.assertEqual(seen["method"], "POST")
        self.assertEqual(seen["uri"], "/made/thing?x=1&y=%20z")
        self.assertEqual(seen["body"], "payload")
        headers = seen["headers"]
        self.assertEqual(headers["x-custom"], ["kept"])
        self.assertEqual(headers["authorization"], ["Bearer forwarded"])
        self.assertEqual(headers["content-type"], ["text/plain"])
        self.assertEqual(headers["host"], [f"127.0.0.1:{self.upstream_port}"])
        self.assertEqual(headers["x-forwarded-host"], ["convex.test"])
        for hop in ("x-hop", "proxy-authorization"):
            self.assertNotIn(hop, headers)

    async def test_routed_requests_stay_with_the_router(self) -> None:
        response, body = await self.request("GET", "/http/hello")
        self.assertEqual(body, b"hello GET")
        # A handler's own 404 is an answer, not a miss.
        response, body = await self.request("GET", "/http/mine/x")
        self.assertEqual((response.code, body), (404, b"handler says not found"))
        self.assertEqual(self.upstream.seen, [])
        # A routed path with another method is a miss: forwarded.
        response, body = await self.request("POST", "/http/hello", data=b"")
        self.assertEqual(json.loads(body)["method"], "POST")

    async def test_head_and_get_on_the_site_port(self) -> None:
        self.treq = StubTreq(SiteApp(self.deployment).resource())
        response, body = await self.request("GET", "/index.html")
        self.assertEqual(response.code, 200)
        self.assertEqual(json.loads(body)["uri"], "/index.html")
        head, head_body = await self.request("HEAD", "/index.html")
        self.assertEqual((head.code, head_body), (200, b""))
        self.assertEqual(self.upstream.seen[-1]["method"], "HEAD")
        head, head_body = await self.request("HEAD", "/hello")
        self.assertEqual(head.headers.getRawHeaders(b"x-handler"), [b"hello"])

    async def test_streamed_response(self) -> None:
        response, body = await self.request("GET", "/http/stream")
        self.assertEqual((response.code, body), (200, b"first second"))


class CompressingSiteProxyTests(ApiTestCase):
    modules = None

    def config_options(self) -> dict:
        self.upstream, port = start_upstream(self, gzip=True)
        return {"site_proxy": f"http://127.0.0.1:{port}"}

    async def test_compressed_answers_arrive_whole(self) -> None:
        for headers in ({}, {"Accept-Encoding": "gzip"}):
            response, body = await self.request("GET", "/http/page?q=1", headers=headers)
            self.assertEqual(response.code, 200)
            self.assertEqual(json.loads(body)["uri"], "/page?q=1")
            length = response.headers.getRawHeaders(b"content-length")
            self.assertIn(length, (None, [str(len(body)).encode()]))
            # (treq, on the test's side, leaves an empty header where there was none.)
            self.assertIn(response.headers.getRawHeaders(b"content-encoding"), (None, [b""]))
        # The origin did compress: treq asked it to, and the proxy decoded the answer.
        self.assertIn("gzip", self.upstream.seen[-1]["headers"]["accept-encoding"][-1])


class SiteProxyDownTests(ApiTestCase):
    def config_options(self) -> dict:
        # A port that was free a moment ago: nothing listens there.
        listening = reactor.listenTCP(0, Site(Resource()), interface="127.0.0.1")
        port = listening.getHost().port
        listening.stopListening()
        return {"site_proxy": f"http://127.0.0.1:{port}"}

    async def test_unreachable_origin_is_a_502(self) -> None:
        response, body = await self.request("GET", "/http/anything")
        error = self.assertJsonError(response, body, 502, "SiteProxyError")
        self.assertIn("could not reach", error["message"])
        # Routed requests still work.
        response, body = await self.request("GET", "/http/hello")
        self.assertEqual(body, b"hello GET")


class RouteMatchTests(ApiTestCase):
    modules = None

    def test_route_matches(self) -> None:
        routes = [
            {"path": "/a", "method": "GET"},
            {"pathPrefix": "/files/", "method": "POST"},
        ]
        self.assertTrue(route_matches(routes, "/a", "GET"))
        self.assertTrue(route_matches(routes, "/a", "HEAD"))
        self.assertFalse(route_matches(routes, "/a", "POST"))
        self.assertFalse(route_matches(routes, "/a/", "GET"))
        self.assertTrue(route_matches(routes, "/files/x/y", "POST"))
        self.assertFalse(route_matches(routes, "/files", "POST"))
        self.assertFalse(route_matches(None, "/a", "GET"))
