"""The engine on a real SQLite file: snapshots, read-your-writes, conflicts, limits."""

from __future__ import annotations

import random

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from convex_backend.database.errors import DatabaseError, LimitExceeded, OccConflict
from convex_backend.values import Int64, decode_id
from tests.database.fixtures import index_range, open_database, reopen, scan


class EngineTestCase(TestCase):
    async def setUpDb(self):
        self.db = await open_database(self)
        return self.db

    async def insert(self, table: str, *docs: dict) -> list[str]:
        (ids, _ts) = await self.db.run(lambda tx: [tx.insert(table, d) for d in docs])
        return ids


class DocumentTests(EngineTestCase):
    async def test_insert_assigns_system_fields(self) -> None:
        await self.setUpDb()
        [a, b] = await self.insert("messages", {"body": "a"}, {"body": "b"})
        self.assertEqual(len(a), 32)
        self.assertGreaterEqual(decode_id(a).table_number, 10001)
        tx = self.db.begin()
        doc_a, doc_b = tx.get(a), tx.get(b)
        tx.close()
        self.assertEqual(doc_a["_id"], a)
        self.assertIsInstance(doc_a["_creationTime"], float)
        self.assertLess(doc_a["_creationTime"], doc_b["_creationTime"])

    async def test_read_your_writes(self) -> None:
        await self.setUpDb()
        [existing] = await self.insert("items", {"n": 1.0})
        tx = self.db.begin()
        new = tx.insert("items", {"n": 2.0})
        tx.patch(existing, {"n": 10.0})
        self.assertEqual(tx.get(new)["n"], 2.0)
        self.assertEqual(tx.get(existing)["n"], 10.0)
        self.assertEqual(sorted(d["n"] for d in tx.query(scan("items"))), [2.0, 10.0])
        self.assertEqual(tx.count("items"), 2)
        tx.delete(new)
        self.assertIsNone(tx.get(new))
        self.assertEqual([d["n"] for d in tx.query(scan("items"))], [10.0])
        self.assertEqual(tx.count("items"), 1)
        await self.db.commit(tx)
        tx = self.db.begin()
        self.assertEqual([d["n"] for d in tx.query(scan("items"))], [10.0])
        tx.close()

    async def test_new_table_visible_in_its_own_transaction(self) -> None:
        await self.setUpDb()
        tx = self.db.begin()
        doc_id = tx.insert("fresh", {"x": 1.0})
        self.assertEqual(tx.get(doc_id)["x"], 1.0)
        self.assertEqual([d["x"] for d in tx.query(scan("fresh"))], [1.0])
        await self.db.commit(tx)

    async def test_patch_replace_delete(self) -> None:
        await self.setUpDb()
        [doc_id] = await self.insert("t", {"a": 1.0, "b": "x"})
        from convex_backend.values import UNDEFINED

        await self.db.run(lambda tx: tx.patch(doc_id, {"b": UNDEFINED, "c": Int64(3)}))
        tx = self.db.begin()
        doc = tx.get(doc_id)
        tx.close()
        self.assertEqual(
            {k: v for k, v in doc.items() if not k.startswith("_")},
            {"a": 1.0, "c": Int64(3)},
        )
        await self.db.run(lambda tx: tx.replace(doc_id, {"z": True}))
        tx = self.db.begin()
        replaced = tx.get(doc_id)
        tx.close()
        self.assertEqual(replaced["z"], True)
        self.assertNotIn("a", replaced)
        self.assertEqual(replaced["_creationTime"], doc["_creationTime"])
        await self.db.run(lambda tx: tx.delete(doc_id))
        tx = self.db.begin()
        self.assertIsNone(tx.get(doc_id))
        self.assertEqual(tx.count("t"), 0)
        tx.close()

    async def test_errors(self) -> None:
        await self.setUpDb()
        [doc_id] = await self.insert("t", {"a": 1.0})
        [other] = await self.insert("u", {"a": 1.0})
        tx = self.db.begin()
        self.addCleanup(tx.close)
        cases = [
            (lambda: tx.get("not-an-id"), "InvalidId"),
            (lambda: tx.get(doc_id, table="u"), "InvalidTable"),
            (lambda: tx.patch(other, {"_id": doc_id}), "InvalidDocument"),
            (lambda: tx.insert("t", {"_id": "x"}), "InvalidDocument"),
            (lambda: tx.insert("_storage", {"a": 1.0}), "SystemTableWrite"),
            (lambda: tx.insert("bad name", {}), "InvalidTableName"),
            (lambda: tx.insert("t", {"$x": 1.0}), "InvalidDocument"),
            (lambda: tx.insert("t", {"n": 5}), "InvalidDocument"),
            (lambda: tx.query(scan("_modules")), "InvalidTable"),
            (lambda: tx.query(scan("t"), system=True), "InvalidTable"),
            (lambda: tx.query(index_range("t", "nope")), "IndexNotFound"),
        ]
        for call, code in cases:
            with self.assertRaises(DatabaseError) as caught:
                call()
            self.assertEqual(caught.exception.code, code, caught.exception)
        # A deleted document cannot be updated.
        await self.db.run(lambda t: t.delete(doc_id))
        tx2 = self.db.begin()
        self.addCleanup(tx2.close)
        with self.assertRaises(DatabaseError) as caught:
            tx2.patch(doc_id, {"a": 2.0})
        self.assertEqual(caught.exception.code, "NotFound")

    async def test_system_tables_through_db_system(self) -> None:
        await self.setUpDb()
        await self.db.run(
            lambda tx: tx.insert("_storage", {"sha256": "x", "size": 1.0}),
            privileged=True,
        )
        tx = self.db.begin()
        self.addCleanup(tx.close)
        rows = tx.query(scan("_storage"), system=True).collect()
        self.assertEqual(len(rows), 1)
        self.assertEqual(tx.get(rows[0]["_id"], system=True)["size"], 1.0)
        with self.assertRaises(DatabaseError):
            tx.get(rows[0]["_id"])

    async def test_normalize_id(self) -> None:
        await self.setUpDb()
        [doc_id] = await self.insert("t", {})
        tx = self.db.begin()
        self.addCleanup(tx.close)
        self.assertEqual(tx.normalize_id("t", doc_id), doc_id)
        self.assertIsNone(tx.normalize_id("other", doc_id))
        self.assertIsNone(tx.normalize_id("t", "garbage"))


