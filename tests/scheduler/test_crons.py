"""The cron service running jobs on a :class:`task.Clock`, against a real
database and real worker pools: schedules, skips, restarts, redeploys."""

from __future__ import annotations

import calendar
from pathlib import Path

from twisted.internet import task
from twisted.trial.unittest import TestCase

from convex_backend.functions.modules import DeployError
from convex_backend.scheduler.crons import TABLE, CronService, load_jobs
from tests.database.fixtures import open_database, scan
from tests.functions.fixtures import deploy_app
from tests.helpers import make_deployment


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    """A UTC date as ms since the epoch."""
    return calendar.timegm((year, month, day, hour, minute, 0)) * 1000.0


#: Tuesday 28 February 2023, 08:35 UTC.
FEB_28 = ms(2023, 2, 28, 8, 35)


# -- the service, on a real database and real workers ------------------------------------

MESSAGES = """
import time

from convex_backend.server import internal_action, internal_mutation, mutation, query, v


@internal_mutation(args={"tag": v.string()})
def tick(ctx, args):
    ctx.db.insert("ticks", {"tag": args["tag"]})


@mutation
def public_tick(ctx):
    ctx.db.insert("ticks", {"tag": "public"})


@internal_mutation
def slow_tick(ctx):
    time.sleep(0.3)
    ctx.db.insert("ticks", {"tag": "slow tick"})


@internal_mutation
def fail(ctx):
    ctx.db.insert("ticks", {"tag": "never committed"})
    raise ValueError("the cron job failed on purpose")


@internal_action(args={"seconds": v.number()})
def slow(ctx, args):
    time.sleep(args["seconds"])
    ctx.run_mutation("messages:tick", {"tag": "slow"})


@query
def count(ctx):
    return len(ctx.db.query("ticks").collect())
"""


def crons_module(*lines: str) -> str:
    body = "\n".join(lines)
    return f"from convex_backend.server import Crons\n\ncrons = Crons()\n{body}\n"


class ServiceTestCase(TestCase):
    timeout = 120
    #: When the test clock starts (seconds since the epoch).
    start_at = FEB_28 / 1000

    async def setUp(self) -> None:
        self.db = await open_database(self)
        self.tmp = Path(self.mktemp()).absolute()
        self.tmp.mkdir(parents=True)

    async def deploy(self, crons: str | None) -> None:
        modules = {"messages.py": MESSAGES}
        if crons is not None:
            modules["crons.py"] = crons
        if not hasattr(self, "deployer"):
            self.runner, self.pools, self.deployer = await deploy_app(self, self.db, modules)
            return
        await self.deployer.deploy([{"path": p, "source": s} for p, s in modules.items()])

    async def start_service(self, at: float | None = None) -> CronService:
        deployment = make_deployment(self.tmp / "data")
        deployment.database, deployment.runner = self.db, self.runner
        deployment.deployer = self.deployer
        self.clock = task.Clock()
        self.clock.advance(self.start_at if at is None else at)
        service = CronService(deployment, clock=self.clock)
        service.startService()
        self.addCleanup(service.stopService)
        await service.start()
        self.service = service
        return service

    async def advance(self, seconds: float) -> None:
        """Move the test clock and wait for the runs it started."""
        self.clock.advance(seconds)
        await self.service.wait_idle()

    def rows(self, table: str) -> list[dict]:
        tx = self.db.begin(privileged=True)
        try:
            return tx.query(scan(table), system=table.startswith("_")).collect()
        finally:
            tx.close()

    def tags(self) -> list[str]:
        return [row["tag"] for row in self.rows("ticks")]

    def jobs(self) -> dict:
        tx = self.db.begin(privileged=True)
        try:
            return {name: job.to_api() for name, job in load_jobs(tx).items()}
        finally:
            tx.close()


