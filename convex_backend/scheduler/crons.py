"""Cron jobs on the host: their state in ``_cron_jobs`` and running them on time.

The semantics are Convex's (``reference/server-syscalls.md`` §7 and the real
backend's ``cron_jobs``); the specs and their run times are
``convex_backend.scheduler.cron_specs``.

* Every deploy re-reads ``crons.py`` (:meth:`CronService.on_deploy`,
  :func:`reconcile`): new jobs are created, changed ones updated, removed ones
  deleted.
* One run of a job at a time: the next due time is computed when a run ends,
  and occurrences that went by meanwhile (a long run, the daemon being down)
  are skipped, not caught up, with a logged warning. A job overdue at startup
  runs once.
* A mutation runs exactly once per occurrence: the job's new state is written
  in the mutation's own transaction. An action runs at most once: the job is
  marked ``inProgress`` first, and one still marked so at startup (the daemon
  died during it) is recorded as failed.

The state of each job (a row of ``_cron_jobs``: spec, ``nextTs``, ``prevTs``,
``state``, ``lastRun``, ``recentRuns``) survives restarts. :class:`CronService`
keeps one reactor timer, set for the earliest due job; its clock is injectable
so tests drive it with :class:`twisted.internet.task.Clock`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from convex_backend.database.errors import DatabaseError
from convex_backend.functions.service import AfterFunctionsService, settle_within
from convex_backend.scheduler.cron_specs import (
    MAX_COUNTED_SKIPS,
    CronSpec,
    CronSpecError,
    parse_cron_spec,
    parse_cron_specs,
)

log = Logger(namespace="convex.crons")

TABLE = "_cron_jobs"
#: Runs kept per job in ``recentRuns`` (Convex keeps five cron job logs).
MAX_RECENT_RUNS = 5
#: How long stopping waits for runs in progress before leaving them.
STOP_GRACE_SECONDS = 5.0
#: When a run could not record its outcome, the job is retried this much later.
RETRY_SECONDS = 60.0


# -- the _cron_jobs table --------------------------------------------------------------


@dataclass
class CronJob:
    """A row of ``_cron_jobs``."""

    id: str
    spec: CronSpec
    next_ts: float
    prev_ts: float | None
    state: str
    last_run: dict | None
    recent_runs: list

    @classmethod
    def from_document(cls, doc: dict) -> CronJob:
        spec_json = json.loads(doc["spec"])
        return cls(
            id=doc["_id"],
            spec=parse_cron_spec(doc["name"], spec_json),
            next_ts=doc["nextTs"],
            prev_ts=doc.get("prevTs"),
            state=doc.get("state") or "pending",
            last_run=doc.get("lastRun"),
            recent_runs=list(doc.get("recentRuns") or []),
        )

    def to_api(self) -> dict[str, Any]:
        """The ``GET /api/cron_jobs`` entry."""
        return {
            "name": self.spec.identifier,
            "functionName": self.spec.function,
            "args": self.spec.args,
            "schedule": self.spec.schedule,
            "nextRun": self.next_ts,
            "lastRun": self.last_run,
            "recentRuns": self.recent_runs,
            "state": self.state,
        }


def _document(spec: CronSpec, next_ts: float, prev_ts: float | None, **rest: Any) -> dict:
    return {
        "name": spec.identifier,
        "spec": spec.key(),
        "nextTs": float(next_ts),
        "prevTs": None if prev_ts is None else float(prev_ts),
        "state": rest.get("state", "pending"),
        "lastRun": rest.get("lastRun"),
        "recentRuns": rest.get("recentRuns", []),
    }


def _scan(tx) -> list[dict]:
    query = {
        "source": {"type": "FullTableScan", "tableName": TABLE, "order": "asc"},
        "operators": [],
    }
    return tx.query(query, system=True).collect()


def load_jobs(tx) -> dict[str, CronJob]:
    """Every job, by name (a row that no longer parses is skipped and logged)."""
    jobs = {}
    for doc in _scan(tx):
        try:
            job = CronJob.from_document(doc)
        except (CronSpecError, KeyError, TypeError, ValueError) as e:
            log.error("Ignoring an unreadable cron job row {id}: {e}", id=doc.get("_id"), e=e)
            continue
        jobs[job.spec.identifier] = job
    return jobs


def reconcile(tx, specs: Mapping[str, CronSpec], now: float) -> dict[str, list[str]]:
    """Make ``_cron_jobs`` hold exactly ``specs`` (in a privileged transaction).

    A new job gets its first run time; a job whose schedule changed gets the
    next time after its previous run under the new schedule; a job whose
    target or arguments changed keeps its time; a job no longer in ``specs`` is
    deleted. Returns the names ``{"created", "updated", "deleted"}``.
    """
    changes: dict[str, list[str]] = {"created": [], "updated": [], "deleted": []}
    existing: dict[str, dict] = {}
    for doc in _scan(tx):
        if doc.get("name") in existing or doc.get("name") not in specs:
            tx.delete(doc["_id"])
            changes["deleted"].append(str(doc.get("name")))
        else:
            existing[doc["name"]] = doc
    for name, spec in specs.items():
        doc = existing.get(name)
        if doc is None:
            tx.insert(TABLE, _document(spec, spec.first_run(now), None))
            changes["created"].append(name)
            continue
        if doc.get("spec") == spec.key():
            continue
        try:
            old_schedule = json.dumps(
                json.loads(doc["spec"])["schedule"], sort_keys=True, separators=(",", ":")
            )
        except (KeyError, TypeError, ValueError):
            old_schedule = None
        next_ts = doc.get("nextTs")
        state = doc.get("state") or "pending"
        if old_schedule != spec.schedule_key() or not isinstance(next_ts, float):
            prev = doc.get("prevTs")
            next_ts = spec.next_after(prev) if isinstance(prev, float) else spec.first_run(now)
            # A run in progress belongs to the old schedule and will not be recorded.
            state = "pending"
        tx.replace(
            doc["_id"],
            _document(
                spec,
                next_ts,
                doc.get("prevTs"),
                state=state,
                lastRun=doc.get("lastRun"),
                recentRuns=doc.get("recentRuns") or [],
            ),
        )
        changes["updated"].append(name)
    return changes


class _Superseded(Exception):
    """The job changed (a redeploy) while it ran: the run is not recorded."""


def _finish(tx, job: CronJob, status: str, error: str | None, now: float) -> dict | None:
    """Record the end of ``job``'s run scheduled at ``job.next_ts`` and move it to
    its next due time. Returns the skip record (for logging), or ``None``; raises
    :class:`_Superseded` if the job's occurrence changed meanwhile."""
    doc = tx.get(job.id, system=True)
    if doc is None or doc.get("nextTs") != job.next_ts:
        raise _Superseded()
    current = CronJob.from_document(doc)
    run: dict[str, Any] = {"ts": job.next_ts, "status": status}
    if error is not None:
        run["error"] = error[:1000]
    runs = [*current.recent_runs, run]
    next_ts, skipped, first_skipped = current.spec.advance(job.next_ts, now)
    skip = None
    if skipped:
        count = f"{skipped}+" if skipped >= MAX_COUNTED_SKIPS else str(skipped)
        skip = {
            "ts": first_skipped,
            "status": "skipped",
            "error": f"Skipped {count} run(s) that were due while the previous run was "
            "in progress or the daemon was not running",
        }
        runs.append(skip)
    runs = runs[-MAX_RECENT_RUNS:]
    tx.replace(
        job.id,
        _document(
            current.spec, next_ts, job.next_ts, state="pending", lastRun=runs[-1], recentRuns=runs
        ),
    )
    return skip


