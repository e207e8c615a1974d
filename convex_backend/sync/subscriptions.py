"""Live query results: the shared query cache and write-log subscriptions.

:class:`SubscriptionManager` owns every query result the sync sessions use. A
result (:class:`QueryResult`) is what one run of a query gave: a value or an
error, the log lines, the snapshot timestamp it ran at and what it read. It is
valid from that timestamp until the first durable commit that writes into its
read set; the manager subscribes to the database's write log for exactly that
moment, records it on the result (``invalid_ts``) and tells every session
holding the result, which then re-runs it.

Results are shared: the cache is keyed by (path, canonical args, caller kind,
identity), so the same query at the same timestamp runs once for every session,
and a result stays usable at later timestamps for as long as no commit has
touched its read set. Results nobody holds are kept in a bounded LRU so that a
query that is subscribed and unsubscribed repeatedly (the Python client's
``query()``) can still be answered from the cache.

A redeploy changes what every function does, so the manager notices a new
function table on the runner (:meth:`SubscriptionManager.check_deploy`) and
marks everything stale.
"""

from __future__ import annotations

import json
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from convex_backend.functions.runner import Caller, FunctionError, canonicalize_path
from convex_backend.values import to_json

log = Logger(namespace="convex.sync")

#: Errors raised before a query reads anything: they change only with a deploy.
DATA_INDEPENDENT_ERRORS = frozenset(
    {"FunctionNotFound", "WrongFunctionType", "ArgumentValidationError", "BadPath"}
)
#: How long a result of an internal failure (worker crash, database not ready)
#: stands before the sessions holding it try again.
RETRY_DELAY = 5.0

ABSENT: Any = object()

Listener = Callable[["QueryResult"], None]
Key = tuple[str, str, str, str]


class QueryResult:
    """One run of one query; see the module docstring for its validity."""

    __slots__ = (
        "key",
        "ts",
        "ok",
        "value_json",
        "log_lines",
        "error_message",
        "error_data_json",
        "error_code",
        "read_set",
        "invalid_ts",
        "stale",
        "holders",
        "subscription",
        "request",
        "_fingerprint",
    )

    def __init__(
        self,
        key: Key | None,
        ts: int,
        *,
        ok: bool,
        value_json: Any = None,
        log_lines: list[str] | None = None,
        error_message: str | None = None,
        error_data_json: Any = ABSENT,
        error_code: str | None = None,
        read_set: Any = None,
    ) -> None:
        self.key = key
        self.ts = ts
        self.ok = ok
        self.value_json = value_json
        self.log_lines = list(log_lines or [])
        self.error_message = error_message
        self.error_data_json = error_data_json
        self.error_code = error_code
        self.read_set = read_set
        #: The first commit that changed what this result read (None: none yet).
        self.invalid_ts: int | None = None
        #: Unusable whatever the timestamp (a deploy, an eviction, a retry).
        self.stale = False
        self.holders: Counter[Listener] = Counter()
        self.subscription: Any = None
        #: (path, args, caller) it was run with, so the manager can re-run it.
        self.request: tuple | None = None
        self._fingerprint: str | None = None

    def valid_at(self, ts: int) -> bool:
        """Whether this result is the query's result in the snapshot at ``ts``."""
        return (
            not self.stale and self.ts <= ts and (self.invalid_ts is None or ts < self.invalid_ts)
        )

    @property
    def fingerprint(self) -> str:
        """Equal for results a client cannot tell apart (value, error and log lines)."""
        if self._fingerprint is None:
            data = None if self.error_data_json is ABSENT else [self.error_data_json]
            self._fingerprint = json.dumps(
                [self.ok, self.value_json, self.log_lines, self.error_message, data],
                sort_keys=True,
                separators=(",", ":"),
            )
        return self._fingerprint

    def __repr__(self) -> str:
        state = "ok" if self.ok else f"error {self.error_code}"
        return f"<QueryResult {self.key and self.key[0]} ts={self.ts} {state}>"


def args_key(args: Any) -> str:
    """Canonical JSON of a Convex value (keys sorted), for cache keys and comparisons."""
    return json.dumps(to_json(args), sort_keys=True, separators=(",", ":"))


def identity_key(caller: Caller) -> tuple[str, str]:
    # Memoized on the caller: a session keeps one Caller per identity, and this
    # runs for every query of every session on every update.
    cached = caller.__dict__.get("_identity_key")
    if cached is None:
        identity = json.dumps(caller.identity, sort_keys=True, separators=(",", ":"), default=str)
        cached = caller.__dict__["_identity_key"] = (caller.kind, identity)
    return cached


