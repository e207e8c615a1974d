"""Stats: one row, kept up to date by the "update stats" cron job (crons.py)."""

import time

from convex_backend.server import internal_mutation, query

#: Counting stops here: one transaction should not read an unbounded number of rows.
MAX_COUNTED = 1000


@internal_mutation
def update(ctx, args):
    """Count the messages of the last hour; crons.py runs this every minute."""
    now = time.time() * 1000  # a mutation's clock: frozen while it runs
    recent = (
        ctx.db.query("messages")
        .with_index("by_creation_time", lambda q: q.gte("_creationTime", now - 3600 * 1000))
        .take(MAX_COUNTED)
    )
    values = {"messagesLastHour": float(len(recent)), "updatedAt": now}
    row = ctx.db.query("stats").first()
    if row is None:
        ctx.db.insert("stats", values)
    else:
        ctx.db.patch(row["_id"], values)


@query
def get(ctx, args):
    """The stats row, or None before the cron job first ran."""
    return ctx.db.query("stats").first()
