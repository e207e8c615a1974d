"""Messages: list, paginate, send (text or image), edit; a bot that answers later
(a scheduled function); internal cleanups (one run hourly by crons.py); a
summarizing action."""

import time

from convex_backend.server import (
    ConvexError,
    action,
    internal,
    internal_mutation,
    mutation,
    pagination_opts_validator,
    query,
    v,
)

#: How long the bot "thinks" before it answers a message that starts with "@bot".
BOT_DELAY_MS = 1000
#: How many old messages one run of delete_old removes; it reschedules itself for more.
DELETE_BATCH = 500


def _with_url(ctx, message):
    """An image message gets the URL of its file (None once the file is deleted)."""
    if "image" in message:
        return {**message, "url": ctx.storage.get_url(message["image"])}
    return message


def _author(ctx, args):
    """Signed-in users post under their own name (see auth_config.py); others pick one."""
    identity = ctx.auth.get_user_identity()
    if identity is None:
        return args["author"]
    return identity.get("name") or identity["subject"]


def _delete(ctx, message):
    image = message.get("image")
    # The file may already be gone (deleted from the dashboard, say).
    if image is not None and ctx.storage.get_metadata(image) is not None:
        ctx.storage.delete(image)
    ctx.db.delete(message["_id"])


@query(args={"channel": v.string()})
def list(ctx, args):
    """The latest 100 messages of a channel, oldest first; image messages have a `url`."""
    latest = (
        ctx.db.query("messages")
        .with_index("by_channel", lambda q: q.eq("channel", args["channel"]))
        .order("desc")
        .take(100)
    )
    return [_with_url(ctx, message) for message in latest[::-1]]


@query(args={"channel": v.string(), "paginationOpts": pagination_opts_validator})
def page(ctx, args):
    result = (
        ctx.db.query("messages")
        .with_index("by_channel", lambda q: q.eq("channel", args["channel"]))
        .order("desc")
        .paginate(args["paginationOpts"])
    )
    return {**result, "page": [_with_url(ctx, message) for message in result["page"]]}


@mutation(args={"channel": v.string(), "author": v.string(), "body": v.string()})
def send(ctx, args):
    body = args["body"].strip()
    if not body:
        raise ConvexError({"code": "EmptyMessage", "message": "A message needs a body"})
    author = _author(ctx, args)
    message_id = ctx.db.insert(
        "messages", {"channel": args["channel"], "author": author, "body": body}
    )
    words = body.split(maxsplit=1)
    if words[0] == "@bot":
        # The job is written in this mutation's transaction: no message, no reply.
        ctx.scheduler.run_after(
            BOT_DELAY_MS,
            internal.messages.bot_reply,
            {"channel": args["channel"], "to": author, "text": words[1] if len(words) > 1 else ""},
        )
    return message_id


@internal_mutation(args={"channel": v.string(), "to": v.string(), "text": v.string()})
def bot_reply(ctx, args):
    """Run by the scheduler BOT_DELAY_MS after `send`; clients cannot call it."""
    if args["text"]:
        body = f"{args['to']}, you said: {args['text']}"
    else:
        body = f"Hi {args['to']}! Write `@bot something` and I answer a second later."
    ctx.db.insert("messages", {"channel": args["channel"], "author": "bot", "body": body})


@mutation
def generate_upload_url(ctx, args):
    """Step 1 of sending an image: a URL the client POSTs the file to (valid one hour)."""
    return ctx.storage.generate_upload_url()


@mutation(args={"channel": v.string(), "author": v.string(), "storageId": v.id("_storage")})
def send_image(ctx, args):
    """Step 3: the upload answered {"storageId"}; post it as a message."""
    metadata = ctx.storage.get_metadata(args["storageId"])
    if metadata is None:
        raise ConvexError({"code": "FileNotFound", "message": "No such file"})
    if not (metadata.get("contentType") or "").startswith("image/"):
        raise ConvexError({"code": "NotAnImage", "message": "Only images can be sent"})
    return ctx.db.insert(
        "messages",
        {
            "channel": args["channel"],
            "author": _author(ctx, args),
            "body": "",
            "image": args["storageId"],
        },
    )


@mutation(args={"id": v.id("messages"), "body": v.string()})
def edit(ctx, args):
    ctx.db.patch(args["id"], {"body": args["body"], "edited": True})


@internal_mutation(args={"channel": v.string()})
def clear_channel(ctx, args):
    """Delete every message of a channel (and its images); internal: only functions and
    admins call it."""
    removed = 0
    for message in ctx.db.query("messages").with_index(
        "by_channel", lambda q: q.eq("channel", args["channel"])
    ):
        _delete(ctx, message)
        removed += 1
    return removed


@internal_mutation(args={"olderThanDays": v.number()})
def delete_old(ctx, args):
    """Delete messages older than `olderThanDays` (crons.py runs it hourly).

    One run deletes at most DELETE_BATCH messages, so that it stays a small
    transaction; if there may be more, it schedules itself to carry on at once.
    """
    cutoff = time.time() * 1000 - args["olderThanDays"] * 24 * 3600 * 1000
    old = (
        ctx.db.query("messages")
        .with_index("by_creation_time", lambda q: q.lt("_creationTime", cutoff))
        .take(DELETE_BATCH)
    )
    for message in old:
        _delete(ctx, message)
    if len(old) == DELETE_BATCH:
        ctx.scheduler.run_after(0, internal.messages.delete_old, args)
    return len(old)


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