class CacheStats:
    """Hit and miss counts; ``on_hit``/``on_miss`` feed Prometheus counters if given."""

    def __init__(self, on_hit: Callable[[], None] | None, on_miss: Callable[[], None] | None):
        self.hits = 0
        self.misses = 0
        self._on_hit = on_hit
        self._on_miss = on_miss

    def hit(self) -> None:
        self.hits += 1
        if self._on_hit is not None:
            self._on_hit()

    def miss(self) -> None:
        self.misses += 1
        if self._on_miss is not None:
            self._on_miss()


class SubscriptionManager:
    """The query cache and write-log subscriptions shared by all sync sessions.

    The caller must :meth:`acquire` every result :meth:`fetch` returns (and
    release it later); results nobody holds live in a bounded LRU.
    """

    def __init__(
        self,
        database: Any,
        runner: Any,
        reactor: Any,
        *,
        max_idle: int = 1000,
        on_hit: Callable[[], None] | None = None,
        on_miss: Callable[[], None] | None = None,
    ) -> None:
        self.db = database
        self.runner = runner
        self.reactor = reactor
        self.max_idle = max_idle
        self.stats = CacheStats(on_hit, on_miss)
        #: The newest usable result per key.
        self._latest: dict[Key, QueryResult] = {}
        #: Runs in progress, by key and the snapshot they started at.
        self._inflight: dict[tuple[Key, int], list[defer.Deferred]] = {}
        #: Results nobody holds, oldest first (kept for reuse, bounded).
        self._idle: OrderedDict[QueryResult, None] = OrderedDict()
        #: Every result whose subscription or retry timer is alive.
        self._live: set[QueryResult] = set()
        self._retries: dict[QueryResult, Any] = {}
        self._functions = runner.functions

    # -- lookup and runs ------------------------------------------------------------

    def key(self, path: str, args: dict, caller: Caller, args_json: str | None = None) -> Key:
        kind, identity = identity_key(caller)
        return (canonicalize_path(path), args_json or args_key(args), kind, identity)

    def cached(
        self, path: str, args: dict, caller: Caller, at_ts: int, args_json: str | None = None
    ) -> QueryResult | None:
        """The cached result valid at ``at_ts``, without running anything (None: a miss)."""
        try:
            key = self.key(path, args, caller, args_json)
        except FunctionError:
            return None
        return self._cached(key, at_ts)

    def _cached(self, key: Key, at_ts: int) -> QueryResult | None:
        latest = self._latest.get(key)
        if latest is not None and latest.valid_at(at_ts):
            self.stats.hit()
            if latest in self._idle:
                self._idle.move_to_end(latest)
            return latest
        return None

    async def fetch(
        self, path: str, args: dict, caller: Caller, at_ts: int, args_json: str | None = None
    ) -> QueryResult:
        """A result of the query that is valid at ``at_ts`` if one is cached, else a new run.

        A new run reads the latest snapshot, so its ``ts`` may be later than
        ``at_ts``; the caller decides what to do then (sessions move to it).
        The result is not held: call :meth:`acquire` to be told when it changes.
        """
        self.check_deploy()
        try:
            key = self.key(path, args, caller, args_json)
        except FunctionError as e:
            self.stats.miss()
            return QueryResult(None, 0, ok=False, error_message=e.message, error_code=e.code)
        latest = self._cached(key, at_ts)
        if latest is not None:
            return latest
        start_ts = self.db.published_ts
        waiters = self._inflight.get((key, start_ts))
        if waiters is not None:
            # The same query at the same snapshot is already running: share it.
            self.stats.hit()
            d: defer.Deferred = defer.Deferred()
            waiters.append(d)
            return await d
        self.stats.miss()
        waiters = self._inflight[(key, start_ts)] = []
        try:
            result = await self._run(key, path, args, caller, start_ts)
        except BaseException:
            del self._inflight[(key, start_ts)]
            for waiter in waiters:
                waiter.errback()
            raise
        del self._inflight[(key, start_ts)]
        for waiter in waiters:
            waiter.callback(result)
        return result

    async def _run(
        self, key: Key, path: str, args: dict, caller: Caller, start_ts: int
    ) -> QueryResult:
        functions = self.runner.functions
        transient = False
        try:
            call = await self.runner.call(path, args, caller=caller, expected="query")
        except FunctionError as e:
            data = to_json(e.data) if e.code == "ConvexError" else ABSENT
            read_set = getattr(e, "read_set", None)
            if read_set is not None:
                ts = getattr(e, "ts", None) or start_ts
            elif e.code in DATA_INDEPENDENT_ERRORS:
                # Valid at every timestamp until the next deploy.
                ts = 0
            else:
                ts, transient = start_ts, True
            result = QueryResult(
                key,
                ts,
                ok=False,
                log_lines=e.log_lines,
                error_message=e.message,
                error_data_json=data,
                error_code=e.code,
                read_set=read_set,
            )
        except Exception as e:
            log.failure("Query {path} failed unexpectedly", path=path)
            result = QueryResult(
                key,
                start_ts,
                ok=False,
                error_message=f"InternalServerError: {getattr(e, 'message', None) or e}",
                error_code="InternalServerError",
            )
            transient = True
        else:
            result = QueryResult(
                key,
                call.ts if call.ts is not None else start_ts,
                ok=True,
                value_json=to_json(call.value),
                log_lines=call.log_lines,
                read_set=call.read_set,
            )
        result.request = (path, args, caller)
        self._install(result, transient)
        if functions is not self.runner.functions:
            # A deploy finished while this ran: it may have run the old code.
            self._invalidate(result, stale=True)
        return result

    def _install(self, result: QueryResult, transient: bool) -> None:
        # Not idle yet: whoever fetched it acquires it right away, and an
        # eviction before that would make the fetch useless.
        self._live.add(result)
        if transient:
            # Not shared, and retried after a while: the failure says nothing
            # about the data, so no commit would ever re-run it.
            self._retries[result] = self.reactor.callLater(
                RETRY_DELAY, self._invalidate, result, stale=True
            )
        else:
            if result.read_set is not None:
                result.subscription = self.db.write_log.subscribe(
                    result.read_set, result.ts, lambda ts: self._invalidate(result, ts)
                )
            if not result.stale and result.invalid_ts is None:
                previous = self._latest.get(result.key)
                if previous is None or previous.ts <= result.ts:
                    self._latest[result.key] = result
                    if previous is not None and previous is not result:
                        self._forget(previous)

    # -- holders ----------------------------------------------------------------------

    def acquire(self, result: QueryResult, listener: Listener) -> None:
        """Hold ``result``: ``listener(result)`` is called when it becomes invalid."""
        result.holders[listener] += 1
        self._idle.pop(result, None)

    def release(self, result: QueryResult, listener: Listener) -> None:
        count = result.holders[listener] - 1
        if count > 0:
            result.holders[listener] = count
            return
        result.holders.pop(listener, None)
        if result.holders:
            return
        current = self._latest.get(result.key) is result
        if result.stale or result.invalid_ts is not None or not current:
            self._drop(result)
        else:
            self._idle[result] = None
            self._trim_idle()

    # -- invalidation -----------------------------------------------------------------

    def _invalidate(
        self, result: QueryResult, commit_ts: int | None = None, *, stale: bool = False
    ) -> None:
        if commit_ts is not None and (result.invalid_ts is None or commit_ts < result.invalid_ts):
            result.invalid_ts = commit_ts
        if stale:
            result.stale = True
        retry = self._retries.pop(result, None)
        if retry is not None and retry.active():
            retry.cancel()
        if self._latest.get(result.key) is result:
            del self._latest[result.key]
        if not result.holders:
            self._drop(result)
            return
        if not stale and result.request is not None and self.check_deploy() is False:
            # Re-run once here, then wake the holders: they all find the new
            # result cached instead of each queueing for the same run.
            path, args, caller = result.request
            d = defer.ensureDeferred(
                self.fetch(path, args, caller, self.db.published_ts, result.key[1])
            )
            d.addErrback(lambda failure: log.failure("Re-running {p} failed", failure, p=path))
            d.addBoth(lambda _: self._notify(result))
            return
        self._notify(result)

    def _notify(self, result: QueryResult) -> None:
        for listener in list(result.holders):
            try:
                listener(result)
            except Exception:
                # Called from the database's commit path: never let it fail.
                log.failure("A sync session's invalidation handler failed")

    def _forget(self, result: QueryResult) -> None:
        """A result replaced by a newer one for the same key: drop it unless held."""
        if not result.holders:
            self._drop(result)

    def _drop(self, result: QueryResult) -> None:
        self._idle.pop(result, None)
        self._live.discard(result)
        if result.subscription is not None:
            result.subscription.cancel()
            result.subscription = None
        retry = self._retries.pop(result, None)
        if retry is not None and retry.active():
            retry.cancel()
        if self._latest.get(result.key) is result:
            del self._latest[result.key]
        # Nobody can know when a dropped result changes any more.
        result.stale = True

    def _trim_idle(self) -> None:
        while len(self._idle) > self.max_idle:
            oldest = next(iter(self._idle))
            self._drop(oldest)

    def check_deploy(self) -> bool:
        """If the functions were redeployed, mark every result stale (and say so)."""
        if self.runner.functions is self._functions:
            return False
        self._functions = self.runner.functions
        for result in list(self._live):
            self._invalidate(result, stale=True)
        return True

    # -- introspection and shutdown ------------------------------------------------

    @property
    def result_count(self) -> int:
        return len(self._live)

    def close(self) -> None:
        """Cancel every subscription and retry timer (sessions must be gone)."""
        for result in list(self._live):
            self._drop(result)
        self._latest.clear()


__all__ = [
    "DATA_INDEPENDENT_ERRORS",
    "QueryResult",
    "SubscriptionManager",
    "args_key",
    "identity_key",
]
