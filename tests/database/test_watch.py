"""TableWatcher: the ids written to one table, reported after durable commits."""

from __future__ import annotations

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from convex_backend.database.watch import TableWatcher
from tests.database.fixtures import open_database


class TableWatcherTests(TestCase):
    async def watch(self, table: str):
        db = await open_database(self)
        await db.create_table(table)
        await db.create_table("other")
        reports: list[list[str] | None] = []
        waiter: list[defer.Deferred] = []

        def on_changes(ids):
            reports.append(ids)
            if waiter:
                waiter.pop().callback(None)

        watcher = TableWatcher(db, table, on_changes)
        watcher.start()
        self.addCleanup(watcher.stop)

        def next_report() -> defer.Deferred:
            d = defer.Deferred()
            waiter.append(d)
            return d

        return db, watcher, reports, next_report

    async def test_reports_written_ids_once_in_commit_order(self) -> None:
        db, _watcher, reports, next_report = await self.watch("jobs")
        report = next_report()

        def writes(tx):
            a = tx.insert("jobs", {"n": 1.0})
            b = tx.insert("jobs", {"n": 2.0})
            tx.patch(a, {"n": 3.0})
            tx.insert("other", {})
            return a, b

        (a, b), _ts = await db.run(writes)
        await report
        self.assertEqual(reports, [[a, b]])

    async def test_other_tables_do_not_wake_it(self) -> None:
        db, _watcher, reports, next_report = await self.watch("jobs")
        await db.run(lambda tx: tx.insert("other", {}))
        await task.deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(reports, [])
        report = next_report()
        doc_id, _ts = await db.run(lambda tx: tx.insert("jobs", {}))
        await report
        self.assertEqual(reports, [[doc_id]])

    async def test_a_trimmed_log_asks_for_a_full_reread(self) -> None:
        db, _watcher, reports, next_report = await self.watch("jobs")
        # A write log that keeps nothing, as when it is trimmed past a slow
        # watcher: the watcher can no longer say what changed.
        limits = db.write_log.max_entries, db.write_log.min_entries
        db.write_log.max_entries = db.write_log.min_entries = 0
        report = next_report()
        await db.run(lambda tx: tx.insert("jobs", {}))
        await report
        self.assertEqual(reports, [None])
        db.write_log.max_entries, db.write_log.min_entries = limits
        # And it goes on reporting ids afterwards.
        report = next_report()
        doc_id, _ts = await db.run(lambda tx: tx.insert("jobs", {}))
        await report
        self.assertEqual(reports, [None, [doc_id]])

    async def test_stopped_watchers_report_nothing(self) -> None:
        db, watcher, reports, _next_report = await self.watch("jobs")
        watcher.stop()
        await db.run(lambda tx: tx.insert("jobs", {}))
        await task.deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(reports, [])
