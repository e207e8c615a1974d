"""User auth in a deployment: auth_config.py deployed and kept, Bearer tokens over HTTP.

A real database and real workers (tests/http/fixtures.py) with the auth test
app (tests/clients/auth_app) and a local issuer; requests through StubTreq.
"""

from __future__ import annotations

import json

from convex_backend.auth.providers import OidcProvider, auth_info
from convex_backend.auth.users import user_authenticator
from convex_backend.functions.modules import Deployer, DeployError
from tests.auth.issuer import AUDIENCE, LocalIssuer
from tests.clients._auth_support import auth_app_modules
from tests.database.fixtures import reopen
from tests.http.fixtures import ApiTestCase


class UserAuthTestCase(ApiTestCase):
    async def setUp(self) -> None:
        self.issuer = await LocalIssuer().start()
        self.addCleanup(self.issuer.stop)
        self.modules = auth_app_modules(self.issuer)
        await super().setUp()

    async def call(self, path: str, token: str | None, body: dict | None = None, **kwargs):
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        response, content = await self.request(
            "POST", path, body if body is not None else {}, headers=headers, **kwargs
        )
        return response, content

    def identity(self, **extra) -> dict:
        return {
            "tokenIdentifier": f"{self.issuer.url}|user-1",
            "subject": "user-1",
            "issuer": self.issuer.url,
            **extra,
        }


class BearerTests(UserAuthTestCase):
    async def test_functions_see_the_identity(self) -> None:
        token = self.issuer.token(claims={"email": "ada@example.com", "email_verified": True})
        expected = self.identity(email="ada@example.com", emailVerified=True)
        calls = [
            ("/api/query", {"path": "users:whoami", "args": {}}),
            ("/api/function", {"path": "users:whoami", "args": {}}),
            ("/api/run/users/whoami", {"args": {}}),
            ("/api/mutation", {"path": "users:remember", "args": {"note": "n1"}}),
        ]
        for path, body in calls:
            response, content = await self.call(path, token, body)
            self.assertEqual(response.code, 200, content)
            self.assertEqual(json.loads(content)["value"], expected, path)
        response, content = await self.call(
            "/api/action", token, {"path": "users:whoami_action", "args": {}}
        )
        self.assertEqual(json.loads(content)["value"], {"action": expected, "query": expected})
        # The mutation stored who wrote the note.
        response, content = await self.call("/api/query", None, {"path": "users:notes"})
        self.assertEqual(
            json.loads(content)["value"], [{"note": "n1", "owner": expected["tokenIdentifier"]}]
        )
        # Without a token, nobody.
        response, content = await self.call("/api/query", None, {"path": "users:whoami"})
        self.assertIsNone(json.loads(content)["value"])

    async def test_snapshot_routes(self) -> None:
        token = self.issuer.token()
        response, content = await self.call(
            "/api/query_batch", token, {"queries": [{"path": "users:whoami", "args": {}}] * 2}
        )
        results = json.loads(content)["results"]
        self.assertEqual([r["value"] for r in results], [self.identity()] * 2)
        _, ts = await self.call("/api/query_ts", None)
        response, content = await self.call(
            "/api/query_at_ts",
            token,
            {"path": "users:whoami", "args": {}, "ts": json.loads(ts)["ts"]},
        )
        self.assertEqual(json.loads(content)["value"], self.identity())
        response, content = await self.call(
            "/api/query_at_ts",
            self.issuer.token(variant="expired"),
            {"path": "users:whoami", "args": {}, "ts": json.loads(ts)["ts"]},
        )
        self.assertJsonError(response, content, 401, "Unauthenticated")

    async def test_users_cannot_call_internal_functions(self) -> None:
        response, content = await self.call(
            "/api/query", self.issuer.token(), {"path": "users:internal_whoami"}
        )
        self.assertEqual(json.loads(content)["status"], "error")
        self.assertIn("Could not find public function", json.loads(content)["errorMessage"])

    async def test_custom_jwt_es256(self) -> None:
        token = self.issuer.token(kind="custom", claims={"sub": "svc", "role": "robot"})
        response, content = await self.call("/api/query", token, {"path": "users:whoami"})
        self.assertEqual(
            json.loads(content)["value"],
            {
                "tokenIdentifier": f"{self.issuer.custom_issuer}|svc",
                "subject": "svc",
                "issuer": self.issuer.custom_issuer,
                "role": "robot",
            },
        )

    async def test_bad_tokens_are_401_with_a_reason(self) -> None:
        cases = [
            (self.issuer.token(variant="wrong_aud"), "NoAuthProvider", "audience"),
            (self.issuer.token(variant="wrong_iss"), "NoAuthProvider", "issuer"),
            (self.issuer.token(variant="expired"), "Unauthenticated", "Token expired"),
            (self.issuer.token(variant="tampered"), "Unauthenticated", "signature"),
            (self.issuer.none_token(), "InvalidAuthHeader", "alg `none`"),
            (self.issuer.hs256_with_public_key(), "InvalidAuthHeader", "HS256"),
            ("not-a-jwt", "InvalidAuthHeader", "not a JWT"),
        ]
        for token, code, text in cases:
            for path in ("/api/query", "/api/mutation", "/api/action"):
                response, content = await self.call(
                    path, token, {"path": "users:remember", "args": {"note": "x"}}
                )
                error = self.assertJsonError(response, content, 401, code)
                self.assertIn(text, error["message"])
                self.assertNotIn(token, error["message"])
        response, content = await self.call("/api/query", None, {"path": "users:notes"})
        self.assertEqual(json.loads(content)["value"], [])

    async def test_http_actions(self) -> None:
        token = self.issuer.token(claims={"name": "Ada"})
        response, content = await self.request(
            "GET", "/http/whoami", headers={"Authorization": f"Bearer {token}"}
        )
        self.assertEqual(response.code, 200, content)
        self.assertEqual(
            json.loads(content),
            {"identity": self.identity(name="Ada"), "authorization": f"Bearer {token}"},
        )
        response, content = await self.request("GET", "/http/whoami")
        self.assertEqual(json.loads(content), {"identity": None, "authorization": None})
        # Another scheme, or a Bearer secret that is no JWT (a webhook's), is the
        # handler's business, not an identity.
        for header in ("Basic dXNlcjpwdw==", "Bearer whsec_0123456789"):
            response, content = await self.request(
                "GET", "/http/whoami", headers={"Authorization": header}
            )
            self.assertEqual(response.code, 200, content)
            self.assertEqual(json.loads(content), {"identity": None, "authorization": header})
        for variant in ("expired", "tampered", "wrong_aud"):
            response, content = await self.request(
                "GET",
                "/http/whoami",
                headers={"Authorization": f"Bearer {self.issuer.token(variant=variant)}"},
            )
            self.assertEqual(response.code, 401, variant)
            error = json.loads(content)
            self.assertEqual(set(error), {"code", "message"})


