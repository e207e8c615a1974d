"""Prometheus metrics of the function runtime.

Executions, errors and durations by function and kind (from the runner), and
the state of the worker pools (read from ``WorkerPool.stats`` at scrape time).
Labels are function paths of the current deployment and a small set of
statuses, so their number stays bounded by the code, not by traffic.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class FunctionMetrics:
    def __init__(self, registry, pools: dict) -> None:
        self.executions = Counter(
            "convex_function_executions",
            "Function executions, by function, kind and outcome.",
            ["function", "udf_type", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "convex_function_duration_seconds",
            "Time to run a function (queue, worker, database and commit), by kind.",
            ["udf_type"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60),
        )
        self.errors = Counter(
            "convex_function_errors",
            "Failed function executions, by function, kind and error code "
            "(UserError, ConvexError, OccConflict, FunctionTimeout, ...).",
            ["function", "udf_type", "code"],
            registry=registry,
        )
        self.retries = Counter(
            "convex_mutation_retries",
            "Mutation re-runs after an optimistic concurrency conflict.",
            registry=registry,
        )
        registry.register(_PoolCollector(pools))

    def observe(
        self, path: str, udf_type: str, status: str, seconds: float, code: str | None = None
    ) -> None:
        self.executions.labels(path, udf_type, status).inc()
        self.duration.labels(udf_type).observe(seconds)
        if code is not None:
            self.errors.labels(path, udf_type, code).inc()


class _PoolCollector:
    """Reads the pools' counters when /metrics is scraped."""

    _COUNTERS = ("invocations", "restarts", "timeouts", "crashes", "overloaded")
    _GAUGES = ("queue_length", "busy_workers", "workers")

    def __init__(self, pools: dict) -> None:
        self.pools = pools

    def describe(self):
        return []

    def collect(self):
        counters = {
            name: CounterMetricFamily(
                f"convex_worker_{name}", f"Worker pool {name.replace('_', ' ')}.", labels=["pool"]
            )
            for name in self._COUNTERS
        }
        gauges = {
            name: GaugeMetricFamily(
                f"convex_worker_{name}", f"Worker pool {name.replace('_', ' ')}.", labels=["pool"]
            )
            for name in self._GAUGES
        }
        for pool_name, pool in list(self.pools.items()):
            stats = pool.stats
            for name in self._COUNTERS:
                counters[name].add_metric([pool_name], stats.get(name, 0))
            for name in self._GAUGES:
                gauges[name].add_metric([pool_name], stats.get(name, 0))
        yield from counters.values()
        yield from gauges.values()
