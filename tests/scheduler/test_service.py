"""The scheduler service on a :class:`task.Clock`, against a real database and
real worker pools: due-time order, one timer, bounded parallelism, exactly-once
mutations, at-most-once actions, restarts, retention."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import defer, reactor, task
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from convex_backend.config import ConfigError, load_config
from convex_backend.functions.runner import Caller
from convex_backend.scheduler import jobs
from convex_backend.scheduler.service import CLEANUP_MIN_INTERVAL, SchedulerService
from convex_backend.values import encode_id
from convex_backend.values.ids import new_internal_id
from tests.database.fixtures import open_database
from tests.functions.fixtures import deploy_app
from tests.helpers import make_config, make_deployment
from tests.scheduler.scheduler_app import TASKS

ADMIN = Caller("admin")


class SchedulerServiceTests(TestCase):
    timeout = 120

    async def setUp(self) -> None:
        self.db = await open_database(self)
        self.runner, self.pools, self.deployer = await deploy_app(
            self, self.db, {"tasks.py": TASKS}
        )
        tmp = Path(self.mktemp()).absolute()
        self.deployment = make_deployment(tmp)
        self.deployment.database = self.db
        self.deployment.runner = self.runner
        self.clock = task.Clock()

    async def start(self, **options) -> SchedulerService:
        service = SchedulerService(self.deployment, clock=self.clock, **options)
        service.startService()
        await service.start()
        self.addCleanup(self.stop, service)
        return service

    async def stop(self, service: SchedulerService) -> None:
        await service.wait_idle()
        await service.stopService()

    async def call(self, path: str, args: dict | None = None):
        return (await self.runner.call(path, args or {}, caller=ADMIN)).value

    async def until(self, predicate, what: str, timeout: float = 30.0):
        """Wait (on the real reactor: workers and commits are real) for ``predicate()``."""
        for _ in range(int(timeout / 0.01)):
            value = predicate()
            if value:
                return value
            await deferLater(reactor, 0.01, lambda: None)
        self.fail(f"timed out waiting for {what}")

    def job(self, job_id: str) -> jobs.Job | None:
        doc = self.db.store.latest(job_id)
        return jobs.Job.from_document(doc) if doc is not None else None

    def state(self, job_id: str) -> str | None:
        job = self.job(job_id)
        return job.state if job is not None else None

    def metric(self, name: str, **labels) -> float:
        value = self.deployment.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    async def insert(self, name: str, args: dict, at: float, **state) -> str:
        def write(tx) -> str:
            job_id = jobs.insert_job(tx, name, args, at)
            if state:
                with tx.system_writes():
                    tx.patch(job_id, state)
            return job_id

        job_id, _ts = await self.db.run(write, privileged=True)
        return job_id

    def timers(self) -> list[float]:
        return sorted(call.getTime() for call in self.clock.getDelayedCalls())

    # -- tests ----------------------------------------------------------------------

    async def test_due_time_order_with_one_timer(self) -> None:
        service = await self.start(parallelism=1)
        ids = {}
        for label, at in (("30s", 30_000.0), ("10s", 10_000.0), ("20s", 20_000.0)):
            ids[label] = await self.call("tasks:schedule_record_at", {"at": at, "label": label})
        # The commits reach the scheduler through the write log: one timer, for the first.
        await self.until(lambda: service.pending_count == 3, "the jobs to be indexed")
        self.assertEqual(self.timers(), [10.0])
        self.clock.advance(9.9)
        self.assertEqual(await self.call("tasks:runs"), [])
        self.clock.advance(5.1)  # t = 15 s
        await self.until(lambda: self.state(ids["10s"]) == "success", "the first job")
        await service.wait_idle()
        self.assertEqual(await self.call("tasks:runs"), ["10s"])
        # The next job's timer, and the retention cleanup's (clamped to an hour ahead).
        self.assertEqual(self.timers(), [20.0, 15.0 + 3600])
        self.clock.advance(20)  # t = 35 s: both due, run one at a time in due order
        await self.until(lambda: self.state(ids["30s"]) == "success", "the last job")
        self.assertEqual(await self.call("tasks:runs"), ["10s", "20s", "30s"])
        for job_id in ids.values():
            job = self.job(job_id)
            self.assertEqual(job.state, "success")
            self.assertEqual(job.completed_time, 35_000.0 if job_id != ids["10s"] else 15_000.0)
        # Lags: 5 s, 15 s and 5 s.
        self.assertEqual(self.metric("convex_scheduler_lag_seconds_count"), 3)
        self.assertEqual(self.metric("convex_scheduler_lag_seconds_sum"), 25.0)
        self.assertEqual(self.metric("convex_scheduler_jobs_completed_total", outcome="success"), 3)
        self.assertEqual(service.pending_count, 0)

    async def test_a_job_due_now_runs_without_the_clock_moving(self) -> None:
        await self.start()
        job_id = await self.call("tasks:schedule_bump_at", {"at": 0.0, "name": "now"})
        await self.until(lambda: self.state(job_id) == "success", "the job")
        self.assertEqual(await self.call("tasks:count", {"name": "now"}), 1)

    async def test_bounded_parallelism(self) -> None:
        service = await self.start(parallelism=2)
        names = [f"g{i}" for i in range(5)]
        ids = [
            await self.call(
                "tasks:raw",
                {
                    "op": "1.0/schedule",
                    "payload": {"name": "tasks:gated", "ts": 1.0, "args": {"name": name}},
                },
            )
            for name in names
        ]
        await self.until(lambda: service.pending_count == 5, "the jobs to be indexed")
        self.clock.advance(1)
        self.assertEqual(len(service.running_jobs), 2)
        self.assertEqual(service.pending_count, 3)

        async def started() -> int:
            return sum([await self.call("tasks:count", {"name": f"{n}:started"}) for n in names])

        for _ in range(3000):
            if await started() == 2:
                break
            await deferLater(reactor, 0.01, lambda: None)
        in_progress = [i for i in ids if self.state(i) == "inProgress"]
        self.assertEqual(len(in_progress), 2)
        await deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(await started(), 2)  # the others wait for a slot
        await self.call("tasks:bump", {"name": "gate"})
        peak = 0
        for _ in range(3000):
            peak = max(peak, len(service.running_jobs))
            running = sum(1 for i in ids if self.state(i) == "inProgress")
            self.assertLessEqual(running, 2)
            if all(self.state(i) == "success" for i in ids):
                break
            await deferLater(reactor, 0.01, lambda: None)
        self.assertTrue(all(self.state(i) == "success" for i in ids))
        self.assertLessEqual(peak, 2)
        for name in names:
            self.assertEqual(await self.call("tasks:count", {"name": f"{name}:done"}), 1)

    async def test_a_cancel_during_the_run_wins(self) -> None:
        service = await self.start()
        job_id = await self.insert("tasks:slow_bump", {"name": "slow", "seconds": 0.4}, 1000.0)
        await self.until(lambda: service.pending_count == 1, "the job to be indexed")
        self.clock.advance(1)
        self.assertEqual(service.running_jobs, {job_id})
        self.assertIsNotNone(await service.cancel(job_id))
        await service.wait_idle()
        # The mutation's commit conflicted with the cancel; its retry saw the
        # job cancelled and gave up: nothing it wrote was committed.
        self.assertEqual(self.state(job_id), "canceled")
        self.assertEqual(await self.call("tasks:count", {"name": "slow"}), 0)
        self.assertEqual(
            self.metric("convex_scheduler_jobs_completed_total", outcome="canceled"), 1
        )

    async def test_a_duplicate_run_commits_once(self) -> None:
        service = await self.start()
        job_id = await self.insert("tasks:slow_bump", {"name": "dup", "seconds": 0.2}, 1e15)
        await self.until(lambda: service.pending_count == 1, "the job to be indexed")
        first = defer.ensureDeferred(service._run(job_id))
        second = defer.ensureDeferred(service._run(job_id))
        await defer.gatherResults([first, second])
        self.assertEqual(self.state(job_id), "success")
        self.assertEqual(await self.call("tasks:count", {"name": "dup"}), 1)

    async def test_failures_are_recorded(self) -> None:
        service = await self.start()
        failing = await self.insert("tasks:fail", {}, 0.0)
        bad_args = await self.insert("tasks:bump", {"name": 5.0}, 0.0)
        action = await self.insert("tasks:act", {"name": "ok"}, 0.0)
        for job_id in (failing, bad_args, action):
            await self.until(lambda j=job_id: self.job(j).finished, "the jobs to finish")
        await service.wait_idle()
        job = self.job(failing)
        self.assertEqual(job.state, "failed")
        self.assertIn("boom", job.error)
        self.assertEqual(job.completed_time, 0.0)
        self.assertIn("ArgumentValidationError", self.job(bad_args).error)
        self.assertEqual(self.state(action), "success")
        self.assertEqual(await self.call("tasks:count", {"name": "ok"}), 1)
        self.assertEqual(self.metric("convex_scheduler_jobs_completed_total", outcome="failed"), 2)

    async def test_a_mutation_cancelling_itself_fails(self) -> None:
        await self.start()
        job_id = await self.insert("tasks:cancel_self", {}, 0.0)
        await self.until(lambda: self.job(job_id).finished, "the job to finish")
        job = self.job(job_id)
        self.assertEqual(job.state, "failed")
        self.assertIn("cannot cancel itself", job.error)
        self.assertEqual(await self.call("tasks:count", {"name": "self"}), 0)

    async def test_a_target_removed_by_a_deploy_fails_clearly(self) -> None:
        service = await self.start()
        job_id = await self.call("tasks:schedule_bump_at", {"at": 5000.0, "name": "gone"})
        await self.until(lambda: service.pending_count == 1, "the job to be indexed")
        source = TASKS.replace("def bump(ctx, args)", "def bump_renamed(ctx, args)")
        await self.deployer.deploy([{"path": "tasks.py", "source": source}])
        self.clock.advance(5)
        await self.until(lambda: self.job(job_id).finished, "the job to finish")
        job = self.job(job_id)
        self.assertEqual(job.state, "failed")
        self.assertIn("tasks:bump", job.error)
        self.assertIn("no longer deployed", job.error)

    async def test_restart_settles_interrupted_actions_and_runs_pending_jobs(self) -> None:
        interrupted = await self.insert(
            "tasks:act", {"name": "lost"}, 0.0, state={"kind": jobs.IN_PROGRESS}
        )
        pending = await self.insert("tasks:act", {"name": "later"}, 0.0)
        await self.start()
        job = self.job(interrupted)
        self.assertEqual((job.state, job.error), ("failed", jobs.INTERRUPTED_ACTION_ERROR))
        self.assertEqual(job.completed_time, 0.0)
        await self.until(lambda: self.state(pending) == "success", "the pending job")
        # The interrupted action was not run again (at most once).
        self.assertEqual(await self.call("tasks:count", {"name": "lost"}), 0)
        self.assertEqual(await self.call("tasks:count", {"name": "later"}), 1)

    async def test_cancelling_a_running_action(self) -> None:
        service = await self.start()
        job_id = await self.insert("tasks:gated", {"name": "c"}, 0.0)
        await self.until(lambda: self.state(job_id) == "inProgress", "the action to start")
        self.assertIsNotNone(await service.cancel(job_id))
        self.assertEqual(self.state(job_id), "canceled")
        await self.call("tasks:bump", {"name": "gate"})
        await self.until(lambda: not service.running_jobs, "the action to finish")
        # It ran to the end, and its job stays cancelled.
        self.assertEqual(await self.call("tasks:count", {"name": "c:done"}), 1)
        self.assertEqual(self.state(job_id), "canceled")

    async def test_system_errors_of_mutations_are_retried(self) -> None:
        service = await self.start()
        job_id = await self.insert("tasks:bump", {"name": "retried"}, 2000.0)
        await self.until(lambda: service.pending_count == 1, "the job to be indexed")
        pool = self.pools["udf"]
        await pool.stopService()
        self.clock.advance(2)
        await self.until(lambda: service._retries.get(job_id), "a retry to be planned")
        await service.wait_idle()
        self.assertEqual(self.state(job_id), "pending")
        self.assertEqual(self.timers(), [2.1])
        pool.startService()
        await pool.when_ready()
        self.clock.advance(0.1)
        await self.until(lambda: self.state(job_id) == "success", "the retried job")
        self.assertEqual(await self.call("tasks:count", {"name": "retried"}), 1)

    async def test_retention_cleanup(self) -> None:
        retention = 100.0
        old = await self.insert(
            "tasks:bump",
            {"name": "a"},
            -500_000.0,
            state={"kind": "success"},
            completedTime=-200_000.0,
        )
        recent = await self.insert(
            "tasks:bump",
            {"name": "b"},
            0.0,
            state={"kind": "failed", "error": "x"},
            completedTime=0.0,
        )
        far = await self.insert("tasks:bump", {"name": "c"}, 1e13)
        service = await self.start(retention=retention)
        # One cleanup timer (due now), one job timer (clamped to an hour).
        self.assertEqual(self.timers(), [0.0, 3600.0])
        self.clock.advance(0)
        await self.until(lambda: self.job(old) is None, "the old job to be deleted")
        self.assertEqual(self.state(recent), "failed")
        # The next cleanup: when the recent job expires (never sooner than the minimum interval).
        await self.until(lambda: service._cleaning is None, "the cleanup to finish")
        self.assertEqual(self.timers(), [max(retention, CLEANUP_MIN_INTERVAL), 3600.0])
        self.clock.advance(retention - 1)
        await deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(self.state(recent), "failed")
        self.clock.advance(2)
        await self.until(lambda: self.job(recent) is None, "the recent job to be deleted")
        self.assertEqual(self.state(far), "pending")
        await self.until(lambda: service._cleaning is None, "the cleanup to finish")
        # Nothing finished is left: only the job timer remains.
        self.assertEqual(len(self.timers()), 1)

    async def test_listing_and_cancel(self) -> None:
        service = await self.start()
        first = await self.insert("tasks:bump", {"name": "a"}, 1e13)
        second = await self.insert("tasks:bump", {"name": "b"}, 2e13)
        done = await self.insert("tasks:bump", {"name": "c"}, 5.0, state={"kind": "success"})
        await self.until(lambda: len(service.list_jobs(10)) == 3, "the jobs to be indexed")
        self.assertEqual([j.id for j in service.list_jobs(10)], [second, first, done])
        self.assertEqual([j.id for j in service.list_jobs(1)], [second])
        before = await service.cancel(first)
        self.assertEqual(before.state, "pending")
        self.assertEqual(service.list_jobs(10)[1].state, "canceled")
        await self.until(lambda: service.pending_count == 1, "the cancel to be indexed")
        bogus = encode_id(jobs.TABLE_NUMBER, new_internal_id())
        self.assertIsNone(await service.cancel(bogus))


class SchedulerConfigTests(SynchronousTestCase):
    def test_flags_and_environment(self) -> None:
        tmp = self.mktemp()
        config = make_config(tmp)
        self.assertEqual((config.scheduler_parallelism, config.scheduler_retention), (10, 604800.0))
        config = make_config(tmp, scheduler_parallelism="3", scheduler_retention="60")
        self.assertEqual((config.scheduler_parallelism, config.scheduler_retention), (3, 60.0))
        for option, value in (
            ("scheduler_parallelism", "0"),
            ("scheduler_parallelism", "many"),
            ("scheduler_retention", "-1"),
            ("scheduler_retention", "inf"),
        ):
            with self.assertRaises(ConfigError) as caught:
                make_config(tmp, **{option: value})
            self.assertIn("--" + option.replace("_", "-"), str(caught.exception))
        environ = {"CONVEX_SCHEDULER_PARALLELISM": "4", "CONVEX_SCHEDULER_RETENTION": "30"}
        config = load_config({"data-dir": tmp}, environ=environ)
        self.assertEqual((config.scheduler_parallelism, config.scheduler_retention), (4, 30.0))
