"""Messages: list, paginate, send, edit; an internal cleanup; a summarizing action."""

from convex_backend.server import (
    ConvexError,
    action,
    internal_mutation,
    mutation,
    pagination_opts_validator,
    query,
    v,
)


@query(args={"channel": v.string()})
def list(ctx, args):
    """The latest 100 messages of a channel, oldest first."""
    latest = (
        ctx.db.query("messages")
        .with_index("by_channel", lambda q: q.eq("channel", args["channel"]))
        .order("desc")
        .take(100)
    )
    return latest[::-1]


@query(args={"channel": v.string(), "paginationOpts": pagination_opts_validator})
def page(ctx, args):
    return (
        ctx.db.query("messages")
        .with_index("by_channel", lambda q: q.eq("channel", args["channel"]))
        .order("desc")
        .paginate(args["paginationOpts"])
    )


@mutation(args={"channel": v.string(), "author": v.string(), "body": v.string()})
def send(ctx, args):
    body = args["body"].strip()
    if not body:
        raise ConvexError({"code": "EmptyMessage", "message": "A message needs a body"})
    return ctx.db.insert("messages", {**args, "body": body})


@mutation(args={"id": v.id("messages"), "body": v.string()})
def edit(ctx, args):
    ctx.db.patch(args["id"], {"body": args["body"], "edited": True})


@internal_mutation(args={"channel": v.string()})
def clear_channel(ctx, args):
    """Delete every message of a channel; internal: only functions and admins call it."""
    removed = 0
    for message in ctx.db.query("messages").with_index(
        "by_channel", lambda q: q.eq("channel", args["channel"])
    ):
        ctx.db.delete(message["_id"])
        removed += 1
    return removed


@action(args={"channel": v.string()})
def summarize(ctx, args):
    """Read the channel through a query, then post a summary through a mutation."""
    messages = ctx.run_query("messages:list", {"channel": args["channel"]})
    authors = sorted({m["author"] for m in messages})
    summary = f"{len(messages)} messages from {', '.join(authors) or 'nobody'}"
    ctx.run_mutation(
        "messages:send", {"channel": args["channel"], "author": "summary-bot", "body": summary}
    )
    return summary
