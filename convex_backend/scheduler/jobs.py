"""Scheduled jobs as rows of ``_scheduled_functions``, and every change to them.

A job is a document of the system table ``_scheduled_functions``, shaped as
Convex's (``reference/server-syscalls.md`` §8)::

    {"name": "messages:send", "args": [{...}], "scheduledTime": 1.7e12,
     "completedTime": 1.7e12,            # once finished
     "state": {"kind": "pending" | "inProgress" | "success" | "failed" | "canceled",
               "error": "..."}}          # failed only

User code reads these rows through ``ctx.db.system``; only the backend writes
them. Every function here takes a transaction and changes the row inside it,
so the caller decides what commits atomically with what: a mutation's
scheduling and a scheduled mutation's ``success`` go into that mutation's own
transaction (hence ``Transaction.system_writes``, which lets a user transaction write
this one system table for a moment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convex_backend.database.errors import DatabaseError
from convex_backend.database.tables import SYSTEM_TABLES
from convex_backend.values import ConvexValueError, decode_id, to_json
from convex_backend.values.size import MAX_DOCUMENT_SIZE, value_size

TABLE = "_scheduled_functions"
TABLE_NUMBER = SYSTEM_TABLES[TABLE]

PENDING = "pending"
IN_PROGRESS = "inProgress"
SUCCESS = "success"
FAILED = "failed"
CANCELED = "canceled"
STATES = (PENDING, IN_PROGRESS, SUCCESS, FAILED, CANCELED)
FINISHED = frozenset({SUCCESS, FAILED, CANCELED})

#: Convex's limits per transaction: functions scheduled, and their args in total.
MAX_JOBS_PER_TRANSACTION = 1000
MAX_ARGS_BYTES_PER_TRANSACTION = 16 * 1024 * 1024
#: One job's args live in its row, which must fit in a document.
MAX_ARGS_BYTES = MAX_DOCUMENT_SIZE - 16 * 1024
#: Longest error message kept in a failed job's state.
MAX_ERROR_CHARS = 8 * 1024

#: The error of an action the daemon died during (Convex's wording).
INTERRUPTED_ACTION_ERROR = "Transient error while executing action"


class JobError(Exception):
    """A scheduling request that cannot be honoured; ``message`` is for the caller."""

    def __init__(self, message: str, code: str = "InvalidScheduledFunction") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class Job:
    """One row of ``_scheduled_functions``, read."""

    id: str
    name: str
    args: list
    scheduled_time: float
    completed_time: float | None
    state: str
    error: str | None = None

    @classmethod
    def from_document(cls, doc: dict) -> Job:
        state = doc.get("state") or {}
        completed = doc.get("completedTime")
        return cls(
            id=doc["_id"],
            name=str(doc.get("name", "")),
            args=list(doc.get("args") or [{}]),
            scheduled_time=float(doc.get("scheduledTime", 0.0)),
            completed_time=float(completed) if completed is not None else None,
            state=str(state.get("kind", PENDING)),
            error=state.get("error"),
        )

    @property
    def call_args(self) -> dict:
        return self.args[0] if self.args and isinstance(self.args[0], dict) else {}

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def to_api(self) -> dict[str, Any]:
        """The admin API's shape of the job (``args`` in Convex-JSON)."""
        state: dict[str, Any] = {"kind": self.state}
        if self.error is not None:
            state["error"] = self.error
        return {
            "id": self.id,
            "name": self.name,
            "args": to_json(self.args),
            "scheduledTime": self.scheduled_time,
            "completedTime": self.completed_time,
            "state": state,
        }


def is_job_id(job_id: object) -> bool:
    """Whether ``job_id`` is an id of ``_scheduled_functions`` (no I/O)."""
    if not isinstance(job_id, str):
        return False
    try:
        return decode_id(job_id).table_number == TABLE_NUMBER
    except (ConvexValueError, TypeError, ValueError):
        return False


def check_job_id(job_id: object) -> str:
    if not is_job_id(job_id):
        shown = repr(job_id)[:80]
        raise JobError(
            f'Invalid scheduled function id {shown}: expected an Id<"{TABLE}">',
            "InvalidScheduledFunctionId",
        )
    return job_id  # type: ignore[return-value]


