"""Functions for the sync (WebSocket) conformance tests with the real Convex clients.

Called by tests/clients/test_sync_js_client.py (through js/sync_scenarios.mjs) and
tests/clients/sync_python_scenarios.py (run by test_sync_python_client.py). Every
scenario uses its own ``channel`` so that scenarios sharing a daemon do not see each
other's rows.
"""

import time

from convex_backend.server import (
    ConvexError,
    Int64,
    action,
    internal_query,
    mutation,
    pagination_opts_validator,
    query,
    v,
)

TABLE = "sync_messages"


def _in_channel(ctx, channel):
    return ctx.db.query(TABLE).filter(lambda q: q.eq(q.field("channel"), channel))


@query(args={"channel": v.string()})
def bodies(ctx, args):
    """The bodies of a channel's messages, oldest first."""
    return [row["body"] for row in _in_channel(ctx, args["channel"]).collect()]


@query(args={"channel": v.string()})
def rows(ctx, args):
    """A channel's messages (``_id``, ``body``), newest first: the order of ``page``."""
    found = _in_channel(ctx, args["channel"]).order("desc").collect()
    return [{"id": row["_id"], "body": row["body"]} for row in found]


@query(args={"channel": v.string(), "paginationOpts": pagination_opts_validator})
def page(ctx, args):
    """A channel's messages newest first, one page at a time."""
    result = _in_channel(ctx, args["channel"]).order("desc").paginate(args["paginationOpts"])
    result["page"] = [{"id": row["_id"], "body": row["body"]} for row in result["page"]]
    return result


@mutation(args={"channel": v.string(), "body": v.string()})
def send(ctx, args):
    return ctx.db.insert(TABLE, {"channel": args["channel"], "body": args["body"]})


@mutation(args={"channel": v.string(), "body": v.string(), "seconds": v.float64()})
def send_slow(ctx, args):
    """Insert after sleeping, so that the daemon can be stopped while this runs."""
    time.sleep(args["seconds"])
    return ctx.db.insert(TABLE, {"channel": args["channel"], "body": args["body"]})


@action(args={"channel": v.string(), "body": v.string()})
def send_and_count(ctx, args):
    """An action writing through a mutation and reading through a query."""
    message_id = ctx.run_mutation("sync_app:send", args)
    found = ctx.run_query("sync_app:bodies", {"channel": args["channel"]})
    return {"id": message_id, "count": Int64(len(found)), "bodies": found}


ERROR_DATA = {
    "code": "NotAllowed",
    "count": Int64(7),
    "big": Int64(-(2**63)),
    "ratio": 0.5,
    "bytes": b"\x00\xff",
    "nested": {"list": [Int64(1), "x", None, True]},
}


@query
def fail_query(ctx):
    raise ConvexError(ERROR_DATA)


@mutation
def fail_mutation(ctx):
    raise ConvexError(ERROR_DATA)


@action
def fail_action(ctx):
    raise ConvexError(ERROR_DATA)


@internal_query(args={"x": v.int64()})
def secret(ctx, args):
    return {"secret": Int64(42), "x": args["x"]}
