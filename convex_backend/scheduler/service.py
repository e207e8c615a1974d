"""The scheduler service: runs due jobs of ``_scheduled_functions`` on time.

:class:`SchedulerService` starts once the function runtime is up. It keeps
an in-memory index of the jobs (pending ones by due time, finished ones by
completion time, all of them by scheduled time for the admin listing),
loaded at start and then kept up to date from the database's write log, so
a job scheduled by any mutation or action is seen as soon as it commits,
without polling the table. One reactor timer is set for the earliest due
job; at most ``parallelism`` jobs run at once.

The guarantees are Convex's:

* A scheduled **mutation runs exactly once**: the job's ``success`` is
  written by the runner's ``before_commit`` hook into the mutation's own
  transaction, after checking that the job is still pending. A concurrent
  cancel (or a second run) therefore conflicts through OCC, and the retried
  mutation finds the job no longer pending and gives up without committing.
  A mutation that throws is recorded ``failed`` (user errors are not
  retried); system errors (an overloaded pool, a crashed worker, an
  unavailable database, repeated conflicts) are retried with backoff.
* A scheduled **action runs at most once**: the job is marked
  ``inProgress`` in a transaction of its own *before* the action starts,
  and ``success``/``failed`` after. A job still ``inProgress`` at startup
  belonged to an action the daemon died during: it is recorded as failed,
  never run again.
* Cancelling a pending job means it never runs; a running action finishes
  but its job stays ``canceled``.
* Finished jobs are deleted once older than the retention period (seven
  days by default), in batches, from a timer set for the next expiry.

The clock is injectable (:class:`twisted.internet.task.Clock` in tests);
database callbacks run on the database's own reactor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from sortedcontainers import SortedList
from twisted.internet import defer
from twisted.logger import Logger

from convex_backend.database.errors import DatabaseError
from convex_backend.database.watch import TableWatcher
from convex_backend.functions.service import AfterFunctionsService, settle_within
from convex_backend.scheduler import jobs
from convex_backend.scheduler.jobs import Job

log = Logger(namespace="convex.scheduler")

DEFAULT_PARALLELISM = 10
DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600
#: Finished jobs deleted per transaction by the retention cleanup.
CLEANUP_BATCH = 256
#: The cleanup runs at most this often (seconds), so that expiring jobs are
#: deleted in batches rather than one timer each.
CLEANUP_MIN_INTERVAL = 60.0
#: The timer is never set further ahead than this (seconds); it simply re-arms.
MAX_TIMER_SECONDS = 3600.0
#: System errors of a scheduled mutation are retried this many times.
MAX_SYSTEM_RETRIES = 10
RETRY_BACKOFF_START = 0.1
RETRY_BACKOFF_MAX = 60.0
#: How long stopping waits for runs in progress before leaving them.
STOP_GRACE_SECONDS = 5.0
#: Failures that are the backend's, not the function's: retried for mutations.
SYSTEM_ERROR_CODES = frozenset(
    {
        "Overloaded",
        "WorkerCrashed",
        "WorkerProtocolError",
        "PoolStopped",
        "DatabaseUnavailable",
        "OptimisticConcurrencyControlFailure",
    }
)


SELF_CANCEL_ERROR = "Uncaught Error: A scheduled mutation cannot cancel itself"


class _NotPending(Exception):
    """The job was cancelled or run meanwhile: this run must not commit."""


class SchedulerMetrics:
    """``convex_scheduler_lag_seconds`` and the jobs completed by outcome."""

    def __init__(self, registry, pending: Callable[[], int]) -> None:
        self.lag = Histogram(
            "convex_scheduler_lag_seconds",
            "Time from a scheduled job's due time to the start of its run.",
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
        )
        self.completed = Counter(
            "convex_scheduler_jobs_completed",
            "Scheduled function runs completed, by outcome (success, failed, canceled).",
            ["outcome"],
            registry=registry,
        )
        self.pending = Gauge(
            "convex_scheduler_pending_jobs",
            "Scheduled jobs waiting for their time (or a free slot).",
            registry=registry,
        )
        self.pending.set_function(pending)


class SchedulerService(AfterFunctionsService):
    """Runs scheduled jobs; see the module docstring."""

    name = "scheduler"
    description = "The scheduler"

    def __init__(
        self,
        deployment,
        ready: defer.Deferred | None = None,
        clock=None,
        *,
        parallelism: int = DEFAULT_PARALLELISM,
        retention: float = DEFAULT_RETENTION_SECONDS,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor as clock  # noqa: PLC0415
        if parallelism < 1:
            raise ValueError("parallelism must be at least 1")
        self.deployment = deployment
        self.clock = clock
        self.parallelism = parallelism
        self.retention_ms = float(retention) * 1000
        super().__init__(ready)
        self._started = False
        # Pending jobs not running, by due time (scheduled time, or later after a retry).
        self._due: SortedList = SortedList()
        self._due_of: dict[str, float] = {}
        # Finished jobs, by completion time (for the retention cleanup).
        self._expiring: SortedList = SortedList()
        self._expiry_of: dict[str, float] = {}
        # Every job, by scheduled time (for the admin listing).
        self._by_time: SortedList = SortedList()
        self._time_of: dict[str, float] = {}
        self._running: dict[str, defer.Deferred | None] = {}
        #: job id -> (system-error retries so far, not before (ms)).
        self._retries: dict[str, tuple[int, float]] = {}
        self._timer = None
        self._ticking = False
        self._rearm = False
        self._cleanup_timer = None
        self._cleaning: defer.Deferred | None = None
        self._last_cleanup = float("-inf")
        self._watcher: TableWatcher | None = None
        self.metrics = SchedulerMetrics(deployment.metrics.registry, lambda: len(self._due_of))

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Settle the actions the daemon died during, load the jobs, watch the
        write log and arm the timers. Needs the deployment's database (and its
        runner once a job runs)."""
        await self._settle_interrupted()
        self._reload()
        self._started = True
        self._watcher = TableWatcher(self.database, jobs.TABLE, self._changed)
        self._watcher.start()
        self._arm()
        self._arm_cleanup()
        log.info(
            "Scheduler ready: {pending} pending jobs, parallelism {n}",
            pending=len(self._due_of),
            n=self.parallelism,
        )

    def stopService(self) -> defer.Deferred:
        super().stopService()
        self._started = False
        for timer in (self._timer, self._cleanup_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._timer = self._cleanup_timer = None
        if self._watcher is not None:
            self._watcher.stop()
        running = [d for d in self._running.values() if d is not None]
        if self._cleaning is not None:
            running.append(self._cleaning)
        # Runs get a moment to record their outcome; an action left behind is
        # recorded as failed at the next start.
        return settle_within(self.clock, STOP_GRACE_SECONDS, running)

    @property
    def is_ready(self) -> bool:
        """Whether the jobs are loaded and the scheduler is running them."""
        return self._started

    @property
    def database(self):
        return self.deployment.database

    def now(self) -> float:
        """The scheduler's clock, in ms since the epoch."""
        return self.clock.seconds() * 1000

    async def _settle_interrupted(self) -> None:
        """Jobs ``inProgress`` at startup were actions the daemon died during."""
        interrupted = [j.id for j in jobs.load_jobs(self.database) if j.state == jobs.IN_PROGRESS]
        for start in range(0, len(interrupted), CLEANUP_BATCH):
            batch = interrupted[start : start + CLEANUP_BATCH]
            now = self.now()

            def fail(tx, batch=batch, now=now) -> int:
                return sum(
                    jobs.finish_job(
                        tx,
                        job_id,
                        jobs.FAILED,
                        now,
                        jobs.INTERRUPTED_ACTION_ERROR,
                        expect=jobs.IN_PROGRESS,
                    )
                    for job_id in batch
                )

            failed, _ts = await self.database.run(fail, privileged=True)
            self.metrics.completed.labels(jobs.FAILED).inc(failed)
        if interrupted:
            log.warn(
                "{n} scheduled actions were interrupted by a restart; recorded as failed",
                n=len(interrupted),
            )

    # -- the index ----------------------------------------------------------------------

    def _reload(self) -> None:
        for job_id in list(self._time_of):
            self._forget(job_id)
        for job in jobs.load_jobs(self.database):
            self._index(job)

    def _forget(self, job_id: str) -> None:
        due = self._due_of.pop(job_id, None)
        if due is not None:
            self._due.discard((due, job_id))
        expiry = self._expiry_of.pop(job_id, None)
        if expiry is not None:
            self._expiring.discard((expiry, job_id))
        scheduled = self._time_of.pop(job_id, None)
        if scheduled is not None:
            self._by_time.discard((scheduled, job_id))

    def _index(self, job: Job) -> None:
        job_id = job.id
        self._time_of[job_id] = job.scheduled_time
        self._by_time.add((job.scheduled_time, job_id))
        if job.state == jobs.PENDING:
            if job_id not in self._running:
                retry = self._retries.get(job_id)
                due = max(job.scheduled_time, retry[1]) if retry else job.scheduled_time
                self._due_of[job_id] = due
                self._due.add((due, job_id))
        else:
            self._retries.pop(job_id, None)
            if job.finished:
                expiry = job.completed_time if job.completed_time is not None else self.now()
                self._expiry_of[job_id] = expiry
                self._expiring.add((expiry, job_id))

    def _update(self, job_id: str) -> None:
        """Re-read one job from the store (its latest committed version)."""
        self._forget(job_id)
        doc = self.database.store.latest(job_id)
        if doc is not None:
            self._index(Job.from_document(doc))
        else:
            self._retries.pop(job_id, None)

    def _changed(self, job_ids: list[str] | None) -> None:
        if not self._started:
            return
        if job_ids is None:
            self._reload()
        else:
            for job_id in job_ids:
                self._update(job_id)
        self._arm()
        self._arm_cleanup()

    # -- the timer ----------------------------------------------------------------------

    def _arm(self) -> None:
        if self._ticking:
            self._rearm = True
            return
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if not self._started or len(self._running) >= self.parallelism or not self._due:
            return
        delay = (self._due[0][0] - self.now()) / 1000
        if delay <= 0:
            self._tick()
        else:
            self._timer = self.clock.callLater(min(delay, MAX_TIMER_SECONDS), self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._ticking = True
        try:
            now = self.now()
            while self._started and self._due and len(self._running) < self.parallelism:
                due, job_id = self._due[0]
                if due > now:
                    break
                self._forget_due(job_id)
                self._start_run(job_id)
        finally:
            self._ticking = False
            self._rearm = False
        self._arm()

    def _forget_due(self, job_id: str) -> None:
        due = self._due_of.pop(job_id, None)
        if due is not None:
            self._due.discard((due, job_id))

    def _start_run(self, job_id: str) -> None:
        self._running[job_id] = None
        d = defer.ensureDeferred(self._run(job_id))
        if job_id in self._running:
            self._running[job_id] = d
        d.addErrback(self._run_crashed, job_id)
        d.addBoth(self._run_ended, job_id)

    def _run_crashed(self, failure: Any, job_id: str) -> None:
        # A bug or an unexpected database failure: the job stays as it is, and
        # (if still pending) is looked at again later, not in a tight loop.
        log.failure("Scheduled job {id} crashed", failure, id=job_id)
        self._back_off(job_id)

    def _run_ended(self, _result: Any, job_id: str) -> None:
        self._running.pop(job_id, None)
        if self._started:
            self._update(job_id)
            self._arm()

    @property
    def running_jobs(self) -> frozenset[str]:
        """The ids of the jobs running now."""
        return frozenset(self._running)

    @property
    def pending_count(self) -> int:
        return len(self._due_of)

    def wait_idle(self) -> defer.Deferred:
        """Fires once no job is running (for tests and shutdown)."""
        running = [d for d in self._running.values() if d is not None]
        if not running:
            return defer.succeed(None)
        d = defer.DeferredList(running, consumeErrors=True)
        d.addCallback(lambda _: self.wait_idle())
        return d

    # -- runs ---------------------------------------------------------------------------

    async def _run(self, job_id: str) -> None:
        doc = self.database.store.latest(job_id)
        if doc is None:
            return
        job = Job.from_document(doc)
        if job.state != jobs.PENDING:
            return
        self.metrics.lag.observe(max(0.0, self.now() - job.scheduled_time) / 1000)
        runner = self.deployment.runner
        info = runner.functions.get(job.name)
        if info is None or info.udf_type not in ("mutation", "action"):
            await self._record(
                job,
                jobs.FAILED,
                f"Could not find function for '{job.name}': it is no longer deployed "
                "(a deploy removed it after it was scheduled)",
            )
            return
        if info.udf_type == "mutation":
            await self._run_mutation(job)
        else:
            await self._run_action(job)

    async def _run_mutation(self, job: Job) -> None:
        from convex_backend.functions.runner import Caller, FunctionError

        def before_commit(tx, value: Any, log_lines: list) -> None:
            if not jobs.finish_job(tx, job.id, jobs.SUCCESS, self.now()):
                raise _NotPending()

        try:
            await self.deployment.runner.call(
                job.name,
                job.call_args,
                caller=Caller(kind="system"),
                expected="mutation",
                before_commit=before_commit,
            )
        except _NotPending:
            committed = self.database.store.latest(job.id)
            if committed is not None and Job.from_document(committed).state == jobs.PENDING:
                # Nobody else changed the job: the mutation cancelled it itself,
                # which would undo its own run (and leave it pending forever).
                await self._record(job, jobs.FAILED, SELF_CANCEL_ERROR)
                return
            log.debug("Scheduled job {id} was cancelled while it ran", id=job.id)
            self.metrics.completed.labels(jobs.CANCELED).inc()
            return
        except FunctionError as e:
            if e.code in SYSTEM_ERROR_CODES:
                if not self._started:
                    return  # stopping: it stays pending and runs after the restart
                if self._retry_later(job, e.message):
                    return
            log.info("Scheduled mutation {name} failed: {error}", name=job.name, error=e.message)
            await self._record(job, jobs.FAILED, e.message)
            return
        self._retries.pop(job.id, None)
        self.metrics.completed.labels(jobs.SUCCESS).inc()

    def _retry_later(self, job: Job, message: str) -> bool:
        attempts = self._retries.get(job.id, (0, 0.0))[0]
        if attempts >= MAX_SYSTEM_RETRIES:
            return False
        backoff = min(RETRY_BACKOFF_START * 2**attempts, RETRY_BACKOFF_MAX)
        self._retries[job.id] = (attempts + 1, self.now() + backoff * 1000)
        log.warn(
            "Scheduled mutation {name} hit a system error, retrying in {s:g}s: {error}",
            name=job.name,
            s=backoff,
            error=message,
        )
        return True

    async def _run_action(self, job: Job) -> None:
        from convex_backend.functions.runner import Caller, FunctionError

        ok, started = await self._transact(lambda tx: jobs.start_job(tx, job.id))
        if not ok:
            self._back_off(job.id)
            return
        if started is None:
            return  # cancelled (or run) meanwhile
        try:
            await self.deployment.runner.call(
                job.name, job.call_args, caller=Caller(kind="system"), expected="action"
            )
        except FunctionError as e:
            log.info("Scheduled action {name} failed: {error}", name=job.name, error=e.message)
            await self._record(job, jobs.FAILED, e.message, expect=jobs.IN_PROGRESS)
            return
        await self._record(job, jobs.SUCCESS, None, expect=jobs.IN_PROGRESS)

    async def _transact(self, fn: Callable[[Any], Any]) -> tuple[bool, Any]:
        """``(True, fn's result)`` once committed, ``(False, None)`` if the
        database refused (logged)."""
        try:
            result, _ts = await self.database.run(fn, privileged=True)
        except DatabaseError as e:
            log.error("Scheduler bookkeeping failed: {e}", e=e.message)
            return False, None
        return True, result

    def _back_off(self, job_id: str) -> None:
        """Bookkeeping failed: leave the job pending and look again in a while
        (never in a tight loop against a failing database)."""
        attempts = self._retries.get(job_id, (0, 0.0))[0]
        self._retries[job_id] = (attempts, self.now() + RETRY_BACKOFF_MAX * 1000 / 10)

    async def _record(
        self, job: Job, kind: str, error: str | None, *, expect: str = jobs.PENDING
    ) -> None:
        now = self.now()
        ok, recorded = await self._transact(
            lambda tx: jobs.finish_job(tx, job.id, kind, now, error, expect=expect)
        )
        if not ok:
            self._back_off(job.id)
            return
        self.metrics.completed.labels(kind if recorded else jobs.CANCELED).inc()

    # -- admin operations ---------------------------------------------------------------

    def list_jobs(self, limit: int) -> list[Job]:
        """Up to ``limit`` jobs, latest scheduled time first."""
        store = self.database.store
        listing = []
        for _scheduled, job_id in reversed(self._by_time):
            if len(listing) >= limit:
                break
            doc = store.latest(job_id)
            if doc is not None:
                listing.append(Job.from_document(doc))
        return listing

    async def cancel(self, job_id: str) -> Job | None:
        """Cancel a job (as ``ctx.scheduler.cancel`` does); the job as it was
        before, or None if there is no such job."""
        now = self.now()

        def cancel(tx) -> Job | None:
            job = jobs.read_job(tx, job_id)
            if job is not None:
                jobs.cancel_job(tx, job_id, now)
            return job

        job, _ts = await self.database.run(cancel, privileged=True)
        return job

    # -- retention ----------------------------------------------------------------------

    def _arm_cleanup(self) -> None:
        if not self._started or self._cleaning is not None or not self._expiring:
            return
        oldest = self._expiring[0][0]
        at = max((oldest + self.retention_ms) / 1000, self._last_cleanup + CLEANUP_MIN_INTERVAL)
        timer = self._cleanup_timer
        if timer is not None and timer.active():
            if timer.getTime() <= at:
                return
            timer.cancel()
        delay = min(max(0.0, at - self.clock.seconds()), MAX_TIMER_SECONDS)
        self._cleanup_timer = self.clock.callLater(delay, self._start_cleanup)

    def _start_cleanup(self) -> None:
        self._cleanup_timer = None
        if not self._started or self._cleaning is not None:
            return
        self._last_cleanup = self.clock.seconds()
        d = defer.ensureDeferred(self.cleanup())
        self._cleaning = d
        d.addErrback(lambda f: log.failure("Scheduled job cleanup failed", f))

        def done(_: Any) -> None:
            self._cleaning = None
            self._arm_cleanup()

        d.addBoth(done)

    async def cleanup(self) -> int:
        """Delete finished jobs older than the retention period; returns how many."""
        cutoff = self.now() - self.retention_ms
        expired = [job_id for expiry, job_id in self._expiring.irange(maximum=(cutoff, "\uffff"))]
        deleted = 0
        for start in range(0, len(expired), CLEANUP_BATCH):
            batch = expired[start : start + CLEANUP_BATCH]

            def delete(tx, batch=batch) -> int:
                count = 0
                for job_id in batch:
                    job = jobs.read_job(tx, job_id)
                    if job is None or not job.finished:
                        continue
                    if job.completed_time is not None and job.completed_time > cutoff:
                        continue
                    count += jobs.delete_job(tx, job_id)
                return count

            ok, count = await self._transact(delete)
            if not ok:
                break  # the next timer tries again
            deleted += count
            for job_id in batch:
                # Gone from the index now, so the next timer looks further on
                # (the write log confirms a moment later).
                expiry = self._expiry_of.pop(job_id, None)
                if expiry is not None:
                    self._expiring.discard((expiry, job_id))
        if deleted:
            log.info("Removed {n} finished scheduled jobs past their retention", n=deleted)
        return deleted


__all__ = ["SchedulerMetrics", "SchedulerService"]