class SnapshotTests(EngineTestCase):
    async def test_recent_history_is_readable_without_an_open_snapshot(self) -> None:
        await self.setUpDb()
        [doc_id] = await self.insert("t", {"v": 1.0})
        before = self.db.published_ts
        await self.db.run(lambda tx: tx.patch(doc_id, {"v": 2.0}))
        await self.insert("t", {"v": 3.0})
        tx = self.db.begin_at(before)
        self.assertEqual(tx.get(doc_id)["v"], 1.0)
        tx.close()

    async def test_reads_see_the_begin_snapshot(self) -> None:
        await self.setUpDb()
        [doc_id] = await self.insert("t", {"v": 1.0})
        reader = self.db.begin()
        await self.db.run(lambda tx: tx.patch(doc_id, {"v": 2.0}))
        await self.insert("t", {"v": 3.0})
        self.assertEqual(reader.get(doc_id)["v"], 1.0)
        self.assertEqual([d["v"] for d in reader.query(scan("t"))], [1.0])
        self.assertEqual(reader.count("t"), 1)
        reader.close()
        fresh = self.db.begin()
        self.assertEqual(sorted(d["v"] for d in fresh.query(scan("t"))), [2.0, 3.0])
        fresh.close()

    async def test_timestamps_increase_across_restarts(self) -> None:
        await self.setUpDb()
        (_, ts1) = await self.db.run(lambda tx: tx.insert("t", {}))
        db2 = await reopen(self, self.db)
        self.assertEqual(db2.published_ts, ts1)
        (_, ts2) = await db2.run(lambda tx: tx.insert("t", {}))
        self.assertGreater(ts2, ts1)
        tx = db2.begin()
        self.assertEqual(tx.count("t"), 2)
        tx.close()

    async def test_publishing_a_timestamp_the_clock_has_passed(self) -> None:
        await self.setUpDb()
        [doc_id] = await self.insert("t", {"v": 1.0})
        committed = self.db.published_ts
        # Ahead of the clock: refused.
        self.assertFalse(self.db.advance_published(self.db.clock_ns() + 10**12))
        self.assertEqual(self.db.published_ts, committed)
        # Behind the clock, nothing on its way: published, with the same data.
        target = committed + 1_000
        self.assertTrue(self.db.advance_published(target))
        self.assertEqual(self.db.published_ts, target)
        tx = self.db.begin()
        self.assertEqual((tx.begin_ts, tx.get(doc_id)["v"]), (target, 1.0))
        tx.close()
        self.assertTrue(self.db.advance_published(committed))  # already there
        # Later commits come after it.
        (_, ts) = await self.db.run(lambda tx: tx.patch(doc_id, {"v": 2.0}))
        self.assertGreater(ts, target)

    async def test_no_timestamp_is_published_past_a_commit_on_its_way(self) -> None:
        await self.setUpDb()
        tx = self.db.begin()
        tx.insert("t", {"v": 1.0})
        pending = self.db.commit(tx)
        self.assertFalse(self.db.advance_published(self.db.clock_ns() - 1))
        ts = await pending
        self.assertEqual(self.db.published_ts, ts)


