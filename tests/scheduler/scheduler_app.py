"""The app deployed by the scheduler tests (``tasks.py``), as source text."""

TASKS = '''
import time

from convex_backend.server import (
    ConvexError,
    action,
    api,
    internal,
    internal_action,
    internal_mutation,
    mutation,
    query,
    v,
)


def _counter(ctx, name):
    return ctx.db.query("counters").filter(lambda q: q.eq(q.field("name"), name)).first()


def _bump(ctx, name):
    doc = _counter(ctx, name)
    if doc is None:
        ctx.db.insert("counters", {"name": name, "value": 1})
    else:
        ctx.db.patch(doc["_id"], {"value": doc["value"] + 1})


@internal_mutation(args={"name": v.string()})
def bump(ctx, args):
    _bump(ctx, args["name"])


@internal_mutation(args={"name": v.string(), "seconds": v.number()})
def slow_bump(ctx, args):
    time.sleep(args["seconds"])
    _bump(ctx, args["name"])


@internal_mutation(args={"label": v.string()})
def record(ctx, args):
    ctx.db.insert("runs", {"label": args["label"]})


@query
def runs(ctx):
    return [doc["label"] for doc in ctx.db.query("runs").collect()]


@internal_mutation
def cancel_self(ctx):
    _bump(ctx, "self")
    for job in ctx.db.system.query("_scheduled_functions").collect():
        if job["name"] == "tasks:cancel_self" and job["state"]["kind"] == "pending":
            ctx.scheduler.cancel(job["_id"])


@internal_mutation
def fail(ctx):
    raise ConvexError("boom")


@query(args={"name": v.string()})
def count(ctx, args):
    doc = _counter(ctx, args["name"])
    return 0 if doc is None else doc["value"]


@mutation(args={"delay": v.number(), "name": v.string()})
def schedule_bump(ctx, args):
    return ctx.scheduler.run_after(args["delay"], internal.tasks.bump, {"name": args["name"]})


@mutation(args={"at": v.number(), "name": v.string()})
def schedule_bump_at(ctx, args):
    return ctx.scheduler.run_at(args["at"], "tasks:bump", {"name": args["name"]})


@mutation(args={"at": v.number(), "label": v.string()})
def schedule_record_at(ctx, args):
    return ctx.scheduler.run_at(args["at"], internal.tasks.record, {"label": args["label"]})


@mutation(args={"delay": v.number(), "target": v.string(), "args": v.any()})
def schedule(ctx, args):
    return ctx.scheduler.run_after(args["delay"], args["target"], args["args"])


@mutation(args={"names": v.array(v.string()), "delay": v.number(), "step": v.number()})
def schedule_spread(ctx, args):
    return [
        ctx.scheduler.run_after(
            args["delay"] + i * args["step"], internal.tasks.bump, {"name": name}
        )
        for i, name in enumerate(args["names"])
    ]


@mutation(args={"name": v.string()})
def schedule_then_fail(ctx, args):
    ctx.scheduler.run_after(0, internal.tasks.bump, {"name": args["name"]})
    raise ConvexError("rolled back")


@mutation
def schedule_nested(ctx):
    kept = ctx.scheduler.run_after(60_000, internal.tasks.bump, {"name": "kept"})
    try:
        ctx.run_mutation(api.tasks.schedule_then_fail, {"name": "nested"})
    except ConvexError:
        pass
    return {
        "kept": kept,
        "jobs": [d["_id"] for d in ctx.db.system.query("_scheduled_functions").collect()],
    }


@mutation(args={"n": v.number()})
def schedule_many(ctx, args):
    for _ in range(int(args["n"])):
        ctx.scheduler.run_after(3_600_000, internal.tasks.bump, {"name": "many"})


@mutation(args={"size": v.number(), "n": v.number()})
def schedule_big(ctx, args):
    for _ in range(int(args["n"])):
        ctx.scheduler.run_after(3_600_000, internal.tasks.bump, {"name": "x" * int(args["size"])})


@mutation(args={"id": v.string()})
def cancel(ctx, args):
    ctx.scheduler.cancel(args["id"])


@mutation(args={"id": v.string()})
def cancel_then_read(ctx, args):
    ctx.scheduler.cancel(args["id"])
    return ctx.db.system.get(args["id"])


@query(args={"id": v.string()})
def job(ctx, args):
    return ctx.db.system.get(args["id"])


@query
def jobs(ctx):
    return ctx.db.system.query("_scheduled_functions").collect()


@query
def schedule_in_query(ctx):
    return ctx.scheduler.run_after(0, internal.tasks.bump, {"name": "q"})


@query(args={"op": v.string(), "payload": v.any()})
def raw_in_query(ctx, args):
    return ctx._invocation.async_syscall(args["op"], args["payload"])


@mutation(args={"op": v.string(), "payload": v.any()})
def raw(ctx, args):
    return ctx._invocation.async_syscall(args["op"], args["payload"])


@action(args={"op": v.string(), "payload": v.any()})
def raw_action(ctx, args):
    return ctx._invocation.async_syscall(args["op"], args["payload"])


@action(args={"delay": v.number(), "name": v.string()})
def schedule_from_action(ctx, args):
    return ctx.scheduler.run_after(args["delay"], internal.tasks.act, {"name": args["name"]})


@action(args={"id": v.string()})
def cancel_from_action(ctx, args):
    ctx.scheduler.cancel(args["id"])


@internal_action(args={"name": v.string()})
def act(ctx, args):
    ctx.run_mutation(internal.tasks.bump, {"name": args["name"]})
    return ctx.run_query(api.tasks.count, {"name": args["name"]})


@internal_action(args={"name": v.string(), "seconds": v.number()})
def slow_act(ctx, args):
    ctx.run_mutation(internal.tasks.bump, {"name": args["name"] + ":started"})
    time.sleep(args["seconds"])
    ctx.run_mutation(internal.tasks.bump, {"name": args["name"]})


@internal_action(args={"name": v.string()})
def gated(ctx, args):
    """Starts, then waits (up to 30 s) for the counter "gate" before finishing."""
    ctx.run_mutation(internal.tasks.bump, {"name": args["name"] + ":started"})
    deadline = time.monotonic() + 30
    while ctx.run_query(api.tasks.count, {"name": "gate"}) == 0:
        if time.monotonic() > deadline:
            raise RuntimeError("the gate never opened")
        time.sleep(0.02)
    ctx.run_mutation(internal.tasks.bump, {"name": args["name"] + ":done"})


@mutation(args={"delay": v.number(), "name": v.string(), "seconds": v.number()})
def schedule_slow_act(ctx, args):
    return ctx.scheduler.run_after(
        args["delay"], internal.tasks.slow_act, {"name": args["name"], "seconds": args["seconds"]}
    )
'''
