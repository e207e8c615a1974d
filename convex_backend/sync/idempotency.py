"""Idempotent mutations over the sync socket: ``(sessionId, requestId)`` → result.

After a reconnect a client re-sends every mutation it has not seen settle,
including those whose success response it already got, with the same
``sessionId`` and ``requestId``. :class:`MutationRecords` makes sure such a
mutation runs once: a re-sent one gets the original result, log lines and
commit timestamp back, and one that arrives while the original is still
running waits for it.

Records of successful mutations are kept in memory (bounded, most recent
first) and, when ``durable`` is on, also written as a row of the system table
``_session_requests`` *in the mutation's own transaction* (through the
runner's ``before_commit`` hook), so that they survive a restart: a mutation
either committed together with its record or not at all. The rows are read
back once, on first use, and rows older than the retention period are
deleted from time to time. Only successes are recorded; a failed mutation
simply runs again.

A row cannot hold its own commit timestamp (that is assigned when the
transaction commits, after the row was written), but the store knows it: it is
the timestamp of the row's document version, since a record is inserted once
and never changed. A replay after a restart therefore answers with the
original commit timestamp, exactly as one from memory does.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from convex_backend.database.errors import DatabaseError
from convex_backend.functions.runner import CallResult
from convex_backend.values import ConvexValueError, dumps, loads

log = Logger(namespace="convex.sync")

TABLE = "_session_requests"
#: A result bigger than this is only remembered in memory (rows have a size limit).
MAX_DURABLE_BYTES = 256 * 1024
RETENTION_SECONDS = 24 * 3600.0
PRUNE_INTERVAL_SECONDS = 3600.0
PRUNE_BATCH = 500

Hook = Callable[[Any, Any, list[str]], None]


@dataclass
class MutationRecord:
    value: Any
    log_lines: list[str]
    ts: int


class MutationRecords:
    def __init__(
        self,
        database: Any,
        reactor: Any,
        *,
        max_entries: int = 10_000,
        durable: bool = True,
        retention: float = RETENTION_SECONDS,
    ) -> None:
        self.db = database
        self.reactor = reactor
        self.max_entries = max_entries
        self.durable = durable
        self.retention = retention
        self._records: OrderedDict[tuple[str, int], MutationRecord] = OrderedDict()
        self._inflight: dict[tuple[str, int], list[defer.Deferred]] = {}
        self._loaded = not durable
        self._last_prune: float | None = None
        self._pruning = False
        #: How many re-sent mutations were answered from a record (for tests and logs).
        self.replays = 0

    def lookup(self, session_id: str, request_id: int) -> MutationRecord | None:
        self._ensure_loaded()
        return self._records.get((session_id, request_id))

    async def execute(
        self,
        session_id: str | None,
        request_id: int,
        call: Callable[[Hook | None], Awaitable[CallResult]],
    ) -> CallResult:
        """Run ``call(hook)`` once per ``(session_id, request_id)``; replays otherwise.

        ``hook`` is the runner's ``before_commit`` hook that writes the durable
        record (None when records are not durable or there is no session id).
        Without a session id (the client sent no ``Connect``) there is no
        idempotency, as with the real backend.
        """
        if session_id is None:
            return await call(None)
        key = (session_id, request_id)
        self._ensure_loaded()
        self._maybe_prune()
        while True:
            record = self._records.get(key)
            if record is not None:
                self._records.move_to_end(key)
                self.replays += 1
                return CallResult(record.value, list(record.log_lines), record.ts)
            waiters = self._inflight.get(key)
            if waiters is None:
                break
            # The original is still running (its connection may be gone): wait,
            # then answer from its record, or run again if it failed.
            d: defer.Deferred = defer.Deferred()
            waiters.append(d)
            await d
        self._inflight[key] = []
        try:
            result = await call(self._hook(session_id, request_id) if self.durable else None)
            self._remember(key, MutationRecord(result.value, list(result.log_lines), result.ts))
            return result
        finally:
            for waiter in self._inflight.pop(key):
                waiter.callback(None)

    def _remember(self, key: tuple[str, int], record: MutationRecord) -> None:
        self._records[key] = record
        self._records.move_to_end(key)
        while len(self._records) > self.max_entries:
            self._records.popitem(last=False)

    # -- durable records ------------------------------------------------------------

    def _hook(self, session_id: str, request_id: int) -> Hook:
        def write_record(tx: Any, value: Any, log_lines: list[str]) -> None:
            try:
                result = dumps(value)
            except ConvexValueError:
                return
            if len(result) + sum(len(line) for line in log_lines) > MAX_DURABLE_BYTES:
                return
            row = {
                "sessionId": session_id,
                "requestId": float(request_id),
                "result": result,
                "logLines": list(log_lines),
            }
            # The record is the backend's bookkeeping, not the user's write:
            # system tables are writable only by privileged transactions.
            privileged, tx.privileged = tx.privileged, True
            try:
                tx.insert(TABLE, row)
            except DatabaseError as e:
                log.warn("Could not record mutation {id} durably: {e}", id=request_id, e=e)
            finally:
                tx.privileged = privileged

        return write_record

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        try:
            rows = _scan(self.db)
        except Exception:
            log.failure("Could not read the mutation records in {table}", table=TABLE)
            return
        for row, ts in rows[-self.max_entries :]:
            try:
                key = (str(row["sessionId"]), int(row["requestId"]))
                record = MutationRecord(loads(row["result"]), list(row.get("logLines") or []), ts)
            except (KeyError, TypeError, ValueError, ConvexValueError):
                continue
            self._records.setdefault(key, record)

    def _maybe_prune(self) -> None:
        if not self.durable or self._pruning:
            return
        now = self.reactor.seconds()
        if self._last_prune is not None and now - self._last_prune < PRUNE_INTERVAL_SECONDS:
            return
        self._last_prune = now
        self._pruning = True
        d = defer.ensureDeferred(self._prune(now))
        d.addErrback(lambda f: log.failure("Pruning {table} failed", f, table=TABLE))
        d.addBoth(lambda _: setattr(self, "_pruning", False))

    async def _prune(self, now: float) -> None:
        cutoff_ms = (now - self.retention) * 1000.0
        while True:

            def delete_old(tx: Any) -> int:
                old = []
                stream = tx.query(_scan_query(), system=True)
                for row in stream:
                    if row["_creationTime"] >= cutoff_ms or len(old) >= PRUNE_BATCH:
                        break
                    old.append(row["_id"])
                stream.close()
                for doc_id in old:
                    tx.delete(doc_id, table=TABLE)
                return len(old)

            if self.db.store.tables_by_name.get(TABLE) is None:
                return
            deleted, _ts = await self.db.run(delete_old, privileged=True)
            if deleted < PRUNE_BATCH:
                return


def _scan_query() -> dict:
    # by_creation_time order, so the oldest rows come first.
    return {
        "source": {
            "type": "IndexRange",
            "indexName": f"{TABLE}.by_creation_time",
            "range": [],
            "order": "asc",
        },
        "operators": [],
    }


def _scan(database: Any) -> list[tuple[dict, int]]:
    """Every record row with its commit timestamp, oldest first."""
    if database.store.tables_by_name.get(TABLE) is None:
        return []
    tx = database.begin(privileged=True)
    try:
        rows = tx.query(_scan_query(), system=True).collect()
    finally:
        tx.close()
    return [(row, _commit_ts(database, row["_id"], tx.begin_ts)) for row in rows]


def _commit_ts(database: Any, doc_id: str, snapshot_ts: int) -> int:
    """When the record ``doc_id`` (visible at ``snapshot_ts``) was committed: the
    timestamp of its version there. Records are never updated, so that is the
    insert, made in the recorded mutation's own transaction."""
    for ts, doc, _size in reversed(database.store.documents.get(doc_id) or ()):
        if ts <= snapshot_ts and doc is not None:
            return ts
    # Not reachable for a row the snapshot just returned; any ts at which the
    # mutation's effects are visible would still do.
    return snapshot_ts


__all__ = ["MutationRecord", "MutationRecords", "TABLE"]
