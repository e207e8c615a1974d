"""The functions the real Convex clients call in the conformance tests.

Deployed by tests/clients/test_*_http_client.py with ``convex-backend deploy``.
"""

from convex_backend.server import (
    ConvexError,
    Int64,
    action,
    internal_query,
    mutation,
    query,
    v,
)


def _describe(value):
    """What the server decoded, spelled out with its Python type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean:{value}"
    if isinstance(value, Int64):
        return f"int64:{value.value}"
    if isinstance(value, float):
        return f"float64:{value!r}"
    if isinstance(value, str):
        return f"string:{value}"
    if isinstance(value, bytes):
        return f"bytes:{value.hex()}"
    if isinstance(value, list):
        return [_describe(item) for item in value]
    if isinstance(value, dict):
        return {key: _describe(item) for key, item in value.items()}
    return f"unexpected:{type(value).__name__}:{value!r}"


@query
def echo(ctx, args):
    """Return the arguments unchanged."""
    return args


@query
def describe(ctx, args):
    """Return each argument as ``"<type>:<value>"``, as the server decoded it."""
    return _describe(args)


@query
def special_values(ctx):
    """Values produced on the server, so the client decodes what the server encodes."""
    return {
        "int": Int64(-(2**63)),
        "intMax": Int64(2**63 - 1),
        "bytes": bytes([0, 255, 16, 1]),
        "empty": b"",
        "nan": float("nan"),
        "inf": float("inf"),
        "ninf": float("-inf"),
        "negzero": -0.0,
        "float": 2.0,
        "nested": [{"a": [Int64(1), 0.5, None, True, "é😀"]}],
    }


@mutation(args={"body": v.string(), "count": v.int64()})
def insert(ctx, args):
    return ctx.db.insert("items", args)


@query(args={"id": v.id("items")})
def get(ctx, args):
    return ctx.db.get(args["id"])


@mutation
def nothing(ctx):
    """A void mutation: its value is null."""


@action(args={"body": v.string()})
def insert_and_read(ctx, args):
    """An action writing through a mutation and reading through a query."""
    item_id = ctx.run_mutation("conformance:insert", {"body": args["body"], "count": Int64(3)})
    return {"id": item_id, "doc": ctx.run_query("conformance:get", {"id": item_id})}


ERROR_DATA = {
    "code": "Boom",
    "count": Int64(7),
    "nested": {"list": [1.5, "x", None, False], "bytes": b"\x01\x02", "negzero": -0.0},
}


@mutation
def fail_with_data(ctx):
    raise ConvexError(ERROR_DATA)


@query
def fail_with_string(ctx):
    raise ConvexError("a plain message")


@action
def fail_in_action(ctx):
    raise ConvexError({"where": "action", "n": Int64(-1)})


@query
def fail_plain(ctx):
    raise ValueError("kaboom")


@internal_query
def secret(ctx, args):
    return {"secret": Int64(42), "args": args}


@query
def whoami(ctx):
    return ctx.auth.get_user_identity()


@action
def whoami_in_action(ctx):
    """The identity in an action and in a query it calls."""
    return {
        "action": ctx.auth.get_user_identity(),
        "query": ctx.run_query("conformance:whoami", {}),
    }
