"""Prometheus metrics of the database engine.

Commit latency (from ``Database.commit`` to durable) is a histogram the engine
observes once per commit when its batch is written. Everything else is read
from the engine's own counters and sizes when /metrics is scraped, so the
commit path pays nothing for it: commits, write batches, optimistic
concurrency conflicts, internal transaction retries and the write log length.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


def install_database_metrics(registry: Any, database: Any) -> None:
    """Register the engine's metrics and hook the commit latency histogram in."""
    database.commit_latency = Histogram(
        "convex_commit_latency_seconds",
        "Time from a transaction's commit to its writes being durable (queue and fsync).",
        registry=registry,
        buckets=COMMIT_BUCKETS,
    )
    registry.register(_DatabaseCollector(database))


class _DatabaseCollector:
    """Reads ``Database.stats`` and the write log when /metrics is scraped."""

    _COUNTERS = (
        ("commits", "convex_database_commits", "Transactions committed with writes."),
        (
            "batches",
            "convex_database_write_batches",
            "Batches of commits written (one fsync each).",
        ),
        (
            "conflicts",
            "convex_occ_conflicts",
            "Commits refused by optimistic concurrency control (a write after the "
            "transaction began touched what it read).",
        ),
        (
            "retries",
            "convex_database_retries",
            "Internal (non-function) transactions re-run after a conflict.",
        ),
    )

    def __init__(self, database: Any) -> None:
        self.database = database

    def describe(self):
        return []

    def collect(self):
        stats = self.database.stats
        for key, name, documentation in self._COUNTERS:
            yield CounterMetricFamily(name, documentation, value=stats.get(key, 0))
        yield GaugeMetricFamily(
            "convex_write_log_entries",
            "Commits held in the in-memory write log (for conflict checks and subscriptions).",
            value=len(self.database.write_log.entries),
        )
