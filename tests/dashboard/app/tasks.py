"""Functions of the dashboard test app: a query, a mutation, an internal one that logs."""

from convex_backend.server import action, internal_mutation, mutation, query, v


@query(args={})
def list(ctx, args):
    """Every task, oldest first."""
    return ctx.db.query("tasks").collect()


@mutation(args={"text": v.string()})
def add(ctx, args):
    return ctx.db.insert("tasks", {"text": args["text"], "done": False})


@internal_mutation(args={"marker": v.string()})
def shout(ctx, args):
    """Logs a line the browser test looks for on the Logs page."""
    print(f"dashboard says {args['marker']}")
    return {"marker": args["marker"]}


@query(args={})
def whoami(ctx, args):
    identity = ctx.auth.get_user_identity()
    return identity["subject"] if identity else None


@action(args={})
def fail(ctx, args):
    raise RuntimeError("this action always fails")


@mutation(args={"text": v.string()})
def later(ctx, args):
    """Schedules an add an hour from now (for the Schedules page)."""
    return ctx.scheduler.run_after(3_600_000, "tasks:add", {"text": args["text"]})


@internal_mutation(args={})
def tidy(ctx, args):
    """The cron jobs' target: counts the tasks."""
    return len(ctx.db.query("tasks").collect())
