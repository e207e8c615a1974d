"""The Site over a real loopback port: body limits, bad paths, metrics, draining."""

from __future__ import annotations

import json

import treq
from klein import Klein
from twisted.internet import defer, reactor
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.trial.unittest import TestCase

from convex_backend.http.errors import install_error_handlers
from convex_backend.http.site import ConvexSite, route
from convex_backend.metrics import Metrics


class SlowApp:
    """A tiny app whose /slow answers only when the test says so."""

    app = Klein()
    install_error_handlers(app)

    def __init__(self) -> None:
        self.pending: list[defer.Deferred] = []
        self.pending_requests: list = []

    @app.route("/echo", methods=["POST"])
    @route("/echo")
    def echo(self, request):
        return request.content.read()

    @app.route("/api/deploy2/start_push", methods=["POST"])
    @route("/api/deploy2/start_push")
    def push(self, request):
        return str(len(request.content.read())).encode()

    @app.route("/slow")
    @route("/slow")
    def slow(self, request):
        d = defer.Deferred()
        self.pending.append(d)
        self.pending_requests.append(request)
        return d


class RawClient(Protocol):
    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.received = b""
        self.done = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.payload)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason) -> None:
        self.done.callback(self.received)


class SiteTests(TestCase):
    def setUp(self) -> None:
        self.app = SlowApp()
        self.metrics = Metrics()
        self.site = ConvexSite(
            self.app.app.resource(), metrics=self.metrics, max_request_bytes=1000
        )
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.url = f"http://127.0.0.1:{self.port.getHost().port}"

    async def raw(self, payload: bytes) -> bytes:
        factory = ClientFactory()
        client = RawClient(payload)
        factory.protocol = lambda: client
        reactor.connectTCP("127.0.0.1", self.port.getHost().port, factory)
        return await client.done

    async def test_body_under_limit_is_served(self) -> None:
        response = await treq.post(self.url + "/echo", data=b"x" * 1000, persistent=False)
        self.assertEqual(response.code, 200)
        self.assertEqual(await response.content(), b"x" * 1000)

    async def test_body_over_limit_by_length_is_413(self) -> None:
        response = await treq.post(self.url + "/echo", data=b"x" * 5000, persistent=False)
        self.assertEqual(response.code, 413)
        error = json.loads(await response.content())
        self.assertEqual(error["code"], "PayloadTooLarge")
        # The daemon keeps serving.
        response = await treq.post(self.url + "/echo", data=b"ok", persistent=False)
        self.assertEqual(await response.content(), b"ok")

    async def test_chunked_body_over_limit_is_413(self) -> None:
        chunk = b"x" * 600
        payload = (
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n" + b"%x\r\n%s\r\n" % (len(chunk), chunk) * 3 + b"0\r\n\r\n"
        )
        answer = await self.raw(payload)
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer[:100])
        self.assertIn(b'"PayloadTooLarge"', answer)

    async def test_deploy_routes_allow_larger_bodies(self) -> None:
        response = await treq.post(
            self.url + "/api/deploy2/start_push", data=b"x" * 5000, persistent=False
        )
        self.assertEqual(response.code, 200)
        self.assertEqual(await response.content(), b"5000")

    async def test_non_utf8_path_is_json_400(self) -> None:
        answer = await self.raw(b"GET /%ff%fe HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 400 "), answer[:100])
        self.assertIn(b'"BadRequest"', answer)

    async def test_requests_are_counted_by_route(self) -> None:
        await (await treq.post(self.url + "/echo", data=b"a", persistent=False)).content()
        await (await treq.get(self.url + "/missing", persistent=False)).content()
        text = self.metrics.render().decode()
        self.assertIn(
            'convex_http_requests_total{method="POST",route="/echo",status="200"} 1.0',
            text,
        )
        self.assertIn(
            'convex_http_requests_total{method="GET",route="(unmatched)",status="404"} 1.0',
            text,
        )
        self.assertIn('convex_http_request_duration_seconds_count{route="/echo"} 1.0', text)

    async def test_wait_idle_waits_for_requests_in_flight(self) -> None:
        self.assertTrue(self.site.wait_idle().called)
        pending = treq.get(self.url + "/slow", persistent=False)
        while not self.app.pending:
            await deferLater(0.01)
        self.assertEqual(self.site.in_flight, 1)
        idle = self.site.wait_idle()
        self.assertFalse(idle.called)
        self.app.pending[0].callback(b"done")
        response = await pending
        self.assertEqual(await response.content(), b"done")
        await idle
        self.assertEqual(self.site.in_flight, 0)

    async def test_wait_idle_can_be_cancelled(self) -> None:
        pending = treq.get(self.url + "/slow", persistent=False)
        while not self.app.pending:
            await deferLater(0.01)
        idle = self.site.wait_idle()
        idle.cancel()
        self.assertFailure(idle, defer.CancelledError)
        await idle
        # A later finish must not fire the cancelled waiter a second time.
        self.app.pending[0].callback(b"done")
        await (await pending).content()


def deferLater(seconds: float) -> defer.Deferred:
    from twisted.internet.task import deferLater as later

    return later(reactor, seconds, lambda: None)


class DetachTests(TestCase):
    async def test_a_detached_request_is_no_longer_in_flight(self) -> None:
        """A WebSocket upgrade never finishes as HTTP; shutdown must not wait for it."""
        app = SlowApp()
        site = ConvexSite(app.app.resource(), metrics=Metrics())
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        pending = treq.get(f"http://127.0.0.1:{port.getHost().port}/slow", persistent=False)
        while not app.pending:
            await deferLater(0.01)
        self.assertEqual(site.in_flight, 1)
        request = app.pending_requests[0]
        request.detach()
        request.detach()
        self.assertEqual(site.in_flight, 0)
        self.assertTrue(site.wait_idle().called)
        app.pending[0].callback(b"done")
        await (await pending).content()
        self.assertEqual(site.in_flight, 0)