class ServiceTests(ServiceTestCase):
    async def test_interval_jobs_run_at_deploy_then_every_interval(self) -> None:
        await self.deploy(
            crons_module('crons.interval("tick", "messages:tick", {"tag": "i"}, seconds=60)')
        )
        await self.start_service()
        start = FEB_28
        self.assertEqual(self.jobs()["tick"]["nextRun"], start)
        await self.advance(0)
        self.assertEqual(self.tags(), ["i"])
        job = self.jobs()["tick"]
        self.assertEqual(job["lastRun"], {"ts": start, "status": "success"})
        self.assertEqual(job["nextRun"], start + 60_000)
        await self.advance(59)
        self.assertEqual(self.tags(), ["i"])
        await self.advance(1)
        self.assertEqual(self.tags(), ["i", "i"])
        for _ in range(3):
            await self.advance(60)
        self.assertEqual(len(self.tags()), 5)
        job = self.jobs()["tick"]
        self.assertEqual(job["nextRun"], start + 300_000)
        self.assertEqual(job["lastRun"], {"ts": start + 240_000, "status": "success"})
        self.assertEqual(len(job["recentRuns"]), 5)

    async def test_daily_and_cron_expression_jobs_fire_on_time(self) -> None:
        await self.deploy(
            crons_module(
                'crons.daily("daily", "messages:tick", {"tag": "d"}, hour_utc=8, minute_utc=30)',
                'crons.cron("cron", "0 12 * * 1,5", "messages:tick", {"tag": "c"})',
            )
        )
        await self.start_service()
        jobs = self.jobs()
        self.assertEqual(jobs["daily"]["nextRun"], ms(2023, 3, 1, 8, 30))
        self.assertEqual(jobs["cron"]["nextRun"], ms(2023, 3, 3, 12))
        self.assertIsNone(jobs["daily"]["lastRun"])
        # Just before 1 March 08:30 nothing has run; just after, the daily job has.
        await self.advance((ms(2023, 3, 1, 8, 30) - FEB_28) / 1000 - 1)
        self.assertEqual(self.tags(), [])
        await self.advance(1)
        self.assertEqual(self.tags(), ["d"])
        self.assertEqual(self.jobs()["daily"]["nextRun"], ms(2023, 3, 2, 8, 30))
        # On to Friday 3 March 12:00: two more daily runs, then the cron job.
        for _ in range(2):
            await self.advance(24 * 3600)
        self.assertEqual(self.tags(), ["d", "d", "d"])
        await self.advance((ms(2023, 3, 3, 12) - ms(2023, 3, 3, 8, 30)) / 1000)
        self.assertEqual(self.tags(), ["d", "d", "d", "c"])
        jobs = self.jobs()
        self.assertEqual(jobs["cron"]["lastRun"], {"ts": ms(2023, 3, 3, 12), "status": "success"})
        self.assertEqual(jobs["cron"]["nextRun"], ms(2023, 3, 6, 12))

    async def test_a_failing_run_is_recorded_and_the_job_goes_on(self) -> None:
        await self.deploy(crons_module('crons.interval("fail", "messages:fail", seconds=10)'))
        await self.start_service()
        await self.advance(0)
        job = self.jobs()["fail"]
        self.assertEqual(job["lastRun"]["status"], "failed")
        self.assertIn("the cron job failed on purpose", job["lastRun"]["error"])
        self.assertNotIn("Traceback", job["lastRun"]["error"])
        self.assertEqual(job["nextRun"], FEB_28 + 10_000)
        self.assertEqual(self.tags(), [])  # the failed mutation's write was not committed
        await self.advance(10)
        self.assertEqual([r["status"] for r in self.jobs()["fail"]["recentRuns"]], ["failed"] * 2)

    async def test_public_targets_run_as_the_system(self) -> None:
        await self.deploy(crons_module('crons.interval("p", "messages:public_tick", hours=1)'))
        await self.start_service()
        await self.advance(0)
        self.assertEqual(self.tags(), ["public"])

    async def test_an_overlapping_run_is_skipped_and_logged(self) -> None:
        await self.deploy(
            crons_module('crons.interval("slow", "messages:slow", {"seconds": 0.3}, seconds=10)')
        )
        await self.start_service()
        warnings: list[str] = []
        from twisted.logger import formatEvent, globalLogPublisher

        def observer(event) -> None:
            if event.get("log_namespace") == "convex.crons":
                warnings.append(formatEvent(event))

        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        # The run starts at once; while it goes on, 35 s of test time pass.
        self.clock.advance(0)
        self.assertEqual(self.service.running_jobs, {"slow"})
        for _ in range(7):
            self.clock.advance(5)
        await self.service.wait_idle()
        # One run only; the three occurrences due meanwhile were skipped.
        self.assertEqual(self.tags(), ["slow"])
        job = self.jobs()["slow"]
        self.assertEqual(job["state"], "pending")
        self.assertEqual(job["nextRun"], FEB_28 + 40_000)
        self.assertEqual(
            [(r["ts"], r["status"]) for r in job["recentRuns"]],
            [(FEB_28, "success"), (FEB_28 + 10_000, "skipped")],
        )
        self.assertEqual(job["lastRun"]["status"], "skipped")
        self.assertIn("Skipped 3 run(s)", job["lastRun"]["error"])
        self.assertTrue(any("slow" in w and "Skipped 3 run(s)" in w for w in warnings), warnings)
        await self.advance(5)
        self.assertEqual(self.tags(), ["slow", "slow"])

    async def test_a_mutation_commits_with_its_job_state_or_not_at_all(self) -> None:
        await self.deploy(crons_module('crons.interval("s", "messages:slow_tick", seconds=10)'))
        await self.start_service()
        self.clock.advance(0)
        self.assertEqual(self.service.running_jobs, {"s"})
        # The job is moved (as a redeploy would) while its mutation runs: the
        # mutation's commit conflicts, and on its re-run it finds the job changed
        # and is dropped, writes and all.
        job = self.rows(TABLE)[0]
        await self.db.run(
            lambda tx: tx.patch(job["_id"], {"nextTs": FEB_28 + 5000}), privileged=True
        )
        await self.service.wait_idle()
        self.assertEqual(self.tags(), [])
        job = self.jobs()["s"]
        self.assertEqual((job["nextRun"], job["lastRun"]), (FEB_28 + 5000, None))
        await self.advance(5)
        self.assertEqual(self.tags(), ["slow tick"])
        job = self.jobs()["s"]
        self.assertEqual(job["lastRun"], {"ts": FEB_28 + 5000, "status": "success"})
        self.assertEqual(job["nextRun"], FEB_28 + 15000)

    async def test_a_run_that_cannot_be_recorded_is_retried_later(self) -> None:
        from convex_backend.database.errors import DatabaseError
        from convex_backend.scheduler import crons as module

        await self.deploy(
            crons_module('crons.interval("tick", "messages:tick", {"tag": "t"}, seconds=10)')
        )
        await self.start_service()
        attempts: list[float] = []
        real_finish = module._finish

        def failing_finish(tx, job, status, error, now):
            attempts.append(now)
            if len(attempts) == 1:
                raise DatabaseError("the disk is full", "DiskFull")
            return real_finish(tx, job, status, error, now)

        self.patch(module, "_finish", failing_finish)
        await self.advance(0)
        # Neither the mutation nor the job's state was written; no retry at once.
        self.assertEqual((self.tags(), len(attempts)), ([], 1))
        self.assertIsNone(self.jobs()["tick"]["lastRun"])
        await self.advance(module.RETRY_SECONDS - 1)
        self.assertEqual(len(attempts), 1)
        await self.advance(1)
        self.assertEqual(self.tags(), ["t"])
        job = self.jobs()["tick"]
        # The occurrences of the minute it waited were skipped; the one due now is next.
        self.assertEqual(
            [(r["ts"], r["status"]) for r in job["recentRuns"]],
            [(FEB_28, "success"), (FEB_28 + 10_000, "skipped")],
        )
        self.assertEqual(job["nextRun"], FEB_28 + 60_000)

    async def test_missed_runs_after_downtime_are_skipped(self) -> None:
        await self.deploy(
            crons_module('crons.interval("tick", "messages:tick", {"tag": "i"}, minutes=1)')
        )
        await self.start_service()
        await self.advance(0)
        await self.service.stopService()
        self.assertEqual(self.tags(), ["i"])
        # Down for ten and a half minutes: the overdue run happens once, at start,
        # and the other occurrences that went by are skipped, not caught up.
        await self.start_service(at=self.start_at + 630)
        self.assertEqual(self.jobs()["tick"]["nextRun"], FEB_28 + 60_000)
        await self.advance(0)
        self.assertEqual(self.tags(), ["i", "i"])
        job = self.jobs()["tick"]
        self.assertEqual(job["nextRun"], FEB_28 + 660_000)
        self.assertEqual(
            [(r["ts"], r["status"]) for r in job["recentRuns"]],
            [(FEB_28, "success"), (FEB_28 + 60_000, "success"), (FEB_28 + 120_000, "skipped")],
        )
        self.assertIn("Skipped 9 run(s)", job["lastRun"]["error"])
        await self.advance(30)
        self.assertEqual(len(self.tags()), 3)

    async def test_an_action_interrupted_by_a_restart_is_recorded_as_failed(self) -> None:
        await self.deploy(
            crons_module('crons.interval("slow", "messages:slow", {"seconds": 0}, hours=1)')
        )
        await self.start_service()
        await self.service.stopService()
        # As if the daemon died after marking the action in progress.
        job = self.rows(TABLE)[0]
        await self.db.run(lambda tx: tx.patch(job["_id"], {"state": "inProgress"}), privileged=True)
        await self.start_service(at=self.start_at + 5)
        self.assertEqual(self.tags(), [])
        job = self.jobs()["slow"]
        self.assertEqual(job["state"], "pending")
        self.assertEqual(job["lastRun"]["status"], "failed")
        self.assertIn("Transient error", job["lastRun"]["error"])
        self.assertEqual(job["nextRun"], FEB_28 + 3600_000)
        # At most once: the interrupted action is not run again.
        await self.advance(60)
        self.assertEqual(self.tags(), [])

    async def test_state_survives_a_restart(self) -> None:
        await self.deploy(
            crons_module(
                'crons.daily("d", "messages:tick", {"tag": "d"}, hour_utc=9, minute_utc=0)'
            )
        )
        await self.start_service()
        await self.advance(3600)
        self.assertEqual(self.tags(), ["d"])
        before = self.jobs()["d"]
        await self.service.stopService()
        await self.start_service(at=self.start_at + 7200)
        self.assertEqual(self.jobs()["d"], before)
        await self.advance(0)
        self.assertEqual(self.tags(), ["d"])


