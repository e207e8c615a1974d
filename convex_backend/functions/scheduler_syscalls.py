"""The host side of ``ctx.scheduler``: the four scheduler syscalls.

``reference/server-syscalls.md`` §3.3:

* ``1.0/schedule`` ``{name, ts, args, version}`` and ``1.0/cancel_job``
  ``{id}``, from mutations: the job row is written (or cancelled) inside the
  mutation's own transaction, so it commits, conflicts and rolls back with
  it (also with a nested ``run_mutation`` that fails: the runner's savepoint
  takes the row away with the callee's other writes);
* ``1.0/actions/schedule`` ``{requestId, name, ts, args, version}`` and
  ``1.0/actions/cancel_job`` ``{requestId, id}``, from actions: each is a
  small privileged transaction of its own, committed before the answer.

``ts`` is in seconds since the epoch (the job's ``scheduledTime`` is in ms).
Checked at schedule time, as Convex does: the target exists and is a
mutation or an action (public or internal: the scheduler may run both), the
args are an object of Convex values that fits in the job's row, and one
transaction schedules at most 1000 functions with 16 MiB of args in total.
Function handles and component references are refused with a clear error.

:data:`TRANSACTION_OPS` and :data:`ACTION_OPS` are merged into the runner's
syscall tables (``runner.py``).
"""

from __future__ import annotations

import math
import weakref
from typing import Any

from convex_backend.database.errors import DatabaseError
from convex_backend.functions.pool import HostSyscallError
from convex_backend.scheduler import jobs
from convex_backend.values import ConvexValueError, from_json

#: Per transaction: the jobs it scheduled (id -> args size), to enforce the
#: per-transaction limits. Weak, so a finished transaction takes it along.
_SCHEDULED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _target(runner, args: dict) -> str:
    """The canonical name of the function to schedule, checked against the deployment."""
    from convex_backend.functions.runner import FunctionError, canonicalize_path

    if "functionHandle" in args:
        raise HostSyscallError("Scheduling by function handle is not supported by this backend")
    if "reference" in args:
        raise HostSyscallError("Scheduling component functions is not supported by this backend")
    name = args.get("name")
    try:
        path = canonicalize_path(name)
    except FunctionError as e:
        raise HostSyscallError(f"Invalid scheduled function name: {e.message}")
    info = runner.functions.get(path)
    if info is None:
        raise HostSyscallError(f"Attempted to schedule function at nonexistent path: {path}")
    if info.udf_type not in ("mutation", "action"):
        raise HostSyscallError(
            f"{path} is a {info.udf_type}: only mutations and actions can be scheduled"
        )
    return path


def _scheduled_time(args: dict) -> float:
    ts = args.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
        raise HostSyscallError("The scheduled time `ts` must be a finite number of seconds")
    if ts < 0:
        raise HostSyscallError("The scheduled time `ts` must not be before 1970")
    return float(ts) * 1000


def _call_args(args: dict) -> tuple[dict, int]:
    try:
        value = from_json(args.get("args", {}))
        size = jobs.check_args(value)
    except ConvexValueError as e:
        raise HostSyscallError(f"Invalid scheduled function arguments: {e}")
    except jobs.JobError as e:
        raise HostSyscallError(e.message)
    return value, size


def _request(runner, args: dict) -> tuple[str, dict, int, float]:
    if not isinstance(args, dict):
        raise HostSyscallError("Invalid arguments for the scheduler")
    name = _target(runner, args)
    call_args, size = _call_args(args)
    return name, call_args, size, _scheduled_time(args)


def _check_transaction_limits(tx, size: int) -> dict[str, int]:
    scheduled = _SCHEDULED.setdefault(tx, {})
    # Jobs a failed nested mutation scheduled were rolled back with its writes.
    for job_id in [j for j in scheduled if j not in tx.writes]:
        del scheduled[job_id]
    if len(scheduled) >= jobs.MAX_JOBS_PER_TRANSACTION:
        raise HostSyscallError(
            "Too many functions scheduled by this mutation "
            f"(limit: {jobs.MAX_JOBS_PER_TRANSACTION})"
        )
    total = sum(scheduled.values()) + size
    if total > jobs.MAX_ARGS_BYTES_PER_TRANSACTION:
        raise HostSyscallError(
            "Too many bytes of arguments to scheduled functions in this mutation "
            f"({total} bytes, limit {jobs.MAX_ARGS_BYTES_PER_TRANSACTION})"
        )
    return scheduled


def _now(runner) -> float:
    return runner.reactor.seconds() * 1000


# -- mutations: inside the mutation's transaction --------------------------------------


def schedule(handler, args: dict) -> Any:
    """``1.0/schedule``: a pending job row in the mutation's transaction."""
    handler._writable("scheduler.run_after/run_at")
    name, call_args, size, when = _request(handler.runner, args)
    scheduled = _check_transaction_limits(handler.tx, size)
    try:
        job_id = jobs.insert_job(handler.tx, name, call_args, when)
    except jobs.JobError as e:
        raise HostSyscallError(e.message)
    scheduled[job_id] = size
    return job_id


def cancel_job(handler, args: dict) -> Any:
    """``1.0/cancel_job``: cancel the job in the mutation's transaction."""
    handler._writable("scheduler.cancel")
    try:
        job_id = jobs.check_job_id(args.get("id"))
    except jobs.JobError as e:
        raise HostSyscallError(e.message)
    jobs.cancel_job(handler.tx, job_id, _now(handler.runner))
    return None


# -- actions: a transaction of their own -----------------------------------------------


async def _commit(runner, fn) -> Any:
    try:
        result, _ts = await runner.db.run(fn, privileged=True)
    except jobs.JobError as e:
        raise HostSyscallError(e.message)
    except DatabaseError as e:
        raise HostSyscallError(e.message)
    return result


def action_schedule(handler, args: dict) -> Any:
    """``1.0/actions/schedule``: commit a pending job now; answers its id."""
    name, call_args, _size, when = _request(handler.runner, args)
    return _commit(handler.runner, lambda tx: jobs.insert_job(tx, name, call_args, when))


def action_cancel_job(handler, args: dict) -> Any:
    """``1.0/actions/cancel_job``: cancel the job now."""
    if not isinstance(args, dict):
        raise HostSyscallError("Invalid arguments for scheduler.cancel")
    try:
        job_id = jobs.check_job_id(args.get("id"))
    except jobs.JobError as e:
        raise HostSyscallError(e.message)
    runner = handler.runner

    async def cancel() -> None:
        await _commit(runner, lambda tx: jobs.cancel_job(tx, job_id, _now(runner)))
        return None

    return cancel()


TRANSACTION_OPS = {
    "1.0/schedule": schedule,
    "1.0/cancel_job": cancel_job,
}
ACTION_OPS = {
    "1.0/actions/schedule": action_schedule,
    "1.0/actions/cancel_job": action_cancel_job,
}

__all__ = [
    "ACTION_OPS",
    "TRANSACTION_OPS",
    "action_cancel_job",
    "action_schedule",
    "cancel_job",
    "schedule",
]
