"""GET /api/stream_function_logs: the long poll of the CLI and the dashboard.

Functions run through the real HTTP API, runner and workers; the buffer's
timeouts run on a task.Clock, so nothing here waits for a real minute.
"""

from __future__ import annotations

import json
import time

import treq
from twisted.internet import defer, reactor, task
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from convex_backend.functions.logs import FunctionLogs
from convex_backend.http.logs_api import DEFAULT_POLL_TIMEOUT
from convex_backend.http.site import ConvexSite
from convex_backend.service import build
from tests.helpers import admin_key_for, make_config
from tests.http.fixtures import ApiTestCase

STREAM = "/api/stream_function_logs"


class LogsApiTestCase(ApiTestCase):
    """The API on a real loopback port: polls stay open while other requests run."""

    async def setUp(self) -> None:
        await super().setUp()
        self.clock = task.Clock()
        self.logs = FunctionLogs(self.clock)
        self.deployment.function_logs = self.logs
        self.runner.log_sink = self.logs.sink
        self.site = ConvexSite(self.root_resource(), metrics=self.deployment.metrics)
        port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.base = f"http://127.0.0.1:{port.getHost().port}"

    def start(self, path: str, *, admin: bool = True) -> defer.Deferred:
        """Send a GET without waiting for it: fires with (response, body)."""
        headers = {"Authorization": f"Convex {self.key}"} if admin else {}

        async def run():
            response = await treq.get(self.base + path, headers=headers, persistent=False)
            return response, await response.content()

        return defer.ensureDeferred(run())

    async def request(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        data: bytes | None = None,
        headers: dict | None = None,
        admin: bool = False,
    ):
        data, headers = self.encode(body, data, headers, admin)
        response = await treq.request(
            method, self.base + path, data=data, headers=headers, persistent=False
        )
        return response, await response.content()

    async def poll(self, query: str = "cursor=0") -> dict:
        response, content = await self.request("GET", f"{STREAM}?{query}", admin=True)
        self.assertEqual(response.code, 200, content)
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"application/json"])
        return json.loads(content)

    async def run_query(self, path: str, args: dict | None = None) -> dict:
        return (await self.json("POST", "/api/query", {"path": path, "args": args or {}}))[1]

    async def until(self, condition, what: str) -> None:
        for _ in range(500):
            if condition():
                return
            await deferLater(reactor, 0.01, lambda: None)
        self.fail(f"timed out waiting for {what}")


