"""The database engine: snapshots, optimistic commits, group commit, the write log.

:class:`Database` owns the in-memory MVCC store, the write log and the
persistence engine. A :class:`~convex_backend.database.transaction.Transaction`
begins at the latest *published* (durable) timestamp, reads from the store at
that timestamp and buffers its writes. :meth:`Database.commit` then

1. checks the transaction's read set against every commit after its begin
   timestamp (pending ones included): any overlap is an :class:`OccConflict`,
   which makes the history serializable;
2. assigns a commit timestamp (nanoseconds, strictly increasing, monotonic
   across restarts) and logs the index keys it writes;
3. queues it for the next group commit: everything queued while a batch is
   being written goes into the following batch, one SQLite transaction and
   one fsync for all of them;
4. once the batch is durable, applies it to the store, publishes the new
   timestamp, notifies write-log subscribers and fires the commit's Deferred.

Nothing here blocks the reactor: the store is memory, SQLite runs on adbapi's
threads.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from convex_backend.database.errors import DatabaseUnavailable, OccConflict
from convex_backend.database.persistence import Batch, DocumentRow, Persistence
from convex_backend.database.query import index_key
from convex_backend.database.store import (
    DocumentWrite,
    IndexDescriptor,
    MemoryIndex,
    MemoryStore,
)
from convex_backend.database.tables import (
    BUILTIN_INDEX_FIELDS,
    FIRST_USER_TABLE,
    NAMESPACE_INDEX,
    SYSTEM_TABLES,
    full_index_fields,
    namespace_key,
)
from convex_backend.database.writelog import WriteLog, WriteLogEntry
from convex_backend.values.codec import dumps
from convex_backend.values.ids import decode_id
from convex_backend.values.keys import decode_index_key
from convex_backend.values.size import value_size

log = Logger(namespace="convex.database")
T = TypeVar("T")


def _index_key(index: MemoryIndex, doc: dict) -> bytes:
    return index_key(doc, index.descriptor.fields)


@dataclass
class PendingCommit:
    ts: int
    writes: list[DocumentWrite]
    entry: WriteLogEntry
    rows: list[DocumentRow]
    new_tables: list[tuple[int, str]]
    deferred: defer.Deferred = field(default_factory=defer.Deferred)
    queued_at: float = field(default_factory=time.monotonic)


@dataclass
class PendingTable:
    """A table allocated by an uncommitted insert; created by the first commit."""

    number: int
    name: str
    index_ids: dict[str, int]


class Database:
    """One deployment's documents; see the module docstring."""

    def __init__(
        self,
        persistence: Persistence,
        reactor: IReactorTime,
        *,
        instance_secret: str,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        from convex_backend.database.cursors import CursorCodec

        self.persistence = persistence
        self.cursor_codec = CursorCodec(instance_secret)
        self.reactor = reactor
        self.clock_ns = clock_ns
        self.store = MemoryStore()
        self.write_log = WriteLog()
        self.schema = None  # convex_backend.database.schema.Schema, once set
        self.published_ts = 0
        self.globals: dict[str, Any] = {}
        self._last_ts = 0
        self._last_creation_time = 0.0
        self._next_index_id = 1
        self._pending_tables: dict[str, PendingTable] = {}
        self._queue: list[PendingCommit] = []
        self._writing = False
        self._flush_call = None
        self._snapshots: Counter[int] = Counter()
        self._pending_index_meta: list[tuple] = []
        self._pending_index_deletes: list[int] = []
        self._pending_globals: dict[str, Any] = {}
        self._metadata_waiters: list[defer.Deferred] = []
        self.loaded = False
        #: How long old versions stay readable after they are replaced.
        self.history_ns = 10 * 10**9
        self.stats = Counter()
        #: Observes each commit's seconds from commit() to durable (a Histogram), if set.
        self.commit_latency: Any = None

    # -- startup ---------------------------------------------------------------

    async def load(self) -> None:
        """Create the schema if needed and rebuild the store from persistence."""
        await self.persistence.open()
        snapshot = await self.persistence.load()
        self.globals = dict(snapshot.globals)
        self._last_ts = snapshot.max_ts
        self.published_ts = snapshot.max_ts
        for number, name in snapshot.tables:
            self.store.add_table(number, name)
        for name, number in SYSTEM_TABLES.items():
            if number not in self.store.tables:
                self.store.add_table(number, name)
        known_indexes = {(t, n): (i, f, s) for i, t, n, f, s in snapshot.indexes}
        self._next_index_id = max([i for i, *_ in snapshot.indexes] + [0]) + 1
        for table in list(self.store.tables.values()):
            for name, fields in BUILTIN_INDEX_FIELDS.items():
                found = known_indexes.pop((table.number, name), None)
                index_id = found[0] if found else self._allocate_index_id()
                if not found:
                    self._pending_index_meta.append(
                        (index_id, table.number, name, list(fields), "ready")
                    )
                self.store.add_index(IndexDescriptor(index_id, table.number, name, fields, fields))
        for (table_number, name), (index_id, fields, _state) in known_indexes.items():
            if table_number not in self.store.tables:
                continue
            declared = tuple(fields)
            self.store.add_index(
                IndexDescriptor(index_id, table_number, name, full_index_fields(declared), declared)
            )
        documents = self.store.documents
        last_creation = 0.0
        for doc_id, ts, table_number, doc in snapshot.documents:
            documents[doc_id] = [(ts, doc, value_size(doc))]
            table = self.store.tables.get(table_number)
            if table is None:
                table = self.store.add_table(table_number, f"_unknown_{table_number}")
            table.count += 1
            for index in table.indexes.values():
                index.entries[_index_key(index, doc)] = [(ts, doc_id)]
            creation = doc.get("_creationTime", 0.0)
            if creation > last_creation:
                last_creation = creation
        self._last_creation_time = last_creation
        for table in self.store.tables.values():
            table.counts = [(self.published_ts, table.count)]
        self.store.horizon = self.published_ts
        self.write_log.horizon_ts = self.published_ts
        schema_json = self.globals.get("schema")
        if schema_json is not None:
            from convex_backend.database.schema import parse_schema

            self.schema = parse_schema(schema_json)
        self.loaded = True
        log.info(
            "Database loaded: {docs} documents in {tables} tables, ts {ts}",
            docs=len(snapshot.documents),
            tables=len(self.store.tables),
            ts=self.published_ts,
        )

    # -- clocks and numbering --------------------------------------------------

    def _next_ts(self) -> int:
        ts = max(self._last_ts + 1, self.clock_ns())
        self._last_ts = ts
        return ts

    def advance_published(self, ts: int) -> bool:
        """Publish ``ts`` without a write, if the clock has passed it and no commit
        is on its way; whether ``published_ts`` is now at least ``ts``.

        Timestamps follow the clock, so a snapshot at ``ts`` is the latest one
        with nothing written since: as a clock-driven backend's latest timestamp
        moves on while idle. A sync client restored onto an older backup, which
        has seen timestamps this database never published, is served this way.
        """
        if ts <= self.published_ts:
            return True
        if ts > self.clock_ns() or self._queue or self._writing or self._flush_call is not None:
            return False
        self._last_ts = max(self._last_ts, ts)
        self.published_ts = ts
        return True

    def next_creation_time(self) -> float:
        """A ``_creationTime``: milliseconds, strictly increasing."""
        now = self.clock_ns() / 1e6
        last = self._last_creation_time
        if now <= last:
            now = last + 0.001
        self._last_creation_time = now
        return now

    def _allocate_index_id(self) -> int:
        index_id = self._next_index_id
        self._next_index_id += 1
        return index_id

    def table_number(self, name: str) -> int | None:
        table = self.store.tables_by_name.get(name)
        return table.number if table is not None else None

    def allocate_table(self, name: str) -> PendingTable:
        """The number a new table will have; the same for every transaction."""
        pending = self._pending_tables.get(name)
        if pending is None:
            used = [n for n in self.store.tables if n >= FIRST_USER_TABLE]
            used += [p.number for p in self._pending_tables.values()]
            number = max(used + [FIRST_USER_TABLE - 1]) + 1
            index_ids = {
                index_name: self._allocate_index_id() for index_name in BUILTIN_INDEX_FIELDS
            }
            pending = PendingTable(number, name, index_ids)
            self._pending_tables[name] = pending
        return pending

    # -- transactions ----------------------------------------------------------

    def begin(self, *, privileged: bool = False):
        """A new transaction at the latest published timestamp."""
        from convex_backend.database.transaction import Transaction

        if not self.loaded:
            raise DatabaseUnavailable("The database is still loading")
        ts = self.published_ts
        self._snapshots[ts] += 1
        return Transaction(self, ts, privileged=privileged)

    def begin_at(self, ts: int, *, privileged: bool = False):
        """A transaction reading the snapshot at ``ts``, an earlier timestamp.

        Only snapshots the store still holds can be read: from its horizon
        (the oldest snapshot any reader had open when versions were last
        pruned) up to the latest published timestamp. Anything older is a
        ``SnapshotTooOld`` error, anything newer an ``InvalidTimestamp`` one.
        The snapshot is registered like :meth:`begin`'s, so it stays readable
        until the transaction closes. Meant for reads: a commit from it would
        conflict with everything committed since ``ts``.
        """
        from convex_backend.database.errors import DatabaseError
        from convex_backend.database.transaction import Transaction

        if not self.loaded:
            raise DatabaseUnavailable("The database is still loading")
        if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
            raise DatabaseError(f"Invalid timestamp {ts!r}", "InvalidTimestamp")
        if ts > self.published_ts:
            raise DatabaseError(
                f"Timestamp {ts} is newer than the latest timestamp {self.published_ts}",
                "InvalidTimestamp",
            )
        if ts < self.store.horizon:
            raise DatabaseError(
                f"The snapshot at timestamp {ts} is no longer available (the oldest one "
                f"kept is {self.store.horizon}); use a newer timestamp",
                "SnapshotTooOld",
            )
        self._snapshots[ts] += 1
        return Transaction(self, ts, privileged=privileged)

    def release_snapshot(self, ts: int) -> None:
        count = self._snapshots[ts] - 1
        if count <= 0:
            del self._snapshots[ts]
        else:
            self._snapshots[ts] = count

    def _horizon(self) -> int:
        """Versions at or below this may be pruned: no open snapshot needs them, and
        they are older than :attr:`history_ns` (kept for reads at a recent ts,
        such as ``query_at_ts``)."""
        oldest_open = min(self._snapshots, default=self.published_ts)
        return min(oldest_open, self.published_ts, self.clock_ns() - self.history_ns)

    def commit(self, tx) -> defer.Deferred:
        """Commit ``tx``; fires with its commit timestamp once durable."""
        try:
            pending = self._prepare(tx)
        except Exception:
            tx.close()
            return defer.fail()
        tx.close()
        if pending is None:
            return defer.succeed(tx.begin_ts)
        self._queue.append(pending)
        if self._flush_call is None and not self._writing:
            # Commits arriving in the same reactor turn share one batch.
            self._flush_call = self.reactor.callLater(0, self._flush)
        return pending.deferred

    def _prepare(self, tx) -> PendingCommit | None:
        if tx.closed:
            raise RuntimeError("transaction already finished")
        tx.finish_reads()
        if not tx.writes:
            return None
        if tx.schema is not self.schema:
            # The schema changed while the transaction ran: its writes were
            # checked against the old one, so check them against this one.
            from convex_backend.database.transaction import validate_against_schema

            for write in tx.writes.values():
                if write.new is not None:
                    validate_against_schema(self.schema, write.table_name, write.new, self)
        conflict = self.write_log.first_conflict(tx.read_set, tx.begin_ts)
        if conflict is not None:
            self.stats["conflicts"] += 1
            raise OccConflict(
                "Documents read from or written to by this transaction changed while "
                "it was being run. Another call to a function changed the documents "
                "this function read, so it must be retried."
            )
        ts = self._next_ts()
        index_writes: dict[int, list[bytes]] = {}
        writes: list[DocumentWrite] = []
        rows: list[DocumentRow] = []
        new_tables: list[tuple[int, str]] = []
        for doc_id, write in tx.writes.items():
            table = self.store.tables.get(write.table_number)
            if table is None:
                pending_table = self._pending_tables[write.table_name]
                new_tables.append((pending_table.number, pending_table.name))
                index_writes.setdefault(NAMESPACE_INDEX, []).append(
                    namespace_key(pending_table.name)
                )
                indexes = [
                    IndexDescriptor(index_id, pending_table.number, name, fields, fields)
                    for name, index_id in pending_table.index_ids.items()
                    for fields in (BUILTIN_INDEX_FIELDS[name],)
                ]
                descriptors = indexes
            else:
                descriptors = [index.descriptor for index in table.indexes.values()]
            old, new = write.original, write.new
            for descriptor in descriptors:
                keys = index_writes.setdefault(descriptor.index_id, [])
                if old is not None:
                    keys.append(index_key(old, descriptor.fields))
                if new is not None:
                    new_key = index_key(new, descriptor.fields)
                    if old is None or new_key != keys[-1]:
                        keys.append(new_key)
            writes.append(DocumentWrite(doc_id, write.table_number, new, write.size))
            rows.append(
                DocumentRow(
                    doc_id,
                    ts,
                    write.table_number,
                    dumps(new) if new is not None else None,
                    write.original_ts,
                )
            )
        entry = WriteLogEntry(ts, index_writes)
        self.write_log.append(entry)
        return PendingCommit(ts, writes, entry, rows, _dedupe(new_tables))

    def _has_metadata(self) -> bool:
        return bool(
            self._pending_index_meta or self._pending_index_deletes or self._pending_globals
        )

    def _request_flush(self) -> defer.Deferred:
        """Persist pending metadata (indexes, globals) even with no commit queued."""
        d: defer.Deferred = defer.Deferred()
        self._metadata_waiters.append(d)
        if self._flush_call is None and not self._writing:
            self._flush_call = self.reactor.callLater(0, self._flush)
        return d

    def _flush(self) -> None:
        self._flush_call = None
        if self._writing or not (self._queue or self._has_metadata()):
            return
        batch, self._queue = self._queue, []
        waiters, self._metadata_waiters = self._metadata_waiters, []
        self._writing = True
        new_tables = []
        for pending in batch:
            for number, name in pending.new_tables:
                new_tables.append((number, name, pending.ts))
        index_meta = list(self._pending_index_meta)
        for number, name, _ts in new_tables:
            pending_table = self._pending_tables.get(name)
            if pending_table is None:
                continue
            for index_name, index_id in pending_table.index_ids.items():
                index_meta.append(
                    (
                        index_id,
                        number,
                        index_name,
                        list(BUILTIN_INDEX_FIELDS[index_name]),
                        "ready",
                    )
                )
        index_deletes = list(self._pending_index_deletes)
        globals_ = dict(self._pending_globals)
        self._pending_index_meta, self._pending_index_deletes = [], []
        self._pending_globals = {}
        rows = [row for pending in batch for row in pending.rows]
        max_ts = batch[-1].ts if batch else self.published_ts
        self.stats["batches"] += 1
        self.stats["commits"] += len(batch)
        d = self.persistence.write_batch(
            Batch(
                documents=rows,
                new_tables=new_tables,
                index_upserts=[
                    (i, t, n, _json_fields(f), s, max_ts) for i, t, n, f, s in index_meta
                ],
                index_deletes=index_deletes,
                globals=globals_,
                max_ts=max_ts,
            )
        )
        d.addCallbacks(
            self._batch_durable,
            self._batch_failed,
            callbackArgs=(batch, waiters),
            errbackArgs=(batch, waiters, index_meta, index_deletes, globals_),
        )

    def _batch_durable(self, _result: object, batch: list[PendingCommit], waiters: list) -> None:
        store = self.store
        store.horizon = self._horizon()
        for pending in batch:
            for number, name in pending.new_tables:
                pending_table = self._pending_tables.pop(name, None)
                if number not in store.tables and pending_table is not None:
                    table = store.add_table(number, name)
                    table.counts = [(0, 0)]
                    for index_name, index_id in pending_table.index_ids.items():
                        fields = BUILTIN_INDEX_FIELDS[index_name]
                        store.add_index(
                            IndexDescriptor(index_id, number, index_name, fields, fields)
                        )
                    self._create_schema_indexes(table)
            store.apply(pending.ts, pending.writes, _index_key)
            self.published_ts = pending.ts
        store.horizon = self._horizon()
        store.reap()
        self.write_log.published(p.entry for p in batch)
        self.write_log.trim(min(self._horizon(), self.published_ts))
        self._writing = False
        if self.commit_latency is not None:
            now = time.monotonic()
            for pending in batch:
                self.commit_latency.observe(now - pending.queued_at)
        for pending in batch:
            pending.deferred.callback(pending.ts)
        for waiter in waiters:
            waiter.callback(self.published_ts)
        if (self._queue or self._metadata_waiters) and self._flush_call is None:
            self._flush_call = self.reactor.callLater(0, self._flush)

    def _batch_failed(self, failure, batch, waiters, index_meta, index_deletes, globals_) -> None:
        log.failure("Could not persist {n} commits", failure, n=len(batch))
        for pending in batch:
            self.write_log.remove(pending.entry)
        # Metadata changes are retried with the next batch.
        self._pending_index_meta = index_meta + self._pending_index_meta
        self._pending_index_deletes = index_deletes + self._pending_index_deletes
        self._pending_globals = {**globals_, **self._pending_globals}
        self._writing = False
        error = DatabaseUnavailable("The commit could not be made durable; try again")
        for pending in batch:
            pending.deferred.errback(error)
        for waiter in waiters:
            waiter.errback(error)
        if self._queue and self._flush_call is None:
            self._flush_call = self.reactor.callLater(0, self._flush)

    def _create_schema_indexes(self, table) -> None:
        """Give a table created by an insert the indexes the schema declares for it."""
        schema = self.schema
        if schema is None:
            return
        table_schema = schema.tables.get(table.name)
        if table_schema is None:
            return
        for name, fields in table_schema.indexes.items():
            if name not in table.indexes:
                self._register_index(table, name, tuple(fields), ready=True)

    # -- tables, indexes and globals (schema changes) --------------------------

    async def create_table(self, name: str) -> int:
        """Create an empty table now (as schema pushes do); returns its number."""
        existing = self.store.tables_by_name.get(name)
        if existing is not None:
            return existing.number
        pending_table = self.allocate_table(name)
        ts = self._next_ts()
        entry = WriteLogEntry(ts, {NAMESPACE_INDEX: [namespace_key(name)]})
        self.write_log.append(entry)
        pending = PendingCommit(ts, [], entry, [], [(pending_table.number, name)])
        self._queue.append(pending)
        if self._flush_call is None and not self._writing:
            self._flush_call = self.reactor.callLater(0, self._flush)
        await pending.deferred
        return pending_table.number

    def _register_index(self, table, name: str, declared: tuple, ready: bool) -> MemoryIndex:
        index_id = self._allocate_index_id()
        descriptor = IndexDescriptor(
            index_id,
            table.number,
            name,
            full_index_fields(declared),
            declared,
            state="ready" if ready else "backfilling",
            ready_ts=self.published_ts if ready else 0,
        )
        index = self.store.add_index(descriptor)
        self._pending_index_meta.append(
            (index_id, table.number, name, list(declared), descriptor.state)
        )
        return index

    async def add_index(
        self, table_name: str, name: str, fields: tuple[str, ...], chunk: int = 2000
    ) -> None:
        """Add a user index and backfill it; fires once it is ready and durable.

        A large table is backfilled in chunks, yielding to the reactor between
        them; commits meanwhile keep the new index up to date, and queries see
        it only once it is ready.
        """
        await self.create_table(table_name)
        table = self.store.tables_by_name[table_name]
        if name in table.indexes:
            raise ValueError(f"index {table_name}.{name} already exists")
        index = self._register_index(table, name, tuple(fields), ready=False)
        descriptor = index.descriptor
        by_id = table.indexes["by_id"]
        doc_ids = [doc_id for _key, doc_id in by_id.scan(b"", None, self.published_ts)]
        for start in range(0, len(doc_ids), chunk):
            for doc_id in doc_ids[start : start + chunk]:
                versions = self.store.documents.get(doc_id)
                if not versions or versions[-1][1] is None:
                    continue
                ts, doc, _size = versions[-1]
                key = index_key(doc, descriptor.fields)
                if key not in index.entries:
                    index.entries[key] = [(ts, doc_id)]
            if start + chunk < len(doc_ids):
                await _sleep(self.reactor, 0)
            if descriptor.index_id not in self.store.indexes:
                return  # dropped while backfilling
        descriptor.state = "ready"
        descriptor.ready_ts = self.published_ts
        self._pending_index_meta.append(
            (descriptor.index_id, table.number, name, list(fields), "ready")
        )
        await self._request_flush()

    async def drop_index(self, table_name: str, name: str) -> None:
        table = self.store.tables_by_name[table_name]
        index = table.indexes[name]
        self.store.drop_index(index.descriptor.index_id)
        self._pending_index_deletes.append(index.descriptor.index_id)
        await self._request_flush()

    async def set_schema(self, schema) -> list[str]:
        """Make ``schema`` (a parsed :class:`~.schema.Schema`) the deployment's schema.

        Existing documents are checked first; if any does not match, nothing
        changes and :class:`~.schema.SchemaError` reports the first offenders.
        Declared tables are created, new indexes added and backfilled, indexes
        no longer declared dropped. Returns a short log of what changed.
        """
        checked_ts = self.published_ts
        self._check_existing(schema, None)
        changes: list[str] = []
        for name, table_schema in schema.tables.items():
            if name not in self.store.tables_by_name:
                await self.create_table(name)
                changes.append(f"created table {name}")
            table = self.store.tables_by_name[name]
            for index_name, fields in table_schema.indexes.items():
                existing = table.indexes.get(index_name)
                if existing is not None and existing.descriptor.declared != tuple(fields):
                    await self.drop_index(name, index_name)
                    changes.append(f"dropped index {name}.{index_name} (fields changed)")
                    existing = None
                if existing is None:
                    await self.add_index(name, index_name, tuple(fields))
                    changes.append(f"added index {name}.{index_name}")
        for table in list(self.store.tables.values()):
            if table.name.startswith("_"):
                continue
            declared = schema.tables.get(table.name)
            for index_name in list(table.indexes):
                if index_name in BUILTIN_INDEX_FIELDS:
                    continue
                if declared is None or index_name not in declared.indexes:
                    await self.drop_index(table.name, index_name)
                    changes.append(f"dropped index {table.name}.{index_name}")
        # Commits prepared under the old schema land first; documents they
        # wrote since the first check are checked now. From the assignment on
        # (same reactor turn), every commit is checked against the new schema.
        await self.wait_for_idle()
        self._check_existing(schema, self._written_since(checked_ts))
        self.schema = schema
        await self.set_global("schema", schema.to_json())
        return changes

    def _written_since(self, ts: int) -> set[str] | None:
        """Ids of documents written after ``ts``; None if the log no longer knows."""
        if ts < self.write_log.horizon_ts:
            return None
        by_id = {table.indexes["by_id"].descriptor.index_id for table in self.store.tables.values()}
        written: set[str] = set()
        for entry in self.write_log.entries:
            if entry.ts > ts:
                for index_id, keys in entry.writes.items():
                    if index_id in by_id:
                        written.update(decode_index_key(key)[0] for key in keys)
        return written

    def _check_existing(self, schema, only: set[str] | None) -> None:
        """Raise SchemaError if stored documents (all, or those in ``only``) don't match."""
        from convex_backend.database.schema import SchemaError

        if not schema.schema_validation or only == set():
            return
        problems: list[str] = []
        for name, table_schema in schema.tables.items():
            table = self.store.tables_by_name.get(name)
            if table is None or table_schema.document_validator is None:
                continue
            if only is None:
                ids = (i for _k, i in table.indexes["by_id"].scan(b"", None, self.published_ts))
            else:
                ids = (i for i in sorted(only) if decode_id(i).table_number == table.number)
            docs = (doc for doc in map(self.store.latest, ids) if doc is not None)
            problems += schema.check_existing(name, docs, self, limit=10 - len(problems))
            if len(problems) >= 10:
                break
        if problems:
            raise SchemaError(
                "Schema validation failed: existing documents do not match the new "
                "schema.\n" + "\n".join(problems)
            )

    async def set_global(self, key: str, value: Any) -> None:
        """Persist a piece of deployment state (schema, ...) with the next batch."""
        self.globals[key] = value
        self._pending_globals[key] = value
        await self._request_flush()

    async def run(
        self,
        fn: Callable[[Any], T | Awaitable[T]],
        *,
        privileged: bool = False,
        max_retries: int = 16,
    ) -> tuple[T, int]:
        """Run ``fn(tx)`` in a transaction and commit it, retrying on conflicts.

        Returns ``(result, commit ts)``. Retries back off with jitter so that
        contending writers spread out.
        """
        delay = 0.001
        for attempt in range(max_retries + 1):
            tx = self.begin(privileged=privileged)
            try:
                result = fn(tx)
                if isinstance(result, Awaitable):
                    result = await result
            except BaseException:
                tx.close()
                raise
            try:
                ts = await self.commit(tx)
            except OccConflict:
                if attempt == max_retries:
                    raise
                self.stats["retries"] += 1
                await _sleep(self.reactor, delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.1)
                continue
            return result, ts
        raise AssertionError("unreachable")

    def wait_for_idle(self) -> defer.Deferred:
        """Fire once nothing is queued or being written (for shutdown)."""
        if not self._writing and not self._queue:
            return defer.succeed(None)
        d = defer.Deferred()

        def check() -> None:
            if not self._writing and not self._queue:
                d.callback(None)
            else:
                self.reactor.callLater(0.005, check)

        self.reactor.callLater(0.005, check)
        return d


def _dedupe(items: list) -> list:
    seen = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def _json_fields(fields) -> str:
    return json.dumps(list(fields))


def _sleep(reactor: IReactorTime, seconds: float) -> defer.Deferred:
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d
