"""A process that commits in a loop and reports each acknowledged commit.

Run as ``python -m tests.database.crash_writer DB_PATH START``: 16 concurrent
writers each commit transactions that insert a *pair* of documents sharing a
number; after each commit is acknowledged (durable) the process prints
``ACK <number>``. The crash test SIGKILLs it at a random moment.
"""

from __future__ import annotations

import sys
from pathlib import Path

from twisted.internet import defer, task

from convex_backend.database.engine import Database
from convex_backend.database.persistence import SqlitePersistence
from convex_backend.database.pool import DatabasePool


async def main(reactor, path: str, start: int) -> None:
    pool = DatabasePool(Path(path))
    pool.start()
    db = Database(SqlitePersistence(pool), reactor, instance_secret="00" * 32)
    await db.load()
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    counter = iter(range(start, 10**9))

    async def writer() -> None:
        while True:
            n = float(next(counter))

            def pair(tx, n=n):
                tx.insert("pairs", {"n": n, "half": 0.0})
                tx.insert("pairs", {"n": n, "half": 1.0})

            await db.run(pair)
            sys.stdout.write(f"ACK {int(n)}\n")
            sys.stdout.flush()

    await defer.gatherResults([defer.ensureDeferred(writer()) for _ in range(16)])


if __name__ == "__main__":
    task.react(lambda r: defer.ensureDeferred(main(r, sys.argv[1], int(sys.argv[2]))))