def check_args(args: Any) -> int:
    """The size of a job's args object; :class:`JobError` if it cannot be one."""
    if not isinstance(args, dict):
        raise JobError(
            f"The arguments of a scheduled function must be an object, got {type(args).__name__}",
            "InvalidScheduledFunctionArgs",
        )
    try:
        size = value_size(args)
    except ConvexValueError as e:
        raise JobError(f"Invalid scheduled function arguments: {e}", "InvalidScheduledFunctionArgs")
    if size > MAX_ARGS_BYTES:
        raise JobError(
            f"The arguments of a scheduled function are too large ({size} bytes, "
            f"limit {MAX_ARGS_BYTES})",
            "ScheduledFunctionArgsTooLarge",
        )
    return size


def _get(tx, job_id: str) -> dict | None:
    with tx.system_writes():
        return tx.get(job_id, table=TABLE, system=True)


def read_job(tx, job_id: str) -> Job | None:
    doc = _get(tx, job_id)
    return Job.from_document(doc) if doc is not None else None


def insert_job(tx, name: str, args: dict, scheduled_time: float) -> str:
    """Write a new pending job; returns its id."""
    doc = {
        "name": name,
        "args": [args],
        "scheduledTime": float(scheduled_time),
        "state": {"kind": PENDING},
    }
    try:
        with tx.system_writes():
            return tx.insert(TABLE, doc)
    except DatabaseError as e:
        if e.code == "InvalidDocument":
            raise JobError(
                f"Invalid scheduled function arguments: {e.message}",
                "InvalidScheduledFunctionArgs",
            )
        raise


def _set_state(tx, job_id: str, kind: str, now: float | None, error: str | None) -> None:
    state: dict[str, Any] = {"kind": kind}
    if error is not None:
        state["error"] = error[:MAX_ERROR_CHARS]
    change: dict[str, Any] = {"state": state}
    if now is not None:
        change["completedTime"] = float(now)
    with tx.system_writes():
        tx.patch(job_id, change, table=TABLE)


def cancel_job(tx, job_id: str, now: float) -> bool:
    """Cancel a pending or running job; returns whether anything changed.

    A finished (or no longer existing) job is left alone: cancelling is
    idempotent, and a job may have finished a moment before.
    """
    job = read_job(tx, job_id)
    if job is None or job.finished:
        return False
    _set_state(tx, job_id, CANCELED, now, None)
    return True


def start_job(tx, job_id: str) -> Job | None:
    """Mark a pending job ``inProgress`` (before an action runs); the job, or
    None if it is no longer pending (cancelled, or run already)."""
    job = read_job(tx, job_id)
    if job is None or job.state != PENDING:
        return None
    _set_state(tx, job_id, IN_PROGRESS, None, None)
    return job


def finish_job(
    tx, job_id: str, kind: str, now: float, error: str | None = None, *, expect: str = PENDING
) -> bool:
    """Record a job's outcome if it is still in state ``expect``; returns
    whether it was (a cancelled action keeps its ``canceled``)."""
    job = read_job(tx, job_id)
    if job is None or job.state != expect:
        return False
    _set_state(tx, job_id, kind, now, error)
    return True


def delete_job(tx, job_id: str) -> bool:
    with tx.system_writes():
        if tx.get(job_id, table=TABLE, system=True) is None:
            return False
        tx.delete(job_id, table=TABLE)
    return True


def load_jobs(database) -> list[Job]:
    """Every job at the latest snapshot, read from the store directly (no
    transaction: startup must not trip the per-transaction read limits)."""
    from convex_backend.database.tables import BY_ID

    table = database.store.tables_by_name.get(TABLE)
    if table is None:
        return []
    ts = database.published_ts
    jobs = []
    for _key, doc_id in table.indexes[BY_ID].scan(b"", None, ts):
        doc, _size = database.store.get(doc_id, ts)
        if doc is not None:
            jobs.append(Job.from_document(doc))
    return jobs


__all__ = [
    "CANCELED",
    "FAILED",
    "FINISHED",
    "INTERRUPTED_ACTION_ERROR",
    "IN_PROGRESS",
    "Job",
    "JobError",
    "MAX_ARGS_BYTES",
    "MAX_ARGS_BYTES_PER_TRANSACTION",
    "MAX_JOBS_PER_TRANSACTION",
    "PENDING",
    "STATES",
    "SUCCESS",
    "TABLE",
    "TABLE_NUMBER",
    "cancel_job",
    "check_args",
    "check_job_id",
    "delete_job",
    "finish_job",
    "insert_job",
    "is_job_id",
    "read_job",
    "load_jobs",
    "start_job",
]
