"""The interface between the function worker and user code.

The worker (``convex_backend.functions.worker``) uses only the names here:

* :class:`Syscalls` — what the worker implements: ``syscall(op, args)`` and
  ``async_syscall(op, args)``, both synchronous, both taking and returning
  plain JSON-able objects (Convex-JSON); ``async_syscall`` raises
  :class:`SyscallError` for a host error.
* :func:`registered_functions`, :func:`schema_export`, :func:`http_router`,
  :func:`crons_export` — what a loaded module exports (the ``analyze`` answer).
* :func:`invoke` and :func:`invoke_http` — run one function call: decode the
  args, build the ctx for the function's type, run the handler (coroutines on
  a fresh event loop), encode the result. Exceptions propagate; a
  :class:`ConvexError` keeps ``.data`` (:func:`error_data_json` encodes it).

Each call gets its own ``Invocation`` held by the ctx objects, so no global
"current call" is needed; ctx objects refuse to work once their call returned.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from types import ModuleType
from typing import Any

from convex_backend.server._syscalls import CONVEX_VERSION, Invocation, SyscallError, Syscalls
from convex_backend.server.context import ActionCtx, MutationCtx, QueryCtx
from convex_backend.server.crons import Crons
from convex_backend.server.errors import ConvexError
from convex_backend.server.queries import Query, QueryInitializer
from convex_backend.server.registration import RegisteredFunction
from convex_backend.server.router import HttpRouter
from convex_backend.server.schema import SchemaDefinition
from convex_backend.server.web import Request, Response
from convex_backend.values import UNDEFINED, ConvexValueError, from_json, from_python, to_json

__all__ = [
    "CONVEX_VERSION",
    "SyscallError",
    "Syscalls",
    "crons_export",
    "error_data_json",
    "http_router",
    "invoke",
    "invoke_http",
    "registered_functions",
    "schema_export",
]

_CTX_TYPES = {"query": QueryCtx, "mutation": MutationCtx, "action": ActionCtx}


def registered_functions(module: ModuleType) -> list[tuple[str, RegisteredFunction]]:
    """The module's exported functions as ``(export name, function)``, in
    definition order.

    The exports are the names in ``__all__`` if the module defines it, else
    every name not starting with ``_``. A function re-exported under several
    names (or from several modules) is listed each time.
    """
    names = getattr(module, "__all__", None)
    if names is not None:
        items = [(name, getattr(module, name, None)) for name in names]
    else:
        items = [(name, obj) for name, obj in vars(module).items() if not name.startswith("_")]
    return [(name, obj) for name, obj in items if isinstance(obj, RegisteredFunction)]


def schema_export(module: ModuleType) -> dict[str, Any] | None:
    """The schema export JSON of ``schema.py``'s ``schema``, or ``None`` if it has none."""
    schema = getattr(module, "schema", None)
    if schema is None:
        return None
    if not isinstance(schema, SchemaDefinition):
        raise TypeError(
            "schema.py must define `schema = define_schema({...})`, "
            f"but `schema` is a {type(schema).__name__}"
        )
    return schema.export()


def http_router(module: ModuleType) -> HttpRouter | None:
    """``http.py``'s ``http`` router, or ``None`` if it has none."""
    router = getattr(module, "http", None)
    if router is None:
        return None
    if not isinstance(router, HttpRouter):
        raise TypeError(
            "http.py must define `http = HttpRouter()` (or http_router()), "
            f"but `http` is a {type(router).__name__}"
        )
    return router


def crons_export(module: ModuleType) -> dict[str, Any] | None:
    """The export of ``crons.py``'s ``crons`` (a :class:`Crons`), or ``None`` if it has none."""
    crons = getattr(module, "crons", None)
    if crons is None:
        return None
    if not isinstance(crons, Crons):
        raise TypeError(
            f"crons.py must define `crons = Crons()`, but `crons` is a {type(crons).__name__}"
        )
    return crons.export()


def error_data_json(error: ConvexError) -> Any:
    """The Convex-JSON of a ``ConvexError``'s ``data`` (``None``/``UNDEFINED`` → null)."""
    if error.data is None or error.data is UNDEFINED:
        return None
    return to_json(from_python(error.data))


# -- running handlers --------------------------------------------------------------


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _settle(result: Any) -> Any:
    """Run an ``async def`` handler's coroutine to completion on a fresh loop."""
    if not inspect.isawaitable(result):
        return result
    outer = asyncio._get_running_loop()
    if outer is None:
        return asyncio.run(_await(result))
    # A nested call run inline by the worker while an async handler waits in a
    # (blocking) syscall: the outer loop is stopped inside one of its
    # callbacks, so a fresh loop may run here once it is hidden, then it is
    # put back.
    asyncio._set_running_loop(None)
    try:
        return asyncio.run(_await(result))
    finally:
        asyncio._set_running_loop(outer)


def _result_json(result: Any) -> Any:
    if isinstance(result, (Query, QueryInitializer)):
        raise TypeError(
            "Return value is a Query. Results must be retrieved with .collect(), "
            ".take(n), .first(), .unique() or .paginate(opts)"
        )
    if result is None or result is UNDEFINED:
        return None
    try:
        return to_json(from_python(result))
    except ConvexValueError as e:
        raise ConvexValueError(f"The function's return value is not a Convex value: {e}") from None


def _run_http(fn: RegisteredFunction, invocation: Invocation, request: Request) -> dict[str, Any]:
    response = _settle(fn.call_handler(ActionCtx(invocation), request))
    if not isinstance(response, Response):
        raise TypeError(f"An HTTP action must return a Response, got {type(response).__name__}")
    return response.to_json()


def invoke(
    fn: RegisteredFunction, syscalls: Syscalls, args_json: Any, *, request_id: str = ""
) -> Any:
    """Run ``fn`` with ``args_json`` (the Convex-JSON args object; for an HTTP
    action, the request JSON) and return the Convex-JSON result (for an HTTP
    action, the response JSON)."""
    invocation = Invocation(syscalls, request_id)
    try:
        if fn.udf_type == "httpAction":
            return _run_http(fn, invocation, Request.from_json(args_json))
        ctx_type = _CTX_TYPES.get(fn.udf_type)
        if ctx_type is None:
            raise ValueError(f"Unknown function type {fn.udf_type!r}")
        args = {} if args_json is None else from_json(args_json)
        return _result_json(_settle(fn.call_handler(ctx_type(invocation), args)))
    finally:
        invocation.finish()


def not_found_response(path: str) -> dict[str, Any]:
    """The response JSON for a request no route matches."""
    return Response(
        {"code": "NotFound", "message": f"No HttpAction routed for {path}"}, status=404
    ).to_json()


def invoke_http(
    router: HttpRouter, syscalls: Syscalls, request_json: dict[str, Any], *, request_id: str = ""
) -> dict[str, Any]:
    """Route the request (exact path, else longest prefix; ``HEAD`` as ``GET``)
    and run the matching HTTP action; a 404 response when nothing matches.

    ``request_json`` is ``{"method", "url", "headers": [[name, value], ...],
    "body": {"$bytes": ...} | null}``; the result is ``{"status", "headers",
    "body"}`` in the same forms.
    """
    request = Request.from_json(request_json)
    path = request.path
    found = router.lookup(path, request.method)
    if found is None:
        return not_found_response(path)
    fn, _route = found
    invocation = Invocation(syscalls, request_id)
    try:
        return _run_http(fn, invocation, request)
    finally:
        invocation.finish()
