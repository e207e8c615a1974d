"""The legacy HTTP client of the official Python package (``convex.http_client``)
against the daemon.

The first test starts the daemon, deploys ``tests/clients/app`` and runs every
scenario below with ``ConvexHttpClient`` in a thread (the client blocks, on
``requests``), so the reactor keeps collecting the daemon's output. Each test then
checks one scenario: the value the client returned, with its Python type
(:func:`tag`), or the exception it raised, and the HTTP exchanges (shown in every
failure message).

The client itself does not decode ``errorData`` (it hands ``ConvexError.data`` the
raw Convex-JSON) and has no way to act as an identity; the tests expect exactly
what it does with a correct server.
"""

from __future__ import annotations

import base64
import json
import math
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from convex import ConvexError
from convex import http_client as convex_http
from convex.http_client import ConvexExecutionError, ConvexHttpClient
from convex.values import ConvexInt64
from twisted.internet import threads
from twisted.trial.unittest import TestCase

from tests.clients._support import Once, with_daemon

NOT_FOUND = "Could not find public function for '{}'."
IDENTITY = {
    "subject": "user1",
    "issuer": "https://issuer.example.com",
    "name": "Ada Lovelace",
    "email": "ada@example.com",
}
IDENTITY_B64 = base64.b64encode(json.dumps(IDENTITY, separators=(",", ":")).encode()).decode()
CLIENT_VERSION = convex_http.__version__.replace("a", "-a")


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


def i64(n: int) -> dict:
    return {"int64": n}


def f64(text: str) -> dict:
    return {"float64": text}


ECHO_ARGS = {
    "int": ConvexInt64(1),
    "intMax": ConvexInt64(2**63 - 1),
    "intMin": ConvexInt64(-(2**63)),
    "bytes": bytes([0, 255, 16, 1]),
    "empty": b"",
    "nan": float("nan"),
    "inf": float("inf"),
    "ninf": float("-inf"),
    "negzero": -0.0,
    "zero": 0.0,
    "float": 1.5,
    "whole": 2,  # a Python int is sent as a float64
    "text": "é😀",
    "nested": {"list": [ConvexInt64(1), {"b": b"\x07"}, None, True, [-0.0]]},
}

ECHO = {
    "int": i64(1),
    "intMax": i64(2**63 - 1),
    "intMin": i64(-(2**63)),
    "bytes": {"bytes": "00ff1001"},
    "empty": {"bytes": ""},
    "nan": f64("nan"),
    "inf": f64("inf"),
    "ninf": f64("-inf"),
    "negzero": f64("-0.0"),
    "zero": f64("0.0"),
    "float": f64("1.5"),
    "whole": f64("2.0"),
    "text": "é😀",
    "nested": {"list": [i64(1), {"b": {"bytes": "07"}}, None, True, [f64("-0.0")]]},
}


@dataclass
class Outcome:
    value: Any = None
    error: BaseException | None = None
    wire: list[dict] = field(default_factory=list)


@dataclass
class Run:
    outcomes: dict[str, Outcome]
    admin_key: str
    daemon_output: str = ""