class DeployTests(UserAuthTestCase):
    async def test_the_config_is_kept_across_restarts(self) -> None:
        expected = self.issuer.providers()
        self.assertEqual(self.deployer.analysis["authConfig"], expected)
        providers = user_authenticator(self.deployment).providers()
        self.assertEqual(auth_info(providers), expected)
        self.assertEqual(providers[0], OidcProvider(self.issuer.url, AUDIENCE))
        # A restart reads the deployment back from the database file.
        db = await reopen(self, self.db)
        deployer = Deployer(db, self.runner, {}, self.mktemp())
        deployer.load_current()
        self.assertEqual(deployer.analysis["authConfig"], expected)

    async def test_redeploying_without_auth_config_drops_the_providers(self) -> None:
        token = self.issuer.token()
        response, content = await self.call("/api/query", token, {"path": "users:whoami"})
        self.assertEqual(response.code, 200)
        await self.deployer.deploy([m for m in self.modules if m["path"] != "auth_config.py"])
        response, content = await self.call("/api/query", token, {"path": "users:whoami"})
        error = self.assertJsonError(response, content, 401, "Unauthenticated")
        self.assertIn("no auth providers are configured", error["message"])

    async def test_bad_configs_are_refused_naming_auth_config(self) -> None:
        base = [m for m in self.modules if m["path"] != "auth_config.py"]
        cases = [
            ("providers = {'domain': 'x'}", "InvalidAuthConfig", "must be a list"),
            (
                "providers = [{'domain': 'https://a.example.com', 'applicationId': 'x'}]",
                "InvalidAuthConfig",
                "unknown key(s) 'applicationId'",
            ),
            (
                "providers = [{'type': 'customJwt', 'issuer': 'i', "
                "'jwks': 'https://a.example.com/jwks', 'algorithm': 'HS256'}]",
                "InvalidAuthConfig",
                "`algorithm` must be one of RS256, ES256",
            ),
            ("PROVIDERS = []", "ModuleLoadError", "must define `providers`"),
            ("providers = [object()]", "ModuleLoadError", "only JSON values"),
            ("providers = [float('nan')]", "ModuleLoadError", "only JSON values"),
            ("raise RuntimeError('no config')", "ModuleLoadError", "no config"),
        ]
        for source, code, text in cases:
            modules = base + [{"path": "auth_config.py", "source": source}]
            with self.assertRaises(DeployError, msg=source) as caught:
                await self.deployer.deploy(modules)
            self.assertEqual(caught.exception.code, code, caught.exception.message)
            self.assertIn("auth_config.py", caught.exception.message)
            self.assertIn(text, caught.exception.message)
        # The deployed config is still the good one.
        self.assertEqual(self.deployer.analysis["authConfig"], self.issuer.providers())
