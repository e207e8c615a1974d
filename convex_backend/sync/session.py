"""One sync connection's state machine, independent of the WebSocket transport.

A :class:`SyncSession` is fed the text of each client frame (:meth:`receive`)
and answers through two callables it was given: ``send(text)`` and
``close(code, reason)``. It keeps what the protocol makes the server keep
(``reference/client-protocol.md`` §1.5):

* the query set version (the last ``newVersion``), the identity version (one
  more per accepted ``Authenticate``) and the last ``endVersion`` sent, so that
  every ``Transition`` starts where the previous one ended;
* the subscribed queries (queryId → canonical path, args, journal, the result
  currently shown) and their results, from the shared
  :class:`~convex_backend.sync.subscriptions.SubscriptionManager`.

Updates: any change (query set, identity, an invalidated result, a finished
mutation) asks for an update, at most one per reactor turn and one at a time.
An update picks one timestamp, makes sure every query of the session has a
result valid at it (re-running only those that are not), and sends a single
``Transition`` to it, leaving out results the client already has. Because an
update computes the difference from what was last sent, updates that could not
be sent (the client is slow and the transport paused us) coalesce instead of
queueing.

Auth: ``Authenticate`` with a user token is verified asynchronously (the
provider's keys may have to be fetched); messages that arrive meanwhile are held
and then handled in order, so they run as the new identity. A refused token gets
an ``AuthError`` and the socket is closed; so does an accepted one once it expires.

Mutations run one at a time in arrival order (bounded queue), each answered by
a ``MutationResponse`` and then a ``Transition`` whose ``endVersion.ts`` is at
least the commit timestamp, so the client sees its own writes. Actions run
concurrently (bounded). Malformed messages get a ``FatalError`` and the
connection is closed; nothing else is affected.

``Connect`` names the session (for idempotent mutations) and gives the client's
clock (each Transition then carries ``clientClockSkew`` and ``serverTs``). A
client that has seen a newer timestamp than the database's (its
``maxObservedTimestamp``) is held until the database gets there, briefly, and
otherwise refused with a retryable close, so that its view never goes back in
time. A Transition too large for one frame goes out as ``TransitionChunk``s to
the npm clients that reassemble them (1.28.0 and later).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from convex_backend.auth.identity import IdentityError, normalize_identity
from convex_backend.auth.jwt import AuthenticationError
from convex_backend.auth.users import user_authenticator
from convex_backend.functions.runner import Caller, FunctionError, canonicalize_path
from convex_backend.sync import protocol as p
from convex_backend.sync.hub import SyncHub
from convex_backend.sync.subscriptions import ABSENT, QueryResult, args_key

log = Logger(namespace="convex.sync")

# Close codes (reference/client-protocol.md §1.9).
CLOSE_NORMAL = 1000
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN = 1013
#: Messages a client may send while its user token is being verified.
MAX_HELD_MESSAGES = 1000


def encode_journal(end_cursor: str) -> str:
    """A paginated query's journal: where its page ends (opaque to the client)."""
    raw = json.dumps({"endCursor": end_cursor}, separators=(",", ":")).encode()
    return base64.b64encode(raw).decode("ascii")


def decode_journal(journal: str | None) -> str | None:
    """The end cursor in a journal; None for no journal or one we cannot read."""
    if not journal:
        return None
    try:
        data = json.loads(base64.b64decode(journal, validate=True))
    except (binascii.Error, ValueError):
        return None
    cursor = data.get("endCursor") if isinstance(data, dict) else None
    return cursor if isinstance(cursor, str) else None


def pagination_field(args: dict) -> str | None:
    """Which argument holds ``paginate()`` options (``paginationOpts`` first), if any."""

    def looks_like_opts(value: Any) -> bool:
        return isinstance(value, dict) and "numItems" in value and "cursor" in value

    if looks_like_opts(args.get("paginationOpts")):
        return "paginationOpts"
    for name, value in args.items():
        if looks_like_opts(value):
            return name
    return None


