"""Durable storage of the database: an append-only log of document versions.

The :class:`Persistence` interface is what an engine (SQLite now, PostgreSQL
later) implements; :class:`SqlitePersistence` is the embedded one, through
``adbapi`` (see ``pool.py``). Its tables::

    documents(id, ts, table_id, json_value, deleted, prev_ts)  -- every version
    tables(table_number, name, ts)                             -- name <-> number
    indexes(index_id, table_number, name, fields, state, ts)   -- index metadata
    persistence_globals(key, json_value)                       -- max ts, schema, ...

Document versions are only ever appended: a write at ``ts`` adds a row (a
delete adds a tombstone), and a read at ``T`` would take the newest row at or
below ``T``. Index *entries* are not persisted: they are derived from the
documents and rebuilt in memory when the store loads (design note in
docs/database.md). One call to :meth:`write_batch` is one SQLite transaction
holding many commits (group commit): one fsync for all of them.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Protocol

from twisted.internet import defer

from convex_backend.database.pool import DatabasePool
from convex_backend.values.codec import loads

SCHEMA_VERSION = 1

_DDL = [
    "CREATE TABLE IF NOT EXISTS persistence_globals ("
    " key TEXT PRIMARY KEY, json_value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS documents ("
    " id TEXT NOT NULL, ts INTEGER NOT NULL, table_id INTEGER NOT NULL,"
    " json_value TEXT, deleted INTEGER NOT NULL, prev_ts INTEGER,"
    " PRIMARY KEY (id, ts)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS documents_by_ts ON documents (ts)",
    "CREATE TABLE IF NOT EXISTS tables ("
    " table_number INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, ts INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS indexes ("
    " index_id INTEGER PRIMARY KEY, table_number INTEGER NOT NULL, name TEXT NOT NULL,"
    " fields TEXT NOT NULL, state TEXT NOT NULL, ts INTEGER NOT NULL,"
    " UNIQUE (table_number, name))",
]


@dataclass
class DocumentRow:
    id: str
    ts: int
    table_id: int
    json_value: str | None  # None for a tombstone
    prev_ts: int | None


@dataclass
class Batch:
    """Everything one group commit makes durable."""

    documents: list[DocumentRow]
    new_tables: list[tuple[int, str, int]]
    index_upserts: list[tuple[int, int, str, str, str, int]]
    index_deletes: list[int]
    globals: dict[str, object]
    max_ts: int


@dataclass
class Snapshot:
    """What :meth:`Persistence.load` returns: the latest state, for the store."""

    max_ts: int
    tables: list[tuple[int, str]]
    indexes: list[tuple[int, int, str, list[str], str]]
    globals: dict[str, object]
    #: (id, ts, table_id, document) of every live document's newest version.
    documents: list[tuple[str, int, int, dict]]


class Persistence(Protocol):
    def open(self) -> defer.Deferred: ...
    def load(self) -> defer.Deferred: ...  # -> Snapshot
    def write_batch(self, batch: Batch) -> defer.Deferred: ...
    def close(self) -> None: ...


class SqlitePersistence:
    """The embedded engine: one SQLite file in WAL mode."""

    def __init__(self, pool: DatabasePool) -> None:
        self.pool = pool

    def open(self) -> defer.Deferred:
        return self.pool.run_write(_create_schema)

    def load(self) -> defer.Deferred:
        return self.pool.run_read(_load)

    def write_batch(self, batch: Batch) -> defer.Deferred:
        return self.pool.run_write(_write_batch, batch)

    def document_history(self, doc_id: str) -> defer.Deferred:
        """Every persisted version of one document (for tests and tools)."""
        return self.pool.run_read(_history, doc_id)

    def close(self) -> None:
        self.pool.close()


def _create_schema(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _DDL:
            conn.execute(statement)
        row = conn.execute(
            "SELECT json_value FROM persistence_globals WHERE key = 'schema_version'"
        ).fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO persistence_globals VALUES ('schema_version', ?)",
                (json.dumps(SCHEMA_VERSION),),
            )
        elif json.loads(row[0]) > SCHEMA_VERSION:
            raise RuntimeError(
                f"the database was written by a newer convex_backend "
                f"(schema {row[0]}, this one knows {SCHEMA_VERSION})"
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _load(conn: sqlite3.Connection) -> Snapshot:
    conn.execute("BEGIN")
    try:
        max_ts = conn.execute("SELECT COALESCE(MAX(ts), 0) FROM documents").fetchone()[0]
        globals_ = {
            key: json.loads(value)
            for key, value in conn.execute("SELECT key, json_value FROM persistence_globals")
        }
        max_ts = max(max_ts, int(globals_.get("max_ts", 0)))
        tables = list(conn.execute("SELECT table_number, name FROM tables"))
        indexes = [
            (index_id, table, name, json.loads(fields), state)
            for index_id, table, name, fields, state in conn.execute(
                "SELECT index_id, table_number, name, fields, state FROM indexes"
            )
        ]
        # Parsed here, on the pool thread, so the reactor only links them in.
        documents = [
            (doc_id, ts, table_id, loads(json_value))
            for doc_id, ts, table_id, json_value in conn.execute(
                "SELECT d.id, d.ts, d.table_id, d.json_value FROM documents d"
                " JOIN (SELECT id, MAX(ts) AS ts FROM documents GROUP BY id) latest"
                " ON d.id = latest.id AND d.ts = latest.ts"
                " WHERE d.deleted = 0"
            )
        ]
    finally:
        conn.execute("COMMIT")
    return Snapshot(max_ts, tables, indexes, globals_, documents)


def _write_batch(conn: sqlite3.Connection, batch: Batch) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        if batch.new_tables:
            conn.executemany(
                "INSERT OR IGNORE INTO tables (table_number, name, ts) VALUES (?, ?, ?)",
                batch.new_tables,
            )
        if batch.index_deletes:
            conn.executemany(
                "DELETE FROM indexes WHERE index_id = ?",
                [(i,) for i in batch.index_deletes],
            )
        if batch.index_upserts:
            conn.executemany(
                "INSERT OR REPLACE INTO indexes"
                " (index_id, table_number, name, fields, state, ts)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                batch.index_upserts,
            )
        if batch.documents:
            conn.executemany(
                "INSERT INTO documents (id, ts, table_id, json_value, deleted, prev_ts)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        d.id,
                        d.ts,
                        d.table_id,
                        d.json_value,
                        d.json_value is None,
                        d.prev_ts,
                    )
                    for d in batch.documents
                ],
            )
        batch.globals["max_ts"] = batch.max_ts
        conn.executemany(
            "INSERT OR REPLACE INTO persistence_globals (key, json_value) VALUES (?, ?)",
            [(key, json.dumps(value)) for key, value in batch.globals.items()],
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _history(conn: sqlite3.Connection, doc_id: str) -> list[tuple]:
    return conn.execute(
        "SELECT ts, table_id, json_value, deleted, prev_ts FROM documents WHERE id = ? ORDER BY ts",
        (doc_id,),
    ).fetchall()
