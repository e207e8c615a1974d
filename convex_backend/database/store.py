"""The in-memory MVCC store: document version chains and sorted index entries.

Every committed document version lives here (from the moment it is durable)
alongside every index entry, each with the commit timestamp that wrote it, so
that a read at timestamp ``T`` sees exactly the newest versions at or below
``T``. Reads never touch SQLite: the persistence layer is the durable log this
store is rebuilt from at startup (see ``persistence.py``).

Versions older than every snapshot still in use are pruned as new versions
arrive (and by :meth:`MemoryStore.collect_garbage`), so memory holds the
current data plus a short tail of history, not the whole history.

Everything here runs on the reactor thread and never blocks: it is plain
Python over dicts and ``sortedcontainers``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from sortedcontainers import SortedDict

from convex_backend.values.keys import encode_index_key

#: One version of a document: (commit ts, document or None if deleted, size).
Version = tuple[int, "dict | None", int]


def id_key(doc_id: str) -> bytes:
    """The by_id index key of a document."""
    return encode_index_key([doc_id])


@dataclass
class IndexDescriptor:
    """An index of one table: its global id, name and full field list."""

    index_id: int
    table_number: int
    name: str
    #: All key fields, including the implicit trailing ``_creationTime``, ``_id``.
    fields: tuple[str, ...]
    #: User-declared fields only (what the schema says).
    declared: tuple[str, ...]
    state: str = "ready"  # "backfilling" | "ready"
    #: Timestamp from which reads may use the index.
    ready_ts: int = 0


class MemoryIndex:
    """Index entries: key -> [(ts, doc id or None)], versions in ts order."""

    __slots__ = ("descriptor", "entries")

    def __init__(self, descriptor: IndexDescriptor) -> None:
        self.descriptor = descriptor
        self.entries: SortedDict = SortedDict()

    def put(self, key: bytes, ts: int, doc_id: str | None, horizon: int) -> bool:
        """Add a version; True if it left a tombstone for :meth:`MemoryStore.reap`."""
        versions = self.entries.get(key)
        if versions is None:
            if doc_id is not None:
                self.entries[key] = [(ts, doc_id)]
            return False
        if versions[-1][1] == doc_id:
            return False
        versions.append((ts, doc_id))
        _prune(versions, horizon)
        return doc_id is None

    def scan(
        self, start: bytes, end: bytes | None, ts: int, reverse: bool = False
    ) -> Iterator[tuple[bytes, str]]:
        """(key, doc id) of the live entries in [start, end) at ``ts``, in order."""
        entries = self.entries
        for key in entries.irange(start, end, inclusive=(True, False), reverse=reverse):
            versions = entries[key]
            last = versions[-1]
            if last[0] <= ts:
                if last[1] is not None:
                    yield key, last[1]
                continue
            for version_ts, doc_id in reversed(versions):
                if version_ts <= ts:
                    if doc_id is not None:
                        yield key, doc_id
                    break

    def collect_garbage(self, horizon: int) -> int:
        """Drop tombstones and versions nobody can read any more; returns keys dropped."""
        dead = []
        for key, versions in self.entries.items():
            if len(versions) > 1:
                _prune(versions, horizon)
            if versions[-1][1] is None and versions[-1][0] <= horizon:
                dead.append(key)
        for key in dead:
            del self.entries[key]
        return len(dead)


def _prune(versions: list, horizon: int) -> None:
    """Keep the newest version at or below ``horizon`` and everything after it."""
    if len(versions) < 2 or versions[1][0] > horizon:
        return
    keep = len(versions) - 1
    while keep > 0 and versions[keep][0] > horizon:
        keep -= 1
    if keep > 0:
        del versions[:keep]


@dataclass
class TableInfo:
    number: int
    name: str
    #: Index name -> index (always holds by_id and by_creation_time).
    indexes: dict[str, MemoryIndex] = field(default_factory=dict)
    #: Number of live documents at the latest timestamp.
    count: int = 0
    #: (ts, count) history, for counts at a snapshot; pruned like versions.
    counts: list = field(default_factory=list)

    def count_at(self, ts: int) -> int:
        for version_ts, count in reversed(self.counts):
            if version_ts <= ts:
                return count
        return 0


@dataclass
class DocumentWrite:
    """One document written by a commit: ``new`` is None for a delete."""

    doc_id: str
    table_number: int
    new: dict | None
    size: int = 0


class MemoryStore:
    """All documents and indexes, MVCC by commit timestamp."""

    def __init__(self) -> None:
        #: doc id -> [(ts, doc | None, size)], oldest first.
        self.documents: dict[str, list] = {}
        self.tables: dict[int, TableInfo] = {}
        self.tables_by_name: dict[str, TableInfo] = {}
        self.indexes: dict[int, MemoryIndex] = {}
        #: Versions at or below this timestamp may be pruned (no snapshot needs them).
        self.horizon = 0
        #: (ts, index or None, key or doc id) of deletions, oldest first, to drop
        #: once no snapshot can see what they deleted.
        self._tombstones: deque = deque()

    # -- tables and indexes --------------------------------------------------

    def add_table(self, number: int, name: str) -> TableInfo:
        table = TableInfo(number, name)
        self.tables[number] = table
        self.tables_by_name[name] = table
        return table

    def add_index(self, descriptor: IndexDescriptor) -> MemoryIndex:
        index = MemoryIndex(descriptor)
        self.tables[descriptor.table_number].indexes[descriptor.name] = index
        self.indexes[descriptor.index_id] = index
        return index

    def drop_index(self, index_id: int) -> None:
        index = self.indexes.pop(index_id)
        table = self.tables[index.descriptor.table_number]
        table.indexes.pop(index.descriptor.name, None)

    # -- reads ---------------------------------------------------------------

    def get(self, doc_id: str, ts: int) -> tuple[dict | None, int]:
        """The document and its size at ``ts`` (None, 0 when absent)."""
        versions = self.documents.get(doc_id)
        if versions is None:
            return None, 0
        last = versions[-1]
        if last[0] <= ts:
            return last[1], last[2]
        for version in reversed(versions):
            if version[0] <= ts:
                return version[1], version[2]
        return None, 0

    def latest(self, doc_id: str) -> dict | None:
        versions = self.documents.get(doc_id)
        return versions[-1][1] if versions else None

    # -- writes (applied in commit order, once durable) ----------------------

    def apply(self, ts: int, writes: list[DocumentWrite], index_keys) -> None:
        """Apply one commit. ``index_keys(index, doc)`` computes an index key."""
        horizon = self.horizon
        documents = self.documents
        for write in writes:
            versions = documents.get(write.doc_id)
            old = versions[-1][1] if versions else None
            if write.new is None:
                self._tombstones.append((ts, None, write.doc_id))
            if versions is None:
                documents[write.doc_id] = [(ts, write.new, write.size)]
            else:
                versions.append((ts, write.new, write.size))
                _prune_doc(versions, horizon)
            table = self.tables[write.table_number]
            if (old is None) != (write.new is None):
                table.count += 1 if old is None else -1
                counts = table.counts
                if counts and counts[-1][0] == ts:
                    counts[-1] = (ts, table.count)
                else:
                    counts.append((ts, table.count))
                    _prune(counts, horizon)
            for index in table.indexes.values():
                old_key = index_keys(index, old) if old is not None else None
                new_key = index_keys(index, write.new) if write.new is not None else None
                if old_key == new_key:
                    continue
                if old_key is not None and index.put(old_key, ts, None, horizon):
                    self._tombstones.append((ts, index, old_key))
                if new_key is not None:
                    index.put(new_key, ts, write.doc_id, horizon)

    def reap(self) -> int:
        """Drop deleted documents and index entries no snapshot can see any more.

        Called after every group commit; costs O(deletions), not O(data).
        """
        horizon = self.horizon
        tombstones = self._tombstones
        reaped = 0
        while tombstones and tombstones[0][0] <= horizon:
            _ts, index, key = tombstones.popleft()
            if index is None:
                versions = self.documents.get(key)
                if versions and versions[-1][1] is None and versions[-1][0] <= horizon:
                    del self.documents[key]
                    reaped += 1
            elif index.descriptor.index_id in self.indexes:
                versions = index.entries.get(key)
                if versions and versions[-1][1] is None and versions[-1][0] <= horizon:
                    del index.entries[key]
                    reaped += 1
        return reaped

    def collect_garbage(self) -> None:
        """Prune old versions everywhere (a full sweep; writes prune as they go)."""
        horizon = self.horizon
        dead = []
        for doc_id, versions in self.documents.items():
            if len(versions) > 1:
                _prune_doc(versions, horizon)
            if versions[-1][1] is None and versions[-1][0] <= horizon:
                dead.append(doc_id)
        for doc_id in dead:
            del self.documents[doc_id]
        for index in self.indexes.values():
            index.collect_garbage(horizon)


_prune_doc = _prune
