"""The Autobahn glue, over a real loopback port with Autobahn's client."""

from __future__ import annotations

import json

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from convex_backend.sync import make_sync_resource
from convex_backend.sync.server import get_hub
from tests.sync.fakes import FakeDatabase, FakeRunner, default_functions


class RecordingClient(WebSocketClientProtocol):
    def onOpen(self) -> None:
        self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.messages.append(json.loads(payload))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.close_info = (code, reason)
        if not self.factory.opened.called:
            self.factory.opened.errback(ConnectionError(reason))

    def connectionLost(self, reason) -> None:
        super().connectionLost(reason)
        self.factory.lost.callback(None)


class ServerTests(TestCase):
    timeout = 20

    def setUp(self) -> None:
        from types import SimpleNamespace

        from convex_backend.auth.admin_key import AdminKeyChecker
        from convex_backend.metrics import Metrics
        from tests.sync.fakes import ADMIN_KEY

        self.db = FakeDatabase()
        self.runner = FakeRunner(self.db)
        default_functions(self.runner)
        self.deployment = SimpleNamespace(
            database=self.db,
            runner=self.runner,
            admin_keys=AdminKeyChecker(ADMIN_KEY),
            metrics=Metrics(),
        )
        resource = make_sync_resource(self.deployment, reactor)
        # Mounted twice, as the HTTP tree does: one hub, one set of metrics.
        api = Resource()
        api.putChild(b"sync", resource)
        versioned = Resource()
        versioned.putChild(b"sync", make_sync_resource(self.deployment, reactor))
        api.putChild(b"1.48.0", versioned)
        root = Resource()
        root.putChild(b"api", api)
        self.port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.addCleanup(get_hub(self.deployment, reactor).close)

    async def connect(
        self, path: str = "/api/sync", headers: dict | None = None
    ) -> RecordingClient:
        url = f"ws://127.0.0.1:{self.port.getHost().port}{path}"
        factory = WebSocketClientFactory(url, headers=headers)
        factory.protocol = RecordingClient
        factory.messages = []
        factory.opened = defer.Deferred()
        factory.lost = defer.Deferred()
        factory.close_info = None
        reactor.connectTCP("127.0.0.1", self.port.getHost().port, factory)
        self.addCleanup(lambda: factory.lost)
        return await factory.opened

    def send(self, client: RecordingClient, message: dict) -> None:
        client.sendMessage(json.dumps(message).encode(), isBinary=False)

    async def wait_for(self, client: RecordingClient, predicate) -> list[dict]:
        for _ in range(1000):
            if predicate(client.factory.messages):
                return client.factory.messages
            await task.deferLater(reactor, 0.01, lambda: None)
        self.fail(f"timed out; got {client.factory.messages}")

    async def close(self, client: RecordingClient) -> None:
        client.sendClose(1000)
        await client.factory.lost

    async def test_subscribe_over_a_socket(self) -> None:
        self.db.data["a"] = "hello"
        for path in ("/api/sync", "/api/1.48.0/sync"):
            client = await self.connect(path)
            self.send(client, {"type": "Connect", "sessionId": "s", "connectionCount": 0})
            self.send(
                client,
                {
                    "type": "ModifyQuerySet",
                    "baseVersion": 0,
                    "newVersion": 1,
                    "modifications": [
                        {"type": "Add", "queryId": 0, "udfPath": "kv:get", "args": [{"key": "a"}]}
                    ],
                },
            )
            (transition,) = await self.wait_for(client, lambda m: len(m) >= 1)
            self.assertEqual(transition["type"], "Transition")
            self.assertEqual(transition["modifications"][0]["value"], "hello")
            hub = get_hub(self.deployment, reactor)
            self.assertEqual(len(hub.sessions), 1)
            await self.close(client)
            self.assertEqual(len(hub.sessions), 0)

    async def test_binary_frames_are_fatal(self) -> None:
        client = await self.connect()
        client.sendMessage(b"\x00\x01", isBinary=True)
        (fatal,) = await self.wait_for(client, lambda m: len(m) >= 1)
        self.assertEqual(fatal["type"], "FatalError")
        await client.factory.lost
        self.assertEqual(client.factory.close_info, (1000, "FatalError"))

    async def test_garbage_is_fatal(self) -> None:
        client = await self.connect()
        client.sendMessage(b"{]", isBinary=False)
        (fatal,) = await self.wait_for(client, lambda m: len(m) >= 1)
        self.assertIn("Invalid JSON", fatal["error"])
        await client.factory.lost
        self.assertEqual(client.factory.close_info[0], 1000)

    async def test_refused_while_starting(self) -> None:
        self.deployment.runner = None
        with self.assertRaises(ConnectionError):
            await self.connect()

    async def test_flow_control_and_internal_errors(self) -> None:
        client = await self.connect()
        hub = get_hub(self.deployment, reactor)
        await self.wait_for(client, lambda m: len(hub.sessions) == 1)
        (session,) = hub.sessions
        protocol = session._transport_send.__self__
        # The session, not twisted.web's channel, hears about a full write buffer.
        producer = protocol.transport.producer
        self.assertIs(producer.protocol, protocol)
        producer.pauseProducing()
        self.assertTrue(session._paused)
        producer.resumeProducing()
        self.assertFalse(session._paused)

        async def broken(*args, **kwargs):
            raise RuntimeError("bug")

        hub.manager.fetch = broken
        self.send(
            client,
            {
                "type": "ModifyQuerySet",
                "baseVersion": 0,
                "newVersion": 1,
                "modifications": [{"type": "Add", "queryId": 0, "udfPath": "kv:get", "args": [{}]}],
            },
        )
        await client.factory.lost
        self.assertEqual(client.factory.close_info, (1011, "InternalServerError"))
        self.flushLoggedErrors(RuntimeError, defer.FirstError)

    async def test_transition_chunks_by_client_version(self) -> None:
        """npm clients (1.28.0 and later, named by the URL or the Convex-Client header)
        get a large Transition in TransitionChunks; the others get it whole."""
        get_hub(self.deployment, reactor).limits.max_transition_bytes = 300
        self.db.data["a"] = "y" * 1000
        cases = [
            ("/api/1.48.0/sync", None, True),
            ("/api/sync", {"Convex-Client": "npm-1.48.0"}, True),
            ("/api/sync", None, False),
            ("/api/1.48.0/sync", {"Convex-Client": "python-0.8.1"}, False),
        ]
        for path, headers, chunked in cases:
            client = await self.connect(path, headers)
            self.send(
                client,
                {
                    "type": "ModifyQuerySet",
                    "baseVersion": 0,
                    "newVersion": 1,
                    "modifications": [
                        {"type": "Add", "queryId": 0, "udfPath": "kv:get", "args": [{"key": "a"}]}
                    ],
                },
            )
            messages = await self.wait_for(
                client,
                lambda m: (
                    m
                    and (
                        m[-1]["type"] == "Transition"
                        or m[-1]["partNumber"] == m[-1]["totalParts"] - 1
                    )
                ),
            )
            if chunked:
                self.assertEqual({m["type"] for m in messages}, {"TransitionChunk"}, path)
                self.assertEqual([m["partNumber"] for m in messages], list(range(len(messages))))
                self.assertGreater(len(messages), 3)
                transition = json.loads("".join(m["chunk"] for m in messages))
            else:
                (transition,) = messages
            self.assertEqual(transition["type"], "Transition")
            self.assertEqual(transition["modifications"][0]["value"], "y" * 1000)
            await self.close(client)
