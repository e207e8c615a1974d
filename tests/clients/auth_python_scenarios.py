"""User-auth scenarios for the official Python client's ``convex.ConvexClient`` (0.8.1).

    CONVEX_URL=... ISSUER_URL=... python auth_python_scenarios.py NAME

Run by tests/clients/test_python_auth.py, one process per scenario (the client's
blocking calls hold the GIL, see sync_python_scenarios.py). Tokens come from the
test's local issuer (``POST ${ISSUER_URL}/mint``). Prints ``@@step <text>`` before
each client call and one ``@@result {"name", "ok", "value" | "error"}`` line.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from typing import Any

from convex import ConvexClient


def step(text: str) -> None:
    print(f"@@step {text}", flush=True)


def mint(issuer: str, **body: Any) -> str:
    request = urllib.request.Request(
        issuer + "/mint", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def identity(url: str, issuer: str) -> Any:
    client = ConvexClient(url)
    step("anonymous query")
    anonymous = client.query("users:whoami")
    client.set_auth(mint(issuer, claims={"name": "Py", "email": "py@example.com"}))
    step("query with set_auth")
    query = client.query("users:whoami")
    step("mutation with set_auth")
    mutation = client.mutation("users:remember", {"note": "from python"})
    step("action with set_auth")
    action = client.action("users:whoami_action")
    step("subscription after a new token")
    client.set_auth(mint(issuer, claims={"name": "Py 2"}))
    subscription = client.subscribe("users:whoami")
    refreshed = next(subscription)
    subscription.unsubscribe()
    step("custom JWT (ES256)")
    client.set_auth(mint(issuer, kind="custom", claims={"sub": "py-svc"}))
    custom = client.query("users:whoami")
    step("clear_auth")
    client.clear_auth()
    cleared = client.query("users:whoami")
    return {
        "anonymous": anonymous,
        "query": query,
        "mutation": mutation,
        "action": action,
        "refreshed": refreshed,
        "custom": custom,
        "cleared": cleared,
    }


def refused(variant: str):
    """A refused token: the Rust client reconnects with it again and again, so the
    call never returns; the test kills the process and reads the daemon's log."""

    def scenario(url: str, issuer: str) -> Any:
        client = ConvexClient(url)
        client.set_auth(mint(issuer, variant=variant))
        step(f"query with a {variant} token")
        return client.query("users:whoami")

    return scenario


SCENARIOS = {
    "identity": identity,
    **{
        f"refused_{variant}": refused(variant)
        for variant in ("wrong_aud", "wrong_iss", "expired", "tampered")
    },
}


def main() -> None:
    name = sys.argv[1]
    url, issuer = os.environ["CONVEX_URL"], os.environ["ISSUER_URL"]
    result: dict[str, Any] = {"name": name}
    try:
        result["value"] = SCENARIOS[name](url, issuer)
        result["ok"] = True
    except Exception as e:
        result["ok"] = False
        result["error"] = {"class": type(e).__name__, "message": str(e)}
    print(f"@@result {json.dumps(result, ensure_ascii=False)}", flush=True)
    # The client's background threads would keep the process alive.
    os._exit(0)


if __name__ == "__main__":
    main()