def scenarios(admin_key: str) -> dict[str, Callable[[ConvexHttpClient], Any]]:
    def as_admin(client: ConvexHttpClient, key: str = admin_key) -> ConvexHttpClient:
        client.set_admin_auth(key)
        return client

    def insert_then_get(client: ConvexHttpClient) -> Any:
        item_id = client.mutation("conformance:insert", {"body": "hello", "count": ConvexInt64(5)})
        return {"id": item_id, "doc": client.query("conformance:get", {"id": item_id})}

    return {
        "query_echo_values": lambda c: c.query("conformance:echo", ECHO_ARGS),
        "query_server_decodes_values": lambda c: c.query("conformance:describe", ECHO_ARGS),
        "query_server_encodes_values": lambda c: c.query("conformance:special_values"),
        "query_no_args": lambda c: c.query("conformance:echo"),
        "mutation_insert_then_query": insert_then_get,
        "mutation_void_returns_null": lambda c: c.mutation("conformance:nothing", {}),
        "action_calls_mutation_and_query": lambda c: c.action(
            "conformance:insert_and_read", {"body": "from action"}
        ),
        "convex_error_in_mutation": lambda c: c.mutation("conformance:fail_with_data"),
        "convex_error_string_in_query": lambda c: c.query("conformance:fail_with_string"),
        "convex_error_in_action": lambda c: c.action("conformance:fail_in_action"),
        "plain_error_in_query": lambda c: c.query("conformance:fail_plain"),
        "argument_validation_error": lambda c: c.mutation(
            "conformance:insert", {"body": "x", "count": 5}
        ),
        "unknown_function": lambda c: c.query("conformance:does_not_exist"),
        "internal_query_as_client": lambda c: c.query("conformance:secret", {"x": 1}),
        "internal_query_as_admin": lambda c: as_admin(c).query(
            "conformance:secret", {"x": ConvexInt64(1)}
        ),
        "bad_admin_key": lambda c: as_admin(c, "convex-self-hosted|0000").query("conformance:echo"),
        "identity_anonymous": lambda c: c.query("conformance:whoami"),
        "identity_admin_without_identity": lambda c: as_admin(c).query("conformance:whoami"),
        # The client has no acting-as API; `set_admin_auth` puts the key verbatim after
        # `Convex `, so `<key>:<base64 identity>` sends what the npm client's
        # `setAdminAuth(key, identity)` sends.
        "identity_acting_as_user": lambda c: as_admin(c, f"{admin_key}:{IDENTITY_B64}").query(
            "conformance:whoami"
        ),
    }


def _recording_requests(wire: list[dict]) -> types.SimpleNamespace:
    """A stand-in for the ``requests`` module of ``convex.http_client`` that records."""

    def post(url: str, **kwargs: Any) -> requests.Response:
        exchange: dict[str, Any] = {
            "request": {"url": url, "headers": kwargs.get("headers"), "json": kwargs.get("json")}
        }
        wire.append(exchange)
        response = requests.post(url, **kwargs)
        exchange["response"] = {
            "status": response.status_code,
            "headers": dict(response.headers),
            "body": response.text,
        }
        return response

    return types.SimpleNamespace(post=post, exceptions=requests.exceptions)


def run_all(url: str, admin_key: str) -> dict[str, Outcome]:
    """Run every scenario with a fresh client (blocking: call it in a thread)."""
    outcomes = {}
    real = convex_http.requests
    try:
        for name, scenario in scenarios(admin_key).items():
            outcome = outcomes[name] = Outcome()
            convex_http.requests = _recording_requests(outcome.wire)
            try:
                outcome.value = scenario(ConvexHttpClient(url))
            except Exception as e:
                outcome.error = e
    finally:
        convex_http.requests = real
    return outcomes


async def run_scenarios() -> Run:
    async def body(daemon) -> Run:
        outcomes = await threads.deferToThread(run_all, daemon.api_url, daemon.admin_key)
        return Run(outcomes, daemon.admin_key, daemon.output)

    return await with_daemon(body)


