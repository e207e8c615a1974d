"""Read sets, the write log's conflict checks and change subscriptions."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase, TestCase

from convex_backend.database.writelog import ReadSet, WriteLog, WriteLogEntry
from tests.database.fixtures import index_range, open_database, scan


class ReadSetTests(SynchronousTestCase):
    def test_intervals(self) -> None:
        rs = ReadSet()
        rs.add(1, b"b", b"d")
        rs.add(1, b"c", b"f")
        rs.add(2, b"x", None)
        rs.add(3, b"z", b"a")  # empty: ignored
        compiled = rs.compiled()
        for index_id, key, expected in [
            (1, b"a", False),
            (1, b"b", True),
            (1, b"e", True),
            (1, b"f", False),
            (2, b"x", True),
            (2, b"\xff" * 9, True),
            (2, b"w", False),
            (3, b"z", False),
        ]:
            self.assertEqual(compiled.contains(index_id, key), expected, (index_id, key))
            self.assertEqual(rs.contains(index_id, key), expected, (index_id, key))

    def test_conflicts_only_after_the_begin_timestamp(self) -> None:
        log = WriteLog()
        log.append(WriteLogEntry(10, {1: [b"k"]}, durable=True))
        log.append(WriteLogEntry(20, {1: [b"m"]}, durable=True))
        rs = ReadSet()
        rs.add(1, b"k", b"l")
        self.assertIsNone(log.first_conflict(rs, 10))
        self.assertEqual(log.first_conflict(rs, 9).ts, 10)

    def test_trimmed_history_is_a_conflict(self) -> None:
        log = WriteLog(min_entries=1)
        for ts in range(1, 6):
            log.append(WriteLogEntry(ts, {}, durable=True))
        log.trim(3)
        rs = ReadSet()
        rs.add(1, b"a", b"b")
        self.assertIsNotNone(log.first_conflict(rs, 2))
        self.assertIsNone(log.first_conflict(rs, 3))

    def test_recent_entries_are_kept_for_subscribers(self) -> None:
        log = WriteLog(min_entries=3)
        for ts in range(1, 6):
            log.append(WriteLogEntry(ts, {}, durable=True))
        log.trim(5)
        self.assertEqual([e.ts for e in log.entries], [3, 4, 5])


class SubscriptionTests(TestCase):
    async def test_notified_once_when_a_commit_touches_the_read_set(self) -> None:
        db = await open_database(self)
        await db.add_index("m", "by_channel", ("channel",))
        await db.run(lambda tx: tx.insert("m", {"channel": "a"}))
        tx = db.begin()
        tx.query(index_range("m", "by_channel", ("Eq", "channel", "a"))).collect()
        read_set, ts = tx.finish_reads(), tx.begin_ts
        tx.close()
        fired: list[int] = []
        subscription = db.write_log.subscribe(read_set, ts, fired.append)
        self.assertEqual(db.write_log.subscription_count, 1)
        await db.run(lambda tx: tx.insert("m", {"channel": "b"}))
        self.assertEqual(fired, [])
        (_, commit_ts) = await db.run(lambda tx: tx.insert("m", {"channel": "a"}))
        self.assertEqual(fired, [commit_ts])
        await db.run(lambda tx: tx.insert("m", {"channel": "a"}))
        self.assertEqual(fired, [commit_ts])
        self.assertFalse(subscription.active)

    async def test_subscribing_late_fires_at_once(self) -> None:
        db = await open_database(self)
        tx = db.begin()
        tx.query(scan("m")).collect()
        read_set, ts = tx.finish_reads(), tx.begin_ts
        tx.close()
        (_, commit_ts) = await db.run(lambda tx: tx.insert("m", {}))
        fired: list[int] = []
        db.write_log.subscribe(read_set, ts, fired.append)
        self.assertEqual(fired, [commit_ts])
