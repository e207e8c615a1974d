"""Functions of the auth test app: each tells who is calling."""

from convex_backend.server import action, internal_query, mutation, query, v


@query(args={})
def whoami(ctx, args):
    return ctx.auth.get_user_identity()


@mutation(args={"note": v.string()})
def remember(ctx, args):
    identity = ctx.auth.get_user_identity()
    owner = identity["tokenIdentifier"] if identity else None
    ctx.db.insert("notes", {"note": args["note"], "owner": owner})
    return identity


@query(args={})
def notes(ctx, args):
    return [{"note": d["note"], "owner": d["owner"]} for d in ctx.db.query("notes").collect()]


@action(args={})
def whoami_action(ctx, args):
    # Functions an action calls run as the same user.
    return {
        "action": ctx.auth.get_user_identity(),
        "query": ctx.run_query("users:whoami", {}),
    }


@internal_query(args={})
def internal_whoami(ctx, args):
    return ctx.auth.get_user_identity()