# -- the service -------------------------------------------------------------------------


class CronService(AfterFunctionsService):
    """Runs the deployment's cron jobs on time, one reactor timer for the next due."""

    name = "crons"
    description = "Cron jobs"

    def __init__(self, deployment, ready: defer.Deferred | None = None, clock=None) -> None:
        if clock is None:
            from twisted.internet import reactor as clock  # noqa: PLC0415
        self.deployment = deployment
        self.clock = clock
        super().__init__(ready)
        self.jobs: dict[str, CronJob] = {}
        self._timer = None
        self._running: dict[str, defer.Deferred] = {}
        #: name -> (next_ts, when) of each job's latest run start.
        self._attempted: dict[str, tuple[float, float]] = {}
        self._started = False
        self._lock = defer.DeferredLock()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Sync the table with the deployed specs, settle runs the daemon died
        in, and arm the timer. Needs the deployment's database, runner and deployer."""
        deployer = self.deployment.deployer
        listeners = getattr(deployer, "listeners", None)
        if listeners is not None and self.on_deploy not in listeners:
            listeners.append(self.on_deploy)
        self._started = True
        try:
            specs = parse_cron_specs((deployer.analysis or {}).get("crons"))
        except CronSpecError as e:
            log.error("The stored cron jobs are invalid, none will run: {e}", e=e)
            specs = {}
        await self._sync(specs)
        await self._settle_interrupted()
        await self._refresh()
        log.info("Cron jobs ready: {n}", n=len(self.jobs))

    def stopService(self):
        super().stopService()
        self._started = False
        self._cancel_timer()
        listeners = getattr(self.deployment.deployer, "listeners", None)
        if listeners is not None and self.on_deploy in listeners:
            listeners.remove(self.on_deploy)
        # Runs in progress get a moment to record themselves; an action left
        # behind is recorded as failed at the next start.
        return settle_within(self.clock, STOP_GRACE_SECONDS, list(self._running.values()))

    # -- deploys ----------------------------------------------------------------------------

    def on_deploy(self, analysis: dict) -> defer.Deferred:
        """The Deployer's listener: re-read the crons of the new deployment."""
        return defer.ensureDeferred(self._on_deploy(analysis))

    async def _on_deploy(self, analysis: dict) -> None:
        if not self._started:
            return
        specs = parse_cron_specs((analysis or {}).get("crons"))
        changes = await self._sync(specs)
        if any(changes.values()):
            log.info(
                "Cron jobs updated: {created} created, {updated} updated, {deleted} deleted",
                **{k: ", ".join(v) or "none" for k, v in changes.items()},
            )
        await self._refresh()

    async def _sync(self, specs: Mapping[str, CronSpec]) -> dict[str, list[str]]:
        database = self.deployment.database
        now = self.now()
        await self._lock.acquire()
        try:
            changes, _ts = await database.run(lambda tx: reconcile(tx, specs, now), privileged=True)
        finally:
            self._lock.release()
        return changes

    async def _settle_interrupted(self) -> None:
        """Jobs still ``inProgress`` at startup were actions the daemon died in."""
        database = self.deployment.database
        tx = database.begin(privileged=True)
        try:
            interrupted = [j for j in load_jobs(tx).values() if j.state == "inProgress"]
        finally:
            tx.close()
        for job in interrupted:
            log.warn(
                "Cron job {name}: its action was interrupted by a restart; recorded as failed",
                name=job.spec.identifier,
            )
            await self._record(job, "failed", "Transient error while executing action")

    # -- time and the timer -----------------------------------------------------------------

    def now(self) -> float:
        return self.clock.seconds() * 1000

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    async def _refresh(self) -> None:
        """Re-read the jobs and re-arm the timer."""
        tx = self.deployment.database.begin(privileged=True)
        try:
            self.jobs = load_jobs(tx)
        finally:
            tx.close()
        self._arm()

    def _arm(self) -> None:
        self._cancel_timer()
        if not self._started:
            return
        due = [self._due(n, j) for n, j in self.jobs.items() if n not in self._running]
        if not due:
            return
        delay = max(0.0, (min(due) - self.now()) / 1000)
        self._timer = self.clock.callLater(delay, self._tick)

    def _due(self, name: str, job: CronJob) -> float:
        attempted = self._attempted.get(name)
        if attempted is not None and attempted[0] == job.next_ts:
            # A run for this very occurrence started but did not move the job
            # on (it could not record its outcome): retry later, not in a loop.
            return max(job.next_ts, attempted[1] + RETRY_SECONDS * 1000)
        return job.next_ts

    def _tick(self) -> None:
        self._timer = None
        now = self.now()
        for name, job in sorted(self.jobs.items(), key=lambda item: item[1].next_ts):
            if self._due(name, job) <= now and name not in self._running:
                self._attempted[name] = (job.next_ts, now)
                d = defer.ensureDeferred(self._run(job))
                self._running[name] = d
                d.addErrback(lambda f, n=name: log.failure("Cron job {name} crashed", f, name=n))
                d.addBoth(self._run_ended, name)
        self._arm()

    def _run_ended(self, _result: Any, name: str) -> defer.Deferred | None:
        self._running.pop(name, None)
        if not self._started:
            return None
        d = defer.ensureDeferred(self._refresh())
        d.addErrback(lambda f: log.failure("Could not reload the cron jobs", f))
        return d

    @property
    def running_jobs(self) -> frozenset[str]:
        """The names of the jobs with a run in progress."""
        return frozenset(self._running)

    def wait_idle(self) -> defer.Deferred:
        """Fires once no run is in progress (for tests and shutdown)."""
        if not self._running:
            return defer.succeed(None)
        d = defer.DeferredList(list(self._running.values()), consumeErrors=True)
        d.addCallback(lambda _: self.wait_idle())
        return d

    # -- runs -------------------------------------------------------------------------------

    async def _run(self, job: CronJob) -> None:
        from convex_backend.functions.runner import Caller, FunctionError

        runner = self.deployment.runner
        spec = job.spec
        info = runner.functions.get(spec.function)
        lateness = max(0.0, self.now() - job.next_ts)
        log.debug(
            "Running cron job {name} ({fn}), {late:.0f} ms late",
            name=spec.identifier,
            fn=spec.function,
            late=lateness,
        )
        caller = Caller(kind="system")
        if info is not None and info.udf_type == "mutation":
            skips: list = []

            def before_commit(tx, value, log_lines) -> None:
                with tx.system_writes():
                    skips.append(_finish(tx, job, "success", None, self.now()))

            try:
                await runner.call(
                    spec.function, spec.call_args, caller=caller, before_commit=before_commit
                )
            except _Superseded:
                log.info("Cron job {name} changed while running; run dropped", name=spec.identifier)
                return
            except DatabaseError as e:
                # The job's bookkeeping could not be written, so neither was the
                # mutation: the job is retried later (see _due).
                log.error(
                    "Could not record the run of cron job {name}: {e}",
                    name=spec.identifier,
                    e=e.message,
                )
                return
            except FunctionError as e:
                self._log_failure(spec, e.message)
                await self._record(job, "failed", e.message)
                return
            self._log_skip(spec, skips[-1] if skips else None)
            return
        # Actions (and anything else) run at most once: mark the job first.
        if info is not None and info.udf_type == "action":
            marked = await self._mark_in_progress(job)
            if not marked:
                return
        try:
            await runner.call(spec.function, spec.call_args, caller=caller)
        except FunctionError as e:
            self._log_failure(spec, e.message)
            await self._record(job, "failed", e.message)
            return
        await self._record(job, "success", None)

    async def _mark_in_progress(self, job: CronJob) -> bool:
        def mark(tx) -> bool:
            doc = tx.get(job.id, system=True)
            if doc is None or doc.get("nextTs") != job.next_ts:
                return False
            tx.replace(
                job.id,
                {**{k: v for k, v in doc.items() if not k.startswith("_")}, "state": "inProgress"},
            )
            return True

        marked, _ts = await self.deployment.database.run(mark, privileged=True)
        return marked

    async def _record(self, job: CronJob, status: str, error: str | None) -> None:
        """Record a run's outcome in its own transaction (retried on conflicts)."""
        try:
            skip, _ts = await self.deployment.database.run(
                lambda tx: _finish(tx, job, status, error, self.now()), privileged=True
            )
        except _Superseded:
            return
        except DatabaseError as e:
            log.error(
                "Could not record the run of cron job {name}: {e}",
                name=job.spec.identifier,
                e=e.message,
            )
            return
        self._log_skip(job.spec, skip)

    def _log_failure(self, spec: CronSpec, message: str) -> None:
        log.warn(
            "Cron job {name} ({fn}) failed: {error}",
            name=spec.identifier,
            fn=spec.function,
            error=message,
        )

    def _log_skip(self, spec: CronSpec, skip: dict | None) -> None:
        if skip is not None:
            log.warn("Cron job {name}: {detail}", name=spec.identifier, detail=skip["error"])
