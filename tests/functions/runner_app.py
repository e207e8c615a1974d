"""Source of the modules deployed by test_runner (written to a temp dir there)."""

SCHEMA = """
from convex_backend.server import define_schema, define_table, v

schema = define_schema({
    "notes": define_table({"owner": v.string(), "n": v.number(), "tag": v.optional(v.string())})
        .index("by_owner", ["owner"])
        .index("by_owner_n", ["owner", "n"]),
    "counters": define_table({"name": v.string(), "value": v.number()}).index("by_name", ["name"]),
})
"""

NOTES = """
from convex_backend.server import (
    ConvexError, action, internal_query, mutation, query, v, UNDEFINED,
    pagination_opts_validator,
)


@mutation(args={"owner": v.string(), "n": v.number()})
def add(ctx, args):
    return ctx.db.insert("notes", {"owner": args["owner"], "n": args["n"]})


@mutation(args={"id": v.id("notes"), "tag": v.optional(v.string())})
def tag(ctx, args):
    ctx.db.patch(args["id"], {"tag": args.get("tag", UNDEFINED)})
    return ctx.db.get(args["id"])


@mutation(args={"id": v.id("notes")})
def reset(ctx, args):
    ctx.db.replace(args["id"], {"owner": "nobody", "n": 0})
    return ctx.db.get(args["id"])


@mutation(args={"id": v.id("notes")})
def remove(ctx, args):
    ctx.db.delete(args["id"])
    return ctx.db.get(args["id"])


@query(args={"id": v.string()})
def normalize(ctx, args):
    return ctx.db.normalize_id("notes", args["id"])


@query(args={"owner": v.string()})
def shapes(ctx, args):
    notes = ctx.db.query("notes")
    by_owner = lambda q: q.eq("owner", args["owner"])
    return {
        "all": [d["n"] for d in notes.collect()],
        "desc": [d["n"] for d in ctx.db.query("notes").order("desc").take(2)],
        "owned": [d["n"] for d in ctx.db.query("notes").with_index("by_owner", by_owner)],
        "range": [
            d["n"]
            for d in ctx.db.query("notes").with_index(
                "by_owner_n", lambda q: q.eq("owner", args["owner"]).gt("n", 1).lte("n", 3)
            ).collect()
        ],
        "filtered": [
            d["n"]
            for d in ctx.db.query("notes")
            .filter(lambda q: q.or_(q.eq(q.field("n"), 1), q.gt(q.mul(q.field("n"), 2), 7)))
            .collect()
        ],
        "first": (ctx.db.query("notes").with_index("by_owner", by_owner).first() or {}).get("n"),
        "none": ctx.db.query("notes").with_index("by_owner", lambda q: q.eq("owner", "?")).first(),
        "count": ctx.db.query("notes").count(),
    }


@query(args={})
def not_unique(ctx, args):
    return ctx.db.query("notes").unique()


@query(args={"opts": pagination_opts_validator})
def page(ctx, args):
    return ctx.db.query("notes").paginate(args["opts"])


@query(args={})
def sneaky_write(ctx, args):
    ctx.db.insert("notes", {"owner": "x", "n": 1})


@query(args={}, returns=v.string())
def wrong_return(ctx, args):
    return 5


@internal_query(args={})
def secret(ctx, args):
    return "internal"


@action(args={})
def reveal(ctx, args):
    return ctx.run_query("notes:secret", {})


@query(args={})
def logs(ctx, args):
    print("hello from a query")
    return None


@mutation(args={})
def fail(ctx, args):
    ctx.db.insert("notes", {"owner": "ghost", "n": 1})
    raise ConvexError({"why": "because"})
"""

COUNTERS = '''
from convex_backend.server import mutation, query, v


@mutation(args={"name": v.string()})
def increment(ctx, args):
    by_name = lambda q: q.eq("name", args["name"])  # noqa: E731
    row = ctx.db.query("counters").with_index("by_name", by_name).unique()
    if row is None:
        ctx.db.insert("counters", {"name": args["name"], "value": 1})
    else:
        ctx.db.patch(row["_id"], {"value": row["value"] + 1})


@query(args={"name": v.string()})
def read(ctx, args):
    by_name = lambda q: q.eq("name", args["name"])  # noqa: E731
    row = ctx.db.query("counters").with_index("by_name", by_name).unique()
    return row["value"] if row else 0


@mutation(args={"name": v.string()})
def nested(ctx, args):
    """A child mutation's writes join ours; a failing child's writes are undone."""
    ctx.run_mutation("counters:increment", {"name": args["name"]})
    try:
        ctx.run_mutation("counters:boom", {"name": args["name"]})
    except Exception:
        pass
    return ctx.run_query("counters:read", {"name": args["name"]})


@mutation(args={"name": v.string()})
def boom(ctx, args):
    ctx.db.insert("counters", {"name": args["name"] + "-boom", "value": 1})
    raise ValueError("child failed")
'''
