"""The database as a service of the daemon: open, load, drain, close.

The SQLite file is opened (and its schema created) in
``privilegedStartService``, before any port serves, so that an unreadable or
corrupt file stops the daemon at startup with one line. Loading the store then
runs in the background; ``database.ready`` fires when it is done. Stopping
waits for queued commits to become durable, then closes the pools.
"""

from __future__ import annotations

import sqlite3

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from convex_backend.config import Persistence, StartupError
from convex_backend.database.engine import Database
from convex_backend.database.persistence import SqlitePersistence, _create_schema
from convex_backend.database.pool import DatabasePool, SqliteEngine

log = Logger(namespace="convex.database")


class DatabaseService(Service):
    name = "database"

    def __init__(self, persistence: Persistence, instance_secret: str, reactor) -> None:
        if persistence.scheme != "sqlite" or persistence.path is None:
            raise ValueError(f"unsupported persistence {persistence.scheme!r}")
        self.persistence = persistence
        self.instance_secret = instance_secret
        self.reactor = reactor
        self.pool: DatabasePool | None = None
        self.database: Database | None = None
        self.ready: defer.Deferred = defer.Deferred()

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        path = self.persistence.path
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(str(path), isolation_level=None)
            try:
                SqliteEngine.on_connect(conn)
                _create_schema(conn)
            finally:
                conn.close()
        except (sqlite3.Error, RuntimeError) as e:
            raise StartupError(f"cannot open the database {str(path)!r}: {e}")

    def startService(self) -> None:
        super().startService()
        self.pool = DatabasePool(self.persistence.path)  # type: ignore[arg-type]
        self.pool.start()
        self.database = Database(
            SqlitePersistence(self.pool),
            self.reactor,
            instance_secret=self.instance_secret,
        )
        log.info("Database: SQLite at {path}", path=str(self.persistence.path))
        d = defer.ensureDeferred(self.database.load())
        d.addCallbacks(lambda _: self.ready.callback(self.database), self._load_failed)

    def _load_failed(self, failure) -> None:
        log.failure("Could not load the database", failure)
        self.ready.errback(failure)
        self.reactor.stop()

    @defer.inlineCallbacks
    def stopService(self):
        super().stopService()
        if self.database is not None:
            yield self.database.wait_for_idle()
        if self.pool is not None:
            self.pool.close()
            self.pool = None
            log.info("Database closed")
