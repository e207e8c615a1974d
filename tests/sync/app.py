"""Source of the small app the sync integration tests deploy."""

SCHEMA = """
from convex_backend.server import define_schema, define_table, v

schema = define_schema({
    "messages": define_table({"body": v.string(), "n": v.number()}).index("by_n", ["n"]),
})
"""

MESSAGES = """
from convex_backend.server import ConvexError, mutation, query, v, pagination_opts_validator


@query(args={})
def bodies(ctx, args):
    print("listing")
    return [m["body"] for m in ctx.db.query("messages").with_index("by_n").collect()]


@query(args={})
def count(ctx, args):
    return ctx.db.query("messages").count()


@mutation(args={"body": v.string(), "n": v.number()})
def send(ctx, args):
    ctx.db.insert("messages", {"body": args["body"], "n": args["n"]})
    return args["n"]


@mutation(args={"n": v.number()})
def remove_n(ctx, args):
    for m in ctx.db.query("messages").with_index("by_n", lambda q: q.eq("n", args["n"])):
        ctx.db.delete(m["_id"])


@query(args={"paginationOpts": pagination_opts_validator})
def page(ctx, args):
    return ctx.db.query("messages").with_index("by_n").paginate(args["paginationOpts"])


@query(args={"n": v.number()})
def strict(ctx, args):
    row = ctx.db.query("messages").with_index("by_n", lambda q: q.eq("n", args["n"])).first()
    if row is None:
        raise ConvexError({"missing": args["n"]})
    return row["body"]


@mutation(args={})
def fail(ctx, args):
    ctx.db.insert("messages", {"body": "never", "n": -1})
    raise ConvexError("nope")
"""
