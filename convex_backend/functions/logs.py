"""Function logs: one structured entry per top-level execution, in a bounded buffer.

The runner hands every finished execution to :meth:`FunctionLogs.sink`; it
becomes a ``Completion`` entry shaped as the real backend streams them to the
``npx convex logs`` CLI and the dashboard (see ``docs/logs-and-metrics.md``):
kind, udfType, identifier, log lines (structured, with a level), timing, error
message, request and execution ids, caller and identity type.

Each entry gets a cursor: a float of milliseconds since the epoch, strictly
increasing even within one millisecond, so that "the entries after cursor c" is
exact. :meth:`FunctionLogs.wait_for` is the long poll: it answers at once when
entries after the cursor exist, else as soon as one is recorded (a Deferred per
waiter, no polling), else with nothing after a timeout. Cancelling its Deferred
(the HTTP client went away) forgets the waiter.

The buffer keeps the newest entries within a count and a byte budget. It is a
service so that stopping the daemon answers every waiting poll at once instead
of holding up the HTTP drain.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import Gauge
from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime

from convex_backend.functions.runner import Caller, CallResult, FunctionError

DEFAULT_CAPACITY = 10_000
#: Log lines can be long (4 KiB each, 256 per execution): bound their total too.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: Fixed overhead counted per entry (the dict and its small fields).
_ENTRY_BYTES = 600

LEVELS = ("LOG", "INFO", "WARN", "ERROR", "DEBUG")
UDF_TYPES = {
    "query": "Query",
    "mutation": "Mutation",
    "action": "Action",
    "httpAction": "HttpAction",
}

#: (entries, cursor of the last entry looked at)
Batch = tuple[list[dict], float]
Match = Callable[[dict], bool]


class LogRecord:
    """One execution: its cursor, approximate size and what its entry is made of.

    The wire shape (:attr:`entry`) is built when first read, not on the hot path
    of every execution, and kept.
    """

    __slots__ = (
        "_entry",
        "cached",
        "caller",
        "cursor",
        "error",
        "identifier",
        "identity_type",
        "lines",
        "request_id",
        "retries",
        "seconds",
        "size",
        "timestamp",
        "udf_type",
    )

    def __init__(
        self,
        cursor: float,
        timestamp: float,
        identifier: str,
        udf_type: str,
        caller: Caller,
        request_id: str,
        seconds: float,
        error: str | None,
        lines: list[str],
        retries: int,
        cached: bool,
    ) -> None:
        self.cursor = cursor
        self.timestamp = timestamp
        self.identifier = identifier
        self.udf_type = udf_type
        self.caller = caller.kind
        self.identity_type = identity_type(caller)
        self.request_id = request_id
        self.seconds = seconds
        self.error = error
        self.lines = lines
        self.retries = retries
        self.cached = cached
        size = _ENTRY_BYTES + len(identifier) + len(error or "")
        for line in lines:
            size += len(line) if isinstance(line, str) else 100
        self.size = size
        self._entry: dict | None = None

    @property
    def entry(self) -> dict:
        """The ``Completion`` entry, as the CLI and the dashboard read it."""
        if self._entry is None:
            now = self.timestamp
            line_ms = now * 1000.0
            self._entry = {
                "kind": "Completion",
                "udfType": UDF_TYPES.get(self.udf_type, self.udf_type),
                "identifier": self.identifier,
                "componentPath": None,
                "logLines": [structured_line(line, line_ms) for line in self.lines],
                "timestamp": now,
                "executionTimestamp": now - self.seconds,
                "cachedResult": self.cached,
                "executionTime": self.seconds,
                "userExecutionTime": None,
                "error": self.error,
                "success": None,
                "requestId": self.request_id,
                "executionId": os.urandom(16).hex(),
                "caller": self.caller,
                "parentExecutionId": None,
                "identityType": self.identity_type,
                "environment": "python",
                "returnBytes": None,
                "occInfo": {"retryCount": self.retries} if self.retries else None,
                "willRetry": False,
                "usageStats": None,
            }
            # The raw lines are in the entry now.
            self.lines = []
        return self._entry


class _Waiter:
    __slots__ = ("cursor", "deferred", "limit", "match", "timer")

    def __init__(self, cursor: float, match: Match | None, limit: int | None) -> None:
        self.cursor = cursor
        self.match = match
        self.limit = limit
        self.deferred: defer.Deferred = defer.Deferred()
        self.timer: Any = None


class FunctionLogs(Service):
    """The bounded buffer of execution entries and its long-poll waiters."""

    name = "function logs"

    def __init__(
        self,
        clock: IReactorTime,
        *,
        capacity: int = DEFAULT_CAPACITY,
        max_bytes: int = DEFAULT_MAX_BYTES,
        registry: Any = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if capacity < 1:
            raise ValueError("the function log buffer needs room for at least one entry")
        self.clock = clock
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.wall = wall
        self.records: deque[LogRecord] = deque()
        self.bytes = 0
        self._last_cursor = 0.0
        self._waiters: list[_Waiter] = []
        #: Once stopped, polls are answered at once with what there is.
        self.closed = False
        if registry is not None:
            Gauge(
                "convex_function_log_entries",
                "Execution entries held in the function log buffer.",
                registry=registry,
            ).set_function(lambda: len(self.records))

    def __len__(self) -> int:
        return len(self.records)

    @property
    def waiting(self) -> int:
        """Long polls waiting for an entry."""
        return len(self._waiters)

    def startService(self) -> None:
        super().startService()
        self.closed = False

    def stopService(self) -> None:
        super().stopService()
        self.closed = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            self._answer(waiter)

    # -- recording -------------------------------------------------------------------

    def sink(
        self,
        path: str,
        udf_type: str,
        caller: Caller,
        request_id: str,
        seconds: float,
        outcome: Any,
    ) -> None:
        """The runner's ``log_sink``: one finished top-level execution.

        ``outcome`` is the :class:`CallResult`, the :class:`FunctionError`, or
        any other exception the call ended with (shown as a generic error: its
        text may be a host detail).
        """
        retries = 0
        if isinstance(outcome, CallResult):
            error = None
            lines = (
                outcome.own_log_lines if outcome.own_log_lines is not None else outcome.log_lines
            )
            retries = outcome.retries
        elif isinstance(outcome, FunctionError):
            error = outcome.message
            lines = outcome.log_lines
        else:
            error = "Server Error"
            lines = []
        self.record(
            path,
            udf_type,
            caller=caller,
            request_id=request_id,
            seconds=seconds,
            error=error,
            log_lines=lines,
            retries=retries,
        )

    def record(
        self,
        identifier: str,
        udf_type: str,
        *,
        caller: Caller | None = None,
        request_id: str = "",
        seconds: float = 0.0,
        error: str | None = None,
        log_lines: Iterable[str] = (),
        retries: int = 0,
        cached: bool = False,
    ) -> LogRecord:
        """Add one execution (finished now, after ``seconds``); returns its record."""
        now = self.wall()
        cursor = now * 1000.0
        if cursor <= self._last_cursor:
            # Same millisecond (or a clock step back): still strictly after the last.
            cursor = self._last_cursor + 0.001
        self._last_cursor = cursor
        record = LogRecord(
            cursor,
            now,
            identifier,
            udf_type,
            caller or Caller(),
            request_id,
            seconds,
            error,
            list(log_lines),
            retries,
            cached,
        )
        self.records.append(record)
        self.bytes += record.size
        while len(self.records) > self.capacity or (
            self.bytes > self.max_bytes and len(self.records) > 1
        ):
            self.bytes -= self.records.popleft().size
        if self._waiters:
            self._wake(record)
        return record

    # -- reading ---------------------------------------------------------------------

    def read(self, cursor: float, *, match: Match | None = None, limit: int | None = None) -> Batch:
        """The entries after ``cursor`` (that ``match``), oldest first, and the new cursor.

        The new cursor is that of the newest entry looked at, matching or not, so
        that a filtered poll moves past what it skipped; with nothing newer it is
        ``cursor`` itself. When more than ``limit`` entries match, a first poll
        (``cursor`` 0: history) gets the newest ``limit``, a later one the oldest
        ``limit`` (the next poll gets the rest at once, so a tail loses nothing).
        """
        newer: list[LogRecord] = []
        for record in reversed(self.records):
            if record.cursor <= cursor:
                break
            newer.append(record)
        if not newer:
            return [], cursor
        newer.reverse()
        new_cursor = newer[-1].cursor
        matching = newer if match is None else [r for r in newer if match(r.entry)]
        if limit is not None and len(matching) > limit:
            if cursor <= 0:
                matching = matching[-limit:]
            else:
                matching = matching[:limit]
                new_cursor = matching[-1].cursor
        return [r.entry for r in matching], new_cursor

    def wait_for(
        self,
        cursor: float,
        timeout: float,
        *,
        match: Match | None = None,
        limit: int | None = None,
    ) -> defer.Deferred:
        """Fire with :meth:`read`'s batch once it has entries, or after ``timeout``.

        Answers at once when entries after ``cursor`` exist (or the service has
        stopped). Cancelling the Deferred forgets the waiter and its timer.
        """
        batch = self.read(cursor, match=match, limit=limit)
        if batch[0] or self.closed or timeout <= 0:
            return defer.succeed(batch)
        waiter = _Waiter(cursor, match, limit)
        waiter.deferred = defer.Deferred(lambda _d: self._forget(waiter))
        waiter.timer = self.clock.callLater(timeout, self._timed_out, waiter)
        self._waiters.append(waiter)
        return waiter.deferred

    def _wake(self, record: LogRecord) -> None:
        ready = [
            w
            for w in self._waiters
            if record.cursor > w.cursor and (w.match is None or w.match(record.entry))
        ]
        if not ready:
            return
        self._waiters = [w for w in self._waiters if w not in ready]
        for waiter in ready:
            self._answer(waiter)

    def _timed_out(self, waiter: _Waiter) -> None:
        waiter.timer = None
        if waiter in self._waiters:
            self._waiters.remove(waiter)
            self._answer(waiter)

    def _answer(self, waiter: _Waiter) -> None:
        if waiter.timer is not None and waiter.timer.active():
            waiter.timer.cancel()
        waiter.timer = None
        waiter.deferred.callback(self.read(waiter.cursor, match=waiter.match, limit=waiter.limit))

    def _forget(self, waiter: _Waiter) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        if waiter.timer is not None and waiter.timer.active():
            waiter.timer.cancel()
        waiter.timer = None


def structured_line(raw: Any, timestamp_ms: float) -> dict:
    """A worker's ``"[LEVEL] text"`` line as the structured line the CLI prints."""
    text = raw if isinstance(raw, str) else str(raw)
    level = "LOG"
    if text.startswith("["):
        name, sep, rest = text[1:].partition("] ")
        if sep and name in LEVELS:
            level, text = name, rest
    return {
        "messages": [text],
        "level": level,
        "isTruncated": False,
        "timestamp": timestamp_ms,
        "systemMetadata": None,
    }


def identity_type(caller: Caller) -> str:
    """Who the function ran as: None, User, ActingUser, DeploymentAdmin or System."""
    if caller.kind == "system":
        return "System"
    if caller.kind == "admin":
        return "ActingUser" if caller.identity is not None else "DeploymentAdmin"
    return "User" if caller.identity is not None else "None"


def make_filter(
    functions: Iterable[str] | None = None,
    status: str | None = None,
    level: str | None = None,
) -> Match | None:
    """A predicate on entries for the optional filters (None when there are none)."""
    wanted = frozenset(functions) if functions else None
    if wanted is None and status is None and level is None:
        return None

    def match(entry: dict) -> bool:
        if wanted is not None and entry["identifier"] not in wanted:
            return False
        if status is not None and (entry["error"] is None) != (status == "success"):
            return False
        if level is not None and not any(line["level"] == level for line in entry["logLines"]):
            return False
        return True

    return match


__all__ = [
    "DEFAULT_CAPACITY",
    "FunctionLogs",
    "LEVELS",
    "identity_type",
    "make_filter",
    "structured_line",
]