class QueryState:
    """One subscribed query of a session."""

    __slots__ = (
        "query_id",
        "path",
        "args",
        "journal",
        "end_cursor",
        "page_field",
        "inject",
        "result",
        "result_tag",
        "sent",
        "_args_json",
    )

    def __init__(self, query_id: int, path: str, args: dict, journal: str | None) -> None:
        self.query_id = query_id
        self.path = path
        self.args = args
        self.page_field = pagination_field(args)
        self.journal = journal if self.page_field else None
        self.end_cursor = decode_journal(self.journal)
        #: False once the function refused an ``endCursor`` in its pagination options.
        self.inject = True
        self.result: QueryResult | None = None
        #: (identity generation, effective args) the current result was run with.
        self.result_tag: tuple[int, str] | None = None
        #: Fingerprint of what the client was last sent for this query.
        self.sent: str | None = None
        #: (end_cursor, inject) -> canonical JSON of effective_args(), memoized.
        self._args_json: tuple[tuple, str] | None = None

    def effective_args(self) -> dict:
        """The args to run with: a paginated query's page ends at its journaled cursor."""
        field = self.page_field
        if field is None or self.end_cursor is None or not self.inject:
            return self.args
        opts = self.args[field]
        if opts.get("endCursor") is not None:
            return self.args
        return {**self.args, field: {**opts, "endCursor": self.end_cursor}}

    def args_json(self) -> str:
        """Canonical JSON of :meth:`effective_args`, recomputed only when they change."""
        state = (self.end_cursor, self.inject)
        cached = self._args_json
        if cached is None or cached[0] != state:
            cached = self._args_json = (state, args_key(self.effective_args()))
        return cached[1]

    def tag(self, generation: int) -> tuple[int, str]:
        return generation, self.args_json()

    def modification(self) -> dict | None:
        """The QueryUpdated/QueryFailed to send, or None if the client has it already."""
        result = self.result
        if result is None:
            return None
        fingerprint = f"{result.fingerprint}|{self.journal}"
        if fingerprint == self.sent:
            return None
        self.sent = fingerprint
        if result.ok:
            return p.query_updated(self.query_id, result.value_json, result.log_lines, self.journal)
        return p.query_failed(
            self.query_id,
            result.error_message or "Query failed",
            result.log_lines,
            self.journal,
            result.error_data_json if result.error_data_json is not ABSENT else p._ABSENT,
        )


