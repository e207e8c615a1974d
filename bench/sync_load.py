"""A protocol-faithful load generator for the WebSocket sync protocol (used by bench.sync).

Each :class:`SyncClient` is one autobahn (asyncio) WebSocket connection speaking
the protocol the way ``convex@1.48.0``'s client does (reference/client-protocol.md
§1): it opens ``/api/1.48.0/sync`` with no subprotocol and no compression, sends
``Connect`` (a fresh UUID session id, ``connectionCount`` 0, ``InitialConnect``),
optionally one ``ModifyQuerySet`` 0→1 adding query 0, then consumes the server's
messages: every ``Transition`` must start where the previous one ended (the one
check the real client makes), ``QueryUpdated`` values are reported with the
receive time, ``Ping`` is ignored, and anything else the client would not accept
is a failure. It answers nothing (WebSocket pongs are autobahn's).

Run as a process, it is a *group* of subscribers driven by ``bench.sync`` through
JSON lines, so that the daemon's reactor, not the generator's, is what is measured:

    python -m bench.sync_load --url ws://127.0.0.1:PORT/api/1.48.0/sync --count N \
        [--path counter:get] [--no-subscribe]

stdout events: ``{"event": "ready", "seconds": s}`` once every client is connected
(and, when subscribing, has its first value); ``{"event": "got", "value": v}`` once
every client has received the value ``v``; ``{"event": "report", "times": {...}}``;
``{"event": "error", "message": ...}``. stdin commands: ``subscribe``, ``report``,
``quit``. Times are ``time.monotonic()`` seconds, which is CLOCK_MONOTONIC and so
comparable between processes on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import struct
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from autobahn.asyncio.websocket import WebSocketClientFactory, WebSocketClientProtocol

ZERO_VERSION = {"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="}


def decode_u64(text: str) -> int:
    (value,) = struct.unpack("<Q", base64.b64decode(text))
    return value


class ProtocolFailure(Exception):
    """The server sent something the real client would reject."""


class SyncClient(WebSocketClientProtocol):
    """One sync connection. Set ``on_value`` / ``on_failure`` before connecting."""

    on_value: Callable[[SyncClient, Any, float], None] | None = None
    on_failure: Callable[[SyncClient, str], None] | None = None

    def __init__(self) -> None:
        super().__init__()
        self.opened: asyncio.Future = asyncio.get_event_loop().create_future()
        self.closed: asyncio.Future = asyncio.get_event_loop().create_future()
        self.state_version = dict(ZERO_VERSION)
        self.query_set_version = 0
        self.next_query_id = 0
        self.next_request_id = 0
        self.max_ts = 0
        self.value: Any = None
        self.has_value = False
        self.pending: dict[int, asyncio.Future] = {}

    # -- autobahn callbacks -----------------------------------------------------------

    def onOpen(self) -> None:
        self.send_json(
            {
                "type": "Connect",
                "sessionId": str(uuid.uuid4()),
                "connectionCount": 0,
                "lastCloseReason": "InitialConnect",
                "clientTs": int(time.time() * 1000),
            }
        )
        if not self.opened.done():
            self.opened.set_result(None)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        now = time.monotonic()
        try:
            if isBinary:
                raise ProtocolFailure("binary frame")
            self.handle(json.loads(payload), now)
        except ProtocolFailure as e:
            self.fail(str(e))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed before open: {code} {reason}"))
        if not self.closed.done():
            self.closed.set_result((code, reason))
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionError(f"connection closed: {code} {reason}"))
        self.pending.clear()

    # -- protocol ---------------------------------------------------------------------

    def send_json(self, message: dict) -> None:
        self.sendMessage(json.dumps(message, separators=(",", ":")).encode(), isBinary=False)

    def subscribe(self, udf_path: str, args: dict) -> int:
        query_id = self.next_query_id
        self.next_query_id += 1
        base = self.query_set_version
        self.query_set_version += 1
        self.send_json(
            {
                "type": "ModifyQuerySet",
                "baseVersion": base,
                "newVersion": base + 1,
                "modifications": [
                    {"type": "Add", "queryId": query_id, "udfPath": udf_path, "args": [args]}
                ],
            }
        )
        return query_id

    def mutation(self, udf_path: str, args: dict) -> tuple[float, asyncio.Future]:
        """Send a Mutation; (send time, future of (MutationResponse, receive time))."""
        request_id = self.next_request_id
        self.next_request_id += 1
        future = asyncio.get_event_loop().create_future()
        self.pending[request_id] = future
        message = {"type": "Mutation", "requestId": request_id, "udfPath": udf_path}
        message["args"] = [args]
        sent = time.monotonic()
        self.send_json(message)
        return sent, future

    def handle(self, message: Any, now: float) -> None:
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "Transition":
            if message["startVersion"] != self.state_version:
                raise ProtocolFailure(
                    f"Invalid start version: {message['startVersion']} after {self.state_version}"
                )
            self.state_version = message["endVersion"]
            self.max_ts = max(self.max_ts, decode_u64(self.state_version["ts"]))
            for modification in message["modifications"]:
                mod_type = modification.get("type")
                if mod_type == "QueryUpdated":
                    if not isinstance(modification.get("logLines"), list):
                        raise ProtocolFailure("QueryUpdated without logLines")
                    self.value = modification.get("value")
                    self.has_value = True
                    if self.on_value is not None:
                        self.on_value(self, self.value, now)
                elif mod_type == "QueryFailed":
                    raise ProtocolFailure(f"QueryFailed: {modification.get('errorMessage')}")
                elif mod_type != "QueryRemoved":
                    raise ProtocolFailure(f"unknown modification {mod_type!r}")
        elif kind == "MutationResponse":
            future = self.pending.pop(message["requestId"], None)
            if future is None:
                raise ProtocolFailure(f"MutationResponse for unknown request {message}")
            if message["success"]:
                self.max_ts = max(self.max_ts, decode_u64(message["ts"]))
            future.set_result((message, now))
        elif kind == "Ping":
            pass
        elif kind in ("FatalError", "AuthError"):
            raise ProtocolFailure(f"{kind}: {message.get('error')}")
        else:
            raise ProtocolFailure(f"unexpected server message {str(message)[:200]}")

    def fail(self, why: str) -> None:
        if self.on_failure is not None:
            self.on_failure(self, why)
        self.dropConnection(abort=True)


async def connect_clients(
    url: str,
    count: int,
    *,
    concurrency: int = 50,
    timeout: float = 60.0,
    setup: Callable[[SyncClient], None] | None = None,
) -> list[SyncClient]:
    """Open ``count`` connections (at most ``concurrency`` handshakes at once)."""
    loop = asyncio.get_running_loop()
    parts = urlsplit(url)
    factory = WebSocketClientFactory(url)
    factory.protocol = SyncClient
    factory.setProtocolOptions(openHandshakeTimeout=timeout, utf8validateIncoming=False)
    gate = asyncio.Semaphore(concurrency)
    clients: list[SyncClient] = []

    async def one() -> None:
        async with gate:
            for attempt in range(5):
                try:
                    _, client = await asyncio.wait_for(
                        loop.create_connection(factory, parts.hostname, parts.port), timeout
                    )
                    if setup is not None:
                        setup(client)
                    await asyncio.wait_for(asyncio.shield(client.opened), timeout)
                    clients.append(client)
                    return
                except (ConnectionError, OSError, asyncio.TimeoutError) as e:
                    if attempt == 4:
                        raise ConnectionError(f"could not connect to {url}: {e!r}") from e
                    await asyncio.sleep(0.2 * (attempt + 1))

    await asyncio.gather(*(one() for _ in range(count)))
    return clients


def close_clients(clients: list[SyncClient]) -> None:
    for client in clients:
        client.sendClose(code=1000)


# -- the subscriber group process --------------------------------------------------------


class Group:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.clients: list[SyncClient] = []
        #: value (as JSON text) -> receive times, one per client.
        self.times: dict[str, list[float]] = {}
        self.failed = False

    def emit(self, event: dict) -> None:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    def on_value(self, client: SyncClient, value: Any, now: float) -> None:
        key = json.dumps(value)
        times = self.times.setdefault(key, [])
        times.append(now)
        if len(times) == len(self.clients):
            self.emit({"event": "got", "value": value})

    def on_failure(self, client: SyncClient, why: str) -> None:
        if not self.failed:
            self.failed = True
            self.emit({"event": "error", "message": why})

    async def subscribe_all(self) -> None:
        started = time.monotonic()
        for client in self.clients:
            client.subscribe(self.args.path, {})
        await self.wait_for(lambda: all(c.has_value for c in self.clients), "initial values")
        self.emit({"event": "ready", "seconds": time.monotonic() - started})

    async def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.args.timeout
        while not condition():
            if self.failed:
                raise SystemExit(1)
            if time.monotonic() > deadline:
                self.emit({"event": "error", "message": f"timed out waiting for {what}"})
                raise SystemExit(1)
            await asyncio.sleep(0.01)

    def setup(self, client: SyncClient) -> None:
        client.on_value = self.on_value
        client.on_failure = self.on_failure

    async def run(self) -> None:
        args = self.args
        started = time.monotonic()
        try:
            self.clients = await connect_clients(
                args.url, args.count, timeout=args.timeout, setup=self.setup
            )
        except ConnectionError as e:
            self.emit({"event": "error", "message": str(e)})
            raise SystemExit(1)
        # The connections live until the end: keep the collector from walking them
        # again and again (a full collection here would show up as latency).
        gc.collect()
        gc.freeze()
        if args.subscribe:
            await self.subscribe_all()
        else:
            self.emit({"event": "ready", "seconds": time.monotonic() - started})
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = (await reader.readline()).decode().strip()
            if line == "subscribe":
                await self.subscribe_all()
            elif line == "report":
                self.emit({"event": "report", "times": self.times})
            elif line in ("quit", ""):
                break
        close_clients(self.clients)
        closing = [asyncio.shield(client.closed) for client in self.clients]
        await asyncio.wait(closing, timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--path", default="counter:get")
    parser.add_argument("--no-subscribe", dest="subscribe", action="store_false")
    parser.add_argument("--timeout", type=float, default=120.0)
    asyncio.run(Group(parser.parse_args()).run())


if __name__ == "__main__":
    main()
