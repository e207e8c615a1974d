"""``ctx.scheduler`` in the SDK: the syscalls it sends and what it refuses locally."""

from __future__ import annotations

import datetime
import time

from twisted.trial.unittest import SynchronousTestCase

from convex_backend.server import Int64, api, internal, query
from convex_backend.server._syscalls import CONVEX_VERSION, Invocation
from convex_backend.server.context import ActionCtx, MutationCtx, QueryCtx
from tests.server.fakes import RecordingSyscalls

JOB = "job-id"


class MutationSchedulerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.syscalls = RecordingSyscalls({"1.0/schedule": JOB, "1.0/cancel_job": None})
        self.ctx = MutationCtx(Invocation(self.syscalls))

    def test_run_after(self) -> None:
        before = time.time()
        self.assertEqual(self.ctx.scheduler.run_after(1500, internal.m.f, {"n": Int64(3)}), JOB)
        after = time.time()
        [args] = self.syscalls.args_of("1.0/schedule")
        self.assertEqual(
            {k: v for k, v in args.items() if k != "ts"},
            {"name": "m:f", "args": {"n": {"$integer": "AwAAAAAAAAA="}}, "version": CONVEX_VERSION},
        )
        # Seconds since the epoch, from the function's clock.
        self.assertGreaterEqual(args["ts"], before + 1.5)
        self.assertLessEqual(args["ts"], after + 1.5)

    def test_run_at(self) -> None:
        self.ctx.scheduler.run_at(1_700_000_000_123, "dir/m.py:f")
        moment = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
        self.ctx.scheduler.run_at(moment, api.m.f, {"a": "b"})
        first, second = self.syscalls.args_of("1.0/schedule")
        self.assertEqual(
            (first["name"], first["ts"], first["args"]), ("dir/m:f", 1_700_000_000.123, {})
        )
        self.assertEqual((second["name"], second["ts"]), ("m:f", moment.timestamp()))
        self.assertEqual(second["args"], {"a": "b"})

    def test_cancel(self) -> None:
        self.assertIsNone(self.ctx.scheduler.cancel("abc"))
        self.assertEqual(self.syscalls.args_of("1.0/cancel_job"), [{"id": "abc"}])
        with self.assertRaises(TypeError):
            self.ctx.scheduler.cancel(5)

    def test_refused_before_any_syscall(self) -> None:
        scheduler = self.ctx.scheduler
        for delay, error in [
            (-1, "non-negative"),
            (float("inf"), "finite"),
            (float("nan"), "finite"),
            ("10", "must be a number"),
            (True, "must be a number"),
        ]:
            with self.assertRaisesRegex((TypeError, ValueError), error):
                scheduler.run_after(delay, "m:f")
        with self.assertRaisesRegex(TypeError, "not a date"):
            scheduler.run_at(datetime.date(2030, 1, 1), "m:f")
        with self.assertRaisesRegex(TypeError, "must be a dict"):
            scheduler.run_after(0, "m:f", [1, 2])
        with self.assertRaises(ValueError):
            scheduler.run_after(0, "m:f", {"bad": {1, 2}})
        with self.assertRaises(ValueError):
            scheduler.run_after(0, api.onlymodule)

        @query
        def count(ctx):
            return 0

        count.path = "m:count"
        with self.assertRaisesRegex(TypeError, "only mutations and actions can be scheduled"):
            scheduler.run_after(0, count)
        self.assertEqual(self.syscalls.calls, [])


class ActionSchedulerTests(SynchronousTestCase):
    def test_action_ops_carry_the_request_id(self) -> None:
        syscalls = RecordingSyscalls({"1.0/actions/schedule": JOB, "1.0/actions/cancel_job": None})
        ctx = ActionCtx(Invocation(syscalls, "req-9"))
        self.assertEqual(ctx.scheduler.run_at(5000, internal.m.f), JOB)
        ctx.scheduler.cancel(JOB)
        [schedule] = syscalls.args_of("1.0/actions/schedule")
        self.assertEqual(
            schedule,
            {"name": "m:f", "ts": 5.0, "args": {}, "version": CONVEX_VERSION, "requestId": "req-9"},
        )
        self.assertEqual(
            syscalls.args_of("1.0/actions/cancel_job"), [{"requestId": "req-9", "id": JOB}]
        )

    def test_queries_have_no_scheduler(self) -> None:
        self.assertFalse(hasattr(QueryCtx(Invocation(RecordingSyscalls())), "scheduler"))