class ConflictTests(EngineTestCase):
    """Every kind of read conflicts with a concurrent write into what it read."""

    async def assertConflict(self, read, write, expect: bool = True) -> None:
        tx = self.db.begin()
        read(tx)
        tx.insert("log", {"note": "the reader writes something"})
        await self.db.run(write)
        d = self.db.commit(tx)
        if expect:
            await self.assertFailure(d, OccConflict)
        else:
            await d

    async def test_get(self) -> None:
        await self.setUpDb()
        [a, b] = await self.insert("t", {"v": 1.0}, {"v": 1.0})
        await self.assertConflict(lambda tx: tx.get(a), lambda tx: tx.patch(a, {"v": 2.0}))
        await self.assertConflict(
            lambda tx: tx.get(a), lambda tx: tx.patch(b, {"v": 2.0}), expect=False
        )

    async def test_get_that_found_nothing(self) -> None:
        await self.setUpDb()
        [a] = await self.insert("t", {"v": 1.0})
        await self.db.run(lambda tx: tx.delete(a))
        # The id's slot is read; nobody can write it again, so no conflict...
        await self.assertConflict(lambda tx: tx.get(a), lambda tx: tx.insert("t", {}), expect=False)
        # ...but a missing table is a read of its name: creating it conflicts.
        await self.assertConflict(
            lambda tx: self.assertEqual(tx.query(scan("later")).collect(), []),
            lambda tx: tx.insert("later", {}),
        )

    async def test_get_that_found_nothing_conflicts_with_its_insert(self) -> None:
        """A reader that looked up an id committed after its snapshot (found
        nothing) must not commit as if the document did not exist."""
        await self.setUpDb()
        await self.insert("t", {"v": 0.0})
        reader = self.db.begin()
        [late] = await self.insert("t", {"v": 1.0})
        self.assertIsNone(reader.get(late))
        reader.insert("log", {"saw": "nothing"})
        await self.assertFailure(self.db.commit(reader), OccConflict)

    async def test_index_range(self) -> None:
        await self.setUpDb()
        await self.db.add_index("msgs", "by_author", ("author",))
        await self.insert("msgs", {"author": "a"}, {"author": "c"})

        def read(tx):
            return tx.query(index_range("msgs", "by_author", ("Eq", "author", "b"))).collect()

        await self.assertConflict(read, lambda tx: tx.insert("msgs", {"author": "b"}))
        await self.assertConflict(read, lambda tx: tx.insert("msgs", {"author": "d"}), expect=False)

    async def test_full_scan(self) -> None:
        await self.setUpDb()
        await self.insert("t", {"v": 1.0})
        await self.assertConflict(
            lambda tx: tx.query(scan("t")).collect(),
            lambda tx: tx.insert("t", {"v": 2.0}),
        )
        await self.assertConflict(
            lambda tx: tx.query(scan("t")).collect(),
            lambda tx: tx.insert("other", {"v": 2.0}),
            expect=False,
        )

    async def test_take_reads_only_what_it_took(self) -> None:
        await self.setUpDb()
        [first, _second] = await self.insert("t", {"v": 1.0}, {"v": 2.0})
        take1 = {**scan("t"), "operators": [{"limit": 1}]}
        await self.assertConflict(
            lambda tx: tx.query(take1).collect(),
            lambda tx: tx.insert("t", {"v": 3.0}),
            expect=False,
        )
        await self.assertConflict(
            lambda tx: tx.query(take1).collect(), lambda tx: tx.patch(first, {"v": 9.0})
        )

    async def test_count(self) -> None:
        await self.setUpDb()
        await self.insert("t", {})
        await self.assertConflict(lambda tx: tx.count("t"), lambda tx: tx.insert("t", {}))

    async def test_pagination(self) -> None:
        await self.setUpDb()
        await self.insert("t", *({"v": float(i)} for i in range(10)))

        def first_page(tx):
            return tx.query_page(scan("t"), cursor=None, page_size=3)

        # A write after the page does not conflict; a write inside it does.
        await self.assertConflict(first_page, lambda tx: tx.insert("t", {}), expect=False)
        tx = self.db.begin()
        page = first_page(tx)
        tx.close()
        inside = page["page"][1]["_id"]
        await self.assertConflict(first_page, lambda tx: tx.patch(inside, {"v": -1.0}))

    async def test_run_retries_conflicts(self) -> None:
        await self.setUpDb()
        [counter] = await self.insert("counters", {"n": 0.0})

        async def increment(tx):
            n = tx.get(counter)["n"]
            await defer.succeed(None)
            tx.patch(counter, {"n": n + 1})

        await defer.gatherResults([defer.ensureDeferred(self.db.run(increment)) for _ in range(50)])
        tx = self.db.begin()
        self.assertEqual(tx.get(counter)["n"], 50.0)
        tx.close()


