"""The basic routes, through StubTreq on the Klein resource."""

from __future__ import annotations

import json

from treq.testing import StubTreq
from twisted.trial.unittest import TestCase

from convex_backend.http.cors import CorsResource
from convex_backend.http.root import RootApp
from tests.helpers import admin_key_for, make_deployment

BASE = "http://convex.test"
# {"subject": "a", "issuer": "https://i"}, base64
IDENTITY = "eyJzdWJqZWN0IjogImEiLCAiaXNzdWVyIjogImh0dHBzOi8vaSJ9"


class RootRoutesTests(TestCase):
    def setUp(self) -> None:
        self.deployment = make_deployment(self.mktemp())
        self.key = admin_key_for(self.deployment)
        self.treq = StubTreq(CorsResource(RootApp(self.deployment).resource()))

    async def get(self, path: str, **kwargs):
        response = await self.treq.get(BASE + path, **kwargs)
        return response, await response.content()

    async def post(self, path: str, **kwargs):
        response = await self.treq.post(BASE + path, **kwargs)
        return response, await response.content()

    def assertJsonError(self, response, body: bytes, status: int, code: str) -> dict:
        self.assertEqual(response.code, status)
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"application/json"])
        error = json.loads(body)
        self.assertEqual(set(error), {"code", "message"})
        self.assertEqual(error["code"], code)
        self.assertNotIn("Traceback", error["message"])
        return error

    async def test_root_says_running(self) -> None:
        response, body = await self.get("/")
        self.assertEqual(response.code, 200)
        self.assertIn(b"This Convex deployment is running", body)

    async def test_version_and_instance(self) -> None:
        _, version = await self.get("/version")
        _, instance_version = await self.get("/instance_version")
        _, name = await self.get("/instance_name")
        self.assertEqual(version.decode(), self.deployment.version)
        self.assertEqual(instance_version, version)
        self.assertEqual(name, b"convex-self-hosted")

    async def test_echo_returns_body(self) -> None:
        response, body = await self.post(
            "/echo", data=b'{"x": 1}', headers={"content-type": "application/json"}
        )
        self.assertEqual(response.code, 200)
        self.assertEqual(body, b'{"x": 1}')
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"application/json"])

    async def test_check_admin_key_accepts_the_key(self) -> None:
        response, body = await self.post(
            "/api/check_admin_key", headers={"authorization": f"Convex {self.key}"}
        )
        self.assertEqual(response.code, 200)
        self.assertEqual(json.loads(body), {"ok": True})

    async def test_check_admin_key_in_json_body(self) -> None:
        response, _ = await self.post(
            "/api/check_admin_key", data=json.dumps({"adminKey": self.key}).encode()
        )
        self.assertEqual(response.code, 200)

    async def test_check_admin_key_with_identity_suffix(self) -> None:
        # Clients append ":<base64 identity JSON>" to act as a user.
        response, _ = await self.get(
            "/api/check_admin_key",
            headers={"authorization": f"Convex {self.key}:{IDENTITY}"},
        )
        self.assertEqual(response.code, 200)

    async def test_check_admin_key_missing(self) -> None:
        response, body = await self.post("/api/check_admin_key")
        self.assertJsonError(response, body, 401, "MissingAdminKey")

    async def test_check_admin_key_wrong(self) -> None:
        wrong = self.key[:-1] + ("0" if self.key[-1] != "0" else "1")
        for header in (f"Convex {wrong}", "Convex convex-self-hosted|00", "Convex x"):
            response, body = await self.post(
                "/api/check_admin_key", headers={"authorization": header}
            )
            error = self.assertJsonError(response, body, 401, "BadAdminKey")
            self.assertNotIn(wrong, error["message"])

    async def test_check_admin_key_user_token_refused(self) -> None:
        response, body = await self.post(
            "/api/check_admin_key", headers={"authorization": "Bearer abc.def.ghi"}
        )
        self.assertJsonError(response, body, 401, "BadAdminKey")

    async def test_check_admin_key_garbage_header(self) -> None:
        for header in ("Basic dXNlcjpwYXNz", "Convex", "Convex key:!!notbase64!!"):
            response, body = await self.post(
                "/api/check_admin_key", headers={"authorization": header}
            )
            self.assertJsonError(response, body, 401, "BadAdminKey")

    async def test_check_admin_key_malformed_json(self) -> None:
        for payload in (b"{bad", b"[1,2]", b'{"adminKey": 5}', b"\xff\xfe"):
            response, body = await self.post("/api/check_admin_key", data=payload)
            self.assertJsonError(response, body, 400, "BadJsonBody")

    async def test_unknown_route_is_json_404(self) -> None:
        for path in ("/nope", "/api/nope", "/api/check_admin_key/extra"):
            response, body = await self.get(path)
            self.assertJsonError(response, body, 404, "NotFound")

    async def test_wrong_method_is_json_405(self) -> None:
        response = await self.treq.put(BASE + "/version")
        self.assertJsonError(response, await response.content(), 405, "MethodNotAllowed")

    async def test_metrics_is_prometheus_text(self) -> None:
        await self.get("/version")
        response, body = await self.get("/metrics")
        self.assertEqual(response.code, 200)
        text = body.decode()
        self.assertIn("process_cpu_seconds_total", text)
        self.assertIn("# TYPE convex_http_requests_total counter", text)

    async def test_cors_preflight(self) -> None:
        response = await self.treq.request(
            "OPTIONS",
            BASE + "/api/query",
            headers={
                "origin": "https://app.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type,convex-client",
            },
        )
        self.assertEqual(response.code, 204)
        h = response.headers
        self.assertEqual(h.getRawHeaders(b"access-control-allow-origin"), [b"https://app.example"])
        self.assertEqual(h.getRawHeaders(b"access-control-allow-credentials"), [b"true"])
        self.assertEqual(
            h.getRawHeaders(b"access-control-allow-headers"),
            [b"content-type,convex-client"],
        )
        self.assertEqual(
            h.getRawHeaders(b"access-control-allow-methods"),
            [b"GET, POST, OPTIONS, PATCH, DELETE, PUT"],
        )
        self.assertEqual(h.getRawHeaders(b"access-control-max-age"), [b"86400"])

    async def test_cors_headers_on_api_responses_only(self) -> None:
        origin = {"origin": "https://app.example"}
        response, _ = await self.post("/api/check_admin_key", headers=origin)
        self.assertEqual(
            response.headers.getRawHeaders(b"access-control-allow-origin"),
            [b"https://app.example"],
        )
        response, _ = await self.get("/version", headers=origin)
        self.assertIsNone(response.headers.getRawHeaders(b"access-control-allow-origin"))
