"""Running functions: the application layer between the callers and the workers.

:class:`FunctionRunner` takes a call (path, args, identity, who is calling),
finds the function in the current deployment, checks its visibility and its
arguments, runs it in a worker with the right transaction behind its syscalls,
checks its return value, and for mutations commits (retrying on conflicts).

The syscalls a worker sends are answered by :class:`TransactionSyscalls` (for
queries and mutations, against one :class:`Transaction`) and
:class:`ActionSyscalls` (for actions, each ``run_*`` its own transaction).
Nested ``ctx.run_query``/``ctx.run_mutation`` inside a query or mutation run in
the *same* worker and the *same* transaction: the host validates the call, takes
a savepoint and answers ``{"inline": ...}``; the worker runs the callee and
reports back with ``1.0/runUdfDone``, where the host checks the result and
keeps or rolls back the callee's writes.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from convex_backend.database.errors import DatabaseError, OccConflict
from convex_backend.database.schema import ValidationError, parse_validator
from convex_backend.functions.pool import HostSyscallError, PoolError
from convex_backend.functions.scheduler_syscalls import ACTION_OPS as SCHEDULER_ACTION_OPS
from convex_backend.functions.scheduler_syscalls import TRANSACTION_OPS as SCHEDULER_TX_OPS
from convex_backend.functions.storage_syscalls import ACTION_OPS as STORAGE_ACTION_OPS
from convex_backend.functions.storage_syscalls import TX_OPS as STORAGE_TX_OPS
from convex_backend.values import ConvexValueError, Int64, from_json, to_json

log = Logger(namespace="convex.functions")

MAX_MUTATION_RETRIES = 16
MAX_NESTING_DEPTH = 8


class FunctionError(Exception):
    """A call failed in a way the caller should see (user error or bad call).

    ``data`` is the ConvexError payload (a Convex value) when there is one.
    """

    def __init__(
        self, message: str, data: Any = None, log_lines: list[str] | None = None, code: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
        self.has_data = data is not None
        self.log_lines = log_lines or []
        self.code = code or "FunctionError"


@dataclass
class FunctionInfo:
    path: str
    udf_type: str
    visibility: str
    args_validator: Any
    returns_validator: Any
    args_json: Any
    returns_json: Any
    line: int | None = None


@dataclass
class CallResult:
    value: Any
    log_lines: list[str]
    #: Commit timestamp of a mutation, snapshot timestamp of a query.
    ts: int | None = None
    #: What a query read, for subscriptions.
    read_set: Any = None
    #: An action's own log lines, when ``log_lines`` also holds its nested calls'.
    own_log_lines: list[str] | None = None
    #: How many times a mutation was re-run after a conflict.
    retries: int = 0


@dataclass
class Caller:
    """Who is calling: a client (public functions only), an admin, or a function."""

    kind: str = "client"  # "client" | "admin" | "function" | "system"
    identity: dict | None = None

    @property
    def may_call_internal(self) -> bool:
        return self.kind != "client"


def canonicalize_path(path: str) -> str:
    """``messages`` → ``messages:default``; a ``.js``/``.py`` module suffix is dropped."""
    if not isinstance(path, str) or not path:
        raise FunctionError("The function path must be a non-empty string", code="BadPath")
    module, sep, name = path.partition(":")
    for suffix in (".js", ".py", ".ts"):
        if module.endswith(suffix):
            module = module[: -len(suffix)]
    return f"{module}:{name if sep and name else 'default'}"


def functions_from_analysis(analysis: dict) -> dict[str, FunctionInfo]:
    functions = {}
    for entry in analysis.get("functions", []):
        if entry.get("udfType") == "httpAction":
            continue
        args_json = entry.get("args") or {"type": "any"}
        returns_json = entry.get("returns")
        functions[entry["path"]] = FunctionInfo(
            path=entry["path"],
            udf_type=entry["udfType"],
            visibility=entry.get("visibility") or "public",
            args_validator=parse_validator(args_json),
            returns_validator=parse_validator(returns_json) if returns_json else None,
            args_json=args_json,
            returns_json=returns_json,
            line=entry.get("line"),
        )
    return functions


_KIND_NAMES = {"query": "Query", "mutation": "Mutation", "action": "Action"}


class FunctionRunner:
    def __init__(self, database, pools: dict, reactor) -> None:
        self.db = database
        #: "udf" (queries and mutations) and "action" pools.
        self.pools = pools
        self.reactor = reactor
        self.functions: dict[str, FunctionInfo] = {}
        self.environment: dict[str, str] = {}
        self.stats: dict[str, int] = {}
        self._tables_cache: tuple[int, dict[str, int]] | None = None
        #: A :class:`~convex_backend.functions.metrics.FunctionMetrics`, if any.
        self.metrics = None
        #: The HTTP routes of the deployment's http.py, None when it has none.
        self.http_routes: list | None = None
        #: Called once per top-level execution with ``(path, udf_type, caller,
        #: request_id, seconds, outcome)``, outcome the CallResult or the exception
        #: (see :class:`~convex_backend.functions.logs.FunctionLogs`).
        self.log_sink: Callable[..., None] | None = None

    def set_environment(self, environment: dict[str, str]) -> None:
        """The deployment's environment variables: every call's ``os.environ``, and
        the module-level environment of workers started from now on."""
        self.environment = environment
        for pool in self.pools.values():
            pool.environment = environment

    def _tables(self) -> dict[str, int]:
        """Table name -> number, rebuilt only when a table was added."""
        tables = self.db.store.tables_by_name
        if self._tables_cache is None or self._tables_cache[0] != len(tables):
            self._tables_cache = (len(tables), {n: t.number for n, t in tables.items()})
        return self._tables_cache[1]

    # -- lookup and checks -------------------------------------------------------

    def lookup(self, path: str, caller: Caller, expected: str | None) -> FunctionInfo:
        canonical = canonicalize_path(path)
        info = self.functions.get(canonical)
        if info is None or (info.visibility == "internal" and not caller.may_call_internal):
            # An internal function looks exactly like a missing one to clients.
            raise FunctionError(
                f"Could not find public function for '{canonical}'. Did you forget to run "
                "`convex-backend deploy`?",
                code="FunctionNotFound",
            )
        if expected is not None and info.udf_type != expected:
            raise FunctionError(
                f"Trying to execute {canonical} as {_KIND_NAMES.get(expected, expected)}, "
                f"but it is defined as {_KIND_NAMES.get(info.udf_type, info.udf_type)}.",
                code="WrongFunctionType",
            )
        return info

    def check_args(self, info: FunctionInfo, args: Any) -> None:
        if not isinstance(args, dict):
            raise FunctionError(
                f"ArgumentValidationError: Arguments for {info.path} must be an object",
                code="ArgumentValidationError",
            )
        try:
            info.args_validator.check(args, self.db)
        except ValidationError as e:
            raise FunctionError(
                f"ArgumentValidationError: {e}\n\nPath: {info.path}",
                code="ArgumentValidationError",
            )

    def check_returns(self, info: FunctionInfo, value: Any, log_lines: list[str]) -> None:
        if info.returns_validator is None:
            return
        try:
            info.returns_validator.check(value, self.db)
        except ValidationError as e:
            raise FunctionError(
                f"ReturnsValidationError: {e}\n\nPath: {info.path}",
                log_lines=log_lines,
                code="ReturnsValidationError",
            )

    # -- calls -------------------------------------------------------------------

    async def call(
        self,
        path: str,
        args: Any,
        *,
        caller: Caller | None = None,
        expected: str | None = None,
        request_id: str | None = None,
        before_commit: Callable[[Any, Any, list[str]], None] | None = None,
    ) -> CallResult:
        """Run a function by path; raises :class:`FunctionError` for every failure.

        ``before_commit(tx, value, log_lines)``, for mutations only, is called
        after the function succeeded and just before its transaction commits,
        so that the caller can add its own bookkeeping writes to the same
        transaction (the sync layer records mutation results for idempotency).
        A failing query's :class:`FunctionError` carries ``ts`` and ``read_set``
        (what it had read), so that a subscription can re-run it on a change.
        """
        caller = caller or Caller()
        info = self.lookup(path, caller, expected)
        self.check_args(info, args)
        request_id = request_id or os.urandom(16).hex()
        started = time.monotonic()
        status = "error"
        outcome: Any = None
        try:
            if info.udf_type == "query":
                result = await self._run_query(info, args, caller, request_id)
            elif info.udf_type == "mutation":
                result = await self._run_mutation(info, args, caller, request_id, before_commit)
            else:
                result = await self._run_action(info, args, caller, request_id)
            status = "success"
            outcome = result
            return result
        except BaseException as e:
            outcome = e
            raise
        finally:
            seconds = time.monotonic() - started
            if self.metrics is not None:
                code = getattr(outcome, "code", "InternalError") if status == "error" else None
                self.metrics.observe(info.path, info.udf_type, status, seconds, code)
            if self.log_sink is not None:
                self.log_sink(info.path, info.udf_type, caller, request_id, seconds, outcome)

    async def call_query_at(
        self,
        path: str,
        args: Any,
        ts: int,
        *,
        caller: Caller | None = None,
        request_id: str | None = None,
    ) -> CallResult:
        """Run a query at the snapshot ``ts`` (see :meth:`Database.begin_at`).

        Raises :class:`FunctionError` like :meth:`call`, and
        :class:`~convex_backend.database.errors.DatabaseError` (``SnapshotTooOld``,
        ``InvalidTimestamp``) when that snapshot cannot be read.
        """
        caller = caller or Caller()
        info = self.lookup(path, caller, "query")
        self.check_args(info, args)
        request_id = request_id or os.urandom(16).hex()
        tx = self.db.begin_at(ts)
        started = time.monotonic()
        outcome: Any = None
        try:
            outcome = await self._run_query(info, args, caller, request_id, tx)
            return outcome
        except BaseException as e:
            outcome = e
            raise
        finally:
            if self.log_sink is not None:
                seconds = time.monotonic() - started
                self.log_sink(info.path, "query", caller, request_id, seconds, outcome)

    async def call_http(self, request_json: dict, *, caller: Caller | None = None) -> dict:
        """Serve one HTTP action request through the deployment's ``http.py`` router.

        Returns the response JSON ``{status, headers, body}``; a failing handler
        is a 500 whose body is the error message (never a host traceback).
        """
        from convex_backend.functions.pool import PoolError

        if self.http_routes is None:
            return _text_response(404, "No HTTP actions are deployed (there is no http.py)")
        caller = caller or Caller()
        request_id = uuid.uuid4().hex
        handler = ActionSyscalls(self, caller, request_id)
        request = {
            "udfType": "httpAction",
            "path": "http",
            "args": request_json,
            "requestId": request_id,
            "identity": caller.identity,
            "snapshotTs": None,
            "tables": self._tables(),
            "env": dict(self.environment),
            "seed": uuid.uuid4().hex,
            "now": time.time() * 1000,
            "visibility": "public",
        }
        started = time.monotonic()
        result: dict = {}
        try:
            result = await self.pools["action"].invoke(request, handler)
        except PoolError as e:
            result = {"success": False, "error": {"message": str(e)}}
        # Its own lines: nested run_query/run_mutation calls have entries of their own.
        log_lines = result.get("logLines") or []
        value = result.get("value")
        if not result.get("success"):
            message = (result.get("error") or {}).get("message") or "HTTP action failed"
            outcome: Any = FunctionError(message, log_lines=log_lines)
        elif not isinstance(value, dict) or not isinstance(value.get("status"), int):
            outcome = FunctionError(
                "The HTTP action did not return a response", log_lines=log_lines
            )
        else:
            outcome = CallResult(value, log_lines)
        if self.log_sink is not None:
            name = f"{request_json.get('method')} {_url_path(request_json.get('url'))}"
            seconds = time.monotonic() - started
            self.log_sink(name, "httpAction", caller, request_id, seconds, outcome)
        if isinstance(outcome, FunctionError):
            return _text_response(500, outcome.message)
        return value

    def _request(self, info: FunctionInfo, args: Any, caller: Caller, request_id: str, tx):
        return {
            "udfType": info.udf_type,
            "path": info.path,
            "args": to_json(args),
            "requestId": request_id,
            "identity": caller.identity,
            "snapshotTs": to_json(Int64(tx.begin_ts)) if tx is not None else None,
            "tables": self._tables(),
            "env": self.environment,
            "seed": os.urandom(16).hex(),
            "now": time.time() * 1000,
            "visibility": info.visibility,
        }

    async def _invoke(self, pool_name: str, request: dict, handler) -> tuple[Any, list[str]]:
        try:
            result = await self.pools[pool_name].invoke(request, handler)
        except PoolError as e:
            raise FunctionError(str(e), code=getattr(e, "code", "WorkerError"))
        log_lines = result.get("logLines") or []
        if not result.get("success"):
            error = result.get("error") or {}
            message = error.get("message") or "Function failed"
            if error.get("data") is None:
                raise FunctionError(message, None, log_lines, code="UserError")
            try:
                data = from_json(error["data"])
            except ConvexValueError:
                raise FunctionError(message, None, log_lines, code="UserError")
            raise FunctionError(message, data, log_lines, code="ConvexError")
        try:
            value = from_json(result.get("value"))
        except ConvexValueError as e:
            raise FunctionError(f"The function returned an invalid value: {e}", log_lines=log_lines)
        return value, log_lines

    async def _run_query(self, info, args, caller, request_id, tx=None) -> CallResult:
        """Run a query at ``tx``'s snapshot (a new one at the latest ts by default)."""
        if tx is None:
            tx = self.db.begin()
        try:
            handler = TransactionSyscalls(self, tx, caller, read_only=True)
            try:
                value, log_lines = await self._invoke(
                    "udf", self._request(info, args, caller, request_id, tx), handler
                )
                self.check_returns(info, value, log_lines)
            except FunctionError as e:
                # What the failing query saw: its error only changes when that data does.
                e.ts = tx.begin_ts
                e.read_set = tx.finish_reads()
                raise
            return CallResult(value, log_lines, tx.begin_ts, tx.finish_reads())
        finally:
            tx.close()

    async def _run_mutation(self, info, args, caller, request_id, before_commit=None) -> CallResult:
        delay = 0.002
        for attempt in range(MAX_MUTATION_RETRIES + 1):
            tx = self.db.begin()
            try:
                handler = TransactionSyscalls(self, tx, caller, read_only=False)
                value, log_lines = await self._invoke(
                    "udf", self._request(info, args, caller, request_id, tx), handler
                )
                self.check_returns(info, value, log_lines)
                if before_commit is not None:
                    before_commit(tx, value, log_lines)
            except BaseException:
                tx.close()
                raise
            try:
                ts = await self.db.commit(tx)
            except OccConflict as e:
                if attempt == MAX_MUTATION_RETRIES:
                    raise FunctionError(str(e), log_lines=log_lines, code=e.code)
                if self.metrics is not None:
                    self.metrics.retries.inc()
                await _sleep(self.reactor, delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.2)
                continue
            except DatabaseError as e:
                raise FunctionError(e.message, log_lines=log_lines, code=e.code)
            return CallResult(value, log_lines, ts, retries=attempt)
        raise AssertionError("unreachable")

    async def _run_action(self, info, args, caller, request_id) -> CallResult:
        handler = ActionSyscalls(self, caller, request_id)
        value, log_lines = await self._invoke(
            "action", self._request(info, args, caller, request_id, None), handler
        )
        self.check_returns(info, value, log_lines + handler.log_lines)
        return CallResult(value, handler.log_lines + log_lines, own_log_lines=log_lines)


