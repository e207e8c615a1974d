"""A transaction: snapshot reads, buffered writes, read-set tracking, limits.

Reads see the store at the transaction's begin timestamp, overlaid with the
transaction's own buffered writes (read-your-writes, also inside index scans).
Every read records the index key range it covered, including reads that found
nothing, in the transaction's :class:`ReadSet`; :meth:`Database.commit` checks
it. The per-transaction limits of Convex (documents and bytes read and written,
index ranges) are enforced as the transaction goes, each with a clear error.

User transactions may not write system tables and may read the two
user-visible ones only through ``db.system``; privileged transactions (the
backend's own bookkeeping) may do anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from convex_backend.database.errors import DatabaseError, LimitExceeded
from convex_backend.database.query import index_key
from convex_backend.database.store import id_key
from convex_backend.database.tables import (
    BY_ID,
    NAMESPACE_INDEX,
    SYSTEM_TABLES,
    USER_VISIBLE_SYSTEM_TABLES,
    is_system_table,
    namespace_key,
)
from convex_backend.database.writelog import ReadSet
from convex_backend.values import UNDEFINED, ConvexValueError, decode_id, encode_id
from convex_backend.values.ids import new_internal_id
from convex_backend.values.keys import prefix_successor
from convex_backend.values.size import check_document, validate_identifier

if TYPE_CHECKING:
    from convex_backend.database.engine import Database

MAX_DOCUMENTS_READ = 32_000
MAX_BYTES_READ = 16 * 1024 * 1024
MAX_READ_INTERVALS = 4096
MAX_DOCUMENTS_WRITTEN = 16_000
MAX_BYTES_WRITTEN = 16 * 1024 * 1024

SYSTEM_FIELDS = ("_id", "_creationTime")


def validate_against_schema(schema, table_name: str, doc: dict, db) -> None:
    """Raise ``SchemaValidationFailed`` if ``doc`` does not match ``schema``."""
    if schema is not None and not is_system_table(table_name):
        try:
            schema.validate_document(table_name, doc, db)
        except ConvexValueError as e:
            raise DatabaseError(str(e), "SchemaValidationFailed")


@dataclass
class BufferedWrite:
    table_number: int
    table_name: str
    #: The committed version this write replaces (None for an insert).
    original: dict | None
    original_ts: int | None
    new: dict | None
    size: int


class Transaction:
    def __init__(self, db: Database, begin_ts: int, *, privileged: bool = False) -> None:
        self.db = db
        self.store = db.store
        self.begin_ts = begin_ts
        self.privileged = privileged
        #: The schema its writes were validated against (see Database._prepare).
        self.schema = db.schema
        self.read_set = ReadSet()
        self.writes: dict[str, BufferedWrite] = {}
        self.closed = False
        self.documents_read = 0
        self.bytes_read = 0
        self.bytes_written = 0
        self.paginated = False
        self._streams: set = set()
        self._creating: set[str] = set()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.db.release_snapshot(self.begin_ts)

    # -- bookkeeping -----------------------------------------------------------

    def _record(self, index_id: int, start: bytes, end: bytes | None) -> None:
        self.read_set.add(index_id, start, end)
        if self.read_set.count > MAX_READ_INTERVALS:
            raise LimitExceeded(
                f"Too many reads in a single function execution (limit: "
                f"{MAX_READ_INTERVALS} db.get and db.query calls).",
                "TooManyReads",
            )

    def _count_read(self, size: int) -> None:
        self.documents_read += 1
        self.bytes_read += size
        if self.documents_read > MAX_DOCUMENTS_READ:
            raise LimitExceeded(
                f"Too many documents read in a single function execution "
                f"(limit: {MAX_DOCUMENTS_READ}).",
                "TooManyDocumentsRead",
            )
        if self.bytes_read > MAX_BYTES_READ:
            raise LimitExceeded(
                f"Too many bytes read in a single function execution "
                f"(limit: {MAX_BYTES_READ} bytes).",
                "TooManyBytesRead",
            )

    def _check_open(self) -> None:
        if self.closed:
            raise DatabaseError("This transaction has already finished", "TransactionClosed")

    # -- tables ----------------------------------------------------------------

    def _table_for_read(self, name: str, system: bool):
        """The table to read, or None if it does not exist (recorded in the read set)."""
        if not isinstance(name, str):
            raise DatabaseError("Table names must be strings", "InvalidTableName")
        self._check_table_access(name, system)
        table = self.store.tables_by_name.get(name)
        if table is None:
            # Seeing a table missing is a read: its creation must conflict.
            key = namespace_key(name)
            self._record(NAMESPACE_INDEX, key, prefix_successor(key))
        return table

    def _check_table_access(self, name: str, system: bool) -> None:
        if self.privileged:
            return
        if is_system_table(name):
            if not system:
                raise DatabaseError(
                    f"System tables can only be accessed with db.system. (table {name!r})",
                    "InvalidTable",
                )
            if name not in USER_VISIBLE_SYSTEM_TABLES:
                raise DatabaseError(f"Table {name!r} is not accessible", "InvalidTable")
        elif system:
            raise DatabaseError(
                f"User tables can only be accessed with db, not db.system. (table {name!r})",
                "InvalidTable",
            )

    def table_name_of(self, doc_id: str) -> str | None:
        """The name of the table an id belongs to (None if that table doesn't exist)."""
        number = self._decode(doc_id).table_number
        table = self.store.tables.get(number)
        if table is not None:
            return table.name
        for pending in self.db._pending_tables.values():
            if pending.number == number:
                return pending.name
        return None

    def _decode(self, doc_id: object):
        if not isinstance(doc_id, str):
            raise DatabaseError(f"Expected an id string, got {type(doc_id).__name__}", "InvalidId")
        try:
            return decode_id(doc_id)
        except ConvexValueError as e:
            raise DatabaseError(f"Invalid id {doc_id[:64]!r}: {e}", "InvalidId")

    # -- point reads -----------------------------------------------------------

    def get(self, doc_id: str, *, table: str | None = None, system: bool = False):
        """The document with this id, or None; ``table`` (if given) must match."""
        self._check_open()
        number = self._decode(doc_id).table_number
        name = self._name_for_number(number)
        if table is not None and name is not None and table != name:
            raise DatabaseError(
                f'Invalid argument `id` for `db.get`: expected to be an Id<"{table}">, '
                f'got Id<"{name}"> instead.',
                "InvalidTable",
            )
        if name is None:
            # No such table (yet): the id cannot exist. Creating the table
            # would conflict through the namespace key.
            if table is not None:
                self._table_for_read(table, system)
            self._record_missing_table_number(number)
            return None
        self._check_table_access(name, system)
        return self._get_checked(doc_id, number)

    def _name_for_number(self, number: int) -> str | None:
        table = self.store.tables.get(number)
        if table is not None:
            return table.name
        for pending in self.db._pending_tables.values():
            if pending.number == number and any(
                w.table_number == number for w in self.writes.values()
            ):
                return pending.name
        return None

    def _record_missing_table_number(self, number: int) -> None:
        # A table number with no table: any table creation may give it meaning,
        # so the whole namespace is read. Rare (ids of deleted or foreign tables).
        self._record(NAMESPACE_INDEX, b"", None)

    def _get_checked(self, doc_id: str, number: int):
        table = self.store.tables.get(number)
        buffered = self.writes.get(doc_id)
        if table is not None:
            by_id = table.indexes[BY_ID]
            key = id_key(doc_id)
            self._record(by_id.descriptor.index_id, key, key + b"\x00")
        if buffered is not None:
            self._count_read(buffered.size)
            return buffered.new
        doc, size = self.store.get(doc_id, self.begin_ts)
        if doc is not None:
            self._count_read(size)
        return doc

    def normalize_id(self, table: str, id_string: str) -> str | None:
        """``id_string`` if it is an id of ``table``, else None (no I/O, no read)."""
        try:
            decoded = decode_id(id_string)
        except (ConvexValueError, TypeError):
            return None
        number = self.db.table_number(table)
        if number is None:
            pending = self.db._pending_tables.get(table)
            number = pending.number if pending else None
        return id_string if number is not None and decoded.table_number == number else None

    # -- writes ----------------------------------------------------------------

    @contextmanager
    def system_writes(self) -> Iterator[Transaction]:
        """Let this (maybe a user function's) transaction write system tables for
        a moment: bookkeeping that must commit atomically with a function's own
        writes (a scheduled job's state, a cron run) goes through here."""
        was = self.privileged
        self.privileged = True
        try:
            yield self
        finally:
            self.privileged = was

    def _check_writable(self, name: str) -> None:
        if not self.privileged and is_system_table(name):
            raise DatabaseError(
                "System tables (prefixed with `_`) are read-only.", "SystemTableWrite"
            )

    def _validate(self, table_name: str, doc: dict) -> int:
        try:
            size = check_document(doc)
        except ConvexValueError as e:
            raise DatabaseError(str(e), "InvalidDocument")
        validate_against_schema(self.db.schema, table_name, doc, self.db)
        return size

    def _buffer(self, doc_id: str, write: BufferedWrite) -> None:
        previous = self.writes.get(doc_id)
        if previous is not None:
            self.bytes_written -= previous.size
            write.original = previous.original
            write.original_ts = previous.original_ts
        self.writes[doc_id] = write
        self.bytes_written += write.size
        if len(self.writes) > MAX_DOCUMENTS_WRITTEN:
            raise LimitExceeded(
                f"Too many documents written in a single function execution "
                f"(limit: {MAX_DOCUMENTS_WRITTEN}).",
                "TooManyWrites",
            )
        if self.bytes_written > MAX_BYTES_WRITTEN:
            raise LimitExceeded(
                f"Too many bytes written in a single function execution "
                f"(limit: {MAX_BYTES_WRITTEN} bytes).",
                "TooManyBytesWritten",
            )

    def insert(self, table: str, value: dict) -> str:
        """Insert a document; returns its new id. The table is created if needed."""
        self._check_open()
        self._check_writable(table)
        if not isinstance(value, dict):
            raise DatabaseError("insert() takes an object", "InvalidDocument")
        try:
            validate_identifier(table, "table name")
        except ConvexValueError as e:
            raise DatabaseError(str(e), "InvalidTableName")
        for name in SYSTEM_FIELDS:
            if name in value:
                raise DatabaseError(
                    f"Provided document contains the system field `{name}`; "
                    "system fields are set by the database",
                    "InvalidDocument",
                )
        existing = self.store.tables_by_name.get(table)
        if existing is not None:
            number = existing.number
        elif table in SYSTEM_TABLES:
            number = SYSTEM_TABLES[table]
        else:
            number = self.db.allocate_table(table).number
            if table not in self._creating:
                # Creating a table is a read of its name: two transactions
                # creating it at once conflict, and the second one retries.
                self._creating.add(table)
                key = namespace_key(table)
                self._record(NAMESPACE_INDEX, key, prefix_successor(key))
        doc_id = encode_id(number, new_internal_id())
        doc = {k: v for k, v in value.items() if v is not UNDEFINED}
        doc["_id"] = doc_id
        doc["_creationTime"] = self.db.next_creation_time()
        size = self._validate(table, doc)
        self._buffer(doc_id, BufferedWrite(number, table, None, None, doc, size))
        return doc_id

    def _current_for_write(self, doc_id: str, table: str | None, verb: str):
        number = self._decode(doc_id).table_number
        name = self._name_for_number(number)
        noun = "Delete" if verb == "delete" else "Update"
        if name is None:
            raise DatabaseError(f"{noun} on nonexistent document ID {doc_id}", "NotFound")
        if table is not None and table != name:
            raise DatabaseError(
                f'Invalid argument `id` for `db.{verb}`: expected to be an Id<"{table}">, '
                f'got Id<"{name}"> instead.',
                "InvalidTable",
            )
        self._check_writable(name)
        current = self._get_checked(doc_id, number)
        if current is None:
            raise DatabaseError(f"{noun} on nonexistent document ID {doc_id}", "NotFound")
        buffered = self.writes.get(doc_id)
        if buffered is not None:
            original, original_ts = buffered.original, buffered.original_ts
        else:
            original = current
            versions = self.store.documents.get(doc_id)
            original_ts = _version_ts(versions, self.begin_ts)
        return number, name, current, original, original_ts

    def patch(self, doc_id: str, value: dict, *, table: str | None = None) -> dict:
        """Shallow-merge ``value`` into the document (``UNDEFINED`` removes a field)."""
        self._check_open()
        if not isinstance(value, dict):
            raise DatabaseError("patch() takes an object", "InvalidDocument")
        number, name, current, original, original_ts = self._current_for_write(
            doc_id, table, "patch"
        )
        for system_field in SYSTEM_FIELDS:
            if system_field in value and value[system_field] != current[system_field]:
                raise DatabaseError(
                    f"Provided {system_field} field does not match the document's",
                    "InvalidDocument",
                )
        doc = dict(current)
        for k, v in value.items():
            if v is UNDEFINED:
                doc.pop(k, None)
            else:
                doc[k] = v
        size = self._validate(name, doc)
        self._buffer(doc_id, BufferedWrite(number, name, original, original_ts, doc, size))
        return doc

    def replace(self, doc_id: str, value: dict, *, table: str | None = None) -> dict:
        """Replace the document's fields, keeping ``_id`` and ``_creationTime``."""
        self._check_open()
        if not isinstance(value, dict):
            raise DatabaseError("replace() takes an object", "InvalidDocument")
        number, name, current, original, original_ts = self._current_for_write(
            doc_id, table, "replace"
        )
        for system_field in SYSTEM_FIELDS:
            if system_field in value and value[system_field] != current[system_field]:
                raise DatabaseError(
                    f"Provided {system_field} field does not match the document's",
                    "InvalidDocument",
                )
        doc = {k: v for k, v in value.items() if v is not UNDEFINED}
        doc["_id"] = current["_id"]
        doc["_creationTime"] = current["_creationTime"]
        size = self._validate(name, doc)
        self._buffer(doc_id, BufferedWrite(number, name, original, original_ts, doc, size))
        return doc

    def delete(self, doc_id: str, *, table: str | None = None) -> dict:
        """Delete the document; returns what it was."""
        self._check_open()
        number, name, current, original, original_ts = self._current_for_write(
            doc_id, table, "delete"
        )
        if original is None:
            # Inserted by this very transaction: it simply never happened.
            self.bytes_written -= self.writes.pop(doc_id).size
            return current
        self._buffer(doc_id, BufferedWrite(number, name, original, original_ts, None, 0))
        return current

    # -- queries ---------------------------------------------------------------

    def query(self, query, *, system: bool = False) -> QueryStream:
        """Start a query (``queryStream``); pull rows with :meth:`QueryStream.next`."""
        from convex_backend.database.query import Query, parse_query

        self._check_open()
        if not isinstance(query, Query):
            query = parse_query(query)
        stream = QueryStream(self, query, system=system)
        self._streams.add(stream)
        return stream

    def finish_reads(self) -> ReadSet:
        """Close every open stream (recording its reads); returns the read set."""
        for stream in list(self._streams):
            stream.close()
        return self.read_set

    def count(self, table: str, *, system: bool = False) -> int:
        """Number of documents in ``table`` at this transaction's snapshot."""
        self._check_open()
        info = self._table_for_read(table, system)
        if info is None:
            return 0
        by_id = info.indexes[BY_ID].descriptor.index_id
        self._record(by_id, b"", None)
        count = info.count_at(self.begin_ts)
        for write in self.writes.values():
            if write.table_number == info.number:
                if write.original is None and write.new is not None:
                    count += 1
                elif write.original is not None and write.new is None:
                    count -= 1
        return count

    def query_page(
        self,
        query,
        *,
        cursor: str | None,
        end_cursor: str | None = None,
        page_size: float,
        maximum_rows_read: float | None = None,
        maximum_bytes_read: float | None = None,
        system: bool = False,
    ) -> dict:
        """One page of a query (``queryPage``): Convex's PaginationResult shape."""
        from convex_backend.database.cursors import Cursor, query_fingerprint
        from convex_backend.database.query import Query, parse_query

        self._check_open()
        if self.paginated:
            raise DatabaseError(
                "This query or mutation function ran multiple paginated queries. Convex "
                "only supports a single paginated query in each function.",
                "MultiplePaginatedDatabaseQueries",
            )
        if not isinstance(query, Query):
            query = parse_query(query)
        page_size = _positive_count(
            page_size, "pageSize", "Must request at least 1 document while paginating"
        )
        if page_size > MAX_PAGE_SIZE and end_cursor is None:
            raise DatabaseError(
                f"Page size {page_size} is larger than the maximum of {MAX_PAGE_SIZE}",
                "PageSizeTooLarge",
            )
        max_rows = (
            _positive_count(
                maximum_rows_read,
                "maximumRowsRead",
                "maximumRowsRead must be at least 1",
            )
            if maximum_rows_read is not None
            else None
        )
        max_bytes = (
            _positive_count(
                maximum_bytes_read,
                "maximumBytesRead",
                "maximumBytesRead must be at least 1",
            )
            if maximum_bytes_read is not None
            else None
        )
        self.paginated = True
        codec = self.db.cursor_codec
        fingerprint = query_fingerprint(query)
        start_cursor = codec.decode(cursor, fingerprint) if cursor is not None else None
        stop_cursor = codec.decode(end_cursor, fingerprint) if end_cursor is not None else None
        reverse = query.source.order == "desc" if hasattr(query.source, "order") else False

        def end_of_range() -> str:
            return codec.encode(Cursor(fingerprint, None))

        if start_cursor is not None and start_cursor.position is None:
            # A cursor past the end: an empty, finished page that reads nothing.
            return {
                "page": [],
                "isDone": True,
                "continueCursor": cursor,
                "splitCursor": None,
                "pageStatus": None,
            }
        lo = hi = None
        if start_cursor is not None:
            if reverse:
                hi = start_cursor.position
            else:
                lo = _after(start_cursor.position)
        if stop_cursor is not None and stop_cursor.position is not None:
            if reverse:
                lo = stop_cursor.position
            else:
                hi = _after(stop_cursor.position)
        stream = QueryStream(
            self,
            query,
            system=system,
            start=lo,
            end=hi,
            max_rows=max_rows,
            max_bytes=max_bytes,
        )
        self._streams.add(stream)
        page: list[dict] = []
        while stop_cursor is not None or len(page) < page_size:
            row = stream.next()
            if row is None:
                break
            page.append(row)
        # An end-cursor page that no longer fits its budget must be split.
        status = "SplitRequired" if stream.budget_hit and stop_cursor is not None else None
        exhausted = stream.source_exhausted or (stream.done and stream.range is None)
        if not stream.done:
            stream.close()
        if stream.range is None:
            return {
                "page": [],
                "isDone": True,
                "continueCursor": end_of_range(),
                "splitCursor": None,
                "pageStatus": None,
            }
        if exhausted:
            is_done = stop_cursor is None or stop_cursor.position is None
            if stop_cursor is not None:
                continue_cursor = end_cursor
            else:
                continue_cursor = end_of_range()
        else:
            is_done = False
            continue_cursor = codec.encode(Cursor(fingerprint, stream.last_key))
        split_cursor = None
        if len(page) >= 2:
            middle = page[len(page) // 2 - 1]
            split_cursor = codec.encode(Cursor(fingerprint, stream.keys[middle["_id"]]))
        return {
            "page": page,
            "isDone": is_done,
            "continueCursor": continue_cursor,
            "splitCursor": split_cursor,
            "pageStatus": status,
        }


def _version_ts(versions: list | None, ts: int) -> int | None:
    if not versions:
        return None
    for version in reversed(versions):
        if version[0] <= ts:
            return version[0]
    return None


# -- queries ---------------------------------------------------------------------

MAX_PAGE_SIZE = 8192


def _after(key: bytes) -> bytes:
    """The smallest key strictly greater than ``key`` (keys are unique)."""
    return key + b"\x00"


class QueryStream:
    """The rows of one query, pulled one at a time (``queryStreamNext``).

    The stream records its read set when it finishes or is closed: the whole
    key range if it ran to the end, else the range up to the last row it
    scanned, so a ``take(1)`` does not conflict with writes far down the index.
    """

    def __init__(
        self,
        tx: Transaction,
        query,
        *,
        system: bool = False,
        start: bytes | None = None,
        end: bytes | None = None,
        max_rows: int | None = None,
        max_bytes: int | None = None,
    ) -> None:
        from convex_backend.database.query import FullTableScan, IndexRange, plan_range

        self.tx = tx
        self.query = query
        self.done = False
        self.index_id: int | None = None
        self.last_key: bytes | None = None
        self.source_exhausted = False
        self.rows_scanned = 0
        self.bytes_scanned = 0
        self.keys: dict[str, bytes] = {}
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.budget_hit = False
        source = query.source
        if isinstance(source, FullTableScan):
            from convex_backend.database.tables import BY_CREATION_TIME

            index_name = BY_CREATION_TIME
            range_exprs: tuple = ()
        elif isinstance(source, IndexRange):
            index_name = source.index_name
            range_exprs = source.range
        else:
            raise DatabaseError(
                "Search queries are not supported yet by this backend",
                "SearchNotSupported",
            )
        self.reverse = source.order == "desc"
        table = tx._table_for_read(source.table_name, system)
        self.table = table
        if table is None:
            # The table may be one this very transaction is creating.
            self.range = None
            self._rows = query.apply(self._uncommitted_table(source.table_name, index_name))
            return
        index = table.indexes.get(index_name)
        if index is None:
            raise DatabaseError(
                f"Index {source.table_name}.{index_name} not found.", "IndexNotFound"
            )
        descriptor = index.descriptor
        if descriptor.state != "ready" or descriptor.ready_ts > tx.begin_ts:
            raise DatabaseError(
                f"Index {source.table_name}.{index_name} is currently backfilling and "
                "not available to query yet.",
                "IndexBackfilling",
            )
        key_range = plan_range(
            descriptor.fields,
            range_exprs,
            index_name=f"{source.table_name}.{index_name}",
        )
        lo, hi = key_range.start, key_range.end
        if start is not None and start > lo:
            lo = start
        if end is not None and (hi is None or end < hi):
            hi = end
        self.index = index
        self.index_id = descriptor.index_id
        self.range = (lo, hi)
        rows = self._scan(lo, hi)
        if max_rows is not None or max_bytes is not None:
            rows = self._budgeted(rows)
        self._rows = query.apply(rows)

    def _budgeted(self, rows):
        """Stop scanning once the page's row or byte budget is spent."""
        for row in rows:
            yield row
            if (self.max_rows is not None and self.rows_scanned >= self.max_rows) or (
                self.max_bytes is not None and self.bytes_scanned >= self.max_bytes
            ):
                self.budget_hit = True
                return

    def _scan(self, lo: bytes, hi: bytes | None):
        tx = self.tx
        if hi is not None and lo >= hi:
            self.source_exhausted = True
            return
        table_number = self.table.number
        fields = self.index.descriptor.fields
        hidden = set()
        added = []
        for doc_id, write in tx.writes.items():
            if write.table_number != table_number:
                continue
            hidden.add(doc_id)
            if write.new is not None:
                key = index_key(write.new, fields)
                if lo <= key and (hi is None or key < hi):
                    added.append((key, doc_id, write.new, write.size))
        added.sort(key=lambda row: row[0], reverse=self.reverse)
        store_get = tx.store.get
        begin_ts = tx.begin_ts
        reverse = self.reverse
        stored = self.index.scan(lo, hi, begin_ts, reverse)
        pending = iter(added)
        next_added = next(pending, None)
        for key, doc_id in stored:
            if doc_id in hidden:
                continue
            while next_added is not None and (
                (next_added[0] < key) if not reverse else (next_added[0] > key)
            ):
                yield self._emit(next_added[0], next_added[1], next_added[2], next_added[3])
                next_added = next(pending, None)
            doc, size = store_get(doc_id, begin_ts)
            if doc is None:
                continue
            yield self._emit(key, doc_id, doc, size)
        while next_added is not None:
            yield self._emit(next_added[0], next_added[1], next_added[2], next_added[3])
            next_added = next(pending, None)
        self.source_exhausted = True

    def _uncommitted_table(self, name: str, index_name: str):
        from convex_backend.database.tables import BUILTIN_INDEX_FIELDS

        pending = self.tx.db._pending_tables.get(name)
        if pending is None:
            return
        fields = BUILTIN_INDEX_FIELDS.get(index_name)
        if fields is None:
            raise DatabaseError(f"Index {name}.{index_name} not found.", "IndexNotFound")
        rows = [
            (index_key(w.new, fields), doc_id, w.new, w.size)
            for doc_id, w in self.tx.writes.items()
            if w.table_number == pending.number and w.new is not None
        ]
        rows.sort(key=lambda row: row[0], reverse=self.reverse)
        for key, doc_id, doc, size in rows:
            yield self._emit(key, doc_id, doc, size)

    def _emit(self, key: bytes, doc_id: str, doc: dict, size: int) -> dict:
        self.last_key = key
        self.rows_scanned += 1
        self.bytes_scanned += size
        self.keys[doc_id] = key
        self.tx._count_read(size)
        return doc

    def next(self) -> dict | None:
        """The next row, or None once the query is done."""
        if self.done:
            return None
        try:
            return next(self._rows)
        except StopIteration:
            self.close()
            return None

    def __iter__(self):
        while (row := self.next()) is not None:
            yield row

    def collect(self) -> list[dict]:
        return list(self)

    def covered_range(self) -> tuple[bytes, bytes | None] | None:
        """The key range this stream has read so far."""
        if self.range is None:
            return None
        lo, hi = self.range
        if self.source_exhausted or self.last_key is None and self.done:
            return lo, hi
        if self.last_key is None:
            return None
        if self.reverse:
            return self.last_key, hi
        return lo, _after(self.last_key)

    def close(self) -> None:
        """Finish the stream and record what it read."""
        if self.done:
            return
        self.done = True
        covered = self.covered_range()
        if covered is not None:
            self.tx._record(self.index_id, covered[0], covered[1])
        self.tx._streams.discard(self)


def _positive_count(value: object, name: str, message: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DatabaseError(f"{name} must be a number", "InvalidPaginationOptions")
    if value != value or value < 1:
        raise DatabaseError(message, "InvalidPaginationOptions")
    if value == float("inf"):
        return 2**62
    return int(value)
