"""The admin API: auth on every route, tables, documents, environment variables, deployment."""

from __future__ import annotations

import json

from convex_backend.http.admin_api import MAX_ENV_VARS
from convex_backend.values import Int64
from tests.http.fixtures import ApiTestCase

ADMIN_ROUTES = [
    ("POST", "/api/clear_tables", {"tableNames": []}),
    ("GET", "/api/tables", None),
    ("GET", "/api/tables/notes/documents", None),
    ("GET", "/api/environment_variables", None),
    ("GET", "/api/list_environment_variables", None),
    ("POST", "/api/update_environment_variables", {"changes": []}),
    ("GET", "/api/deployment", None),
    ("GET", "/api/v1/get_canonical_urls", None),
]


class AdminAuthTests(ApiTestCase):
    modules = None

    async def test_every_admin_route_needs_the_key(self) -> None:
        await self.insert("notes", [{"owner": "a", "n": 1.0}])
        wrong = self.key[:-1] + ("0" if self.key[-1] != "0" else "1")
        for method, path, body in ADMIN_ROUTES:
            response, content = await self.request(method, path, body)
            self.assertJsonError(response, content, 401, "MissingAdminKey")
            for header in (f"Convex {wrong}", "Bearer a.b.c", "Convex"):
                response, content = await self.request(
                    method, path, body, headers={"Authorization": header}
                )
                error = self.assertJsonError(response, content, 401, "BadAdminKey")
                self.assertNotIn(wrong, error["message"])
            if body is not None:
                # A wrong key in the body is refused too; a body with no key is MissingAdminKey.
                response, content = await self.request(method, path, {**body, "adminKey": wrong})
                self.assertJsonError(response, content, 401, "BadAdminKey")
                response, content = await self.request(method, path, data=b"{bad")
                self.assertJsonError(response, content, 401, "MissingAdminKey")
            response, content = await self.request(method, path, body, admin=True)
            self.assertEqual(response.code, 200, (path, content))
        self.assertEqual(len(self.documents("notes")), 1)

    async def test_wrong_methods_and_unknown_routes(self) -> None:
        response, content = await self.request("GET", "/api/clear_tables", admin=True)
        self.assertJsonError(response, content, 405, "MethodNotAllowed")
        response, content = await self.request("POST", "/api/tables", {}, admin=True)
        self.assertJsonError(response, content, 405, "MethodNotAllowed")
        response, content = await self.request("GET", "/api/no_such_thing", admin=True)
        self.assertJsonError(response, content, 404, "NotFound")
        response, content = await self.request("GET", "/api/tables/a/b/c", admin=True)
        self.assertJsonError(response, content, 404, "NotFound")

    async def test_canonical_urls(self) -> None:
        code, urls = await self.json("GET", "/api/v1/get_canonical_urls", admin=True)
        config = self.deployment.config
        self.assertEqual(
            urls, {"convexCloudUrl": config.cloud_origin, "convexSiteUrl": config.site_origin}
        )


