"""Connection pools over ``twisted.enterprise.adbapi``, one engine class per database.

As in Synapse's storage layer: a :class:`DatabasePool` runs transactions (plain
functions taking a cursor) on a pool thread, never on the reactor. For SQLite
there is a single writer connection (SQLite serializes writers anyway, and one
connection lets us batch commits) and a separate pool of reader connections,
which WAL mode lets run beside the writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from twisted.enterprise import adbapi
from twisted.internet import defer

T = TypeVar("T")


class SqliteEngine:
    """SQLite specifics: pragmas run on every new connection."""

    name = "sqlite"
    module = "sqlite3"

    @staticmethod
    def on_connect(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk when it returns, which is what "acknowledged
        # only once durable" needs; group commit keeps the fsync count low.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")


class DatabasePool:
    """A writer pool and a reader pool on one SQLite file."""

    def __init__(self, path: Path, readers: int = 4) -> None:
        self.path = path
        self._closed = False
        self.engine = SqliteEngine()
        common: dict[str, Any] = {
            "check_same_thread": False,
            "cp_openfun": self.engine.on_connect,
            "cp_reconnect": False,
            "isolation_level": None,  # we issue BEGIN/COMMIT ourselves
        }
        self._writer = adbapi.ConnectionPool(
            self.engine.module, str(path), cp_min=1, cp_max=1, cp_noisy=False, **common
        )
        self._readers = adbapi.ConnectionPool(
            self.engine.module,
            str(path),
            cp_min=1,
            cp_max=readers,
            cp_noisy=False,
            **common,
        )

    def start(self) -> None:
        self._writer.start()
        self._readers.start()

    def run_write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> defer.Deferred:
        """Run ``fn(connection, ...)`` on the writer connection."""
        return self._writer.runWithConnection(fn, *args, **kwargs)

    def run_read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> defer.Deferred:
        """Run ``fn(connection, ...)`` on a reader connection."""
        return self._readers.runWithConnection(fn, *args, **kwargs)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._readers.close()
        self._writer.close()