class StreamTests(LogsApiTestCase):
    async def test_admin_key_required(self) -> None:
        response, content = await self.request("GET", f"{STREAM}?cursor=0")
        self.assertJsonError(response, content, 401, "MissingAdminKey")
        wrong = self.key[:-1] + ("0" if self.key[-1] != "0" else "1")
        response, content = await self.request(
            "GET", f"{STREAM}?cursor=0", headers={"Authorization": f"Convex {wrong}"}
        )
        error = self.assertJsonError(response, content, 401, "BadAdminKey")
        self.assertNotIn(wrong, error["message"])
        self.assertEqual(self.logs.waiting, 0)

    async def test_history_at_once(self) -> None:
        await self.run_query("notes:big")
        answer = await self.poll()
        self.assertEqual(set(answer), {"entries", "newCursor"})
        [entry] = answer["entries"]
        self.assertEqual(entry["kind"], "Completion")
        self.assertEqual((entry["udfType"], entry["identifier"]), ("Query", "notes:big"))
        self.assertEqual(entry["logLines"][0]["messages"], ["'big was called'"])
        self.assertEqual(entry["logLines"][0]["level"], "LOG")
        self.assertIsInstance(entry["timestamp"], float)
        self.assertIsInstance(answer["newCursor"], float)
        self.assertEqual(answer["newCursor"], self.logs.records[-1].cursor)

    async def test_waits_and_wakes_on_an_execution(self) -> None:
        await self.run_query("notes:count")
        cursor = (await self.poll())["newCursor"]
        pending = self.start(f"{STREAM}?cursor={cursor!r}")
        await self.until(lambda: self.logs.waiting == 1, "the poll to wait")
        self.assertFalse(pending.called)
        code, _ = await self.json(
            "POST", "/api/mutation", {"path": "notes:add", "args": {"owner": "a", "n": 1}}
        )
        self.assertEqual(code, 200)
        response, content = await pending
        answer = json.loads(content)
        self.assertEqual([e["identifier"] for e in answer["entries"]], ["notes:add"])
        self.assertEqual(answer["entries"][0]["udfType"], "Mutation")
        self.assertGreater(answer["newCursor"], cursor)
        # The CLI's next poll with that cursor has nothing new yet.
        self.assertEqual(self.logs.read(answer["newCursor"]), ([], answer["newCursor"]))

    async def test_times_out_with_no_entries_and_the_same_cursor(self) -> None:
        await self.run_query("notes:count")
        cursor = (await self.poll())["newCursor"]
        pending = self.start(f"{STREAM}?cursor={cursor!r}")
        await self.until(lambda: self.logs.waiting == 1, "the poll to wait")
        self.clock.advance(DEFAULT_POLL_TIMEOUT - 1)
        self.assertFalse(pending.called)
        self.clock.advance(1)
        response, content = await pending
        self.assertEqual(response.code, 200)
        self.assertEqual(json.loads(content), {"entries": [], "newCursor": cursor})

    async def test_failed_function_entry(self) -> None:
        code, body = await self.json("POST", "/api/query", {"path": "notes:crash", "args": {}})
        self.assertEqual(body["status"], "error")
        [entry] = (await self.poll())["entries"]
        self.assertEqual(entry["error"], "Uncaught ValueError: plain failure")
        self.assertNotIn("Traceback", json.dumps(entry))

    async def test_filters(self) -> None:
        await self.run_query("notes:big")
        await self.run_query("notes:count")
        await self.run_query("notes:crash")

        async def names(query: str) -> list[str]:
            return [e["identifier"] for e in (await self.poll(f"cursor=0&{query}"))["entries"]]

        self.assertEqual(
            await names("functions=notes:big,notes:crash"), ["notes:big", "notes:crash"]
        )
        self.assertEqual(await names("status=failure"), ["notes:crash"])
        self.assertEqual(await names("status=success"), ["notes:big", "notes:count"])
        self.assertEqual(await names("level=log"), ["notes:big"])
        self.assertEqual(await names("limit=2"), ["notes:count", "notes:crash"])
        # No cursor means the start.
        answer = await self.poll("")
        self.assertEqual(len(answer["entries"]), 3)

    async def test_filtered_poll_waits_for_a_match(self) -> None:
        pending = self.start(f"{STREAM}?cursor=0&functions=notes:owned")
        await self.until(lambda: self.logs.waiting == 1, "the poll to wait")
        await self.run_query("notes:count")
        self.assertFalse(pending.called)
        await self.run_query("notes:owned", {"owner": "x"})
        _response, content = await pending
        self.assertEqual([e["identifier"] for e in json.loads(content)["entries"]], ["notes:owned"])

    async def test_bad_parameters(self) -> None:
        for query, code in [
            ("cursor=abc", "InvalidCursor"),
            ("cursor=-1", "InvalidCursor"),
            ("cursor=nan", "InvalidCursor"),
            ("cursor=inf", "InvalidCursor"),
            ("cursor=0&limit=0", "InvalidLimit"),
            ("cursor=0&limit=x", "InvalidLimit"),
            ("cursor=0&limit=100000", "InvalidLimit"),
            ("cursor=0&status=maybe", "InvalidStatus"),
            ("cursor=0&level=loud", "InvalidLevel"),
            ("cursor=0&functions=,", "InvalidFunctions"),
            ("cursor=%ff", "BadQueryParameter"),
        ]:
            response, content = await self.request("GET", f"{STREAM}?{query}", admin=True)
            self.assertJsonError(response, content, 400, code)
        self.assertEqual(self.logs.waiting, 0)
        # Still serving.
        await self.run_query("notes:count")
        self.assertEqual(len((await self.poll())["entries"]), 1)

    async def test_wrong_method(self) -> None:
        response, content = await self.request("POST", STREAM, {}, admin=True)
        self.assertJsonError(response, content, 405, "MethodNotAllowed")

    async def test_not_ready(self) -> None:
        self.deployment.function_logs = None
        response, content = await self.request("GET", f"{STREAM}?cursor=0", admin=True)
        self.assertJsonError(response, content, 503, "NotReady")


class _Raw(Protocol):
    def connectionMade(self) -> None:
        self.factory.connected.callback(self)


class DisconnectTests(LogsApiTestCase):
    """A client that goes away while waiting: over a real TCP connection."""

    async def test_disconnect_cancels_the_poll(self) -> None:
        site = self.site
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        factory = ClientFactory()
        factory.protocol = _Raw
        factory.connected = defer.Deferred()
        reactor.connectTCP("127.0.0.1", port.getHost().port, factory)
        client = await factory.connected
        client.transport.write(
            (
                f"GET {STREAM}?cursor=0 HTTP/1.1\r\nHost: localhost\r\n"
                f"Authorization: Convex {self.key}\r\n\r\n"
            ).encode()
        )
        await self.until(lambda: self.logs.waiting == 1, "the poll to wait")
        self.assertEqual(site.in_flight, 1)
        client.transport.loseConnection()
        await self.until(lambda: self.logs.waiting == 0, "the poll to be cancelled")
        await self.until(lambda: site.in_flight == 0, "the request to finish")
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ShutdownTests(TestCase):
    """Stopping the daemon answers a waiting poll instead of waiting out the drain."""

    timeout = 60

    async def test_stop_answers_waiting_polls(self) -> None:
        service = build(make_config(self.mktemp(), workers="1"), reactor)
        service.privilegedStartService()
        service.startService()
        stopped = []
        self.addCleanup(lambda: None if stopped else service.stopService())
        await service.getServiceNamed("functions").started
        logs = service.deployment.function_logs
        port = service.getServiceNamed("http").ports["api"].getHost().port
        key = admin_key_for(service.deployment)
        poll = treq.get(
            f"http://127.0.0.1:{port}{STREAM}?cursor=0",
            headers={"Authorization": f"Convex {key}"},
            persistent=False,
        )
        for _ in range(500):
            if logs.waiting:
                break
            await deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(logs.waiting, 1)
        started = time.monotonic()
        stopped.append(True)
        await service.stopService()
        # Well under the HTTP drain timeout (5 s) a stuck poll would cost.
        self.assertLess(time.monotonic() - started, 4)
        response = await poll
        self.assertEqual(response.code, 200)
        self.assertEqual(json.loads(await response.content()), {"entries": [], "newCursor": 0})
