"""Benchmark of the database engine through its Python API.

    python -m bench.engine [--seconds 5] [--writers 64] [--docs 20000]

Prints durable single-document commits/s with many concurrent writers, indexed
point reads/s (``get`` by id) and 10-row indexed range reads/s, on a real
SQLite file in a temporary directory (synchronous=FULL: every acknowledged
commit has been fsynced).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

from twisted.internet import defer, task

from convex_backend.database.engine import Database
from convex_backend.database.persistence import SqlitePersistence
from convex_backend.database.pool import DatabasePool


async def open_db(reactor, directory: str) -> Database:
    pool = DatabasePool(Path(directory) / "bench.sqlite3")
    pool.start()
    db = Database(SqlitePersistence(pool), reactor, instance_secret="42" * 32)
    await db.load()
    return db


async def bench_commits(db: Database, seconds: float, writers: int) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def writer(w: int) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < deadline:
            doc = {"writer": float(w), "i": float(i)}
            await db.run(lambda tx, doc=doc: tx.insert("writes", doc))
            done += 1
            i += 1

    started = time.perf_counter()
    await defer.gatherResults([defer.ensureDeferred(writer(w)) for w in range(writers)])
    return done / (time.perf_counter() - started)


def bench_point_reads(db: Database, ids: list[str], seconds: float) -> float:
    rng = random.Random(1)
    reads = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        tx = db.begin()
        for _ in range(100):
            tx.get(ids[rng.randrange(len(ids))])
        tx.close()
        reads += 100
    return reads / (time.perf_counter() - started)


def bench_range_reads(db: Database, n_docs: int, seconds: float) -> float:
    rng = random.Random(2)
    reads = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        tx = db.begin()
        for _ in range(20):
            lo = float(rng.randrange(n_docs - 10))
            rows = tx.query(
                {
                    "source": {
                        "type": "IndexRange",
                        "indexName": "items.by_k",
                        "range": [
                            {"type": "Gte", "fieldPath": "k", "value": lo},
                            {"type": "Lt", "fieldPath": "k", "value": lo + 10},
                        ],
                        "order": "asc",
                    },
                    "operators": [],
                }
            ).collect()
            assert len(rows) == 10, len(rows)
        tx.close()
        reads += 20
    return reads / (time.perf_counter() - started)


async def main(reactor, args) -> None:
    with tempfile.TemporaryDirectory() as directory:
        db = await open_db(reactor, directory)
        rate = await bench_commits(db, args.seconds, args.writers)
        batches, commits = db.stats["batches"], db.stats["commits"]
        print(
            f"durable commits/s ({args.writers} concurrent writers, 1 insert each): "
            f"{rate:,.0f}  (avg {commits / max(batches, 1):.0f} commits per fsync)"
        )
        await db.add_index("items", "by_k", ("k",))
        for start in range(0, args.docs, 1000):
            await db.run(
                lambda tx, s=start: [
                    tx.insert("items", {"k": float(i), "body": "x" * 100})
                    for i in range(s, min(s + 1000, args.docs))
                ]
            )
        tx = db.begin()
        ids = [
            d["_id"]
            for d in tx.query(
                {
                    "source": {
                        "type": "FullTableScan",
                        "tableName": "items",
                        "order": "asc",
                    },
                    "operators": [],
                }
            )
        ]
        tx.close()
        point = bench_point_reads(db, ids, args.seconds)
        print(f"point reads/s (get by id, {len(ids):,} docs): {point:,.0f}")
        print(
            f"10-row indexed range reads/s: {bench_range_reads(db, args.docs, args.seconds):,.0f}"
        )
        await db.wait_for_idle()
        db.persistence.close()
    print(f"(python {'.'.join(map(str, os.sys.version_info[:3]))}, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--writers", type=int, default=64)
    parser.add_argument("--docs", type=int, default=20_000)
    arguments = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, arguments)))
