"""A real Database on a temporary SQLite file, for tests."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import reactor

from convex_backend.database.engine import Database
from convex_backend.database.persistence import SqlitePersistence
from convex_backend.database.pool import DatabasePool

SECRET = "5e" * 32


async def open_database(testcase, path: str | Path | None = None) -> Database:
    """Open (and load) a database; closed when the test ends."""
    if path is None:
        directory = Path(testcase.mktemp())
        directory.mkdir(parents=True)
        path = directory / "db.sqlite3"
    pool = DatabasePool(Path(path))
    pool.start()
    db = Database(SqlitePersistence(pool), reactor, instance_secret=SECRET)
    db.path = Path(path)

    async def close() -> None:
        await db.wait_for_idle()
        pool.close()

    testcase.addCleanup(close)
    await db.load()
    return db


async def reopen(testcase, db: Database) -> Database:
    await db.wait_for_idle()
    db.persistence.close()
    return await open_database(testcase, db.path)


def scan(table: str, order: str = "asc") -> dict:
    return {
        "source": {"type": "FullTableScan", "tableName": table, "order": order},
        "operators": [],
    }


def index_range(table: str, index: str, *exprs: tuple, order: str = "asc", ops=()) -> dict:
    from convex_backend.values import UNDEFINED, to_json

    def encode(value):
        return {"$undefined": None} if value is UNDEFINED else to_json(value)

    return {
        "source": {
            "type": "IndexRange",
            "indexName": f"{table}.{index}",
            "range": [
                {"type": op, "fieldPath": field, "value": encode(value)}
                for op, field, value in exprs
            ],
            "order": order,
        },
        "operators": list(ops),
    }
