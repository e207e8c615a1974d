"""What all sync sessions of one deployment share.

:class:`SyncHub` owns the per-deployment pieces of the sync layer: the
:class:`~convex_backend.sync.subscriptions.SubscriptionManager` (query cache and
write-log subscriptions), the :class:`~convex_backend.sync.idempotency.MutationRecords`,
the set of open sessions, the limits, the Prometheus metrics
(``convex_sync_sessions``, ``convex_sync_subscriptions``,
``convex_query_cache_hits_total``, ``convex_query_cache_misses_total``,
``convex_sync_connects_refused_total``) and the waits for the database to reach
a timestamp a reconnecting client has already seen (:meth:`SyncHub.wait_for_ts`).
The database and the runner appear on the deployment only once the daemon has
started, so the manager and the records are built on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge
from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from convex_backend.sync.idempotency import MutationRecords
from convex_backend.sync.subscriptions import SubscriptionManager

if TYPE_CHECKING:
    from convex_backend.sync.session import SyncSession

log = Logger(namespace="convex.sync")


@dataclass
class SyncLimits:
    """Per-session bounds; exceeding one gives the client a clear error."""

    #: Live queries in one session's query set.
    max_queries: int = 1024
    #: Mutations waiting (they run one at a time, in order).
    max_queued_mutations: int = 64
    #: Actions running at once.
    max_inflight_actions: int = 64
    #: Size of one client message (the largest function argument is 8 MiB).
    max_message_bytes: int = 16 * 1024 * 1024
    #: A JSON Ping after this long without any other message.
    ping_interval: float = 15.0
    #: How often to look for a redeploy while sessions are open.
    deploy_check_interval: float = 1.0
    #: Query results nobody holds that the cache keeps.
    max_idle_results: int = 1000
    #: Successful mutation results remembered for idempotency.
    max_mutation_records: int = 10_000
    #: A Transition longer than this (JSON characters) goes out in ``TransitionChunk``s
    #: to the clients that reassemble them.
    max_transition_bytes: int = 5_000_000
    #: How long a client that has seen a newer timestamp than the database's waits
    #: for the database to reach it before its connection is refused.
    observed_ts_wait: float = 2.0


#: How often a wait for a timestamp looks at the database.
TS_POLL_INTERVAL = 0.05


class SyncHub:
    def __init__(
        self,
        deployment: Any,
        reactor: Any,
        *,
        limits: SyncLimits | None = None,
        durable_records: bool = True,
    ) -> None:
        self.deployment = deployment
        self.reactor = reactor
        self.limits = limits or SyncLimits()
        self.durable_records = durable_records
        self.sessions: set[SyncSession] = set()
        self._manager: SubscriptionManager | None = None
        self._records: MutationRecords | None = None
        self._deploy_check: LoopingCall | None = None
        self._hits = self._misses = self._refused = None
        #: Pending :meth:`wait_for_ts` calls: their Deferred → the next poll.
        self._ts_waits: dict[defer.Deferred, Any] = {}
        metrics = getattr(deployment, "metrics", None)
        registry = getattr(metrics, "registry", None)
        if registry is not None:
            Gauge(
                "convex_sync_sessions", "Open WebSocket sync sessions.", registry=registry
            ).set_function(lambda: len(self.sessions))
            Gauge(
                "convex_sync_subscriptions",
                "Queries subscribed to, over all sync sessions.",
                registry=registry,
            ).set_function(self.subscription_count)
            self._hits = Counter(
                "convex_query_cache_hits",
                "Query results served from the shared query cache.",
                registry=registry,
            )
            self._misses = Counter(
                "convex_query_cache_misses",
                "Query runs because the shared query cache had no valid result.",
                registry=registry,
            )
            self._refused = Counter(
                "convex_sync_connects_refused",
                "Sync connections refused because the client had seen a newer timestamp "
                "than the database's (restored from an older backup?).",
                registry=registry,
            )

    # -- the deployment's pieces -----------------------------------------------------

    @property
    def database(self) -> Any:
        return self.deployment.database

    @property
    def runner(self) -> Any:
        return self.deployment.runner

    @property
    def ready(self) -> bool:
        """Whether the database and the function runtime are up."""
        database = self.deployment.database
        return (
            database is not None
            and self.deployment.runner is not None
            and getattr(database, "loaded", True)
        )

    @property
    def manager(self) -> SubscriptionManager:
        if self._manager is None:
            self._manager = SubscriptionManager(
                self.database,
                self.runner,
                self.reactor,
                max_idle=self.limits.max_idle_results,
                on_hit=self._hits.inc if self._hits is not None else None,
                on_miss=self._misses.inc if self._misses is not None else None,
            )
        return self._manager

    @property
    def records(self) -> MutationRecords:
        if self._records is None:
            self._records = MutationRecords(
                self.database,
                self.reactor,
                max_entries=self.limits.max_mutation_records,
                durable=self.durable_records,
            )
        return self._records

    # -- sessions -------------------------------------------------------------------

    def session_opened(self, session: SyncSession) -> None:
        self.sessions.add(session)
        if self._deploy_check is None and self.limits.deploy_check_interval > 0:
            self._deploy_check = LoopingCall(self._check_deploy)
            self._deploy_check.clock = self.reactor
            self._deploy_check.start(self.limits.deploy_check_interval, now=False)

    def session_closed(self, session: SyncSession) -> None:
        self.sessions.discard(session)
        if not self.sessions and self._deploy_check is not None:
            if self._deploy_check.running:
                self._deploy_check.stop()
            self._deploy_check = None

    def _check_deploy(self) -> None:
        if self._manager is not None:
            self._manager.check_deploy()

    def subscription_count(self) -> int:
        return sum(session.query_count for session in self.sessions)

    # -- timestamps clients have seen -----------------------------------------------

    def wait_for_ts(self, ts: int, timeout: float) -> defer.Deferred:
        """Fires with True once the database has published ``ts`` (at once when the
        clock has passed it: see :meth:`Database.advance_published`), or with False
        after ``timeout`` seconds. Cheap polling: this only happens when a client has
        seen more than the database holds, which a single node never causes itself."""
        d: defer.Deferred = defer.Deferred(self._stop_waiting)
        deadline = self.reactor.seconds() + timeout

        def poll() -> None:
            self._ts_waits.pop(d, None)
            advance = getattr(self.database, "advance_published", None)
            if advance is not None and advance(ts):
                d.callback(True)
            elif self.database.published_ts >= ts:
                d.callback(True)
            elif self.reactor.seconds() >= deadline:
                d.callback(False)
            else:
                self._ts_waits[d] = self.reactor.callLater(TS_POLL_INTERVAL, poll)

        poll()
        return d

    def _stop_waiting(self, d: defer.Deferred) -> None:
        call = self._ts_waits.pop(d, None)
        if call is not None and call.active():
            call.cancel()

    def connect_refused(self) -> None:
        if self._refused is not None:
            self._refused.inc()

    def close(self) -> None:
        """Stop timers and drop every cached result (after the sessions are gone)."""
        if self._deploy_check is not None and self._deploy_check.running:
            self._deploy_check.stop()
        self._deploy_check = None
        for d in list(self._ts_waits):
            d.cancel()
        if self._manager is not None:
            self._manager.close()


__all__ = ["SyncHub", "SyncLimits"]
