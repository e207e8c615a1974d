"""User auth with the real ``convex`` npm clients (1.48.0) against the real daemon.

A local OIDC issuer (tests/auth/issuer.py: keys made at test time, discovery,
JWKS, a token endpoint) runs in the test process; the daemon runs
tests/clients/auth_app with an ``auth_config.py`` naming that issuer (OIDC,
RS256) and its customJwt provider (ES256). ``js/auth_scenarios.mjs`` drives
``ConvexClient.setAuth`` and ``ConvexHttpClient.setAuth``; every scenario runs
once, in the first test, against one daemon.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.trial.unittest import TestCase

from tests.auth.issuer import LocalIssuer
from tests.clients._auth_support import auth_daemon, remove_directory, temporary_directory
from tests.clients._support import JS, Once, ensure_js_client, node_env, node_paths, stop_daemon
from tests.processes import run_process

SCRIPT = JS / "auth_scenarios.mjs"
SCENARIOS = ["refresh", "expiry", "refused", "custom_jwt", "http"]
REFUSALS = {
    "wrong_aud": "No auth provider found matching the given token",
    "wrong_iss": "No auth provider found matching the given token",
    "expired": "Token expired",
    "tampered": "signature does not verify",
}


def parse(name: str, out: str) -> dict | None:
    for line in out.splitlines():
        if line.startswith("@@result "):
            result = json.loads(line[len("@@result ") :])
            if result.get("name") == name:
                return result
    return None


async def run_all() -> dict[str, dict]:
    await ensure_js_client()
    issuer = await LocalIssuer().start()
    tmp = temporary_directory()
    try:
        daemon = await auth_daemon(issuer, tmp)
        try:
            node, _ = node_paths()
            env = node_env(
                CONVEX_URL=daemon.api_url, CONVEX_SITE_URL=daemon.site_url, ISSUER_URL=issuer.url
            )
            runs = {}
            for name in SCENARIOS:
                code, out, err = await run_process(
                    [str(node), str(SCRIPT), name], env=env, cwd=JS, timeout=180
                )
                result = parse(name, out)
                runs[name] = {
                    "result": result,
                    "context": f"scenario {name} (node exit {code})\n--- stdout\n{out[-6000:]}"
                    f"\n--- stderr\n{err[-4000:]}",
                }
            for run in runs.values():
                run["context"] += f"\n--- daemon output (tail)\n{daemon.output[-3000:]}"
            runs["_issuer"] = {"requests": dict(issuer.requests), "url": issuer.url}
            return runs
        finally:
            await stop_daemon(daemon)
    finally:
        await issuer.stop()
        remove_directory(tmp)


class JsAuthTests(TestCase):
    timeout = 900
    shared = Once(run_all)

    async def scenario(self, name: str) -> tuple[Any, str]:
        runs = await self.shared.get()
        run = runs[name]
        result, context = run["result"], run["context"]
        if result is None:
            self.fail(f"the scenario reported no result\n{context}")
        frames = "\n".join(
            f"{f['t']:>6} {f['client']}#{f['conn']} {f['dir']}: "
            + json.dumps(f.get("frame", {k: f[k] for k in f if k in ("code", "reason")}))[:400]
            for f in result.get("frames", [])
        )
        context = f"{context}\n--- frames\n{frames}"
        if not result["ok"]:
            self.fail(f"the scenario failed: {result['error']['stack']}\n{context}")
        return result["value"], context

    async def issuer_url(self) -> str:
        return (await self.shared.get())["_issuer"]["url"]

    async def test_set_auth_identity_and_token_refresh(self) -> None:
        """``ConvexClient.setAuth``: the subscription sees each new token's identity."""
        value, context = await self.scenario("refresh")
        issuer = await self.issuer_url()
        names = [u["value"]["name"] if u["value"] else None for u in value["updates"]]
        # Never a result without identity: the queries wait for the token check.
        self.assertNotIn(None, names, context)
        self.assertEqual(names[:3], ["gen-1", "gen-2", "gen-3"], context)
        first = value["updates"][0]["value"]
        self.assertEqual(first["tokenIdentifier"], f"{issuer}|user-1", context)
        self.assertEqual((first["subject"], first["issuer"]), ("user-1", issuer), context)
        # The first fetch may use a cached token; the later ones force a fresh one.
        forced = [f["forceRefreshToken"] for f in value["fetches"]]
        self.assertEqual(forced[:3], [False, True, True], context)
        # The third token came from the client's own timer, 3 s after the second.
        second, third = value["fetches"][1]["t"], value["fetches"][2]["t"]
        self.assertGreater(third - second, 2000, context)
        changes = [c["isAuthenticated"] for c in value["changes"]]
        self.assertEqual(set(changes), {True}, context)
        self.assertEqual(value["authErrors"], [], context)
        # Mutations and actions after the refresh run as the user too.
        self.assertTrue(value["mutation"]["ok"], context)
        self.assertRegex(value["mutation"]["value"]["name"], r"^gen-\d+$", context)
        self.assertTrue(value["action"]["ok"], context)
        self.assertEqual(
            value["action"]["value"]["action"], value["action"]["value"]["query"], context
        )
        self.assertEqual(value["action"]["value"]["action"]["subject"], "user-1", context)
        self.assertIn(
            {"note": "hello", "owner": f"{issuer}|user-1"}, value["notes"]["value"], context
        )

    async def test_server_ends_expired_sessions_and_the_client_refreshes(self) -> None:
        value, context = await self.scenario("expiry")
        names = [u["value"]["name"] if u["value"] else None for u in value["updates"]]
        self.assertEqual(names[:3], ["gen-1", "gen-2", "gen-3"], context)
        self.assertNotIn(None, names, context)
        error = value["authErrors"][0]
        self.assertEqual(error["authUpdateAttempted"], False, context)
        self.assertIn("Token expired", error["error"], context)
        self.assertEqual(error["conn"], 0, context)
        # About 13 s after the token was issued: 3 s of life and 10 s of leeway.
        issued = value["fetches"][1]["t"]
        self.assertGreater(error["t"] - issued, 10000, context)
        third = value["fetches"][2]
        self.assertTrue(third["forceRefreshToken"], context)
        self.assertGreater(third["t"], error["t"], context)
        self.assertNotIn(False, [c["isAuthenticated"] for c in value["changes"]], context)

    async def test_bad_tokens_are_refused_over_the_socket(self) -> None:
        value, context = await self.scenario("refused")
        for variant, text in REFUSALS.items():
            outcome = value[variant]
            where = f"{variant}\n{context}"
            self.assertGreaterEqual(len(outcome["authErrors"]), 1, where)
            error = outcome["authErrors"][0]
            self.assertIn(text, error["error"], where)
            self.assertEqual((error["baseVersion"], error["authUpdateAttempted"]), (0, True), where)
            # The client asked for a fresh token, got the same one and gave up.
            self.assertEqual(
                [f["forceRefreshToken"] for f in outcome["fetches"]][:2], [False, True], where
            )
            self.assertEqual(outcome["changes"], [False], where)
            self.assertEqual(outcome["updates"][-1], None, where)

    async def test_a_fresh_token_after_an_auth_error_is_accepted(self) -> None:
        value, context = await self.scenario("refused")
        outcome = value["recover"]
        self.assertIn("Token expired", outcome["authErrors"][0]["error"], context)
        self.assertEqual([f["forceRefreshToken"] for f in outcome["fetches"]][:2], [False, True])
        self.assertEqual(outcome["changes"][0], True, context)
        self.assertEqual(outcome["updates"][-1]["name"], f"fetch-{len(outcome['fetches'])}")

    async def test_custom_jwt_es256_over_the_socket(self) -> None:
        value, context = await self.scenario("custom_jwt")
        issuer = await self.issuer_url()
        identity = next(u["value"] for u in value["updates"] if u["value"])
        self.assertEqual(identity["issuer"], f"{issuer}/custom", context)
        self.assertEqual(identity["tokenIdentifier"], f"{issuer}/custom|user-1", context)

    async def test_http_client_set_auth(self) -> None:
        value, context = await self.scenario("http")
        issuer = await self.issuer_url()
        self.assertEqual(value["anonymous"], {"ok": True, "value": None}, context)
        identity = {
            "tokenIdentifier": f"{issuer}|user-1",
            "subject": "user-1",
            "issuer": issuer,
            "name": "Ada",
            "email": "ada@example.com",
        }
        self.assertEqual(value["query"], {"ok": True, "value": identity}, context)
        self.assertEqual(value["mutation"], {"ok": True, "value": identity}, context)
        self.assertEqual(
            value["action"], {"ok": True, "value": {"action": identity, "query": identity}}
        )
        self.assertEqual(value["custom"]["value"]["tokenIdentifier"], f"{issuer}/custom|svc")
        for variant, text in REFUSALS.items():
            for kind in ("query", "mutation"):
                outcome = value["refused"][variant][kind]
                self.assertFalse(outcome["ok"], f"{variant} {kind}\n{context}")
                # ConvexHttpClient throws the body text of a non-2xx answer.
                error = json.loads(outcome["error"])
                self.assertIn(error["code"], ("NoAuthProvider", "Unauthenticated"), context)
                self.assertIn(text, error["message"], context)
        self.assertEqual(value["httpAction"]["valid"]["status"], 200, context)
        self.assertEqual(value["httpAction"]["valid"]["body"]["identity"]["subject"], "user-1")
        self.assertEqual(value["httpAction"]["expired"]["status"], 401, context)
        self.assertIn("Token expired", value["httpAction"]["expired"]["body"]["message"])
        # Only the authenticated mutation wrote a note.
        self.assertEqual(
            [n for n in value["notes"]["value"] if n["note"] == "from http"],
            [{"note": "from http", "owner": f"{issuer}|user-1"}],
            context,
        )
        self.assertEqual([n for n in value["notes"]["value"] if n["note"] in REFUSALS], [], context)
