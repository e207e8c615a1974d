"""The Python SDK for Convex functions: what user function modules import.

This package mirrors Convex's ``convex/server`` and ``convex/values`` with
Python names, so the Convex documentation translates line by line::

    from convex_backend.server import mutation, query, v

    @query(args={"channel": v.string()})
    def list(ctx, args):
        return (
            ctx.db.query("messages")
            .with_index("by_channel", lambda q: q.eq("channel", args["channel"]))
            .order("desc")
            .take(50)
        )

    @mutation(args={"channel": v.string(), "body": v.string()})
    def send(ctx, args):
        return ctx.db.insert("messages", args)

Handlers may be ``def`` or ``async def``; every ``ctx`` method is
synchronous. The modules:

- ``validators``: ``v`` and the validator JSON
- ``registration``: ``query``/``mutation``/``action`` (and ``internal_*``),
  ``http_action``, ``RegisteredFunction``
- ``context``, ``database``, ``queries``: ``ctx``, ``ctx.db`` and queries
- ``schema``: ``define_schema``/``define_table``
- ``router``, ``web``: ``HttpRouter``, ``Request``, ``Response``
- ``errors``: ``ConvexError``
- ``crons``: ``Crons`` (``cron_jobs()``), for ``crons.py``
- ``references``: ``api``/``internal`` function references
- ``scheduler``: ``ctx.scheduler`` (``run_after``, ``run_at``, ``cancel``)
- ``_runtime``: the interface the function worker uses (not for user code)
"""

from convex_backend.server.context import ActionCtx, Auth, MutationCtx, QueryCtx
from convex_backend.server.crons import Crons, cron_jobs
from convex_backend.server.database import DatabaseReader, DatabaseWriter
from convex_backend.server.errors import ConvexError, ConvexFunctionError
from convex_backend.server.queries import (
    Expression,
    FilterBuilder,
    IndexRangeBuilder,
    Query,
    QueryInitializer,
    SearchFilterBuilder,
)
from convex_backend.server.references import FunctionReference, api, get_function_name, internal
from convex_backend.server.registration import (
    RegisteredFunction,
    action,
    http_action,
    internal_action,
    internal_mutation,
    internal_query,
    mutation,
    query,
)
from convex_backend.server.router import HttpRouter, http_router
from convex_backend.server.scheduler import Scheduler
from convex_backend.server.schema import (
    SchemaDefinition,
    TableDefinition,
    define_schema,
    define_table,
)
from convex_backend.server.validators import Validator, pagination_opts_validator, v
from convex_backend.server.web import Headers, Request, Response
from convex_backend.values import UNDEFINED, Int64

__all__ = [
    "UNDEFINED",
    "ActionCtx",
    "Auth",
    "ConvexError",
    "ConvexFunctionError",
    "Crons",
    "DatabaseReader",
    "DatabaseWriter",
    "Expression",
    "FilterBuilder",
    "FunctionReference",
    "Headers",
    "HttpRouter",
    "IndexRangeBuilder",
    "Int64",
    "MutationCtx",
    "Query",
    "QueryCtx",
    "QueryInitializer",
    "RegisteredFunction",
    "Request",
    "Response",
    "Scheduler",
    "SchemaDefinition",
    "SearchFilterBuilder",
    "TableDefinition",
    "Validator",
    "action",
    "api",
    "cron_jobs",
    "define_schema",
    "define_table",
    "get_function_name",
    "http_action",
    "http_router",
    "internal",
    "internal_action",
    "internal_mutation",
    "internal_query",
    "mutation",
    "pagination_opts_validator",
    "query",
    "v",
]
