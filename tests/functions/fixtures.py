"""Worker pools on temporary module directories, for the function runtime tests."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from twisted.internet import reactor

from convex_backend.functions.pool import HostSyscallError, WorkerPool

#: The frozen clock of test invocations (ms since the epoch).
NOW = 1764000000000.0


def write_modules(testcase, files: dict[str, str]) -> str:
    """A fresh directory holding ``files`` (relative path -> dedented source)."""
    directory = Path(testcase.mktemp())
    directory.mkdir(parents=True)
    for name, source in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return str(directory)


async def start_pool(testcase, files: dict[str, str], **options: Any) -> WorkerPool:
    """A started pool on ``files``, stopped when the test ends."""
    options.setdefault("size", 1)
    options.setdefault("query_timeout", 0.5)
    options.setdefault("action_timeout", 5.0)
    options.setdefault("shutdown_grace", 1.0)
    pool = WorkerPool(reactor, write_modules(testcase, files), **options)
    pool.startService()
    testcase.addCleanup(pool.stopService)
    await pool.when_ready()
    return pool


def request(
    path: str,
    args: Any = None,
    *,
    udf_type: str = "query",
    seed: str = "00" * 16,
    now: float = NOW,
    env: dict[str, str] | None = None,
    tables: dict[str, int] | None = None,
) -> dict[str, Any]:
    """An invoke request (the frame minus type and id)."""
    return {
        "udfType": udf_type,
        "path": path,
        "args": {} if args is None else args,
        "requestId": "test",
        "identity": None,
        "snapshotTs": {"$integer": "AQAAAAAAAAA="},
        "tables": tables or {},
        "env": env or {},
        "seed": seed,
        "now": now,
        "visibility": "public",
    }


class Handler:
    """A syscall handler from a dict op -> function(args); records every call."""

    def __init__(self, ops: dict[str, Any] | None = None) -> None:
        self.ops = ops or {}
        self.calls: list[tuple[str, Any, bool]] = []

    def __call__(self, op: str, args: Any, notification: bool = False) -> Any:
        self.calls.append((op, args, notification))
        method = self.ops.get(op)
        if method is None:
            if notification:
                return None
            raise HostSyscallError(f"Unknown async operation {op}")
        return method(args)


async def deploy_app(testcase, db, modules: dict[str, str], *, workers: int = 2):
    """A runner with real worker pools, with ``modules`` (path -> source) deployed.

    Returns ``(runner, pools, deployer)``; the pools stop when the test ends.
    """
    from convex_backend.functions.modules import Deployer
    from convex_backend.functions.runner import FunctionRunner

    pools: dict = {}
    runner = FunctionRunner(db, pools, reactor)
    data = Path(testcase.mktemp()).absolute()
    data.mkdir()
    deployer = Deployer(db, runner, pools, data)
    empty = deployer.load_current()
    for name in ("udf", "action"):
        pool = WorkerPool(reactor, str(empty), size=workers)
        pool.startService()
        testcase.addCleanup(pool.stopService)
        pools[name] = pool
    await deployer.deploy([{"path": path, "source": source} for path, source in modules.items()])
    return runner, pools, deployer
