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

from twisted.application.service import Service
from twisted.enterprise import adbapi
from twisted.internet import defer
from twisted.logger import Logger

from convex_backend.config import Persistence, StartupError

log = Logger(namespace="convex.database")
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

    def run_write(
        self, fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> defer.Deferred:
        """Run ``fn(connection, ...)`` on the writer connection."""
        return self._writer.runWithConnection(fn, *args, **kwargs)

    def run_read(
        self, fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> defer.Deferred:
        """Run ``fn(connection, ...)`` on a reader connection."""
        return self._readers.runWithConnection(fn, *args, **kwargs)

    def close(self) -> None:
        self._readers.close()
        self._writer.close()


def _create_globals(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS persistence_globals ("
        " key TEXT PRIMARY KEY, json_value TEXT NOT NULL)"
    )


class PersistenceService(Service):
    """Opens the database when the daemon starts and closes it last when it stops."""

    name = "persistence"

    def __init__(self, persistence: Persistence) -> None:
        if persistence.scheme != "sqlite" or persistence.path is None:
            raise ValueError(f"unsupported persistence {persistence.scheme!r}")
        self.persistence = persistence
        self.pool: DatabasePool | None = None

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        path = self.persistence.path
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        # Open once on the main thread before serving so that an unreadable or
        # corrupt file stops the daemon at startup rather than on first use.
        try:
            conn = sqlite3.connect(str(path))
            try:
                SqliteEngine.on_connect(conn)
                _create_globals(conn)
                conn.commit()
            finally:
                conn.close()
        except sqlite3.Error as e:
            raise StartupError(f"cannot open the database {str(path)!r}: {e}")

    def startService(self) -> None:
        super().startService()
        self.pool = DatabasePool(self.persistence.path)  # type: ignore[arg-type]
        self.pool.start()
        log.info("Database: SQLite at {path}", path=str(self.persistence.path))

    def stopService(self):
        super().stopService()
        if self.pool is not None:
            self.pool.close()
            self.pool = None
            log.info("Database closed")
