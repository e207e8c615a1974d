"""The official Python client's ``convex.ConvexClient`` (``convex`` 0.8.1 on PyPI, a
Rust extension speaking the sync protocol) against the daemon.

The first test starts the daemon, deploys ``tests/clients/app`` (``sync_app.py``)
and runs every scenario of ``sync_python_scenarios.py``, each in its own Python
process. Not in a thread of this process: the client's blocking calls keep the GIL
while they wait (its Rust extension does not release it), which would freeze the
reactor, the recording proxy below and every timeout; a process can be killed.
Each test then checks one scenario: the value the client returned, spelled out with
its Python types (``{"int64": 1}``, see ``sync_python_scenarios.tag``), or the
exception it raised.

The client connects through :class:`FrameRecorder`, a TCP proxy that decodes the
WebSocket frames both ways (the client negotiates no extensions), and every failure
message shows them.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from twisted.internet import defer, reactor
from twisted.protocols import portforward
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests.clients._support import Once, deployed_daemon, stop_daemon
from tests.daemon import REPO
from tests.processes import run_process

SCRIPT = Path(__file__).resolve().parent / "sync_python_scenarios.py"
SCENARIOS = [
    "query",
    "mutation",
    "action",
    "subscribe",
    "convex_error_query",
    "convex_error_mutation",
    "convex_error_action",
    "convex_error_subscription",
    "internal_without_auth",
    "internal_as_admin",
]
STEP = "@@step "
RESULT = "@@result "
SCENARIO_TIMEOUT = 120
NOT_FOUND = "Could not find public function for 'sync_app:secret'."


def i64(n: int) -> dict:
    return {"int64": n}


ERROR_DATA = {
    "code": "NotAllowed",
    "count": i64(7),
    "big": i64(-(2**63)),
    "ratio": {"float64": "0.5"},
    "bytes": {"bytes": "00ff"},
    "nested": {"list": [i64(1), "x", None, True]},
}


# -- a recording proxy ----------------------------------------------------------------------


class _Direction:
    """Decodes one direction of a WebSocket connection (after the HTTP upgrade)."""

    def __init__(self, recorder: FrameRecorder, conn: int, name: str) -> None:
        self.recorder, self.conn, self.name = recorder, conn, name
        self.buffer = b""
        self.upgraded = False
        self.message = b""

    def feed(self, data: bytes) -> None:
        self.buffer += data
        try:
            self._decode()
        except Exception as e:  # Evidence only: never break the connection.
            self.recorder.note(self.conn, self.name, f"undecodable bytes ({e!r})")
            self.buffer = b""

    def _decode(self) -> None:
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")[0]
            self.recorder.note(self.conn, self.name, head)
            self.buffer, self.upgraded = self.buffer[end + 4 :], True
        while len(self.buffer) >= 2:
            first, second = self.buffer[0], self.buffer[1]
            length, offset = second & 0x7F, 2
            if length == 126:
                if len(self.buffer) < 4:
                    return
                (length,) = struct.unpack("!H", self.buffer[2:4])
                offset = 4
            elif length == 127:
                if len(self.buffer) < 10:
                    return
                (length,) = struct.unpack("!Q", self.buffer[2:10])
                offset = 10
            mask = b""
            if second & 0x80:
                mask, offset = self.buffer[offset : offset + 4], offset + 4
            if len(self.buffer) < offset + length:
                return
            payload = self.buffer[offset : offset + length]
            self.buffer = self.buffer[offset + length :]
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = first & 0x0F
            if opcode in (0, 1):
                self.message += payload
                if first & 0x80:
                    text, self.message = self.message.decode("utf-8", "replace"), b""
                    self.recorder.record(self.conn, self.name, text)
            elif opcode == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                reason = payload[2:].decode("utf-8", "replace")
                self.recorder.note(self.conn, self.name, f"close frame {code} {reason!r}")
            elif opcode == 2:
                self.recorder.note(self.conn, self.name, f"binary frame of {length} bytes")


class _ProxyClient(portforward.ProxyClient):
    def dataReceived(self, data: bytes) -> None:
        self.peer.inbound.feed(data)
        super().dataReceived(data)


class _ProxyClientFactory(portforward.ProxyClientFactory):
    protocol = _ProxyClient


class _ProxyServer(portforward.ProxyServer):
    clientProtocolFactory = _ProxyClientFactory

    def connectionMade(self) -> None:
        recorder: FrameRecorder = self.factory.recorder
        self.conn = recorder.connections
        recorder.connections += 1
        self.outbound = _Direction(recorder, self.conn, "out")
        self.inbound = _Direction(recorder, self.conn, "in")
        super().connectionMade()

    def dataReceived(self, data: bytes) -> None:
        self.outbound.feed(data)
        super().dataReceived(data)

    def connectionLost(self, reason: Failure) -> None:
        self.factory.recorder.note(self.conn, "-", "connection closed")
        super().connectionLost(reason)


class FrameRecorder:
    """A TCP proxy to the daemon keeping every WebSocket text frame, both ways."""

    def __init__(self, host: str, port: int) -> None:
        self.started = time.monotonic()
        self.entries: list[tuple[float, int, str, str]] = []
        self.connections = 0
        factory = portforward.ProxyFactory(host, port)
        factory.protocol = _ProxyServer
        factory.recorder = self
        self.port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port.getHost().port}"

    def record(self, conn: int, direction: str, text: str) -> None:
        self.entries.append((time.monotonic() - self.started, conn, direction, text))

    def note(self, conn: int, direction: str, text: str) -> None:
        self.record(conn, direction, f"({text})")

    def frames(self, start: int = 0, end: int | None = None) -> list[tuple[str, dict]]:
        """The JSON frames as (``"out"`` from the client or ``"in"``, frame)."""
        entries = self.entries[start:end]
        return [(d, json.loads(text)) for _t, _c, d, text in entries if not text.startswith("(")]

    def mark(self) -> int:
        return len(self.entries)

    def text(self, start: int = 0, end: int | None = None, admin_key: str = "") -> str:
        entries = self.entries[start:end]
        lines = []
        for t, conn, direction, text in entries:
            if len(text) > 700:
                text = text[:700] + "…"
            lines.append(f"{t:7.3f} #{conn} {direction}: {text}")
        out = "\n".join(lines)
        return out.replace(admin_key, "<admin key>") if admin_key else out

    def stop(self) -> defer.Deferred:
        return defer.maybeDeferred(self.port.stopListening)


# -- running the client ------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    result: dict | None = None
    steps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: This scenario's frames in the recorder: entries[start:end].
    start: int = 0
    end: int = 0


@dataclass
class Run:
    outcomes: dict[str, Outcome]
    recorder: FrameRecorder
    admin_key: str
    daemon_output: str = ""


async def run_scenario(name: str, recorder: FrameRecorder, admin_key: str) -> Outcome:
    outcome = Outcome(name, start=recorder.mark())
    env = dict(os.environ, CONVEX_URL=recorder.url, CONVEX_ADMIN_KEY=admin_key)
    argv = [sys.executable, str(SCRIPT), name]
    code, out, err = await run_process(argv, env=env, cwd=REPO, timeout=SCENARIO_TIMEOUT)
    outcome.end = recorder.mark()
    for line in out.splitlines():
        if line.startswith(STEP):
            outcome.steps.append(line[len(STEP) :])
        elif line.startswith(RESULT):
            outcome.result = json.loads(line[len(RESULT) :])
    if code != 0 or outcome.result is None:
        outcome.result = None
        outcome.notes.append(f"the scenario exited with {code} and no @@result line")
        outcome.notes.append(f"--- stdout\n{out[-4000:]}\n--- stderr\n{err[-4000:]}")
    return outcome


async def run_scenarios() -> Run:
    data_dir = tempfile.mkdtemp(prefix="convex-sync-python-")
    try:
        daemon = await deployed_daemon(data_dir)
        recorder = None
        try:
            recorder = FrameRecorder("127.0.0.1", urlsplit(daemon.api_url).port or 0)
            outcomes = {}
            for name in SCENARIOS:
                outcomes[name] = await run_scenario(name, recorder, daemon.admin_key)
            return Run(outcomes, recorder, daemon.admin_key, daemon.output)
        finally:
            if recorder is not None:
                await recorder.stop()
            await stop_daemon(daemon)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


class PythonSyncClientTests(TestCase):
    """``convex.ConvexClient`` over the sync socket, one scenario per test."""

    timeout = 600
    shared = Once(run_scenarios)

    async def scenario(self, name: str) -> tuple[dict, str]:
        run = await self.shared.get()
        outcome = run.outcomes[name]
        frames = run.recorder.text(outcome.start, outcome.end, run.admin_key)
        context = "\n".join(
            [
                f"scenario {name}; steps {outcome.steps}",
                *outcome.notes,
                f"--- WebSocket frames (s, #connection)\n{frames}",
            ]
        )
        if outcome.result is None:
            self.fail(f"the scenario did not finish\n{context}\n--- daemon\n{run.daemon_output}")
        return outcome.result, context

    async def value(self, name: str) -> tuple[Any, str]:
        result, context = await self.scenario(name)
        if not result["ok"]:
            self.fail(f"the client raised {result['error']}\n{context}")
        return result["value"], context

    async def error(self, name: str) -> tuple[dict, str]:
        result, context = await self.scenario(name)
        if result["ok"]:
            self.fail(f"the client returned {result['value']!r} instead of raising\n{context}")
        return result["error"], context

    # -- query, mutation, action, subscribe ----------------------------------------------

    async def test_query(self) -> None:
        value, context = await self.value("query")
        self.assertEqual(value, [], context)

    async def test_mutation_then_query(self) -> None:
        value, context = await self.value("mutation")
        self.assertIsInstance(value["id"], str, context)
        self.assertEqual(value["rows"], [{"id": value["id"], "body": "hi"}], context)
        # Read-your-writes: the query after the mutation ran at or past its commit.
        run = await self.shared.get()
        outcome = run.outcomes["mutation"]
        frames = run.recorder.frames(outcome.start, outcome.end)
        kinds = [(d, f["type"]) for d, f in frames if f["type"] != "Ping"]
        response = kinds.index(("in", "MutationResponse"))
        self.assertIn(("in", "Transition"), kinds[response + 1 :], context)

    async def test_action(self) -> None:
        """An action running a mutation and a query; its int64 comes back as
        ``ConvexInt64``."""
        value, context = await self.value("action")
        self.assertEqual(set(value), {"id", "count", "bodies"}, context)
        self.assertIsInstance(value["id"], str, context)
        self.assertEqual(value["count"], i64(1), context)
        self.assertEqual(value["bodies"], ["act"], context)

    async def test_subscription_sees_another_clients_mutations(self) -> None:
        """``subscribe``: the first value, then one per mutation of another client."""
        value, context = await self.value("subscribe")
        self.assertEqual(value, [[], ["one"], ["one", "two"]], context)

    # -- ConvexError data -----------------------------------------------------------------

    async def check_convex_error(self, name: str) -> None:
        """``ConvexError`` whose ``data`` is decoded, int64 fields as ``ConvexInt64``."""
        error, context = await self.error(name)
        self.assertEqual(error["class"], "ConvexError", context)
        self.assertTrue(error["isConvexError"], context)
        self.assertEqual(error["data"], ERROR_DATA, context)
        self.assertTrue(error["message"].startswith("Uncaught ConvexError"), context)

    async def test_convex_error_from_query(self) -> None:
        await self.check_convex_error("convex_error_query")

    async def test_convex_error_from_mutation(self) -> None:
        await self.check_convex_error("convex_error_mutation")

    async def test_convex_error_from_action(self) -> None:
        await self.check_convex_error("convex_error_action")

    async def test_convex_error_from_subscription(self) -> None:
        await self.check_convex_error("convex_error_subscription")

    # -- admin auth -------------------------------------------------------------------------

    async def test_internal_query_without_auth(self) -> None:
        error, context = await self.error("internal_without_auth")
        self.assertEqual(error["class"], "Exception", context)
        self.assertFalse(error["isConvexError"], context)
        self.assertTrue(error["message"].startswith(NOT_FOUND), context)

    async def test_internal_query_as_admin(self) -> None:
        value, context = await self.value("internal_as_admin")
        self.assertEqual(value, {"secret": i64(42), "x": i64(2)}, context)
        run = await self.shared.get()
        outcome = run.outcomes["internal_as_admin"]
        sent = [f for d, f in run.recorder.frames(outcome.start, outcome.end) if d == "out"]
        [authenticate] = [f for f in sent if f["type"] == "Authenticate"]
        self.assertEqual(
            (authenticate["tokenType"], authenticate["baseVersion"]), ("Admin", 0), context
        )

    async def test_every_scenario_is_checked(self) -> None:
        this = open(__file__, encoding="utf-8").read()
        for name in SCENARIOS:
            self.assertGreaterEqual(this.count(f'"{name}"'), 2, f"scenario {name} is unchecked")
