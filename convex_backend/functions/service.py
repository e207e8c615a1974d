"""The function runtime as a service: worker pools, the runner and the deployer.

It starts once the database has loaded: the stored deployment is written out,
two worker pools start on it (one for queries and mutations, one for actions,
so that actions waiting on ``run_mutation`` can never starve the pool that
serves it), and :class:`FunctionRunner` and :class:`Deployer` are attached to
the :class:`~convex_backend.deployment.Deployment`.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.logger import Logger

from convex_backend.database.metrics import install_database_metrics
from convex_backend.functions.metrics import FunctionMetrics
from convex_backend.functions.modules import Deployer
from convex_backend.functions.pool import WorkerPool
from convex_backend.functions.runner import FunctionRunner

log = Logger(namespace="convex.functions")


class FunctionsService(MultiService):
    name = "functions"

    def __init__(self, deployment, database_service, reactor, *, workers: int) -> None:
        super().__init__()
        self.deployment = deployment
        self.database_service = database_service
        self.reactor = reactor
        self.workers = workers
        self.ready: defer.Deferred = defer.Deferred()
        #: Fires (with None) once the runtime is up; for others to wait on.
        self.started: defer.Deferred = defer.Deferred()

    def startService(self) -> None:
        # Children (the pools) start once the database is ready, not now.
        self.running = 1
        d = self.database_service.ready
        d.addCallback(lambda database: defer.ensureDeferred(self._start(database)))
        d.addErrback(self._failed)

    async def _start(self, database) -> None:
        config = self.deployment.config
        pools: dict = {}
        runner = FunctionRunner(database, pools, self.reactor)
        deployer = Deployer(database, runner, pools, config.data_dir)
        directory = deployer.load_current()
        limits = {
            "query_timeout": config.function_timeout,
            "action_timeout": config.action_timeout,
            "memory_limit": config.worker_memory_mb * 1024 * 1024,
        }
        pools["udf"] = WorkerPool(self.reactor, str(directory), size=self.workers, **limits)
        pools["action"] = WorkerPool(self.reactor, str(directory), size=self.workers, **limits)
        runner.set_environment(load_environment(database))
        for name, pool in pools.items():
            pool.setName(f"{name} workers")
            pool.setServiceParent(self)
        runner.metrics = FunctionMetrics(self.deployment.metrics.registry, pools)
        install_database_metrics(self.deployment.metrics.registry, database)
        function_logs = getattr(self.deployment, "function_logs", None)
        if function_logs is not None:
            runner.log_sink = function_logs.sink
        self.deployment.database = database
        self.deployment.runner = runner
        self.deployer = self.deployment.deployer = deployer
        log.info(
            "Functions ready: deployment {id}, {n} functions, {w} workers per pool",
            id=deployer.current_id,
            n=len(runner.functions),
            w=self.workers,
        )
        self.started.callback(None)
        self.ready.callback(runner)

    def _failed(self, failure) -> None:
        log.failure("The function runtime could not start", failure)
        self.ready.errback(failure)
        self.ready.addErrback(lambda _: None)
        if self.reactor.running:
            self.reactor.stop()

    def stopService(self):
        return super().stopService()


class AfterFunctionsService(Service):
    """A service whose work starts once the function runtime is up.

    ``ready`` is :attr:`FunctionsService.started` (or None: start by hand);
    :meth:`start` runs when it fires. Not chained onto ``ready`` itself:
    others wait on it too, and this start (or its failure) must not hold
    them up.
    """

    #: What the log calls this service when it fails to start.
    description = "A service"

    def __init__(self, ready: defer.Deferred | None) -> None:
        self._ready = ready

    def startService(self) -> None:
        super().startService()
        if self._ready is not None:
            self._ready.addCallback(self._functions_ready)

    def _functions_ready(self, result: Any) -> Any:
        if self.running:
            d = defer.ensureDeferred(self.start())
            d.addErrback(lambda f: log.failure(f"{self.description} could not start", f))
        return result

    async def start(self) -> None:
        raise NotImplementedError


def settle_within(clock, seconds: float, runs: list[defer.Deferred]) -> defer.Deferred:
    """Fires once ``runs`` have all ended, or after ``seconds``, whichever is first.

    For stopping services: runs in progress get a moment to record their
    outcome but are not cancelled (``addTimeout`` would cancel them).
    """
    if not runs:
        return defer.succeed(None)
    done: defer.Deferred = defer.Deferred()

    def finish(_: Any = None) -> None:
        if not done.called:
            done.callback(None)

    timeout = clock.callLater(seconds, finish)
    defer.DeferredList(runs, consumeErrors=True).addBoth(finish)
    done.addBoth(lambda _: timeout.cancel() if timeout.active() else None)
    return done


def load_environment(database) -> dict[str, str]:
    tx = database.begin(privileged=True)
    try:
        rows = tx.query(
            {
                "source": {
                    "type": "FullTableScan",
                    "tableName": "_environment_variables",
                    "order": "asc",
                },
                "operators": [],
            },
            system=True,
        ).collect()
    finally:
        tx.close()
    return {row["name"]: row["value"] for row in rows}
