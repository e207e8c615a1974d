"""Sync sessions over a real database, real worker pools and the real runner."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

from twisted.internet import reactor, task
from twisted.trial.unittest import TestCase

from convex_backend.auth.admin_key import AdminKeyChecker
from convex_backend.metrics import Metrics
from convex_backend.sync.hub import SyncHub, SyncLimits
from convex_backend.sync.idempotency import TABLE, MutationRecords
from convex_backend.sync.protocol import decode_u64, encode_u64
from convex_backend.sync.session import SyncSession
from tests.database.fixtures import open_database, reopen, scan
from tests.functions.fixtures import deploy_app
from tests.sync.app import MESSAGES, SCHEMA
from tests.sync.fakes import ADMIN_KEY, Client


def add(query_id: int, path: str, args: dict | None = None, **extra) -> dict:
    return {"type": "Add", "queryId": query_id, "udfPath": path, "args": [args or {}], **extra}


def modify(base: int, *modifications: dict) -> dict:
    return {
        "type": "ModifyQuerySet",
        "baseVersion": base,
        "newVersion": base + 1,
        "modifications": list(modifications),
    }


def mutation(request_id: int, path: str, args: dict) -> dict:
    return {"type": "Mutation", "requestId": request_id, "udfPath": path, "args": [args]}


def ts_of(message: dict) -> int:
    return decode_u64(message["endVersion"]["ts"])


def page_args(num_items: float = 3.0, cursor: str | None = None) -> dict:
    return {"paginationOpts": {"numItems": num_items, "cursor": cursor}}


class IntegrationTests(TestCase):
    timeout = 60

    async def setUp(self) -> None:
        self.db = await open_database(self)
        self.runner, self.pools, _deployer = await deploy_app(
            self, self.db, {"schema.py": SCHEMA, "messages.py": MESSAGES}
        )
        self.deployment = SimpleNamespace(
            database=self.db,
            runner=self.runner,
            admin_keys=AdminKeyChecker(ADMIN_KEY),
            metrics=Metrics(),
        )
        self.hub = self.new_hub()

    def new_hub(self, **limits) -> SyncHub:
        # A new deployment object each time, as after a restart (fresh metrics).
        deployment = SimpleNamespace(**{**vars(self.deployment), "metrics": Metrics()})
        hub = SyncHub(deployment, reactor, limits=SyncLimits(deploy_check_interval=0, **limits))
        self.addCleanup(hub.close)
        return hub

    def open(self, hub: SyncHub | None = None) -> tuple[SyncSession, Client]:
        client = Client()
        session = SyncSession(hub or self.hub, client.send, client.close, reactor)
        self.addCleanup(session.connection_lost)
        return session, client

    @staticmethod
    def feed(session: SyncSession, *messages: dict) -> None:
        for message in messages:
            session.receive(json.dumps(message))

    async def wait_for(self, client: Client, predicate, timeout: float = 20.0) -> list[dict]:
        """Wait until ``predicate(messages)``; returns (and clears) the messages."""
        waited = 0.0
        while not predicate(client.messages):
            if waited > timeout:
                self.fail(f"timed out; got {client.messages}")
            await task.deferLater(reactor, 0.01, lambda: None)
            waited += 0.01
        return client.take()

    @staticmethod
    def transitions(n: int):
        return lambda messages: sum(m["type"] == "Transition" for m in messages) >= n

    async def send(self, body: str, n: float) -> int:
        result = await self.runner.call("messages:send", {"body": body, "n": n})
        return result.ts

    # -- tests ----------------------------------------------------------------------

    async def test_subscription_sees_another_sessions_mutation(self) -> None:
        watcher, watcher_client = self.open()
        self.feed(watcher, modify(0, add(0, "messages:bodies"), add(1, "messages:count")))
        (first,) = await self.wait_for(watcher_client, self.transitions(1))
        self.assertEqual(
            [(m["queryId"], m["value"]) for m in first["modifications"]], [(0, []), (1, 0.0)]
        )
        self.assertEqual(first["modifications"][0]["logLines"], ["[LOG] 'listing'"])

        writer, writer_client = self.open()
        self.feed(
            writer,
            {"type": "Connect", "sessionId": "w"},
            mutation(0, "messages:send", {"body": "hi", "n": 1.0}),
        )
        response, own = await self.wait_for(writer_client, self.transitions(1))
        self.assertEqual((response["success"], response["result"]), (True, 1.0))
        commit_ts = decode_u64(response["ts"])
        self.assertGreaterEqual(ts_of(own), commit_ts)

        (update,) = await self.wait_for(watcher_client, self.transitions(1))
        self.assertEqual(update["startVersion"], first["endVersion"])
        # Both queries move to the same snapshot, which includes the commit.
        self.assertGreaterEqual(ts_of(update), commit_ts)
        self.assertEqual(
            sorted((m["queryId"], m["value"]) for m in update["modifications"]),
            [(0, ["hi"]), (1, 1.0)],
        )

    async def test_read_your_writes(self) -> None:
        session, client = self.open()
        self.feed(session, modify(0, add(0, "messages:count")))
        await self.wait_for(client, self.transitions(1))
        self.feed(session, mutation(0, "messages:send", {"body": "a", "n": 1.0}))
        response, transition = await self.wait_for(client, self.transitions(1))
        self.assertEqual(response["type"], "MutationResponse")
        self.assertGreaterEqual(ts_of(transition), decode_u64(response["ts"]))
        self.assertEqual(transition["modifications"][0]["value"], 1.0)
        # A ConvexError from a mutation: errorData, no ts, its writes rolled back.
        self.feed(session, mutation(1, "messages:fail", {}))
        (failure, *_rest) = await self.wait_for(client, self.transitions(1))
        self.assertEqual(failure["success"], False)
        self.assertIsNone(failure["ts"])
        self.assertEqual(failure["errorData"], "nope")

    async def test_query_errors_update_when_data_changes(self) -> None:
        session, client = self.open()
        self.feed(session, modify(0, add(0, "messages:strict", {"n": 5.0})))
        (first,) = await self.wait_for(client, self.transitions(1))
        failed = first["modifications"][0]
        self.assertEqual(failed["type"], "QueryFailed")
        self.assertEqual(failed["errorData"], {"missing": 5.0})
        await self.send("five", 5.0)
        (update,) = await self.wait_for(client, self.transitions(1))
        self.assertEqual(update["modifications"][0]["value"], "five")

    async def test_sessions_share_cached_results(self) -> None:
        await self.send("x", 1.0)
        one, one_client = self.open()
        two, two_client = self.open()
        self.feed(one, modify(0, add(0, "messages:bodies")))
        self.feed(two, modify(0, add(0, "messages:bodies")))
        await self.wait_for(one_client, self.transitions(1))
        await self.wait_for(two_client, self.transitions(1))
        stats = self.hub.manager.stats
        self.assertEqual((stats.misses, stats.hits), (1, 1))
        ts = await self.send("y", 2.0)
        (a,) = await self.wait_for(one_client, self.transitions(1))
        (b,) = await self.wait_for(two_client, self.transitions(1))
        self.assertEqual(ts_of(a), ts_of(b))
        self.assertGreaterEqual(ts_of(a), ts)
        self.assertEqual(a["modifications"][0]["value"], ["x", "y"])
        self.assertEqual(b["modifications"], a["modifications"])
        # The re-run was shared too: the manager ran it once, before waking
        # the sessions, and both found it cached.
        self.assertEqual((stats.misses, stats.hits), (2, 3))

    async def test_pagination_journal_keeps_page_boundaries(self) -> None:
        for n in range(1, 7):
            await self.send(f"m{n}", float(n))
        session, client = self.open()
        self.feed(session, modify(0, add(0, "messages:page", page_args())))
        (first,) = await self.wait_for(client, self.transitions(1))
        page1 = first["modifications"][0]
        self.assertEqual([d["n"] for d in page1["value"]["page"]], [1.0, 2.0, 3.0])
        journal = page1["journal"]
        self.assertIsInstance(journal, str)
        cursor = page1["value"]["continueCursor"]
        self.feed(session, modify(1, add(1, "messages:page", page_args(3.0, cursor))))
        (second,) = await self.wait_for(client, self.transitions(1))
        page2 = second["modifications"][0]
        self.assertEqual([d["n"] for d in page2["value"]["page"]], [4.0, 5.0, 6.0])

        # An insert inside page 1 grows page 1 instead of pushing 3 onto page 2.
        await self.send("m2.5", 2.5)
        (update,) = await self.wait_for(client, self.transitions(1))
        (changed,) = update["modifications"]
        self.assertEqual(changed["queryId"], 0)
        self.assertEqual([d["n"] for d in changed["value"]["page"]], [1.0, 2.0, 2.5, 3.0])
        self.assertEqual(changed["journal"], journal)
        self.assertEqual(changed["value"]["continueCursor"], cursor)

        # A delete inside page 1 shrinks it; page 2 is untouched.
        await self.runner.call("messages:remove_n", {"n": 2.0})
        (update,) = await self.wait_for(client, self.transitions(1))
        (changed,) = update["modifications"]
        self.assertEqual([d["n"] for d in changed["value"]["page"]], [1.0, 2.5, 3.0])

        # After a reconnect, the client's journal keeps the same boundary.
        await self.send("m0.5", 0.5)
        again, again_client = self.open()
        self.feed(
            again,
            modify(
                0,
                add(0, "messages:page", page_args(), journal=journal),
                add(1, "messages:page", page_args()),
            ),
        )
        (first,) = await self.wait_for(again_client, self.transitions(1))
        with_journal, without = first["modifications"]
        self.assertEqual([d["n"] for d in with_journal["value"]["page"]], [0.5, 1.0, 2.5, 3.0])
        self.assertEqual([d["n"] for d in without["value"]["page"]], [0.5, 1.0, 2.5])

    async def test_admin_and_impersonation(self) -> None:
        session, client = self.open()
        self.feed(
            session,
            {
                "type": "Authenticate",
                "baseVersion": 0,
                "tokenType": "Admin",
                "value": ADMIN_KEY,
                "impersonating": {"subject": "u1", "issuer": "iss"},
            },
            modify(0, add(0, "messages:count")),
        )
        (transition,) = await self.wait_for(client, self.transitions(1))
        self.assertEqual(transition["endVersion"]["identity"], 1)
        self.assertEqual(transition["endVersion"]["querySet"], 1)
        self.assertEqual(transition["modifications"][0]["value"], 0.0)

    async def test_durable_idempotency(self) -> None:
        session, client = self.open()
        self.feed(
            session,
            {"type": "Connect", "sessionId": "sess-1"},
            mutation(3, "messages:send", {"body": "once", "n": 1.0}),
        )
        (original, _) = await self.wait_for(client, self.transitions(1))
        self.assertTrue(original["success"])
        session.connection_lost()
        original_ts = decode_u64(original["ts"])
        # Later commits: the replay must not answer with the latest ts.
        later_ts = await self.send("later", 2.0)
        self.assertGreater(later_ts, original_ts)

        # A new hub has no memory of it: the record comes from _session_requests,
        # written in the mutation's own transaction.
        tx = self.db.begin(privileged=True)
        try:
            rows = tx.query(scan(TABLE), system=True).collect()
        finally:
            tx.close()
        self.assertEqual([(r["sessionId"], r["requestId"]) for r in rows], [("sess-1", 3.0)])
        hub = self.new_hub()
        again, again_client = self.open(hub)
        self.feed(
            again,
            {"type": "Connect", "sessionId": "sess-1", "connectionCount": 1},
            mutation(3, "messages:send", {"body": "once", "n": 1.0}),
        )
        (replay, transition) = await self.wait_for(again_client, self.transitions(1))
        self.assertEqual(replay["result"], original["result"])
        self.assertTrue(replay["success"])
        # The original commit ts: the record's document version was committed with it.
        self.assertEqual(replay["ts"], original["ts"])
        self.assertGreaterEqual(ts_of(transition), later_ts)
        self.assertEqual(hub.records.replays, 1)
        count = await self.runner.call("messages:count", {})
        self.assertEqual(count.value, 2.0)
        # The record is on disk: a restarted database still has it, and its ts.
        reopened = await reopen(self, self.db)
        records = MutationRecords(reopened, reactor)
        record = records.lookup("sess-1", 3)
        self.assertEqual((record.value, record.ts), (1.0, original_ts))
        self.assertIsNone(records.lookup("sess-1", 4))

    async def test_client_ahead_of_the_database_but_not_the_clock_is_served(self) -> None:
        """A client that has seen a timestamp this database never published (restored
        from an older backup) is served at once at that timestamp: the clock has
        passed it and nothing was written since, as in a clock-driven backend."""
        observed = self.db.published_ts + 1
        session, client = self.open()
        self.feed(
            session,
            {"type": "Connect", "sessionId": "ahead", "maxObservedTimestamp": encode_u64(observed)},
            modify(0, add(0, "messages:count")),
        )
        (transition,) = await self.wait_for(client, self.transitions(1))
        self.assertGreaterEqual(ts_of(transition), observed)
        self.assertEqual(transition["modifications"][0]["value"], 0.0)
        self.assertGreaterEqual(self.db.published_ts, observed)
        # Commits go on after it.
        await self.send("later", 1.0)
        later = [
            m for m in await self.wait_for(client, self.transitions(1)) if m["type"] == "Transition"
        ]
        self.assertGreater(ts_of(later[0]), ts_of(transition))
        self.assertEqual(later[0]["modifications"][0]["value"], 1.0)

    async def test_client_ahead_is_refused(self) -> None:
        hub = self.new_hub(observed_ts_wait=0.3)
        session, client = self.open(hub)
        # An hour ahead of the clock: no commit gets there while the client waits.
        ahead = time.time_ns() + 3600 * 10**9
        self.feed(
            session,
            {"type": "Connect", "sessionId": "ahead", "maxObservedTimestamp": encode_u64(ahead)},
            modify(0, add(0, "messages:count")),
            mutation(0, "messages:send", {"body": "never", "n": 1.0}),
        )
        for _ in range(200):
            if client.closed is not None:
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(client.messages, [])
        self.assertEqual(client.closed[0], 1011)
        count = await self.runner.call("messages:count", {})
        self.assertEqual(count.value, 0.0)