class DeployTests(ServiceTestCase):
    async def test_a_redeploy_changes_the_set_of_jobs(self) -> None:
        await self.deploy(
            crons_module(
                'crons.interval("a", "messages:tick", {"tag": "a"}, seconds=60)',
                'crons.hourly("b", "messages:tick", {"tag": "b"}, minute_utc=0)',
                'crons.hourly("c", "messages:tick", {"tag": "c"}, minute_utc=50)',
            )
        )
        await self.start_service()
        await self.advance(0)
        self.assertEqual(self.tags(), ["a"])
        jobs = self.jobs()
        self.assertEqual(sorted(jobs), ["a", "b", "c"])
        self.assertEqual(jobs["b"]["nextRun"], ms(2023, 2, 28, 9))
        await self.advance(30)
        # "a" every 2 minutes now, "b" removed, "c" with new args only, "d" new.
        await self.deploy(
            crons_module(
                'crons.interval("a", "messages:tick", {"tag": "a"}, minutes=2)',
                'crons.hourly("c", "messages:tick", {"tag": "c2"}, minute_utc=50)',
                'crons.cron("d", "40 8 * * *", "messages:tick", {"tag": "d"})',
            )
        )
        jobs = self.jobs()
        self.assertEqual(sorted(jobs), ["a", "c", "d"])
        self.assertEqual(jobs["a"]["schedule"], {"minutes": 2, "type": "interval"})
        # The new interval counts from the previous run.
        self.assertEqual(jobs["a"]["nextRun"], FEB_28 + 120_000)
        self.assertEqual(jobs["a"]["lastRun"], {"ts": FEB_28, "status": "success"})
        self.assertEqual(jobs["c"]["args"], [{"tag": "c2"}])
        self.assertEqual(jobs["c"]["nextRun"], ms(2023, 2, 28, 8, 50))
        self.assertEqual(jobs["d"]["nextRun"], ms(2023, 2, 28, 8, 40))
        # The timer follows: by 08:40 "a" (due 08:37) and "d" ran, "b" never does.
        await self.advance(270)
        self.assertEqual(sorted(self.tags()), ["a", "a", "d"])
        await self.advance(600)
        self.assertEqual(sorted(self.tags()), ["a", "a", "a", "c2", "d"])
        # Deploying the same crons again changes nothing.
        before = self.jobs()
        await self.deploy(
            crons_module(
                'crons.interval("a", "messages:tick", {"tag": "a"}, minutes=2)',
                'crons.hourly("c", "messages:tick", {"tag": "c2"}, minute_utc=50)',
                'crons.cron("d", "40 8 * * *", "messages:tick", {"tag": "d"})',
            )
        )
        self.assertEqual(self.jobs(), before)
        # And a deployment without crons.py removes them all.
        await self.deploy(None)
        self.assertEqual(self.jobs(), {})
        self.assertEqual(self.rows(TABLE), [])
        await self.advance(3600)
        self.assertEqual(len(self.tags()), 5)

    async def test_a_bad_crons_py_is_refused_at_deploy(self) -> None:
        good = crons_module('crons.interval("a", "messages:tick", {"tag": "a"}, seconds=60)')
        await self.deploy(good)
        await self.start_service()
        cases = [
            (
                'crons.interval("x", "messages:nope", seconds=5)',
                "InvalidCrons",
                "messages:nope is not a function of this deployment",
            ),
            (
                'crons.cron("x", "0 25 * * *", "messages:tick", {"tag": "t"})',
                "InvalidCrons",
                "invalid cron expression '0 25 * * *'",
            ),
            (
                'crons.interval("x", "messages:count", seconds=5)',
                "InvalidCrons",
                "is a query",
            ),
            (
                'crons.interval("x", "messages:tick", {"tag": 5}, seconds=5)',
                "InvalidCrons",
                "invalid arguments for messages:tick",
            ),
            (
                'crons.interval("x", "messages:tick", seconds=5)\n'
                'crons.interval("x", "messages:tick", seconds=6)',
                "ModuleLoadError",
                "Cron identifier registered twice: x",
            ),
            ('crons.hourly("x", "messages:tick", minute_utc=99)', "ModuleLoadError", "Minute"),
        ]
        for line, code, message in cases:
            with self.assertRaises(DeployError, msg=line) as e:
                await self.deploy(crons_module(line))
            self.assertEqual(e.exception.code, code, e.exception.message)
            self.assertIn("crons.py", e.exception.message)
            self.assertIn(message, e.exception.message)
        with self.assertRaises(DeployError) as e:
            await self.deploy("crons = 5\n")
        self.assertIn("crons = Crons()", e.exception.message)
        # The deployment and its jobs are unchanged.
        self.assertEqual(sorted(self.jobs()), ["a"])
        self.assertIn("crons", self.deployer.analysis)

    async def test_registered_functions_as_targets(self) -> None:
        source = (
            "from convex_backend.server import Crons\n"
            "from convex_backend.server import internal_mutation\n"
            "from . import messages\n\n"
            "crons = Crons()\n"
            'crons.interval("ref", messages.tick, {"tag": "ref"}, seconds=30)\n'
            'crons.interval("local", local, seconds=30)\n'
        )
        source = source.replace(
            "crons = Crons()\n",
            "@internal_mutation\ndef local(ctx):\n"
            '    ctx.db.insert("ticks", {"tag": "local"})\n\n\ncrons = Crons()\n',
        )
        await self.deploy(source)
        await self.start_service()
        jobs = self.jobs()
        self.assertEqual(jobs["ref"]["functionName"], "messages:tick")
        self.assertEqual(jobs["local"]["functionName"], "crons:local")
        await self.advance(0)
        self.assertEqual(sorted(self.tags()), ["local", "ref"])