class SyncSession:
    def __init__(
        self,
        hub: SyncHub,
        send: Callable[[str], None],
        close: Callable[[int, str], None],
        reactor: Any,
        *,
        transition_chunks: bool = False,
    ) -> None:
        self.hub = hub
        self.limits = hub.limits
        self._transport_send = send
        self._transport_close = close
        self.reactor = reactor
        self.session_id: str | None = None
        self.closed = False
        # Versions (reference/client-protocol.md §1.5).
        self.query_set_version = 0
        self.identity_version = 0
        self._sent = p.StateVersion()
        # Connect.clientTs minus our clock (ms), for the Transitions' clientClockSkew.
        self._clock_skew: int | None = None
        # Whether the client reassembles TransitionChunks (npm >= 1.28.0).
        self._transition_chunks = transition_chunks
        self._chunked_transitions = 0
        # Who the client is; the generation changes with every Authenticate.
        self._caller = Caller("client")
        self._identity_generation = 0
        # While a user token is verified (asynchronously), later messages wait
        # here so they run as the identity it gives; None when not verifying.
        self._held: deque | None = None
        # Fires when the accepted user token expires.
        self._expiry_call: Any = None
        self._queries: dict[int, QueryState] = {}
        self._removed: list[int] = []
        # Update scheduling.
        self._update_wanted = False
        self._transition_required = False
        self._min_ts = 0
        self._update_call: Any = None
        self._updating = False
        self._paused = False
        # Requests.
        self._mutations: deque = deque()
        self._mutation_running = False
        self._actions_running = 0
        self._ping_call = reactor.callLater(self.limits.ping_interval, self._ping)
        hub.session_opened(self)

    # -- introspection ----------------------------------------------------------------

    @property
    def query_count(self) -> int:
        return len(self._queries)

    @property
    def identity(self) -> dict | None:
        return self._caller.identity

    @property
    def version(self) -> p.StateVersion:
        """The last ``endVersion`` sent."""
        return self._sent

    # -- transport in ----------------------------------------------------------------

    def receive(self, text: str | bytes) -> None:
        """One text frame from the client."""
        if self.closed:
            return
        if len(text) > self.limits.max_message_bytes:
            self._fatal(
                f"Message too large: {len(text)} bytes (limit {self.limits.max_message_bytes})"
            )
            return
        try:
            message = p.parse_client_message(text)
            if self._held is not None:
                if len(self._held) >= MAX_HELD_MESSAGES:
                    raise p.ProtocolError("Too many messages sent while authenticating")
                self._held.append(message)
            else:
                self._handle(message)
        except p.ProtocolError as e:
            self._fatal(str(e))
        except Exception:
            log.failure("Sync session failed handling a message")
            self._close(CLOSE_INTERNAL_ERROR, "InternalServerError")

    def receive_binary(self) -> None:
        if not self.closed:
            self._fatal("Binary messages are not supported: send JSON text frames")

    def connection_lost(self) -> None:
        """The transport is gone: stop everything and let go of every result."""
        if self.closed:
            return
        self.closed = True
        for call in (self._ping_call, self._update_call, self._expiry_call):
            if call is not None and call.active():
                call.cancel()
        self._update_call = None
        self._mutations.clear()
        if self.hub._manager is not None:
            for query in self._queries.values():
                if query.result is not None:
                    self.hub.manager.release(query.result, self._invalidated)
                    query.result = None
        self._queries.clear()
        self.hub.session_closed(self)

    def pause_output(self) -> None:
        """The transport's buffer is full: hold transitions back (they coalesce)."""
        self._paused = True

    def resume_output(self) -> None:
        self._paused = False
        if self._update_wanted:
            self._request_update()

    # -- transport out ---------------------------------------------------------------

    def _send(self, message: dict) -> None:
        if self.closed:
            return
        self._transport_send(p.encode_message(message))
        self._sent_something()

    def _send_transition(self, message: dict) -> None:
        """A Transition; one too large goes in TransitionChunks to clients that take them."""
        if self.closed:
            return
        text = p.encode_message(message)
        limit = self.limits.max_transition_bytes
        if len(text) <= limit or not self._transition_chunks:
            self._transport_send(text)
        else:
            self._chunked_transitions += 1
            for chunk in p.transition_chunks(text, str(self._chunked_transitions), limit):
                self._transport_send(p.encode_message(chunk))
        self._sent_something()

    def _sent_something(self) -> None:
        if self._ping_call.active():
            self._ping_call.reset(self.limits.ping_interval)

    def _ping(self) -> None:
        if self.closed:
            return
        self._ping_call = self.reactor.callLater(self.limits.ping_interval, self._ping)
        if not self._paused:
            self._send(p.ping())

    def _close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self._transport_close(code, reason)
        self.connection_lost()

    def _fatal(self, message: str) -> None:
        log.info("Closing a sync session after a client error: {message}", message=message)
        self._send(p.fatal_error(message))
        self._close(CLOSE_NORMAL, "FatalError")

    # -- messages ---------------------------------------------------------------------

    def _handle(self, message: p.ClientMessage) -> None:
        if isinstance(message, p.ModifyQuerySet):
            self._modify_query_set(message)
        elif isinstance(message, p.MutationRequest):
            self._enqueue_mutation(message)
        elif isinstance(message, p.ActionRequest):
            self._start_action(message)
        elif isinstance(message, p.Authenticate):
            self._authenticate(message)
        elif isinstance(message, p.Connect):
            self._connect(message)
        # Event: client telemetry, ignored.

    def _connect(self, message: p.Connect) -> None:
        """Connect is optional (a client may never send it): it names the session, gives
        the client's clock and the newest timestamp the client has seen."""
        if message.session_id:
            self.session_id = message.session_id
        if message.client_ts:  # the Python client sends 0: unknown
            self._clock_skew = round(message.client_ts - time.time_ns() / 1e6)
        observed = message.max_observed_ts
        if observed is not None and observed > self.hub.database.published_ts:
            # The client has seen writes this database does not have (yet); answering
            # from an older snapshot would take its view back in time. Later messages
            # wait, as during an Authenticate, until the database gets there.
            self._held = deque()
            d = self.hub.wait_for_ts(observed, self.limits.observed_ts_wait)
            d.addBoth(self._observed_ts_waited, observed)
            d.addErrback(self._internal_failure)

    def _observed_ts_waited(self, reached: Any, observed: int) -> None:
        if self.closed:
            return
        if reached is not True:
            log.warn(
                "Refusing a sync client that has seen timestamp {observed}, newer than the "
                "database's {latest} and ahead of this machine's clock (a clock set back, or "
                "data from a machine whose clock is ahead?). It is served once the clock "
                "gets there.",
                observed=observed,
                latest=self.hub.database.published_ts,
            )
            self.hub.connect_refused()
            # Retryable, as the real backend does: the client reconnects with backoff.
            self._close(
                CLOSE_INTERNAL_ERROR,
                "InternalServerError: the client has seen a newer timestamp than this backend",
            )
            return
        self._release_held()

    def _modify_query_set(self, message: p.ModifyQuerySet) -> None:
        if message.base_version != self.query_set_version:
            raise p.ProtocolError(
                f"Base version {message.base_version} passed up doesn't match the current "
                f"version {self.query_set_version}"
            )
        if message.new_version <= message.base_version:
            raise p.ProtocolError(
                f"New version {message.new_version} must be greater than the base version "
                f"{message.base_version}"
            )
        # Check everything first: a bad message changes nothing.
        present = set(self._queries)
        adds: list[QueryState] = []
        for modification in message.modifications:
            if isinstance(modification, p.AddQuery):
                if modification.query_id in present:
                    raise p.ProtocolError(f"Duplicate query id {modification.query_id}")
                try:
                    path = canonicalize_path(modification.udf_path)
                except FunctionError as e:
                    raise p.ProtocolError(e.message)
                present.add(modification.query_id)
                adds.append(
                    QueryState(modification.query_id, path, modification.args, modification.journal)
                )
            else:
                if modification.query_id not in present:
                    raise p.ProtocolError(f"Removing unknown query id {modification.query_id}")
                present.discard(modification.query_id)
        if len(present) > self.limits.max_queries:
            raise p.ProtocolError(
                f"Too many queries in one session: {len(present)} (limit {self.limits.max_queries})"
            )
        new_states = iter(adds)
        for modification in message.modifications:
            if isinstance(modification, p.AddQuery):
                self._queries[modification.query_id] = next(new_states)
            else:
                query = self._queries.pop(modification.query_id)
                if query.result is not None:
                    self.hub.manager.release(query.result, self._invalidated)
                    query.result = None
                self._removed.append(modification.query_id)
        self.query_set_version = message.new_version
        self._request_update(required=True)

    def _authenticate(self, message: p.Authenticate) -> None:
        if message.base_version != self.identity_version:
            raise p.ProtocolError(
                f"Authenticate base version {message.base_version} doesn't match the current "
                f"identity version {self.identity_version}"
            )
        if message.token_type == "None":
            caller = Caller("client")
        elif message.token_type == "Admin":
            keys = getattr(self.hub.deployment, "admin_keys", None)
            if keys is None or not keys.is_valid(message.value):
                self._auth_error("The provided admin key is invalid for this deployment")
                return
            identity = None
            if message.impersonating is not None:
                # The same identity shape as over HTTP (``tokenIdentifier`` added).
                try:
                    identity = normalize_identity(message.impersonating)
                except IdentityError as e:
                    self._auth_error(f"Invalid identity to act as: {e}")
                    return
            caller = Caller("admin", identity)
        else:
            self._verify_user_token(message)
            return
        self._accept_identity(caller, message.base_version)

    def _accept_identity(
        self, caller: Caller, base_version: int, expires_in: float | None = None
    ) -> None:
        if self.closed:
            return
        self._caller = caller
        self._identity_generation += 1
        self.identity_version = base_version + 1
        if self._expiry_call is not None and self._expiry_call.active():
            self._expiry_call.cancel()
        self._expiry_call = None
        if expires_in is not None:
            self._expiry_call = self.reactor.callLater(max(0.0, expires_in), self._token_expired)
        # The client confirms auth only on a Transition that bumps identity,
        # so one must follow even if no query changed.
        self._request_update(required=True)

    def _verify_user_token(self, message: p.Authenticate) -> None:
        """Check a JWT (its keys may need fetching); hold later messages meanwhile."""
        self._held = deque()
        authenticator = user_authenticator(self.hub.deployment)
        d = defer.ensureDeferred(authenticator.authenticate(message.value))

        def verified(result: Any) -> None:
            if isinstance(result, Failure):
                if result.check(AuthenticationError):
                    self._auth_error(result.value.message)
                else:
                    log.failure("Verifying a user token failed", result)
                    self._auth_error("The token could not be verified (internal error)")
            else:
                identity = result.identity
                seconds = authenticator.seconds_left(result)
                self._accept_identity(Caller("client", identity), message.base_version, seconds)
            self._release_held()

        d.addBoth(verified)
        d.addErrback(self._internal_failure)

    def _release_held(self) -> None:
        held, self._held = self._held, None
        while held and not self.closed:
            message = held.popleft()
            try:
                self._handle(message)
            except p.ProtocolError as e:
                self._fatal(str(e))
                return
            if self._held is not None:
                # Another Authenticate is being verified: the rest waits for it.
                self._held.extend(held)
                return

    def _token_expired(self) -> None:
        """The user token has expired: the client must fetch and send a fresh one."""
        self._expiry_call = None
        if self.closed:
            return
        log.info("Closing a sync session whose user token expired")
        # authUpdateAttempted false: not an answer to an Authenticate. The
        # client then fetches a fresh token and reconnects with it.
        self._send(
            p.auth_error(
                "Token expired: authenticate again with a fresh token",
                max(0, self.identity_version - 1),
                False,
            )
        )
        self._close(CLOSE_NORMAL, "AuthError")

    def _auth_error(self, message: str) -> None:
        log.info("Sync session authentication failed: {message}", message=message)
        self._send(p.auth_error(message, self.identity_version, True))
        self._close(CLOSE_NORMAL, "AuthError")

    # -- mutations and actions ------------------------------------------------------

    def _enqueue_mutation(self, message: p.MutationRequest) -> None:
        if len(self._mutations) >= self.limits.max_queued_mutations:
            self._send(
                p.mutation_failure(
                    message.request_id,
                    "TooManyConcurrentMutations: too many mutations are waiting in this "
                    f"session (limit {self.limits.max_queued_mutations}); retry later",
                    [],
                )
            )
            return
        # The identity at the time the mutation was sent, not when it runs.
        self._mutations.append((message, self._caller))
        if not self._mutation_running:
            self._mutation_running = True
            d = defer.ensureDeferred(self._drain_mutations())
            d.addErrback(self._internal_failure)

    async def _drain_mutations(self) -> None:
        try:
            while self._mutations and not self.closed:
                message, caller = self._mutations.popleft()
                await self._run_mutation(message, caller)
        finally:
            self._mutation_running = False

    async def _run_mutation(self, message: p.MutationRequest, caller: Caller) -> None:
        runner = self.hub.runner

        def call(hook):
            return runner.call(
                message.udf_path,
                message.args,
                caller=caller,
                expected="mutation",
                before_commit=hook,
            )

        try:
            result = await self.hub.records.execute(self.session_id, message.request_id, call)
        except FunctionError as e:
            data = e.data if e.code == "ConvexError" else p._ABSENT
            self._send(p.mutation_failure(message.request_id, e.message, e.log_lines, data))
            # The Python client waits for a Transition even after a failed
            # mutation with errorData; one more Transition never hurts.
            self._request_update(required=True)
            return
        except Exception as e:
            log.failure("Mutation {path} failed unexpectedly", path=message.udf_path)
            self._send(p.mutation_failure(message.request_id, f"InternalServerError: {e}", []))
            self._request_update(required=True)
            return
        self._send(
            p.mutation_success(message.request_id, result.value, result.ts, result.log_lines)
        )
        # Read-your-writes: the next Transition reaches the commit ts.
        self._min_ts = max(self._min_ts, result.ts)
        self._request_update(required=True)

    def _start_action(self, message: p.ActionRequest) -> None:
        if self._actions_running >= self.limits.max_inflight_actions:
            self._send(
                p.action_failure(
                    message.request_id,
                    "TooManyConcurrentRequests: too many actions are running in this "
                    f"session (limit {self.limits.max_inflight_actions}); retry later",
                    [],
                )
            )
            return
        self._actions_running += 1
        d = defer.ensureDeferred(self._run_action(message, self._caller))
        d.addErrback(self._internal_failure)

    async def _run_action(self, message: p.ActionRequest, caller: Caller) -> None:
        try:
            result = await self.hub.runner.call(
                message.udf_path, message.args, caller=caller, expected="action"
            )
        except FunctionError as e:
            data = e.data if e.code == "ConvexError" else p._ABSENT
            self._send(p.action_failure(message.request_id, e.message, e.log_lines, data))
            return
        except Exception as e:
            log.failure("Action {path} failed unexpectedly", path=message.udf_path)
            self._send(p.action_failure(message.request_id, f"InternalServerError: {e}", []))
            return
        finally:
            self._actions_running -= 1
        self._send(p.action_success(message.request_id, result.value, result.log_lines))
        # The real backend follows actions with a Transition too (the actions'
        # own mutations are then visible); clients rely on nothing more.
        self._request_update(required=True)

    def _internal_failure(self, failure: Any) -> None:
        log.failure("Sync session failed", failure)
        self._close(CLOSE_INTERNAL_ERROR, "InternalServerError")

    # -- updates ----------------------------------------------------------------------

    def _invalidated(self, result: QueryResult) -> None:
        """A result this session holds changed (called from the commit path)."""
        self._request_update()

    def _request_update(self, required: bool = False) -> None:
        if self.closed:
            return
        if required:
            self._transition_required = True
        self._update_wanted = True
        if self._update_call is None and not self._updating and not self._paused:
            # Debounce: everything that happens in this reactor turn is one update.
            self._update_call = self.reactor.callLater(0, self._start_update)

    def _start_update(self) -> None:
        self._update_call = None
        if self.closed or self._updating or self._paused or not self._update_wanted:
            return
        self._update_wanted = False
        self._updating = True
        d = defer.ensureDeferred(self._update())
        d.addErrback(self._internal_failure)
        d.addBoth(self._update_finished)

    def _update_finished(self, _: Any) -> None:
        self._updating = False
        if self._update_wanted and not self.closed:
            self._request_update()

    async def _update(self) -> None:
        manager = self.hub.manager
        listener = self._invalidated
        # What this Transition will stand for: the state as of now.
        query_set_version = self.query_set_version
        identity_version = self.identity_version
        caller, generation = self._caller, self._identity_generation
        removed, self._removed = self._removed, []
        required, self._transition_required = self._transition_required, False
        queries = list(self._queries.values())
        target = max(self.hub.database.published_ts, self._sent.ts, self._min_ts)
        fresh: dict[int, tuple[QueryResult, tuple[int, str]]] = {}
        try:
            while not self.closed:
                # Every query needs a result valid at `target`; a result from a
                # new run may be at a later snapshot, which moves `target` and
                # makes us check all the others again.
                stale = []
                for query in queries:
                    tag = query.tag(generation)
                    got = fresh.get(query.query_id)
                    if got is not None and got[1] == tag:
                        result = got[0]
                    elif query.result_tag == tag:
                        result = query.result
                    else:
                        result = None
                    if result is None or not result.valid_at(target):
                        stale.append((query, tag))
                if not stale:
                    break
                # Cached results (the common case after a commit: the manager
                # re-ran the query before waking us) are taken synchronously;
                # only misses wait for a run.
                results: list = [
                    manager.cached(
                        query.path, query.effective_args(), caller, target, query.args_json()
                    )
                    for query, _tag in stale
                ]
                misses = [i for i, result in enumerate(results) if result is None]
                if misses:
                    fetched = await defer.gatherResults(
                        [
                            defer.ensureDeferred(
                                manager.fetch(
                                    stale[i][0].path,
                                    stale[i][0].effective_args(),
                                    caller,
                                    target,
                                    stale[i][0].args_json(),
                                )
                            )
                            for i in misses
                        ],
                        consumeErrors=True,
                    )
                    for i, result in zip(misses, fetched, strict=True):
                        results[i] = result
                for (query, tag), result in zip(stale, results, strict=True):
                    manager.acquire(result, listener)
                    previous = fresh.pop(query.query_id, None)
                    if previous is not None:
                        manager.release(previous[0], listener)
                    if (
                        result.error_code == "ArgumentValidationError"
                        and query.effective_args() is not query.args
                    ):
                        # The function's validator refuses `endCursor`: run it
                        # as the client asked (pages may then shift).
                        query.inject = False
                    elif (
                        query.page_field is not None
                        and query.end_cursor is None
                        and result.ok
                        and isinstance(result.value_json, dict)
                        and isinstance(result.value_json.get("continueCursor"), str)
                    ):
                        # First page: from now on it ends where it ends now.
                        query.end_cursor = result.value_json["continueCursor"]
                        query.journal = encode_journal(query.end_cursor)
                        tag = query.tag(generation)
                    fresh[query.query_id] = (result, tag)
                    target = max(target, result.ts)
        except BaseException:
            for result, _tag in fresh.values():
                manager.release(result, listener)
            raise
        modifications = [p.query_removed(query_id) for query_id in removed]
        for query in queries:
            got = fresh.pop(query.query_id, None)
            if self.closed or self._queries.get(query.query_id) is not query:
                # Removed (or the session closed) while we ran: its removal
                # goes out with the next Transition.
                if got is not None:
                    manager.release(got[0], listener)
                continue
            if got is not None:
                if query.result is not None:
                    manager.release(query.result, listener)
                query.result, query.result_tag = got
            modification = query.modification()
            if modification is not None:
                modifications.append(modification)
        if self.closed:
            return
        end = p.StateVersion(query_set_version, identity_version, target)
        if modifications or required or end != self._sent:
            self._send_transition(
                p.transition(
                    self._sent,
                    end,
                    modifications,
                    client_clock_skew=self._clock_skew,
                    server_ts=time.time_ns(),
                )
            )
            self._sent = end


__all__ = ["SyncSession", "decode_journal", "encode_journal", "pagination_field"]
