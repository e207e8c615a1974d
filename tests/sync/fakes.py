"""In-memory stand-ins for the database and the runner, for pure session tests.

The fake database is a key-value map with a real :class:`WriteLog`: a commit
writes keys (index 1) and publishes them, so subscriptions fire exactly as
with the real engine. The fake runner runs Python functions over that map,
recording each query's reads as a read set.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock

from convex_backend.auth.admin_key import AdminKeyChecker, derive_admin_key
from convex_backend.database.writelog import ReadSet, WriteLog, WriteLogEntry
from convex_backend.functions.runner import CallResult, FunctionError, canonicalize_path
from convex_backend.metrics import Metrics
from convex_backend.sync.hub import SyncHub, SyncLimits
from convex_backend.sync.session import SyncSession

ADMIN_KEY = derive_admin_key("test-instance", "5e" * 32)


def _key(name: str) -> bytes:
    return name.encode()


class FakeDatabase:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.published_ts = 100
        self.write_log = WriteLog()
        self.loaded = True

    def commit(self, writes: dict[str, Any]) -> int:
        self.published_ts += 10
        ts = self.published_ts
        self.data.update(writes)
        entry = WriteLogEntry(ts, {1: [_key(k) for k in writes]})
        self.write_log.append(entry)
        self.write_log.published([entry])
        return ts


class Reads:
    def __init__(self, db: FakeDatabase) -> None:
        self.db = db
        self.read_set = ReadSet()

    def get(self, name: str) -> Any:
        self.read_set.add(1, _key(name), _key(name) + b"\0")
        return self.db.data.get(name)


class FakeRunner:
    """``functions``: canonical path → (kind, fn(reads_or_db, args, caller), public)."""

    def __init__(self, db: FakeDatabase) -> None:
        self.db = db
        self.functions: dict[str, tuple] = {}
        self.calls: list[tuple[str, str]] = []
        #: path → Deferred to wait on before answering (to hold a call in flight).
        self.gates: dict[str, defer.Deferred] = {}

    def define(self, path: str, kind: str, fn, public: bool = True) -> None:
        self.functions = {**self.functions, path: (kind, fn, public)}

    async def call(
        self, path, args, *, caller=None, expected=None, request_id=None, before_commit=None
    ) -> CallResult:
        path = canonicalize_path(path)
        entry = self.functions.get(path)
        if entry is None or (not entry[2] and caller.kind == "client"):
            raise FunctionError(
                f"Could not find public function for '{path}'", code="FunctionNotFound"
            )
        kind, fn, _public = entry
        if expected is not None and kind != expected:
            raise FunctionError(f"{path} is not a {expected}", code="WrongFunctionType")
        self.calls.append((kind, path))
        gate = self.gates.get(path)
        if gate is not None:
            await gate
        if kind == "query":
            reads = Reads(self.db)
            ts = self.db.published_ts
            try:
                value = fn(reads, args, caller)
            except FunctionError as e:
                e.ts, e.read_set = ts, reads.read_set
                raise
            return CallResult(value, [f"[LOG] '{path}'"], ts, reads.read_set)
        if kind == "mutation":
            writes: dict[str, Any] = {}
            value = fn(writes, args, caller)
            if before_commit is not None:
                before_commit(SimpleNamespace(privileged=False, insert=lambda *a: None), value, [])
            ts = self.db.commit(writes) if writes else self.db.published_ts
            return CallResult(value, [], ts)
        return CallResult(fn(None, args, caller), [])


class Client:
    """Collects what a session sends; ``messages`` are decoded JSON."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.closed: tuple[int, str] | None = None

    def send(self, text: str) -> None:
        self.messages.append(json.loads(text))

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def take(self) -> list[dict]:
        out, self.messages = self.messages, []
        return out

    def transitions(self) -> list[dict]:
        return [m for m in self.messages if m["type"] == "Transition"]


def default_functions(runner: FakeRunner) -> None:
    runner.define("kv:get", "query", lambda r, a, c: r.get(a["key"]))
    runner.define(
        "kv:set", "mutation", lambda w, a, c: w.update({a["key"]: a["value"]}) or a["value"]
    )
    runner.define("kv:whoami", "query", lambda r, a, c: c.identity)
    runner.define("kv:secret", "query", lambda r, a, c: "secret", public=False)

    def fails(r, a, c):
        value = r.get(a["key"])
        if value is None:
            raise FunctionError(
                "Uncaught ConvexError: missing",
                {"missing": a["key"]},
                ["[ERROR] 'x'"],
                code="ConvexError",
            )
        return value

    runner.define("kv:strict", "query", fails)
    runner.define("kv:echo", "action", lambda _, a, c: {"echo": a.get("x")})

    def boom(w, a, c):
        raise FunctionError("Uncaught Error: boom", code="UserError")

    runner.define("kv:boom", "mutation", boom)


class Harness:
    """A hub over the fakes, on a Clock; ``session()`` opens a session and its client."""

    def __init__(self, limits: SyncLimits | None = None) -> None:
        self.clock = Clock()
        self.db = FakeDatabase()
        self.runner = FakeRunner(self.db)
        default_functions(self.runner)
        self.deployment = SimpleNamespace(
            database=self.db,
            runner=self.runner,
            admin_keys=AdminKeyChecker(ADMIN_KEY),
            metrics=Metrics(),
        )
        self.hub = SyncHub(
            self.deployment, self.clock, limits=limits or SyncLimits(), durable_records=False
        )

    def session(self) -> tuple[SyncSession, Client]:
        client = Client()
        session = SyncSession(self.hub, client.send, client.close, self.clock)
        return session, client

    def pump(self, turns: int = 10) -> None:
        for _ in range(turns):
            self.clock.advance(0)

    def feed(self, session: SyncSession, *messages: dict) -> None:
        for message in messages:
            session.receive(json.dumps(message))
        self.pump()

    def close(self, *sessions: SyncSession) -> None:
        for session in sessions:
            session.connection_lost()
        self.hub.close()
