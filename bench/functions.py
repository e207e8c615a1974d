"""Benchmark of function round trips through the worker pool.

    python -m bench.functions [--seconds 5] [--callers 64] [--workers 2]

Deploys a tiny module (a mutation inserting one document, a query reading
one by id) into a real database and real worker processes, then prints
mutation and query round trips per second with many concurrent callers,
through :class:`FunctionRunner` (validation, transaction, worker, commit).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from twisted.internet import defer, task

from bench.daemon import ITEMS_MODULE
from convex_backend.database.engine import Database
from convex_backend.database.persistence import SqlitePersistence
from convex_backend.database.pool import DatabasePool
from convex_backend.functions.modules import Deployer
from convex_backend.functions.pool import WorkerPool
from convex_backend.functions.runner import Caller, FunctionRunner


async def run_for(seconds: float, callers: int, call) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call()
            done += 1

    started = time.perf_counter()
    await defer.gatherResults([defer.ensureDeferred(loop()) for _ in range(callers)])
    return done / (time.perf_counter() - started)


async def main(reactor, args) -> None:
    with tempfile.TemporaryDirectory() as directory:
        pool = DatabasePool(Path(directory) / "bench.sqlite3")
        pool.start()
        db = Database(SqlitePersistence(pool), reactor, instance_secret="42" * 32)
        await db.load()
        pools: dict = {}
        runner = FunctionRunner(db, pools, reactor)
        deployer = Deployer(db, runner, pools, Path(directory))
        empty = deployer.load_current()
        for name in ("udf", "action"):
            pools[name] = WorkerPool(reactor, str(empty), size=args.workers)
            pools[name].startService()
        await deployer.deploy([{"path": "bench.py", "source": ITEMS_MODULE}])
        admin = Caller("admin")
        ids: list[str] = []

        async def mutate() -> None:
            result = await runner.call("bench:add", {"n": 1.0}, caller=admin)
            if len(ids) < 1000:
                ids.append(result.value)

        rate = await run_for(args.seconds, args.callers, mutate)
        print(
            f"mutation round trips/s ({args.callers} callers, {args.workers} workers, "
            f"1 insert each): {rate:,.0f}"
        )
        counter = iter(range(10**9))

        async def read() -> None:
            doc_id = ids[next(counter) % len(ids)]
            await runner.call("bench:get", {"id": doc_id}, caller=admin)

        rate = await run_for(args.seconds, args.callers, read)
        print(f"query round trips/s ({args.callers} callers, 1 get each): {rate:,.0f}")
        for worker_pool in pools.values():
            await worker_pool.stopService()
        await db.wait_for_idle()
        pool.close()
    print(f"({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    arguments = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, arguments)))