class TransactionSyscalls:
    """Answers a query's or mutation's syscalls against one transaction."""

    def __init__(self, runner: FunctionRunner, tx, caller: Caller, *, read_only: bool) -> None:
        self.runner = runner
        self.tx = tx
        self.caller = caller
        self.read_only = read_only
        self.streams: dict[int, Any] = {}
        self.savepoints: list[tuple[dict, Any, int, bool]] = []
        self.nesting: list[tuple[FunctionInfo, bool]] = []

    def __call__(self, op: str, args: dict, notification: bool = False) -> Any:
        method = _TX_OPS.get(op)
        if method is None:
            raise HostSyscallError(f"Unknown async operation {op}")
        if not isinstance(args, dict):
            raise HostSyscallError(f"Invalid arguments for {op}")
        try:
            return method(self, args)
        except HostSyscallError:
            raise
        except (DatabaseError, ConvexValueError) as e:
            raise HostSyscallError(str(e))
        except KeyError as e:
            raise HostSyscallError(f"Missing argument {e} for {op}")

    def _writable(self, op: str) -> None:
        if self.read_only or (self.nesting and self.nesting[-1][1]):
            raise HostSyscallError(f"{op} is not allowed in a query: queries are read-only")

    def get(self, args: dict) -> Any:
        doc = self.tx.get(args["id"], table=args.get("table"), system=bool(args.get("isSystem")))
        return to_json(doc) if doc is not None else None

    def insert(self, args: dict) -> Any:
        self._writable("insert")
        value = from_json(args["value"])
        if not isinstance(value, dict):
            raise HostSyscallError("insert() takes an object")
        return {"_id": self.tx.insert(args["table"], value)}

    def shallow_merge(self, args: dict) -> Any:
        self._writable("patch")
        value = from_json(args["value"], allow_undefined=True)
        if not isinstance(value, dict):
            raise HostSyscallError("patch() takes an object")
        return to_json(self.tx.patch(args["id"], value, table=args.get("table")))

    def replace(self, args: dict) -> Any:
        self._writable("replace")
        value = from_json(args["value"])
        if not isinstance(value, dict):
            raise HostSyscallError("replace() takes an object")
        return to_json(self.tx.replace(args["id"], value, table=args.get("table")))

    def remove(self, args: dict) -> Any:
        self._writable("delete")
        return to_json(self.tx.delete(args["id"], table=args.get("table")))

    def _system_for(self, query_json: Any) -> bool:
        source = query_json.get("source", {}) if isinstance(query_json, dict) else {}
        name = source.get("tableName") or str(source.get("indexName", "")).split(".")[0]
        return isinstance(name, str) and name.startswith("_")

    def query_stream_next(self, args: dict) -> Any:
        query_id = args["queryId"]
        stream = self.streams.get(query_id)
        if stream is None:
            if "query" not in args:
                raise HostSyscallError(f"Unknown query id {query_id}")
            query_json = args["query"]
            stream = self.tx.query(query_json, system=self._system_for(query_json))
            self.streams[query_id] = stream
        max_rows = args.get("maxRows")
        if max_rows is None:
            doc = stream.next()
            return {"value": to_json(doc) if doc is not None else None, "done": doc is None}
        values = []
        for _ in range(max(1, min(int(max_rows), 1000))):
            doc = stream.next()
            if doc is None:
                return {"values": values, "done": True}
            values.append(to_json(doc))
        return {"values": values, "done": False}

    def query_cleanup(self, args: dict) -> Any:
        stream = self.streams.pop(args.get("queryId"), None)
        if stream is not None:
            stream.close()
        return True

    def query_page(self, args: dict) -> Any:
        query_json = args["query"]
        result = self.tx.query_page(
            query_json,
            cursor=args.get("cursor"),
            end_cursor=args.get("endCursor"),
            page_size=args.get("pageSize"),
            maximum_rows_read=args.get("maximumRowsRead"),
            maximum_bytes_read=args.get("maximumBytesRead"),
            system=self._system_for(query_json),
        )
        return {**result, "page": [to_json(doc) for doc in result["page"]]}

    def count(self, args: dict) -> Any:
        table = args["table"]
        return float(self.tx.count(table, system=table.startswith("_")))

    def get_user_identity(self, args: dict) -> Any:
        return self.caller.identity

    def run_udf(self, args: dict) -> Any:
        udf_type = args.get("udfType")
        name = args.get("name")
        if udf_type not in ("query", "mutation", "snapshotQuery"):
            raise HostSyscallError(f"Invalid udfType {udf_type!r} for runUdf")
        if udf_type == "mutation":
            self._writable("runMutation")
        if len(self.nesting) >= MAX_NESTING_DEPTH:
            raise HostSyscallError("Too many nested function calls")
        inner = Caller("function", self.caller.identity)
        expected = "mutation" if udf_type == "mutation" else "query"
        try:
            info = self.runner.lookup(name, inner, expected)
            call_args = from_json(args.get("args", {}))
            self.runner.check_args(info, call_args)
        except FunctionError as e:
            raise HostSyscallError(e.message)
        # A savepoint: the callee's writes are undone if it fails.
        tx = self.tx
        self.savepoints.append(
            (dict(tx.writes), tx.bytes_written, len(self.streams), info.udf_type == "query")
        )
        self.nesting.append((info, info.udf_type == "query"))
        return {"inline": {"path": info.path, "udfType": info.udf_type, "args": to_json(call_args)}}

    def run_udf_done(self, args: dict) -> Any:
        if not self.nesting:
            raise HostSyscallError("runUdfDone without a nested call")
        info, _read_only = self.nesting.pop()
        writes, bytes_written, _streams, _q = self.savepoints.pop()
        try:
            return nested_outcome(self.runner, info, args)
        except HostSyscallError:
            # Back to the savepoint: a failed callee leaves no writes behind.
            self.tx.writes = writes
            self.tx.bytes_written = bytes_written
            raise

    def get_function_metadata(self, args: dict) -> Any:
        return {"name": "", "componentPath": ""}


