"""The ``ctx`` objects handlers receive, and calling other functions.

This module owns :class:`QueryCtx`, :class:`MutationCtx` and
:class:`ActionCtx` (also the ctx of HTTP actions), :class:`Auth`, and the
``run_query``/``run_mutation``/``run_action`` calls with their syscalls
(``reference/server-syscalls.md`` §3.3):

=========  ========================================  ============================
ctx        methods                                   syscall
=========  ========================================  ============================
query      ``run_query``                             ``1.0/runUdf`` (``query``)
mutation   ``run_query``, ``run_mutation``           ``1.0/runUdf``
action     ``run_query``/``run_mutation``/``run_action``  ``1.0/actions/<type>``
=========  ========================================  ============================

A function is named by a reference (``api.messages.send``, see
``references``), a :class:`RegisteredFunction` (its ``path``) or a
string: ``"dir/module:export"``; ``"dir/module"`` means the ``default``
export and a ``.py`` suffix on the module is dropped; ``"function://..."``
strings are function handles.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from convex_backend.server._syscalls import CONVEX_VERSION, Invocation
from convex_backend.server.database import DatabaseReader, DatabaseWriter
from convex_backend.server.references import FunctionReference as _Reference
from convex_backend.server.registration import RegisteredFunction
from convex_backend.server.scheduler import Scheduler
from convex_backend.server.storage import StorageActionWriter, StorageReader, StorageWriter
from convex_backend.values import from_json, from_python, to_json

__all__ = [
    "ActionCtx",
    "Auth",
    "FunctionReference",
    "MutationCtx",
    "QueryCtx",
    "canonical_function_name",
    "function_address",
]

FunctionReference = RegisteredFunction | _Reference | str


def canonical_function_name(name: str) -> str:
    """``"dir/mod"`` -> ``"dir/mod:default"``; ``"mod.py:f"`` -> ``"mod:f"``."""
    module, sep, export = name.partition(":")
    if not sep:
        export = "default"
    if module.endswith(".py"):
        module = module[: -len(".py")]
    if not module or not export:
        raise ValueError(f"Invalid function name {name!r}; expected 'module:function'")
    return f"{module}:{export}"


def function_address(fn: FunctionReference, udf_type: str | None) -> dict[str, str]:
    """The ``name``/``functionHandle`` part of a call's syscall args
    (``udf_type`` None: any type, the host checks it)."""
    if isinstance(fn, _Reference):
        return {"name": fn.__convex_path__}
    if isinstance(fn, RegisteredFunction):
        if udf_type is not None and fn.udf_type != udf_type:
            raise TypeError(f"{fn!r} is a {fn.udf_type}, not a {udf_type}")
        if fn.path is None:
            raise ValueError(
                f"{fn!r} has no path yet: a function gets one when the module "
                "exporting it is loaded by the worker; pass 'module:function' instead"
            )
        return {"name": fn.path}
    if isinstance(fn, str):
        if fn.startswith("function://"):
            return {"functionHandle": fn}
        return {"name": canonical_function_name(fn)}
    raise TypeError(f"Expected a registered function or 'module:function', got {fn!r}")


def _args_json(args: Mapping[str, Any] | None) -> Any:
    if args is None:
        return {}
    if not isinstance(args, Mapping):
        raise TypeError(f"Function arguments must be a dict, got {type(args).__name__}")
    return to_json(from_python(args))


class Auth:
    """``ctx.auth``."""

    def __init__(self, invocation: Invocation) -> None:
        self._invocation = invocation

    def get_user_identity(self) -> dict[str, Any] | None:
        """The caller's identity (``tokenIdentifier``, ``subject``, ``issuer``,
        claims...), or ``None`` when the caller is not authenticated."""
        return self._invocation.async_syscall(
            "1.0/getUserIdentity", {"requestId": self._invocation.request_id}
        )


class _Ctx:
    def __init__(self, invocation: Invocation) -> None:
        self._invocation = invocation
        self.auth = Auth(invocation)

    def _run_udf(self, udf_type: str, fn: FunctionReference, args: Any) -> Any:
        # Queries and mutations call within their own transaction (1.0/runUdf).
        payload = {"udfType": udf_type, "args": _args_json(args)}
        payload.update(function_address(fn, udf_type))
        return from_json(self._invocation.async_syscall("1.0/runUdf", payload))


class QueryCtx(_Ctx):
    """The ctx of a query: ``db`` (a reader), ``auth``, ``run_query``."""

    db: DatabaseReader

    def __init__(self, invocation: Invocation) -> None:
        super().__init__(invocation)
        self.db = DatabaseReader(invocation)
        self.storage = StorageReader(invocation)

    def run_query(self, fn: FunctionReference, args: Mapping[str, Any] | None = None) -> Any:
        """Run a query in this query's snapshot; returns its result."""
        return self._run_udf("query", fn, args)


class MutationCtx(_Ctx):
    """The ctx of a mutation: ``db`` (a writer), ``auth``, ``run_query``, ``run_mutation``."""

    db: DatabaseWriter

    def __init__(self, invocation: Invocation) -> None:
        super().__init__(invocation)
        self.db = DatabaseWriter(invocation)
        self.storage = StorageWriter(invocation)
        self.scheduler = Scheduler(invocation, action=False)

    def run_query(self, fn: FunctionReference, args: Mapping[str, Any] | None = None) -> Any:
        """Run a query inside this mutation's transaction (it sees its writes)."""
        return self._run_udf("query", fn, args)

    def run_mutation(self, fn: FunctionReference, args: Mapping[str, Any] | None = None) -> Any:
        """Run a mutation inside this transaction; if it raises, only its writes roll back."""
        return self._run_udf("mutation", fn, args)


class ActionCtx(_Ctx):
    """The ctx of an action or HTTP action: ``auth``, ``run_query``,
    ``run_mutation``, ``run_action``. Each call is its own transaction."""

    def __init__(self, invocation: Invocation) -> None:
        super().__init__(invocation)
        self.storage = StorageActionWriter(invocation)
        self.scheduler = Scheduler(invocation, action=True)

    def _run_action_op(self, udf_type: str, fn: FunctionReference, args: Any) -> Any:
        payload = dict(function_address(fn, udf_type))
        payload["args"] = _args_json(args)
        payload["version"] = CONVEX_VERSION
        payload["requestId"] = self._invocation.request_id
        return from_json(self._invocation.async_syscall(f"1.0/actions/{udf_type}", payload))

    def run_query(self, fn: FunctionReference, args: Mapping[str, Any] | None = None) -> Any:
        return self._run_action_op("query", fn, args)

    def run_mutation(self, fn: FunctionReference, args: Mapping[str, Any] | None = None) -> Any:
        return self._run_action_op("mutation", fn, args)

    def run_action(self, fn: FunctionReference, args: Mapping[str, Any] | None = None) -> Any:
        return self._run_action_op("action", fn, args)
