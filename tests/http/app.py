"""Modules deployed by the HTTP API tests (see fixtures.py)."""

SCHEMA = """
from convex_backend.server import define_schema, define_table, v

schema = define_schema({
    "notes": define_table({"owner": v.string(), "n": v.number()}).index("by_owner", ["owner"]),
})
"""

NOTES = """
import os

from convex_backend.server import ConvexError, Int64, action, internal_query, mutation, query, v


@mutation(args={"owner": v.string(), "n": v.number()})
def add(ctx, args):
    return ctx.db.insert("notes", {"owner": args["owner"], "n": args["n"]})


@query(args={})
def count(ctx, args):
    return len(ctx.db.query("notes").collect())


@query(args={"owner": v.string()})
def owned(ctx, args):
    rows = ctx.db.query("notes").with_index("by_owner", lambda q: q.eq("owner", args["owner"]))
    return [d["n"] for d in rows.collect()]


@query(args={})
def big(ctx, args):
    print("big was called")
    return {"i": Int64(2**40), "b": b"\\x00\\x01"}


@query(args={})
def fail(ctx, args):
    raise ConvexError({"why": "because"})


@query(args={})
def crash(ctx, args):
    raise ValueError("plain failure")


@query(args={"name": v.string()})
def env(ctx, args):
    return os.environ.get(args["name"])


@action(args={"name": v.string()})
def env_action(ctx, args):
    return os.environ.get(args["name"])


@internal_query(args={})
def secret(ctx, args):
    return "internal"
"""

NESTED = """
from convex_backend.server import query


@query(args={})
def where(ctx, args):
    return "dir/mod"
"""

HTTP = """
from convex_backend.server import HttpRouter, Response, http_action


@http_action
def hello(ctx, request):
    return Response("hello " + request.method, headers={"x-handler": "hello"})


@http_action
def size(ctx, request):
    return Response({"size": len(request.bytes()), "method": request.method})


@http_action
def missing(ctx, request):
    return Response("handler says not found", status=404)


http = HttpRouter()
http.route(path="/hello", method="GET", handler=hello)
http.route(path="/size", method="POST", handler=size)
http.route(path_prefix="/mine/", method="GET", handler=missing)
"""

MODULES = [
    {"path": "schema.py", "source": SCHEMA},
    {"path": "notes.py", "source": NOTES},
    {"path": "dir/mod.py", "source": NESTED},
    {"path": "http.py", "source": HTTP},
]