class PythonHttpClientTests(TestCase):
    """``convex.http_client.ConvexHttpClient`` (``convex`` on PyPI), one scenario per test."""

    timeout = 300
    shared = Once(run_scenarios)

    async def scenario(self, name: str) -> tuple[Outcome, str]:
        run = await self.shared.get()
        outcome = run.outcomes[name]
        wire = json.dumps(outcome.wire, indent=1, ensure_ascii=False, default=repr)
        wire = wire.replace(run.admin_key, "<admin key>")
        return outcome, f"scenario {name}; HTTP exchanges:\n{wire}"

    async def value(self, name: str) -> tuple[Any, str, Outcome]:
        outcome, context = await self.scenario(name)
        if outcome.error is not None:
            self.fail(f"the client raised {outcome.error!r}\n{context}")
        return outcome.value, context, outcome

    async def error(self, name: str) -> tuple[BaseException, str, Outcome]:
        outcome, context = await self.scenario(name)
        if outcome.error is None:
            self.fail(f"the client returned {outcome.value!r} instead of raising\n{context}")
        return outcome.error, context, outcome

    # -- queries and values ----------------------------------------------------------

    async def test_query_round_trips_values(self) -> None:
        value, context, _ = await self.value("query_echo_values")
        self.assertEqual(tag(value), ECHO, context)

    async def test_server_decodes_client_values(self) -> None:
        value, context, _ = await self.value("query_server_decodes_values")
        expected = {
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
            "nested": {
                "list": ["int64:1", {"b": "bytes:07"}, "null", "boolean:True", ["float64:-0.0"]]
            },
        }
        self.assertEqual(value, expected, context)

    async def test_client_decodes_server_values(self) -> None:
        value, context, _ = await self.value("query_server_encodes_values")
        expected = {
            "int": i64(-(2**63)),
            "intMax": i64(2**63 - 1),
            "bytes": {"bytes": "00ff1001"},
            "empty": {"bytes": ""},
            "nan": f64("nan"),
            "inf": f64("inf"),
            "ninf": f64("-inf"),
            "negzero": f64("-0.0"),
            "float": f64("2.0"),
            "nested": [{"a": [i64(1), f64("0.5"), None, True, "é😀"]}],
        }
        self.assertEqual(tag(value), expected, context)

    async def test_wire_request(self) -> None:
        """The client sends ``args`` as an object and its version in ``Convex-Client``."""
        _, context, outcome = await self.value("query_echo_values")
        [exchange] = outcome.wire
        request = exchange["request"]
        self.assertTrue(request["url"].endswith("/api/query"), context)
        self.assertEqual(request["headers"]["Convex-Client"], f"python-{CLIENT_VERSION}", context)
        self.assertEqual(request["json"]["format"], "convex_encoded_json", context)
        self.assertIsInstance(request["json"]["args"], dict, context)
        self.assertEqual(exchange["response"]["status"], 200, context)

    async def test_query_without_args(self) -> None:
        value, context, _ = await self.value("query_no_args")
        self.assertEqual(value, {}, context)

    # -- mutations and actions ----------------------------------------------------

    def assert_item(self, doc: Any, item_id: Any, body: str, count: int, context: str) -> None:
        self.assertIsInstance(item_id, str, context)
        self.assertIsInstance(doc, dict, context)
        self.assertEqual(set(doc), {"_id", "_creationTime", "body", "count"}, context)
        self.assertEqual(doc["_id"], item_id, context)
        self.assertEqual(doc["body"], body, context)
        self.assertEqual(tag(doc["count"]), i64(count), context)
        self.assertIsInstance(doc["_creationTime"], float, context)
        self.assertTrue(math.isfinite(doc["_creationTime"]), context)
        self.assertGreater(doc["_creationTime"], 1e12, context)

    async def test_mutation_inserts_and_query_reads_back(self) -> None:
        value, context, _ = await self.value("mutation_insert_then_query")
        self.assert_item(value["doc"], value["id"], "hello", 5, context)

    async def test_void_mutation_returns_none(self) -> None:
        value, context, _ = await self.value("mutation_void_returns_null")
        self.assertIsNone(value, context)

    async def test_action_runs_mutation_and_query(self) -> None:
        value, context, _ = await self.value("action_calls_mutation_and_query")
        self.assert_item(value["doc"], value["id"], "from action", 3, context)

    # -- errors ---------------------------------------------------------------------

    async def test_convex_error_data(self) -> None:
        """The client raises ``ConvexError("Convex error", <raw errorData>)``."""
        error, context, outcome = await self.error("convex_error_in_mutation")
        self.assertIsInstance(error, ConvexError, context)
        self.assertEqual(str(error), "Convex error", context)
        expected = {
            "code": "Boom",
            "count": {"$integer": "BwAAAAAAAAA="},
            "nested": {
                "list": [1.5, "x", None, False],
                "bytes": {"$bytes": "AQI="},
                "negzero": {"$float": "AAAAAAAAAIA="},
            },
        }
        self.assertEqual(error.data, expected, context)
        self.assertEqual(outcome.wire[0]["response"]["status"], 200, context)

    async def test_convex_error_with_string_data(self) -> None:
        error, context, _ = await self.error("convex_error_string_in_query")
        self.assertIsInstance(error, ConvexError, context)
        self.assertEqual(str(error), "a plain message", context)
        self.assertEqual(error.data, "a plain message", context)

    async def test_convex_error_in_action(self) -> None:
        error, context, _ = await self.error("convex_error_in_action")
        self.assertIsInstance(error, ConvexError, context)
        self.assertEqual(error.data, {"where": "action", "n": {"$integer": "//////////8="}})

    async def test_plain_error(self) -> None:
        error, context, _ = await self.error("plain_error_in_query")
        self.assertIs(type(error), ConvexExecutionError, context)
        self.assertIn("kaboom", str(error), context)

    async def test_argument_validation_error(self) -> None:
        error, context, _ = await self.error("argument_validation_error")
        self.assertIs(type(error), ConvexExecutionError, context)
        self.assertIn("ArgumentValidationError", str(error), context)

    async def test_unknown_function(self) -> None:
        error, context, _ = await self.error("unknown_function")
        self.assertIs(type(error), ConvexExecutionError, context)
        self.assertTrue(
            str(error).startswith(NOT_FOUND.format("conformance:does_not_exist")), context
        )

    # -- internal functions and admin auth --------------------------------------------

    async def test_internal_function_looks_missing_to_clients(self) -> None:
        error, context, _ = await self.error("internal_query_as_client")
        self.assertIs(type(error), ConvexExecutionError, context)
        self.assertTrue(str(error).startswith(NOT_FOUND.format("conformance:secret")), context)

    async def test_admin_calls_internal_query(self) -> None:
        value, context, outcome = await self.value("internal_query_as_admin")
        self.assertEqual(tag(value), {"secret": i64(42), "args": {"x": i64(1)}}, context)
        run = await self.shared.get()
        headers = outcome.wire[0]["request"]["headers"]
        self.assertEqual(headers["Authorization"], f"Convex {run.admin_key}", context)

    async def test_bad_admin_key(self) -> None:
        """Convex answers a bad admin key with 401 ``BadAdminKey``
        (``ErrorMetadata::unauthenticated``); the client shows status and code."""
        error, context, _ = await self.error("bad_admin_key")
        self.assertIs(type(error), Exception, context)
        self.assertEqual(
            str(error),
            "401 BadAdminKey: The provided admin key was invalid for this instance",
            context,
        )

    # -- identities -----------------------------------------------------------------

    async def test_no_identity_without_user(self) -> None:
        for name in ["identity_anonymous", "identity_admin_without_identity"]:
            value, context, _ = await self.value(name)
            self.assertIsNone(value, context)

    async def test_admin_acting_as_identity(self) -> None:
        """The server derives ``tokenIdentifier`` as ``issuer|subject`` when the identity
        has none, as Convex does (``UserIdentityAttributes`` from JSON)."""
        value, context, _ = await self.value("identity_acting_as_user")
        expected = {"tokenIdentifier": "https://issuer.example.com|user1", **IDENTITY}
        self.assertEqual(value, expected, context)

    async def test_every_scenario_is_checked(self) -> None:
        run = await self.shared.get()
        this = open(__file__, encoding="utf-8").read()
        for name in run.outcomes:
            self.assertGreaterEqual(this.count(f'"{name}"'), 2, f"scenario {name} is not checked")
