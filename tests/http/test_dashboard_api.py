"""The dashboard's document endpoints, and the admin key on every call the dashboard makes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import quote

from convex_backend.http import dashboard_api
from convex_backend.values import Int64, to_json
from tests.http.app import NOTES, SCHEMA
from tests.http.fixtures import ApiTestCase

STATIC = Path(__file__).resolve().parents[2] / "static"

#: Every admin endpoint the dashboard's pages call, with a body that would be valid.
DASHBOARD_CALLS = [
    ("GET", "/api/check_admin_key", None),
    ("POST", "/api/check_admin_key", None),
    ("GET", "/api/tables", None),
    ("GET", "/api/tables/notes/documents", None),
    ("GET", "/api/dashboard/documents?table=notes", None),
    ("POST", "/api/dashboard/documents/insert", {"table": "notes", "document": {}}),
    ("POST", "/api/dashboard/documents/update", {"id": "x", "document": {}}),
    ("POST", "/api/dashboard/documents/delete", {"ids": ["x"]}),
    ("POST", "/api/clear_tables", {"tableNames": ["notes"]}),
    ("GET", "/api/deployment", None),
    ("GET", "/api/stream_function_logs?cursor=0", None),
    ("GET", "/api/scheduled_functions?limit=200", None),
    ("POST", "/api/cancel_scheduled_function", {"id": "x"}),
    ("GET", "/api/cron_jobs", None),
    ("GET", "/api/storage_files", None),
    ("POST", "/api/storage/generate_upload_url", {}),
    ("POST", "/api/storage/delete", {"storageId": "x"}),
    ("GET", "/api/environment_variables", None),
    ("POST", "/api/update_environment_variables", {"changes": []}),
    ("GET", "/api/v1/get_canonical_urls", None),
]
#: Paths the dashboard calls that are not admin-only by design: a stored file's
#: download URL, the upload URL (which carries its own signed token) and the
#: public function API (the dashboard always sends the admin key there, which is
#: what lets it run internal functions; see test_running_functions_as_admin).
PUBLIC_PREFIXES = ("/api/storage/", "/api/storage/upload", "/api/function")

_API_LITERAL = re.compile(r"""["'`](/api/[^"'`$?]*)""")


def dashboard_api_paths() -> set[str]:
    """The ``/api/...`` literals (up to any interpolation) in the dashboard's JavaScript."""
    paths = set()
    for script in STATIC.rglob("*.js"):
        paths.update(_API_LITERAL.findall(script.read_text()))
    return paths


class DashboardAuthTests(ApiTestCase):
    modules = None

    def test_the_list_covers_every_call_in_the_javascript(self) -> None:
        found = dashboard_api_paths()
        self.assertIn("/api/dashboard/documents/update", found)
        called = {path.split("?", 1)[0] for _method, path, _body in DASHBOARD_CALLS}
        for path in found:
            if path in PUBLIC_PREFIXES:
                continue
            covered = any(c == path or (path.endswith("/") and c.startswith(path)) for c in called)
            self.assertTrue(covered, f"{path} is called by the dashboard but not tested here")

    async def test_every_call_needs_the_admin_key(self) -> None:
        wrong = self.key[:-1] + ("0" if self.key[-1] != "0" else "1")
        for method, path, body in DASHBOARD_CALLS:
            response, content = await self.request(method, path, body)
            self.assertEqual(response.code, 401, (method, path, content))
            self.assertEqual(set(json.loads(content)), {"code", "message"})
            response, content = await self.request(
                method, path, body, headers={"Authorization": f"Convex {wrong}"}
            )
            self.assertEqual(response.code, 401, (method, path, content))
            self.assertNotIn(wrong, content.decode())

    async def test_a_user_token_is_not_an_admin_key(self) -> None:
        for method, path, body in DASHBOARD_CALLS:
            if path.startswith("/api/dashboard/"):
                response, content = await self.request(
                    method, path, body, headers={"Authorization": "Bearer a.b.c"}
                )
                self.assertJsonError(response, content, 401, "BadAdminKey")


class DashboardDocumentTests(ApiTestCase):
    modules = [{"path": "schema.py", "source": SCHEMA}, {"path": "notes.py", "source": NOTES}]

    async def call(self, path: str, body: object = None, method: str = "POST"):
        return await self.json(method, path, body, admin=True)

    async def test_running_functions_as_admin(self) -> None:
        """The Functions page: admins run internal functions, and may act as a user."""
        body = {"path": "notes:secret", "args": {}}
        code, answer = await self.json("POST", "/api/function", body)
        self.assertEqual(answer["status"], "error")  # without the key: a client
        self.assertIn("Could not find public function", answer["errorMessage"])
        wrong = self.key[:-1] + ("0" if self.key[-1] != "0" else "1")
        response, content = await self.request(
            "POST", "/api/function", body, headers={"Authorization": f"Convex {wrong}"}
        )
        self.assertJsonError(response, content, 401, "BadAdminKey")
        code, answer = await self.json("POST", "/api/function", body, admin=True)
        self.assertEqual((code, answer["status"], answer["value"]), (200, "success", "internal"))

    async def test_insert_with_convex_json_values(self) -> None:
        document = {"kind": "misc", "extra": {"big": to_json(Int64(2**40))}}
        code, answer = await self.call(
            "/api/dashboard/documents/insert", {"table": "misc", "document": document}
        )
        self.assertEqual(code, 200, answer)
        [stored] = self.documents("misc")
        self.assertEqual(stored["_id"], answer["id"])
        self.assertEqual(stored["extra"]["big"], Int64(2**40))
        self.assertIsInstance(stored["_creationTime"], float)

    async def test_insert_creates_a_table_outside_the_schema(self) -> None:
        code, answer = await self.call(
            "/api/dashboard/documents/insert", {"table": "fresh", "document": {"a": True}}
        )
        self.assertEqual(code, 200, answer)
        self.assertEqual([d["a"] for d in self.documents("fresh")], [True])
        code, tables = await self.call("/api/tables", method="GET")
        self.assertIn("fresh", [t["name"] for t in tables["tables"]])

    async def test_insert_refusals(self) -> None:
        cases = [
            ({"table": "notes", "document": {"owner": "a", "n": "x"}}, "SchemaValidationFailed"),
            ({"table": "notes", "document": {"owner": "a"}}, "SchemaValidationFailed"),
            ({"table": "_storage", "document": {}}, "SystemTableWrite"),
            ({"table": "notes", "document": {"_id": "x", "owner": "a", "n": 1}}, "InvalidDocument"),
            ({"table": "notes", "document": {"$bad": 1}}, "BadConvexValue"),
            ({"table": "notes", "document": {"n": {"$integer": "not base64"}}}, "BadConvexValue"),
            ({"table": "notes", "document": [1]}, "BadRequest"),
            ({"table": "", "document": {}}, "BadRequest"),
            ({"table": "bad name!", "document": {}}, "InvalidTableName"),
            ({"document": {}}, "BadRequest"),
        ]
        for body, expected in cases:
            response, content = await self.request(
                "POST", "/api/dashboard/documents/insert", body, admin=True
            )
            self.assertJsonError(response, content, 400, expected)
        response, content = await self.request(
            "POST", "/api/dashboard/documents/insert", data=b"{nope", admin=True
        )
        self.assertJsonError(response, content, 400, "BadJsonBody")
        self.assertEqual(self.documents("notes"), [])

    async def test_update_replaces_and_keeps_system_fields(self) -> None:
        [doc_id] = await self.insert("misc", [{"owner": "a", "n": 1.0, "gone": "x"}])
        [before] = self.documents("misc")
        code, answer = await self.call(
            "/api/dashboard/documents/update",
            {"id": doc_id, "table": "misc", "document": {"owner": "b", "n": 2}},
        )
        self.assertEqual(code, 200, answer)
        [after] = self.documents("misc")
        self.assertEqual(after, {**{"owner": "b", "n": 2.0}, **_system(before)})
        self.assertEqual(answer["document"], to_json(after))
        # The whole document as the dashboard shows it, system fields included, is fine too.
        edited = {**to_json(after), "n": 3}
        code, answer = await self.call(
            "/api/dashboard/documents/update", {"id": doc_id, "document": edited}
        )
        self.assertEqual(code, 200, answer)
        self.assertEqual(self.documents("misc")[0]["n"], 3.0)

    async def test_update_refusals(self) -> None:
        [doc_id] = await self.insert("notes", [{"owner": "a", "n": 1.0}])
        await self.insert("other", [{"x": 1.0}])
        other_id = self.documents("other")[0]["_id"]
        await self.request(
            "POST",
            "/api/update_environment_variables",
            {"changes": [{"name": "A", "value": "1"}]},
            admin=True,
        )
        env_id = self.documents("_environment_variables")[0]["_id"]
        await self.db.run(lambda tx: tx.delete(other_id))
        cases = [
            ({"id": doc_id, "document": {"owner": "a", "n": "one"}}, 400, "SchemaValidationFailed"),
            (
                {"id": doc_id, "document": {"owner": "a", "n": 1, "_id": other_id}},
                400,
                "InvalidDocument",
            ),
            ({"id": doc_id, "table": "other", "document": {"x": 1}}, 400, "InvalidTable"),
            ({"id": "not-an-id", "document": {}}, 400, "InvalidId"),
            ({"id": 7, "document": {}}, 400, "InvalidId"),
            ({"id": other_id, "document": {"x": 2}}, 404, "NotFound"),
            ({"id": env_id, "document": {"name": "A", "value": "2"}}, 400, "SystemTableWrite"),
            ({"id": doc_id, "document": "text"}, 400, "BadRequest"),
        ]
        for body, status, expected in cases:
            response, content = await self.request(
                "POST", "/api/dashboard/documents/update", body, admin=True
            )
            self.assertJsonError(response, content, status, expected)
        self.assertEqual(self.documents("notes")[0]["n"], 1.0)
        self.assertEqual(self.documents("_environment_variables")[0]["value"], "1")

    async def test_delete_is_one_transaction(self) -> None:
        ids = await self.insert("notes", [{"owner": "a", "n": float(i)} for i in range(3)])
        missing = ids[2]
        await self.db.run(lambda tx: tx.delete(missing))
        response, content = await self.request(
            "POST", "/api/dashboard/documents/delete", {"ids": [ids[0], missing]}, admin=True
        )
        self.assertJsonError(response, content, 404, "NotFound")
        self.assertEqual(len(self.documents("notes")), 2)  # nothing deleted
        code, answer = await self.call(
            "/api/dashboard/documents/delete", {"ids": [ids[0], ids[1], ids[0]]}
        )
        self.assertEqual((code, answer), (200, {"deleted": 2}))
        self.assertEqual(self.documents("notes"), [])
        for body in ({"ids": []}, {"ids": "x"}, {}, {"ids": ["x"] * 1001}):
            response, content = await self.request(
                "POST", "/api/dashboard/documents/delete", body, admin=True
            )
            self.assertJsonError(response, content, 400, "BadRequest")

    async def test_browse_with_server_side_filters(self) -> None:
        await self.insert("notes", [{"owner": o, "n": float(i)} for i, o in enumerate("abcab")])

        async def page(**params) -> dict:
            query = "&".join(f"{k}={quote(str(v))}" for k, v in params.items())
            code, answer = await self.call(f"/api/dashboard/documents?{query}", method="GET")
            self.assertEqual(code, 200, answer)
            return answer

        everything = await page(table="notes")
        self.assertEqual([d["n"] for d in everything["page"]], [0, 1, 2, 3, 4])
        self.assertTrue(everything["isDone"])
        owned = await page(table="notes", filters=json.dumps([{"field": "owner", "value": "a"}]))
        self.assertEqual([d["n"] for d in owned["page"]], [0, 3])
        ranged = await page(
            table="notes",
            order="desc",
            filters=json.dumps(
                [
                    {"field": "n", "op": "gte", "value": 1},
                    {"field": "owner", "op": "neq", "value": "c"},
                ]
            ),
        )
        self.assertEqual([d["n"] for d in ranged["page"]], [4, 3, 1])
        # Pages continue with the cursor, under the same filter.
        filters = json.dumps([{"field": "owner", "op": "eq", "value": "b"}])
        first = await page(table="notes", numItems=1, filters=filters)
        self.assertEqual([d["n"] for d in first["page"]], [1])
        self.assertFalse(first["isDone"])
        second = await page(
            table="notes", numItems=1, filters=filters, cursor=first["continueCursor"]
        )
        self.assertEqual([d["n"] for d in second["page"]], [4])

    async def test_a_filtered_page_scans_a_bounded_number_of_documents(self) -> None:
        self.patch(dashboard_api, "FILTER_SCAN_ROWS", 3)
        await self.insert("notes", [{"owner": "a", "n": float(i)} for i in range(6)])
        await self.insert("notes", [{"owner": "z", "n": 9.0}])
        filters = json.dumps([{"field": "owner", "value": "z"}])
        seen, cursor, pages = [], None, 0
        while True:
            query = f"table=notes&filters={quote(filters)}"
            if cursor:
                query += f"&cursor={quote(cursor)}"
            code, answer = await self.call(f"/api/dashboard/documents?{query}", method="GET")
            self.assertEqual(code, 200, answer)
            seen += answer["page"]
            cursor, pages = answer["continueCursor"], pages + 1
            if answer["isDone"]:
                break
        self.assertEqual([d["n"] for d in seen], [9])
        self.assertGreaterEqual(pages, 3)

    async def test_browse_refusals(self) -> None:
        await self.insert("notes", [{"owner": "a", "n": 1.0}])
        other = await self.call("/api/dashboard/documents?table=notes&numItems=1", method="GET")
        cases = [
            ("table=missing", 404, "TableNotFound"),
            ("table=_storage", 400, "SystemTableWrite"),
            ("", 400, "BadRequest"),
            ("table=notes&order=up", 400, "BadRequest"),
            ("table=notes&numItems=0", 400, "BadRequest"),
            ("table=notes&numItems=lots", 400, "BadRequest"),
            ("table=notes&filters=%7Bnope", 400, "BadRequest"),
            ("table=notes&filters=" + quote('{"field": "a"}'), 400, "BadRequest"),
            (
                "table=notes&filters=" + quote('[{"field": "a", "op": "like", "value": 1}]'),
                400,
                "BadRequest",
            ),
            ("table=notes&filters=" + quote('[{"field": "", "value": 1}]'), 400, "BadRequest"),
            ("table=notes&filters=" + quote('[{"field": "a"}]'), 400, "BadRequest"),
            (
                "table=notes&filters=" + quote('[{"field": "a", "value": {"$x": 1}}]'),
                400,
                "BadConvexValue",
            ),
            ("table=notes&cursor=garbage", 400, None),
            # A cursor of the unfiltered query does not fit a filtered one.
            (
                "table=notes&cursor="
                + quote(other[1]["continueCursor"])
                + "&filters="
                + quote('[{"field": "n", "value": 1}]'),
                400,
                None,
            ),
        ]
        for query, status, code in cases:
            response, content = await self.request(
                "GET", f"/api/dashboard/documents?{query}", admin=True
            )
            self.assertEqual(response.code, status, (query, content))
            error = json.loads(content)
            self.assertEqual(set(error), {"code", "message"})
            if code is not None:
                self.assertEqual(error["code"], code, query)
            self.assertNotIn("Traceback", error["message"])

    async def test_writes_reach_functions_and_the_write_log(self) -> None:
        code, answer = await self.call(
            "/api/dashboard/documents/insert",
            {"table": "notes", "document": {"owner": "w", "n": 1}},
        )
        self.assertEqual(code, 200, answer)
        published = self.db.published_ts
        code, answer = await self.call(
            "/api/dashboard/documents/update",
            {"id": answer["id"], "document": {"owner": "w", "n": 2}},
        )
        self.assertEqual(code, 200, answer)
        self.assertGreater(self.db.published_ts, published)


def _system(doc: dict) -> dict:
    return {"_id": doc["_id"], "_creationTime": doc["_creationTime"]}
