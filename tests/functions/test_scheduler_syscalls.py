"""The scheduler syscalls with a real database and real workers (no scheduler
service: the jobs stay as the syscalls leave them)."""

from __future__ import annotations

import time

from twisted.trial.unittest import TestCase

from convex_backend.functions.runner import Caller, FunctionError
from convex_backend.scheduler import jobs
from convex_backend.values import Int64
from tests.database.fixtures import open_database, scan
from tests.functions.fixtures import deploy_app
from tests.scheduler.scheduler_app import TASKS

ADMIN = Caller("admin")


class SchedulerSyscallTests(TestCase):
    timeout = 120

    async def setUp(self) -> None:
        self.db = await open_database(self)
        self.runner, self.pools, _deployer = await deploy_app(self, self.db, {"tasks.py": TASKS})

    async def call(self, path: str, args: dict | None = None):
        return (await self.runner.call(path, args or {}, caller=ADMIN)).value

    async def fails(self, path: str, args: dict | None = None) -> str:
        try:
            await self.runner.call(path, args or {}, caller=ADMIN)
        except FunctionError as e:
            self.assertNotIn("Traceback", e.message)
            return e.message
        self.fail(f"{path} did not fail")

    def rows(self) -> list[dict]:
        tx = self.db.begin(privileged=True)
        try:
            return tx.query(scan(jobs.TABLE), system=True).collect()
        finally:
            tx.close()

    async def test_a_mutation_writes_a_pending_job(self) -> None:
        before = time.time() * 1000
        job_id = await self.call("tasks:schedule_bump", {"delay": 5000.0, "name": "a"})
        after = time.time() * 1000
        self.assertTrue(jobs.is_job_id(job_id))
        job = await self.call("tasks:job", {"id": job_id})
        self.assertEqual(job["_id"], job_id)
        self.assertEqual(job["name"], "tasks:bump")
        self.assertEqual(job["args"], [{"name": "a"}])
        self.assertEqual(job["state"], {"kind": "pending"})
        self.assertNotIn("completedTime", job)
        self.assertGreaterEqual(job["scheduledTime"], before + 5000 - 1)
        self.assertLessEqual(job["scheduledTime"], after + 5000 + 1)
        at = await self.call("tasks:schedule_bump_at", {"at": 123456.0, "name": "b"})
        self.assertEqual((await self.call("tasks:job", {"id": at}))["scheduledTime"], 123456.0)

    async def test_args_keep_their_convex_types(self) -> None:
        args = {"n": Int64(5), "b": b"\x00\x01", "nested": {"a": [1.0, None, True]}, "s": "x"}
        job_id = await self.call(
            "tasks:schedule", {"delay": 0.0, "target": "tasks:record", "args": args}
        )
        [row] = self.rows()
        self.assertEqual(row["_id"], job_id)
        self.assertEqual(row["args"], [args])
        self.assertIsInstance(row["args"][0]["n"], Int64)

    async def test_the_job_commits_and_rolls_back_with_the_mutation(self) -> None:
        message = await self.fails("tasks:schedule_then_fail", {"name": "x"})
        self.assertIn("rolled back", message)
        self.assertEqual(self.rows(), [])
        # A nested mutation that fails takes its job along; the caller's stays.
        result = await self.call("tasks:schedule_nested")
        self.assertEqual(result["jobs"], [result["kept"]])
        self.assertEqual([row["_id"] for row in self.rows()], [result["kept"]])

    async def test_cancel_from_a_mutation(self) -> None:
        job_id = await self.call("tasks:schedule_bump", {"delay": 60000.0, "name": "a"})
        seen = await self.call("tasks:cancel_then_read", {"id": job_id})
        self.assertEqual(seen["state"], {"kind": "canceled"})
        job = await self.call("tasks:job", {"id": job_id})
        self.assertEqual(job["state"], {"kind": "canceled"})
        completed = job["completedTime"]
        self.assertIsInstance(completed, float)
        # Cancelling again, or cancelling a finished job, changes nothing.
        await self.call("tasks:cancel", {"id": job_id})
        self.assertEqual((await self.call("tasks:job", {"id": job_id}))["completedTime"], completed)
        done = await self.call("tasks:schedule_bump", {"delay": 0.0, "name": "b"})
        await self.db.run(lambda tx: jobs.finish_job(tx, done, jobs.SUCCESS, 1.0), privileged=True)
        await self.call("tasks:cancel", {"id": done})
        job = await self.call("tasks:job", {"id": done})
        self.assertEqual((job["state"], job["completedTime"]), ({"kind": "success"}, 1.0))

    async def test_schedule_and_cancel_from_an_action(self) -> None:
        job_id = await self.call("tasks:schedule_from_action", {"delay": 60000.0, "name": "a"})
        job = await self.call("tasks:job", {"id": job_id})
        self.assertEqual((job["name"], job["state"]), ("tasks:act", {"kind": "pending"}))
        await self.call("tasks:cancel_from_action", {"id": job_id})
        job = await self.call("tasks:job", {"id": job_id})
        self.assertEqual(job["state"], {"kind": "canceled"})

    async def test_queries_cannot_schedule(self) -> None:
        message = await self.fails("tasks:schedule_in_query")
        self.assertIn("scheduler", message)
        message = await self.fails(
            "tasks:raw_in_query",
            {"op": "1.0/schedule", "payload": {"name": "tasks:bump", "ts": 1.0, "args": {}}},
        )
        self.assertIn("not allowed in a query", message)
        self.assertEqual(self.rows(), [])

    async def test_bad_requests_fail_cleanly(self) -> None:
        counter = (await self.db.run(lambda tx: tx.insert("counters", {"name": "c"})))[0]
        good = {"name": "tasks:bump", "ts": 1.0, "args": {"name": "a"}}
        cases = [
            ({**good, "name": "tasks:nope"}, "nonexistent path: tasks:nope"),
            ({**good, "name": "nope"}, "nonexistent path: nope:default"),
            ({**good, "name": 5.0}, "Invalid scheduled function name"),
            ({**good, "name": "tasks:count"}, "only mutations and actions can be scheduled"),
            ({**good, "args": [1.0]}, "must be an object"),
            ({**good, "ts": "soon"}, "finite number"),
            ({**good, "ts": -5.0}, "before 1970"),
            ({"functionHandle": "function://x", "ts": 1.0, "args": {}}, "function handle"),
            ({"reference": "_reference/x", "ts": 1.0, "args": {}}, "component"),
        ]
        for op in ("raw", "raw_action"):
            kind = "1.0/schedule" if op == "raw" else "1.0/actions/schedule"
            for payload, error in cases:
                message = await self.fails(f"tasks:{op}", {"op": kind, "payload": payload})
                self.assertIn(error, message, (op, payload))
            cancel = "1.0/cancel_job" if op == "raw" else "1.0/actions/cancel_job"
            for bad_id in ("nope", counter, 5.0):
                message = await self.fails(f"tasks:{op}", {"op": cancel, "payload": {"id": bad_id}})
                self.assertIn("Invalid scheduled function id", message)
        # Through the SDK: a query target, and a negative delay.
        message = await self.fails(
            "tasks:schedule", {"delay": 0.0, "target": "tasks:count", "args": {}}
        )
        self.assertIn("only mutations and actions", message)
        message = await self.fails(
            "tasks:schedule", {"delay": -1.0, "target": "tasks:bump", "args": {}}
        )
        self.assertIn("non-negative", message)
        self.assertEqual(self.rows(), [])
        # Nothing broke: scheduling still works.
        await self.call("tasks:raw", {"op": "1.0/schedule", "payload": good})
        self.assertEqual(len(self.rows()), 1)

    async def test_limits_per_transaction(self) -> None:
        await self.call("tasks:schedule_many", {"n": 1000.0})
        self.assertEqual(len(self.rows()), 1000)
        message = await self.fails("tasks:schedule_many", {"n": 1001.0})
        self.assertIn("Too many functions scheduled by this mutation (limit: 1000)", message)
        self.assertEqual(len(self.rows()), 1000)

    async def test_argument_size_limits(self) -> None:
        message = await self.fails(
            "tasks:schedule_big", {"size": float(jobs.MAX_ARGS_BYTES + 1), "n": 1.0}
        )
        self.assertIn("arguments of a scheduled function are too large", message)
        # Each job fits, but 17 MB of them do not fit in one mutation.
        message = await self.fails("tasks:schedule_big", {"size": 1_000_000.0, "n": 17.0})
        self.assertIn("Too many bytes of arguments to scheduled functions", message)
        self.assertEqual(self.rows(), [])
        await self.call("tasks:schedule_big", {"size": 1_000_000.0, "n": 2.0})
        self.assertEqual(len(self.rows()), 2)