class TransferTests(EngineTestCase):
    async def test_concurrent_transfers_preserve_the_total(self) -> None:
        await self.setUpDb()
        accounts = await self.insert("accounts", *({"balance": 100.0} for _ in range(10)))
        rng = random.Random(7)
        sleeps: list = []

        async def transfer(tx):
            a, b = rng.sample(accounts, 2)
            amount = float(rng.randint(1, 30))
            from_doc = tx.get(a)
            # Let other transfers interleave between the read and the write.
            d = defer.Deferred()
            sleeps.append(d)
            from twisted.internet import reactor

            reactor.callLater(rng.random() * 0.002, d.callback, None)
            await d
            if from_doc["balance"] >= amount:
                tx.patch(a, {"balance": from_doc["balance"] - amount})
                tx.patch(b, {"balance": tx.get(b)["balance"] + amount})

        await defer.gatherResults(
            [defer.ensureDeferred(self.db.run(transfer, max_retries=200)) for _ in range(200)]
        )
        self.assertGreater(self.db.stats["retries"], 0)
        for db in (self.db, await reopen(self, self.db)):
            tx = db.begin()
            balances = [tx.get(a)["balance"] for a in accounts]
            tx.close()
            self.assertEqual(sum(balances), 1000.0)
            self.assertTrue(all(b >= 0 for b in balances))


class LimitTests(EngineTestCase):
    async def test_document_limits(self) -> None:
        await self.setUpDb()
        tx = self.db.begin()
        self.addCleanup(tx.close)
        with self.assertRaises(DatabaseError) as caught:
            tx.insert("t", {"big": "x" * (1024 * 1024)})
        self.assertIn("too large", str(caught.exception).lower())

    async def test_write_count_limit(self) -> None:
        await self.setUpDb()
        from convex_backend.database import transaction

        self.patch(transaction, "MAX_DOCUMENTS_WRITTEN", 5)
        tx = self.db.begin()
        self.addCleanup(tx.close)
        for _ in range(5):
            tx.insert("t", {})
        self.assertRaises(LimitExceeded, tx.insert, "t", {})

    async def test_read_limits(self) -> None:
        await self.setUpDb()
        await self.insert("t", *({} for _ in range(20)))
        from convex_backend.database import transaction

        self.patch(transaction, "MAX_DOCUMENTS_READ", 10)
        tx = self.db.begin()
        self.addCleanup(tx.close)
        with self.assertRaises(LimitExceeded) as caught:
            tx.query(scan("t")).collect()
        self.assertIn("limit: 10", str(caught.exception))
        self.patch(transaction, "MAX_READ_INTERVALS", 3)
        tx2 = self.db.begin()
        self.addCleanup(tx2.close)
        with self.assertRaises(LimitExceeded):
            for _ in range(5):
                tx2.query({**scan("t"), "operators": [{"limit": 1}]}).collect()


class GarbageTests(EngineTestCase):
    async def test_deleted_documents_and_old_keys_are_reaped(self) -> None:
        await self.setUpDb()
        self.db.history_ns = 0  # no time-based history: only open snapshots keep versions
        await self.db.add_index("t", "by_v", ("v",))
        [doc_id] = await self.insert("t", {"v": 0.0})
        index = self.db.store.tables_by_name["t"].indexes["by_v"]
        for i in range(1, 50):
            await self.db.run(lambda tx, i=i: tx.patch(doc_id, {"v": float(i)}))
        await self.insert("t", {"v": -1.0})  # one more batch reaps the last tombstone
        self.assertEqual(len(index.entries), 2)
        self.assertLessEqual(len(self.db.store.documents[doc_id]), 2)
        # A snapshot held open keeps what it can see.
        reader = self.db.begin()
        await self.db.run(lambda tx: tx.delete(doc_id))
        await self.insert("t", {"v": -2.0})
        self.assertEqual(reader.get(doc_id)["v"], 49.0)
        reader.close()
        await self.insert("t", {"v": -3.0})
        self.assertNotIn(doc_id, self.db.store.documents)
        self.assertEqual(len(index.entries), 3)