def nested_outcome(runner: FunctionRunner, info: FunctionInfo, args: dict) -> Any:
    """What ``ctx.run_*`` returns for an inline call the worker reports done:
    the callee's value (checked against its ``returns``), or its error raised."""
    if "error" in args:
        error = args["error"] or {}
        raise HostSyscallError(error.get("message", "Error"), error.get("data"))
    try:
        value = from_json(args.get("value"))
        runner.check_returns(info, value, [])
    except ConvexValueError as e:
        raise HostSyscallError(f"The function returned an invalid value: {e}")
    except FunctionError as e:
        raise HostSyscallError(e.message)
    return to_json(value)


_TX_OPS = {
    "1.0/get": TransactionSyscalls.get,
    "1.0/insert": TransactionSyscalls.insert,
    "1.0/shallowMerge": TransactionSyscalls.shallow_merge,
    "1.0/replace": TransactionSyscalls.replace,
    "1.0/remove": TransactionSyscalls.remove,
    "1.0/queryStreamNext": TransactionSyscalls.query_stream_next,
    "1.0/queryCleanup": TransactionSyscalls.query_cleanup,
    "1.0/queryPage": TransactionSyscalls.query_page,
    "1.0/count": TransactionSyscalls.count,
    "1.0/getUserIdentity": TransactionSyscalls.get_user_identity,
    "1.0/runUdf": TransactionSyscalls.run_udf,
    "1.0/runUdfDone": TransactionSyscalls.run_udf_done,
    "1.0/getFunctionMetadata": TransactionSyscalls.get_function_metadata,
}
_TX_OPS.update(STORAGE_TX_OPS)
_TX_OPS.update(SCHEDULER_TX_OPS)


