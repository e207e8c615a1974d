"""The public function API over HTTP: run, GET query, batches, snapshots, bodies."""

from __future__ import annotations

import base64
import gzip
import json
import struct
import zlib

import brotli

from convex_backend.http import functions_api
from convex_backend.http.functions_api import body_limit, decode_ts, encode_ts
from tests.http.fixtures import ApiTestCase


def u64(ts: int) -> str:
    return base64.b64encode(struct.pack("<Q", ts)).decode()


class FunctionRoutesTests(ApiTestCase):
    async def notes(self) -> float:
        code, answer = await self.json("POST", "/api/query", {"path": "notes:count", "args": {}})
        self.assertEqual(answer["status"], "success", answer)
        return answer["value"]

    async def test_run_route_joins_path_segments(self) -> None:
        code, added = await self.json(
            "POST", "/api/run/notes/add", {"args": {"owner": "ada", "n": 1}}
        )
        self.assertEqual((code, added["status"]), (200, "success"), added)
        code, where = await self.json("POST", "/api/run/dir/mod/where", {"args": {}})
        self.assertEqual(where["value"], "dir/mod")
        # Legacy [args] and format are honoured.
        code, owned = await self.json(
            "POST",
            "/api/run/notes/owned",
            {"args": [{"owner": "ada"}], "format": "convex_encoded_json"},
        )
        self.assertEqual(owned["value"], [1.0])
        response, content = await self.request("POST", "/api/run/notes", {"args": {}})
        self.assertJsonError(response, content, 400, "BadRequest")
        response, content = await self.request("GET", "/api/run/notes/count")
        self.assertJsonError(response, content, 405, "MethodNotAllowed")

    async def test_get_query(self) -> None:
        await self.json(
            "POST", "/api/mutation", {"path": "notes:add", "args": {"owner": "a", "n": 2}}
        )
        args = json.dumps({"owner": "a"})
        code, answer = await self.json("GET", f"/api/query?path=notes:owned&args={args}")
        self.assertEqual((code, answer["value"]), (200, [2.0]))
        code, big = await self.json("GET", "/api/query?path=notes:big&format=convex_encoded_json")
        self.assertEqual(big["value"], {"i": {"$integer": u64(2**40)}, "b": {"$bytes": "AAE="}})
        self.assertEqual(big["logLines"], ["[LOG] 'big was called'"])
        code, clean = await self.json("GET", "/api/query?path=notes:big")
        self.assertEqual(clean["value"], {"i": str(2**40), "b": "AAE="})
        # A mutation is not a query.
        code, wrong = await self.json("GET", "/api/query?path=notes:add&args={}")
        self.assertEqual(wrong["status"], "error")
        self.assertIn("defined as Mutation", wrong["errorMessage"])
        for query, code_ in (
            ("path=notes:count&args={bad", "BadRequest"),
            ("args={}", "BadRequest"),
            ("path=notes:count&args=[1,2]", "BadRequest"),
            ('path=notes:count&args="x"', "BadRequest"),
            ("path=notes:count&format=xml", "BadRequest"),
            ('path=notes:count&args={"$integer":"zz"}', "BadConvexValue"),
        ):
            response, content = await self.request("GET", "/api/query?" + query)
            self.assertJsonError(response, content, 400, code_)
        self.assertEqual(await self.notes(), 1.0)

    async def test_function_errors_are_answers(self) -> None:
        code, failed = await self.json("POST", "/api/query", {"path": "notes:fail", "args": {}})
        self.assertEqual(code, 200)
        self.assertEqual(failed["errorData"], {"why": "because"})
        code, crashed = await self.json("POST", "/api/query", {"path": "notes:crash"})
        self.assertEqual(crashed["status"], "error")
        self.assertNotIn("errorData", crashed)
        self.assertIn("plain failure", crashed["errorMessage"])
        code, missing = await self.json("POST", "/api/query", {"path": "notes:nope", "args": {}})
        self.assertIn("Could not find public function for 'notes:nope'", missing["errorMessage"])
        code, hidden = await self.json("POST", "/api/function", {"path": "notes:secret"})
        self.assertIn("Could not find public function", hidden["errorMessage"])
        code, admin = await self.json("POST", "/api/function", {"path": "notes:secret"}, admin=True)
        self.assertEqual(admin["value"], "internal")
        code, invalid = await self.json(
            "POST", "/api/mutation", {"path": "notes:add", "args": {"owner": 1, "n": 1}}
        )
        self.assertIn("ArgumentValidationError", invalid["errorMessage"])
        self.assertEqual(await self.notes(), 0.0)

    async def test_bad_requests_change_nothing(self) -> None:
        good = {"path": "notes:add", "args": {"owner": "a", "n": 1}}
        cases = [
            (
                {"data": b"{not json", "headers": {"Content-Type": "application/json"}},
                400,
                "BadJsonBody",
            ),
            ({"data": b"[1]"}, 400, "BadJsonBody"),
            ({"data": b"\xff\xfe"}, 400, "BadJsonBody"),
            (
                {"data": json.dumps(good).encode(), "headers": {"Content-Type": "text/plain"}},
                415,
                "BadContentType",
            ),
            (
                {
                    "data": json.dumps(good).encode(),
                    "headers": {"Content-Type": "application/x-www-form-urlencoded"},
                },
                415,
                "BadContentType",
            ),
            (
                {"body": {"path": "notes:add", "args": {"owner": {"$bytes": "!"}, "n": 1}}},
                400,
                "BadConvexValue",
            ),
            ({"body": {"path": "notes:add", "args": "owner=a"}}, 400, "BadRequest"),
            ({"body": {"path": "notes:add", "args": [{}, {}]}}, 400, "BadRequest"),
            ({"body": {"path": 5, "args": {}}}, 400, "BadRequest"),
            ({"body": {"args": {}}}, 400, "BadRequest"),
            ({"body": {**good, "format": "xml"}}, 400, "BadRequest"),
            (
                {"body": good, "headers": {"Authorization": "Bearer abc.def.ghi"}},
                401,
                "Unauthenticated",
            ),
            ({"body": good, "headers": {"Authorization": "Basic eDp5"}}, 401, "Unauthenticated"),
            ({"body": good, "headers": {"Authorization": "Convex wrong|00"}}, 401, "BadAdminKey"),
        ]
        for kwargs, status, code in cases:
            body = kwargs.pop("body", None)
            response, content = await self.request("POST", "/api/mutation", body, **kwargs)
            error = self.assertJsonError(response, content, status, code)
            if code == "Unauthenticated" and "Bearer" in str(kwargs):
                self.assertIn("Bearer", error["message"])
        self.assertEqual(await self.notes(), 0.0)
        # JSON with a charset, or no Content-Type at all, is fine.
        for headers in ({"Content-Type": "application/json; charset=utf-8"}, {}):
            response, content = await self.request(
                "POST", "/api/mutation", data=json.dumps(good).encode(), headers=headers
            )
            self.assertEqual(json.loads(content)["status"], "success")
        self.assertEqual(await self.notes(), 2.0)

    # -- batches and snapshots -------------------------------------------------------------

    async def test_query_batch(self) -> None:
        await self.json(
            "POST", "/api/mutation", {"path": "notes:add", "args": {"owner": "b", "n": 7}}
        )
        code, answer = await self.json(
            "POST",
            "/api/query_batch",
            {
                "queries": [
                    {"path": "notes:count", "args": {}},
                    {"path": "notes:fail", "args": {}},
                    {"path": "notes:nope", "args": {}},
                    {
                        "path": "notes:owned",
                        "args": [{"owner": "b"}],
                        "format": "convex_encoded_json",
                    },
                    {"path": "notes:add", "args": {"owner": "c", "n": 1}},
                    {"path": "notes:owned", "args": {"owner": 5}},
                ]
            },
        )
        self.assertEqual(code, 200)
        results = answer["results"]
        self.assertEqual(
            [r["status"] for r in results],
            ["success", "error", "error", "success", "error", "error"],
        )
        self.assertEqual(results[0]["value"], 1.0)
        self.assertEqual(results[1]["errorData"], {"why": "because"})
        self.assertIn("Could not find public function", results[2]["errorMessage"])
        self.assertEqual(results[3]["value"], [7.0])
        self.assertIn("defined as Mutation", results[4]["errorMessage"])
        self.assertIn("ArgumentValidationError", results[5]["errorMessage"])
        self.assertEqual(await self.notes(), 1.0)  # the mutation in the batch did not run
        code, empty = await self.json("POST", "/api/query_batch", {"queries": []})
        self.assertEqual(empty, {"results": []})
        for body, error_code in (
            ({}, "BadRequest"),
            ({"queries": {"path": "notes:count"}}, "BadRequest"),
            ({"queries": [{"path": "notes:count"}, 5]}, "BadRequest"),
            ({"queries": [{"path": "notes:count"}, {"args": {}}]}, "BadRequest"),
            (
                {"queries": [{"path": "notes:count", "args": {"x": {"$integer": "?"}}}]},
                "BadConvexValue",
            ),
            ({"queries": [{"path": "notes:count"}] * 300}, "BadRequest"),
        ):
            response, content = await self.request("POST", "/api/query_batch", body)
            error = self.assertJsonError(response, content, 400, error_code)
            if isinstance(body.get("queries"), list) and len(body["queries"]) == 2:
                self.assertIn("queries[1]", error["message"])

    async def test_query_ts_and_query_at_ts(self) -> None:
        code, answer = await self.json("POST", "/api/query_ts")
        self.assertEqual(code, 200)
        ts = answer["ts"]
        self.assertEqual(len(ts), 12)
        self.assertEqual(decode_ts(ts), self.db.published_ts)
        at = {"path": "notes:count", "args": [{}], "format": "convex_encoded_json", "ts": ts}
        code, now = await self.json("POST", "/api/query_at_ts", at)
        self.assertEqual((code, now["status"], now["value"]), (200, "success", 0.0))
        # An open snapshot keeps an older timestamp readable.
        held = self.db.begin()
        self.addCleanup(held.close)
        await self.json(
            "POST", "/api/mutation", {"path": "notes:add", "args": {"owner": "a", "n": 1}}
        )
        code, old = await self.json("POST", "/api/query_at_ts", at)
        self.assertEqual(old["value"], 0.0)
        code, latest = await self.json(
            "POST", "/api/query_at_ts", {**at, "ts": self.db.published_ts}
        )
        self.assertEqual(latest["value"], 1.0)
        held.close()
        # Recent history stays readable for a while (history_ns) even when no
        # snapshot holds it; with no history kept, the old snapshot is gone as
        # soon as nothing holds it and the store moves on.
        code, recent = await self.json("POST", "/api/query_at_ts", at)
        self.assertEqual(recent["value"], 0.0)
        self.db.history_ns = 0
        await self.json(
            "POST", "/api/mutation", {"path": "notes:add", "args": {"owner": "a", "n": 2}}
        )
        response, content = await self.request("POST", "/api/query_at_ts", at)
        error = self.assertJsonError(response, content, 400, "SnapshotTooOld")
        self.assertIn("no longer available", error["message"])
        for ts_value, code_ in (
            (u64(self.db.published_ts + 10**9), "InvalidTimestamp"),
            ("not base64!", "InvalidTimestamp"),
            ("AAAA", "InvalidTimestamp"),
            (-1, "InvalidTimestamp"),
            (1.5, "InvalidTimestamp"),
            (None, "InvalidTimestamp"),
        ):
            response, content = await self.request(
                "POST", "/api/query_at_ts", {**at, "ts": ts_value}
            )
            self.assertJsonError(response, content, 400, code_)
        response, content = await self.request("POST", "/api/query_at_ts", {"path": "notes:count"})
        self.assertJsonError(response, content, 400, "InvalidTimestamp")
        # Function errors are answers, as for /api/query.
        code, failed = await self.json(
            "POST", "/api/query_at_ts", {"path": "notes:fail", "ts": self.db.published_ts}
        )
        self.assertEqual(failed["errorData"], {"why": "because"})

    # -- compressed bodies --------------------------------------------------------------------

    async def test_compressed_bodies(self) -> None:
        body = json.dumps({"path": "notes:add", "args": {"owner": "z", "n": 1}}).encode()
        for encoding, data in (
            ("gzip", gzip.compress(body)),
            ("br", brotli.compress(body)),
            ("gzip, br", brotli.compress(gzip.compress(body))),
            ("identity", body),
        ):
            response, content = await self.request(
                "POST",
                "/api/mutation",
                data=data,
                headers={"Content-Type": "application/json", "Content-Encoding": encoding},
            )
            self.assertEqual(json.loads(content)["status"], "success", (encoding, content))
        # The deploy route takes compressed pushes too (admin only).
        push = gzip.compress(json.dumps({"modules": [], "dryRun": True}).encode())
        response, content = await self.request(
            "POST", "/api/deploy", data=push, headers={"Content-Encoding": "gzip"}, admin=True
        )
        self.assertEqual(response.code, 200, content)
        for encoding, data, status, code in (
            ("deflate", zlib.compress(body), 415, "UnsupportedContentEncoding"),
            ("gzip", b"not gzip at all", 400, "BadContentEncoding"),
            ("gzip", gzip.compress(body)[:-12], 400, "BadContentEncoding"),
            ("br", b"\xff\xff\xff\xff", 400, "BadContentEncoding"),
            ("br", brotli.compress(body)[:-3], 400, "BadContentEncoding"),
        ):
            response, content = await self.request(
                "POST", "/api/mutation", data=data, headers={"Content-Encoding": encoding}
            )
            self.assertJsonError(response, content, status, code)
        self.assertEqual(await self.notes(), 4.0)

    async def test_compression_bomb(self) -> None:
        self.patch(functions_api, "DEFAULT_BODY_LIMIT", 1024 * 1024)
        padding = b" " * (3 * 1024 * 1024)
        body = json.dumps({"path": "notes:add", "args": {"owner": "z", "n": 1}}).encode() + padding
        fits = json.dumps({"path": "notes:add", "args": {"owner": "z", "n": 1}}).encode()
        fits += b" " * (1024 * 1024 - len(fits))
        for encoding, compress in (("gzip", gzip.compress), ("br", brotli.compress)):
            bomb = compress(body)
            self.assertLess(len(bomb), 64 * 1024)
            response, content = await self.request(
                "POST", "/api/mutation", data=bomb, headers={"Content-Encoding": encoding}
            )
            self.assertJsonError(response, content, 413, "PayloadTooLarge")
            # Exactly at the limit is still fine.
            response, content = await self.request(
                "POST", "/api/mutation", data=compress(fits), headers={"Content-Encoding": encoding}
            )
            self.assertEqual(json.loads(content)["status"], "success")
        self.assertEqual(await self.notes(), 2.0)


class TimestampTests(ApiTestCase):
    modules = None

    def test_u64_encoding(self) -> None:
        self.assertEqual(encode_ts(0), "AAAAAAAAAAA=")
        self.assertEqual(encode_ts(1000), "6AMAAAAAAAA=")
        for ts in (0, 1, 1000, 1_700_000_000_000_000_000, 2**63 - 1):
            self.assertEqual(decode_ts(encode_ts(ts)), ts)
            self.assertEqual(decode_ts(ts), ts)
        self.assertEqual(decode_ts("6AMAAAAAAAA="), decode_ts("6AMAAAAAAAA=".replace("+", "-")))

    def test_body_limit_follows_the_site(self) -> None:
        class Request:
            def site_body_limit(self) -> int:
                return 123

        self.assertEqual(body_limit(Request()), 123)

    async def test_query_ts_needs_no_functions(self) -> None:
        code, answer = await self.json("POST", "/api/query_ts")
        self.assertEqual(decode_ts(answer["ts"]), self.db.published_ts)