class TableTests(ApiTestCase):
    modules = None

    async def test_clear_tables(self) -> None:
        await self.insert("notes", [{"owner": "a", "n": float(i)} for i in range(2500)])
        await self.insert("keep", [{"x": 1.0}])
        await self.insert("other", [{"x": 1.0}, {"x": 2.0}])
        bad_bodies = [
            ({}, 400, "BadRequest"),
            ({"tableNames": "notes"}, 400, "BadRequest"),
            ({"tableNames": ["notes", 5]}, 400, "BadRequest"),
            ({"tableNames": ["notes", "_modules"]}, 400, "BadRequest"),
            ({"tableNames": ["notes", "nope"]}, 400, "TableNotFound"),
        ]
        for body, status, code in bad_bodies:
            response, content = await self.request("POST", "/api/clear_tables", body, admin=True)
            self.assertJsonError(response, content, status, code)
        self.assertEqual(len(self.documents("notes")), 2500)
        code, answer = await self.json(
            "POST", "/api/clear_tables", {"tableNames": ["notes", "other", "notes"]}, admin=True
        )
        self.assertEqual((code, answer), (200, {"deleted": {"notes": 2500, "other": 2}}))
        self.assertEqual(self.documents("notes"), [])
        self.assertEqual(self.documents("other"), [])
        self.assertEqual(len(self.documents("keep")), 1)
        # The key may also come in the body, as the seed's clients send it.
        code, again = await self.json(
            "POST", "/api/clear_tables", {"tableNames": ["keep"], "adminKey": self.key}
        )
        self.assertEqual(again, {"deleted": {"keep": 1}})
        # The tables themselves stay, empty.
        code, tables = await self.json("GET", "/api/tables", admin=True)
        self.assertEqual(
            tables["tables"],
            [
                {"name": "keep", "documentCount": 0},
                {"name": "notes", "documentCount": 0},
                {"name": "other", "documentCount": 0},
            ],
        )

    async def test_list_tables(self) -> None:
        code, empty = await self.json("GET", "/api/tables", admin=True)
        self.assertEqual(empty, {"tables": []})
        await self.insert("zebras", [{"x": 1.0}])
        await self.insert("apples", [{"x": 1.0}, {"x": 2.0}])
        code, tables = await self.json("GET", "/api/tables", admin=True)
        self.assertEqual(
            tables["tables"],
            [{"name": "apples", "documentCount": 2}, {"name": "zebras", "documentCount": 1}],
        )

    async def test_browse_documents(self) -> None:
        ids = await self.insert("notes", [{"n": float(i), "big": Int64(i)} for i in range(5)])
        path = "/api/tables/notes/documents"
        code, first = await self.json("GET", path + "?numItems=2", admin=True)
        self.assertEqual(code, 200)
        self.assertEqual([d["_id"] for d in first["page"]], ids[:2])
        self.assertFalse(first["isDone"])
        doc = first["page"][0]
        self.assertEqual(doc["big"], {"$integer": "AAAAAAAAAAA="})
        self.assertIsInstance(doc["_creationTime"], float)
        seen = list(first["page"])
        cursor = first["continueCursor"]
        while True:
            code, page = await self.json("GET", f"{path}?numItems=2&cursor={cursor}", admin=True)
            seen += page["page"]
            cursor = page["continueCursor"]
            if page["isDone"]:
                break
        self.assertEqual([d["_id"] for d in seen], ids)
        code, newest = await self.json("GET", path + "?order=desc&numItems=1", admin=True)
        self.assertEqual([d["_id"] for d in newest["page"]], [ids[-1]])
        code, everything = await self.json("GET", path, admin=True)
        self.assertEqual(len(everything["page"]), 5)
        self.assertTrue(everything["isDone"])
        for query, status, error_code in (
            ("?numItems=0", 400, "BadRequest"),
            ("?numItems=5000", 400, "BadRequest"),
            ("?numItems=two", 400, "BadRequest"),
            ("?order=sideways", 400, "BadRequest"),
            ("?cursor=garbage", 400, "InvalidCursor"),
        ):
            response, content = await self.request("GET", path + query, admin=True)
            self.assertJsonError(response, content, status, error_code)
        for table in ("nope", "_modules"):
            response, content = await self.request(
                "GET", f"/api/tables/{table}/documents", admin=True
            )
            self.assertJsonError(response, content, 404, "TableNotFound")


class EnvironmentVariableTests(ApiTestCase):
    modules = None

    async def update(self, changes, **kwargs):
        return await self.request(
            "POST", "/api/update_environment_variables", {"changes": changes}, **kwargs
        )

    async def listed(self) -> dict:
        code, answer = await self.json("GET", "/api/list_environment_variables", admin=True)
        code, listed = await self.json("GET", "/api/environment_variables", admin=True)
        self.assertEqual(
            listed["environmentVariables"],
            [{"name": k, "value": v} for k, v in answer["environmentVariables"].items()],
        )
        return answer["environmentVariables"]

    async def test_set_and_remove(self) -> None:
        self.assertEqual(await self.listed(), {})
        response, content = await self.update(
            [{"name": "B_VAR", "value": "b"}, {"name": "A_VAR", "value": "a"}], admin=True
        )
        self.assertEqual((response.code, json.loads(content)), (200, {}))
        self.assertEqual(await self.listed(), {"A_VAR": "a", "B_VAR": "b"})
        self.assertEqual(list((await self.listed()).keys()), ["A_VAR", "B_VAR"])
        self.assertEqual(self.runner.environment, {"A_VAR": "a", "B_VAR": "b"})
        # Change one, remove one (value null), remove a missing one (value left out).
        response, _ = await self.update(
            [
                {"name": "A_VAR", "value": "changed"},
                {"name": "B_VAR", "value": None},
                {"name": "NEVER_SET"},
            ],
            admin=True,
        )
        self.assertEqual(response.code, 200)
        self.assertEqual(await self.listed(), {"A_VAR": "changed"})
        self.assertEqual(self.runner.environment, {"A_VAR": "changed"})
        rows = self.documents("_environment_variables")
        self.assertEqual([(r["name"], r["value"]) for r in rows], [("A_VAR", "changed")])

    async def test_bad_changes_change_nothing(self) -> None:
        await self.update([{"name": "KEEP", "value": "1"}], admin=True)
        bad = [
            ("not a list", "BadRequest"),
            ([5], "BadRequest"),
            ([{"name": "1ABC", "value": "x"}], "InvalidEnvironmentVariableName"),
            ([{"name": "A-B", "value": "x"}], "InvalidEnvironmentVariableName"),
            ([{"name": "", "value": "x"}], "InvalidEnvironmentVariableName"),
            ([{"name": "A" * 41, "value": "x"}], "InvalidEnvironmentVariableName"),
            ([{"name": 5, "value": "x"}], "InvalidEnvironmentVariableName"),
            ([{"name": "OK", "value": 5}], "InvalidEnvironmentVariableValue"),
            ([{"name": "OK", "value": "x" * 8193}], "InvalidEnvironmentVariableValue"),
            ([{"name": "OK", "value": "é" * 4097}], "InvalidEnvironmentVariableValue"),
            ([{"name": "OK", "value": "a\x00b"}], "InvalidEnvironmentVariableValue"),
            (
                [{"name": "OK", "value": "1"}, {"name": "OK", "value": "2"}],
                "DuplicateEnvironmentVariable",
            ),
            (
                [{"name": "KEEP", "value": None}, {"name": "BAD NAME", "value": "1"}],
                "InvalidEnvironmentVariableName",
            ),
        ]
        for changes, code in bad:
            response, content = await self.update(changes, admin=True)
            self.assertJsonError(response, content, 400, code)
        response, content = await self.request(
            "POST", "/api/update_environment_variables", {}, admin=True
        )
        self.assertJsonError(response, content, 400, "BadRequest")
        self.assertEqual(await self.listed(), {"KEEP": "1"})
        # Limits that are fine: 40-character names, 8 KiB values, underscores.
        response, _ = await self.update(
            [{"name": "_" + "a" * 39, "value": "x" * 8192}, {"name": "_", "value": ""}],
            admin=True,
        )
        self.assertEqual(response.code, 200)

    async def test_at_most_a_thousand(self) -> None:
        full = [{"name": f"V{i}", "value": str(i)} for i in range(MAX_ENV_VARS)]
        response, _ = await self.update(full, admin=True)
        self.assertEqual(response.code, 200)
        response, content = await self.update([{"name": "ONE_MORE", "value": "x"}], admin=True)
        self.assertJsonError(response, content, 400, "TooManyEnvironmentVariables")
        # Replacing one is fine: the count stays at the limit.
        response, _ = await self.update(
            [{"name": "V0", "value": None}, {"name": "ONE_MORE", "value": "x"}], admin=True
        )
        self.assertEqual(response.code, 200)
        self.assertEqual(len(await self.listed()), MAX_ENV_VARS)
        self.assertEqual(len(self.runner.environment), MAX_ENV_VARS)


