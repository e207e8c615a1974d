"""User auth with the official Python client (``convex`` 0.8.1) against the real daemon.

The daemon runs tests/clients/auth_app with an ``auth_config.py`` naming a local
issuer (tests/auth/issuer.py) started in the test process.

- ``convex.ConvexClient.set_auth`` (the sync socket) runs in a subprocess
  (``auth_python_scenarios.py``): its blocking calls hold the GIL.
- ``convex.http_client.ConvexHttpClient.set_auth`` runs in a thread.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from convex.http_client import ConvexHttpClient
from twisted.internet import threads
from twisted.trial.unittest import TestCase

from tests.auth.issuer import LocalIssuer
from tests.clients._auth_support import auth_daemon, remove_directory, temporary_directory
from tests.clients._support import Once, stop_daemon
from tests.daemon import REPO
from tests.processes import run_process

SCRIPT = Path(__file__).resolve().parent / "auth_python_scenarios.py"
VARIANTS = {
    "wrong_aud": ("NoAuthProvider", "No auth provider found matching the given token"),
    "wrong_iss": ("NoAuthProvider", "No auth provider found matching the given token"),
    "expired": ("Unauthenticated", "Token expired"),
    "tampered": ("Unauthenticated", "Invalid token: its signature does not verify"),
}


def http_calls(url: str, issuer: LocalIssuer) -> dict:
    """Runs in a thread: the HTTP client blocks on ``requests``."""

    def attempt(call) -> dict:
        try:
            return {"value": call()}
        except Exception as e:
            return {"error": f"{type(e).__name__}: {e}"}

    client = ConvexHttpClient(url)
    out: dict[str, Any] = {"anonymous": attempt(lambda: client.query("users:whoami"))}
    client.set_auth(issuer.token(claims={"name": "Http Py"}))
    out["query"] = attempt(lambda: client.query("users:whoami"))
    out["mutation"] = attempt(lambda: client.mutation("users:remember", {"note": "http-py"}))
    out["action"] = attempt(lambda: client.action("users:whoami_action"))
    client.set_auth(issuer.token(kind="custom", claims={"sub": "svc"}))
    out["custom"] = attempt(lambda: client.query("users:whoami"))
    for variant in VARIANTS:
        client.set_auth(issuer.token(variant=variant))
        out[variant] = attempt(lambda: client.query("users:whoami"))
    return out


async def run_all() -> dict:
    issuer = await LocalIssuer().start()
    tmp = temporary_directory()
    try:
        daemon = await auth_daemon(issuer, tmp)
        try:
            env = {
                "PATH": os.environ.get("PATH", ""),
                "PYTHONPATH": str(REPO),
                "HOME": os.environ.get("HOME", "/tmp"),
                "CONVEX_URL": daemon.api_url,
                "ISSUER_URL": issuer.url,
            }
            runs: dict[str, Any] = {}
            for name in ["identity"] + [f"refused_{variant}" for variant in VARIANTS]:
                # A refused token blocks the client for good: it is killed after 8 s.
                timeout = 120 if name == "identity" else 8
                code, out, err = await run_process(
                    [sys.executable, str(SCRIPT), name], env=env, cwd=REPO, timeout=timeout
                )
                result = None
                for line in out.splitlines():
                    if line.startswith("@@result "):
                        result = json.loads(line[len("@@result ") :])
                runs[name] = {
                    "code": code,
                    "out": out,
                    "result": result,
                    "context": f"scenario {name} (exit {code})\n{out[-4000:]}\n{err[-4000:]}",
                }
            runs["http"] = await threads.deferToThread(http_calls, daemon.api_url, issuer)
            runs["daemon_output"] = daemon.output
            runs["issuer"] = issuer.url
            return runs
        finally:
            await stop_daemon(daemon)
    finally:
        await issuer.stop()
        remove_directory(tmp)


class PythonAuthTests(TestCase):
    timeout = 600
    shared = Once(run_all)

    async def scenario(self, name: str) -> tuple[Any, str, dict]:
        runs = await self.shared.get()
        run = runs[name]
        context = f"{run['context']}\n--- daemon (tail)\n{runs['daemon_output'][-3000:]}"
        if run["result"] is None or not run["result"]["ok"]:
            self.fail(f"the scenario failed\n{context}")
        return run["result"]["value"], context, runs

    async def test_sync_client_set_auth(self) -> None:
        value, context, runs = await self.scenario("identity")
        issuer = runs["issuer"]
        identity = {
            "tokenIdentifier": f"{issuer}|user-1",
            "subject": "user-1",
            "issuer": issuer,
            "name": "Py",
            "email": "py@example.com",
        }
        self.assertIsNone(value["anonymous"], context)
        self.assertEqual(value["query"], identity, context)
        self.assertEqual(value["mutation"], identity, context)
        self.assertEqual(value["action"], {"action": identity, "query": identity}, context)
        self.assertEqual(value["refreshed"]["name"], "Py 2", context)
        self.assertEqual(value["custom"]["tokenIdentifier"], f"{issuer}/custom|py-svc", context)
        self.assertIsNone(value["cleared"], context)

    async def test_sync_client_bad_tokens_are_refused(self) -> None:
        """The Rust client answers AuthError by reconnecting with the same token, so
        its call never returns; the daemon's log shows each refusal and its reason."""
        runs = await self.shared.get()
        for variant, (_code, text) in VARIANTS.items():
            run = runs[f"refused_{variant}"]
            context = f"{run['context']}\n--- daemon (tail)\n{runs['daemon_output'][-3000:]}"
            self.assertIn(f"@@step query with a {variant} token", run["out"], context)
            self.assertIsNone(run["result"], context)
            self.assertIsNone(run["code"], context)  # killed: the query never answered
            self.assertIn(f"Sync session authentication failed: {text}", runs["daemon_output"])

    async def test_http_client_set_auth(self) -> None:
        runs = await self.shared.get()
        out, issuer = runs["http"], runs["issuer"]
        identity = {
            "tokenIdentifier": f"{issuer}|user-1",
            "subject": "user-1",
            "issuer": issuer,
            "name": "Http Py",
        }
        self.assertEqual(out["anonymous"], {"value": None})
        self.assertEqual(out["query"], {"value": identity})
        self.assertEqual(out["mutation"], {"value": identity})
        self.assertEqual(out["action"], {"value": {"action": identity, "query": identity}})
        self.assertEqual(out["custom"]["value"]["tokenIdentifier"], f"{issuer}/custom|svc")
        for variant, (code, text) in VARIANTS.items():
            # The client raises "<status> <code>: <message>".
            error = out[variant]["error"]
            self.assertTrue(error.startswith(f"Exception: 401 {code}: "), error)
            self.assertIn(text, error)

    async def test_tokens_never_reach_the_log(self) -> None:
        runs = await self.shared.get()
        output = runs["daemon_output"]
        self.assertNotIn("eyJ", output)
