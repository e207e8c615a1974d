"""Scenarios for the official Python client's ``convex.ConvexClient`` (``convex`` 0.8.1).

    CONVEX_URL=http://127.0.0.1:3210 CONVEX_ADMIN_KEY=... python sync_python_scenarios.py NAME

Run by tests/clients/test_sync_python_client.py, one process per scenario: the
client's blocking calls hold the GIL while they wait (its Rust extension does not
release it), so in the test process they would freeze the reactor and no timeout
could fire. Prints ``@@step <text>`` before each client call and one
``@@result {"name", "ok", "value" | "error"}`` line, with values spelled out with
their Python types by :func:`tag` (``{"int64": 1}``, ``{"float64": "0.5"}``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

from convex import ConvexClient, ConvexError, ConvexInt64


def tag(value: Any) -> Any:
    """A Python value spelled out with its type: ``{"int64": 1}``, ``{"float64": "-0.0"}``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, ConvexInt64):
        return {"int64": value.value}
    if isinstance(value, float):
        return {"float64": repr(value)}
    if isinstance(value, int):
        return {"int": value}
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, list):
        return [tag(item) for item in value]
    if isinstance(value, dict):
        return {key: tag(item) for key, item in value.items()}
    return {"other": repr(value)}


def step(text: str) -> None:
    print(f"@@step {text}", flush=True)


def query(url: str, admin_key: str) -> Any:
    client = ConvexClient(url)
    step("query")
    return client.query("sync_app:bodies", {"channel": "py-query"})


def mutation(url: str, admin_key: str) -> Any:
    client = ConvexClient(url)
    step("mutation")
    message_id = client.mutation("sync_app:send", {"channel": "py-mutation", "body": "hi"})
    step("query after the mutation")
    rows = client.query("sync_app:rows", {"channel": "py-mutation"})
    return {"id": message_id, "rows": rows}


def action(url: str, admin_key: str) -> Any:
    client = ConvexClient(url)
    step("action")
    return client.action("sync_app:send_and_count", {"channel": "py-action", "body": "act"})


def subscribe(url: str, admin_key: str) -> Any:
    client = ConvexClient(url)
    other = ConvexClient(url)
    channel = {"channel": "py-subscribe"}
    subscription = client.subscribe("sync_app:bodies", channel)
    step("first value of the subscription")
    values = [next(subscription)]
    for body in ["one", "two"]:
        step(f"mutation {body!r} from another client")
        other.mutation("sync_app:send", {**channel, "body": body})
        step("the next value of the subscription")
        values.append(next(subscription))
    subscription.unsubscribe()
    return values


def error_in(kind: str) -> Callable[[str, str], Any]:
    def scenario(url: str, admin_key: str) -> Any:
        client = ConvexClient(url)
        step(f"{kind} raising ConvexError")
        return getattr(client, kind)(f"sync_app:fail_{kind}")

    return scenario


def subscription_error(url: str, admin_key: str) -> Any:
    client = ConvexClient(url)
    subscription = client.subscribe("sync_app:fail_query")
    step("first result of a failing subscription")
    return next(subscription)


def internal_without_auth(url: str, admin_key: str) -> Any:
    client = ConvexClient(url)
    step("internal query without auth")
    return client.query("sync_app:secret", {"x": ConvexInt64(1)})


def internal_as_admin(url: str, admin_key: str) -> Any:
    client = ConvexClient(url)
    client.set_admin_auth(admin_key)
    step("internal query as admin")
    return client.query("sync_app:secret", {"x": ConvexInt64(2)})


SCENARIOS: dict[str, Callable[[str, str], Any]] = {
    "query": query,
    "mutation": mutation,
    "action": action,
    "subscribe": subscribe,
    "convex_error_query": error_in("query"),
    "convex_error_mutation": error_in("mutation"),
    "convex_error_action": error_in("action"),
    "convex_error_subscription": subscription_error,
    "internal_without_auth": internal_without_auth,
    "internal_as_admin": internal_as_admin,
}


def main() -> None:
    name = sys.argv[1]
    url, admin_key = os.environ["CONVEX_URL"], os.environ["CONVEX_ADMIN_KEY"]
    result: dict[str, Any] = {"name": name}
    try:
        result["value"] = tag(SCENARIOS[name](url, admin_key))
        result["ok"] = True
    except Exception as e:
        result["ok"] = False
        result["error"] = {
            "class": type(e).__name__,
            "isConvexError": isinstance(e, ConvexError),
            "message": str(e),
        }
        if isinstance(e, ConvexError):
            result["error"]["data"] = tag(e.data)
    print(f"@@result {json.dumps(result, ensure_ascii=False)}", flush=True)
    # The client's background threads would keep the process alive.
    os._exit(0)


if __name__ == "__main__":
    main()