class FunctionsSeeAdminChangesTests(ApiTestCase):
    async def env(self, kind: str, path: str, name: str):
        code, answer = await self.json(
            "POST", f"/api/{kind}", {"path": path, "args": {"name": name}}
        )
        self.assertEqual(answer["status"], "success", answer)
        return answer["value"]

    async def test_environment_changes_reach_functions(self) -> None:
        self.assertIsNone(await self.env("query", "notes:env", "GREETING"))
        await self.request(
            "POST",
            "/api/update_environment_variables",
            {"changes": [{"name": "GREETING", "value": "hello"}]},
            admin=True,
        )
        self.assertEqual(await self.env("query", "notes:env", "GREETING"), "hello")
        self.assertEqual(await self.env("action", "notes:env_action", "GREETING"), "hello")
        await self.request(
            "POST",
            "/api/update_environment_variables",
            {"changes": [{"name": "GREETING", "value": None}]},
            admin=True,
        )
        self.assertIsNone(await self.env("query", "notes:env", "GREETING"))
        self.assertIsNone(await self.env("action", "notes:env_action", "GREETING"))

    async def test_clear_tables_empties_what_functions_see(self) -> None:
        for i in range(3):
            await self.json(
                "POST", "/api/mutation", {"path": "notes:add", "args": {"owner": "a", "n": i}}
            )
        code, before = await self.json("POST", "/api/query", {"path": "notes:count"})
        self.assertEqual(before["value"], 3.0)
        await self.request("POST", "/api/clear_tables", {"tableNames": ["notes"]}, admin=True)
        code, after = await self.json("POST", "/api/query", {"path": "notes:count"})
        self.assertEqual(after["value"], 0.0)

    async def test_deployment_info(self) -> None:
        code, info = await self.json("GET", "/api/deployment", admin=True)
        self.assertEqual(code, 200)
        self.assertEqual(info["deploymentId"], self.deployer.current_id)
        self.assertIsInstance(info["deployedAt"], float)
        functions = {f["path"]: f for f in info["functions"]}
        self.assertEqual(
            sorted(functions),
            sorted(
                [
                    "dir/mod:where",
                    "notes:add",
                    "notes:big",
                    "notes:count",
                    "notes:crash",
                    "notes:env",
                    "notes:env_action",
                    "notes:fail",
                    "notes:owned",
                    "notes:secret",
                ]
            ),
        )
        self.assertEqual(functions["notes:add"]["udfType"], "mutation")
        self.assertEqual(functions["notes:env_action"]["udfType"], "action")
        self.assertEqual(functions["notes:secret"]["visibility"], "internal")
        self.assertEqual(functions["notes:count"]["visibility"], "public")
        self.assertEqual(functions["notes:add"]["args"]["type"], "object")
        self.assertIn("owner", json.dumps(functions["notes:add"]["args"]))
        self.assertEqual(
            info["httpRoutes"],
            [
                {"path": "/hello", "method": "GET"},
                {"path": "/size", "method": "POST"},
                {"pathPrefix": "/mine/", "method": "GET"},
            ],
        )
        self.assertIn("notes", json.dumps(info["schema"]))