class ActionSyscalls:
    """Answers an action's syscalls: each ``run_*`` is its own top-level call."""

    def __init__(self, runner: FunctionRunner, caller: Caller, request_id: str) -> None:
        self.runner = runner
        self.caller = caller
        self.request_id = request_id
        self.log_lines: list[str] = []
        self.nested: list[FunctionInfo] = []

    def __call__(self, op: str, args: dict, notification: bool = False) -> Any:
        if op == "1.0/getUserIdentity":
            return self.caller.identity
        if not isinstance(args, dict):
            raise HostSyscallError(f"Invalid arguments for {op}")
        if op == "1.0/actions/action":
            return self._inline_action(args)
        if op == "1.0/runUdfDone":
            return self._inline_done(args)
        storage_op = STORAGE_ACTION_OPS.get(op) or SCHEDULER_ACTION_OPS.get(op)
        if storage_op is not None:
            return storage_op(self, args)
        kind = {"1.0/actions/query": "query", "1.0/actions/mutation": "mutation"}.get(op)
        if kind is None:
            raise HostSyscallError(f"Unknown async operation {op}")
        return defer.ensureDeferred(self._run(kind, args))

    def _inline_action(self, args: dict) -> Any:
        """``ctx.run_action`` runs in the same worker, so nested actions cannot
        exhaust the action pool and deadlock."""
        if len(self.nested) >= MAX_NESTING_DEPTH:
            raise HostSyscallError("Too many nested function calls")
        try:
            info = self.runner.lookup(
                args.get("name", ""), Caller("function", self.caller.identity), "action"
            )
            call_args = from_json(args.get("args", {}))
            self.runner.check_args(info, call_args)
        except (FunctionError, ConvexValueError) as e:
            raise HostSyscallError(getattr(e, "message", str(e)))
        self.nested.append(info)
        return {"inline": {"path": info.path, "udfType": "action", "args": to_json(call_args)}}

    def _inline_done(self, args: dict) -> Any:
        if not self.nested:
            raise HostSyscallError("runUdfDone without a nested call")
        return nested_outcome(self.runner, self.nested.pop(), args)

    async def _run(self, kind: str, args: dict) -> Any:
        try:
            call_args = from_json(args.get("args", {}))
        except ConvexValueError as e:
            raise HostSyscallError(str(e))
        try:
            result = await self.runner.call(
                args.get("name", ""),
                call_args,
                caller=Caller("function", self.caller.identity),
                expected=kind,
                request_id=self.request_id,
            )
        except FunctionError as e:
            self.log_lines += e.log_lines
            raise HostSyscallError(e.message, to_json(e.data) if e.code == "ConvexError" else None)
        self.log_lines += result.log_lines
        return to_json(result.value)


def _url_path(url: Any) -> str:
    """The path of an HTTP action's URL, for its log entry (bounded, no query)."""
    from urllib.parse import urlsplit

    try:
        return urlsplit(str(url)).path[:256] or "/"
    except ValueError:
        return "/"


def _text_response(status: int, text: str) -> dict:
    import base64

    return {
        "status": status,
        "headers": [["content-type", "text/plain; charset=utf-8"]],
        "body": {"$bytes": base64.b64encode(text.encode()).decode()},
    }


def _sleep(reactor, seconds: float) -> defer.Deferred:
    d: defer.Deferred = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


__all__ = [
    "ActionSyscalls",
    "CallResult",
    "Caller",
    "FunctionError",
    "FunctionInfo",
    "FunctionRunner",
    "TransactionSyscalls",
    "canonicalize_path",
    "functions_from_analysis",
]
