"""Functions that write log lines, for the real `npx convex logs` (test_cli_logs.py)."""

import logging

from convex_backend.server import mutation, query, v


@mutation(args={"message": v.string()})
def shout(ctx, args):
    print("cli says", args["message"])
    logging.warning("careful with %s", args["message"])


@query(args={})
def broken(ctx, args):
    raise ValueError("broken for the cli")
