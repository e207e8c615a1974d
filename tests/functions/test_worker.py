"""What user code sees inside a worker: determinism, network, console, env, errors."""

from __future__ import annotations

import base64
import time

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from convex_backend.values import from_python, to_json
from tests.functions.fixtures import NOW, Handler, request, start_pool

ENTROPY = """
    import datetime as datetime_module
    import os
    import random
    import secrets
    import time
    import uuid
    from datetime import datetime

    from convex_backend.server import action, query

    AT_IMPORT = random.random()

    def sample():
        return {
            "random": random.random(),
            "own_generator": random.Random().random(),
            "time": time.time(),
            "time_ns": str(time.time_ns()),
            "now": datetime.now().isoformat(),
            "utcnow": datetime.utcnow().isoformat(),
            "module_now": datetime_module.datetime.now().isoformat(),
            "today": datetime_module.date.today().isoformat(),
            "uuid": str(uuid.uuid4()),
            "urandom": os.urandom(8).hex(),
            "token": secrets.token_hex(8),
            "set_order": list({"alpha", "beta", "gamma", "delta", "epsilon"}),
            "at_import": AT_IMPORT,
            "is_datetime": isinstance(datetime.now(), datetime_module.datetime),
        }

    @query
    def entropy(ctx, args):
        return sample()

    @action
    def action_entropy(ctx, args):
        return sample()
"""

NETWORK = """
    import socket

    from convex_backend.server import action, query

    @query
    def connect(ctx, args):
        socket.create_connection(("127.0.0.1", 9), timeout=1)

    @query
    def resolve(ctx, args):
        socket.getaddrinfo("example.com", 80)

    @query
    def raw_socket(ctx, args):
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", 9))
        finally:
            s.close()

    @action
    def connect_locally(ctx, args):
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        client = socket.create_connection(server.getsockname(), timeout=5)
        conn, _ = server.accept()
        client.sendall(b"ping")
        data = conn.recv(4)
        for s in (conn, client, server):
            s.close()
        return data.decode()
"""

CONSOLE = """
    import logging
    import sys

    from convex_backend.server import query

    @query
    def chatty(ctx, args):
        print("hello", "world")
        print("two\\nlines")
        print("no newline", end="")
        logging.info("info %s", 1)
        logging.getLogger("app").warning("careful")
        logging.error("bad")
        logging.debug("details")
        sys.stderr.write("to stderr\\n")
        return None

    @query
    def flood(ctx, args):
        for i in range(300):
            print(i)

    @query
    def long_line(ctx, args):
        print("é" * 10000)

    @query
    def log_then_fail(ctx, args):
        print("before")
        raise ValueError("bad input")
"""

ERRORS = """
    import os

    from convex_backend.server import ConvexError, action, query

    @query
    def value_error(ctx, args):
        raise ValueError("bad input")

    @query
    def convex_error(ctx, args):
        raise ConvexError({"code": 42, "why": "because"})

    @query
    def convex_error_message(ctx, args):
        raise ConvexError("just a message")

    @query
    def exit(ctx, args):
        raise SystemExit(3)

    @query
    def env(ctx, args):
        return dict(os.environ)

    @action
    def env_action(ctx, args):
        os.environ["LEAK"] = "yes"
        return dict(os.environ)
"""

HTTP = """
    from convex_backend.server import HttpRouter, Response, http_action

    @http_action
    def hello(ctx, request):
        return Response("hello " + request.method)

    http = HttpRouter()
    http.route(path="/hello", method="POST", handler=hello)
"""


class DeterminismTests(TestCase):
    async def test_queries_are_deterministic(self) -> None:
        # Two workers: equal answers must not depend on which one ran the query.
        pool = await start_pool(self, {"entropy.py": ENTROPY}, size=2)
        same = [request("entropy:entropy", seed="ab" * 16) for _ in range(4)]
        results = await defer.gatherResults([pool.invoke(r, Handler()) for r in same])
        values = [r["value"] for r in results]
        for value in values[1:]:
            self.assertEqual(value, values[0])
        first = values[0]
        self.assertEqual(first["time"], NOW / 1000)
        self.assertEqual(first["time_ns"], str(int(NOW * 1_000_000)))
        self.assertEqual(first["now"], _local_iso(NOW))
        self.assertEqual(first["module_now"], first["now"])
        self.assertEqual(first["utcnow"], "2025-11-24T16:00:00")
        self.assertTrue(first["is_datetime"])

        other = await pool.invoke(request("entropy:entropy", seed="cd" * 16), Handler())
        other = other["value"]
        for key in ("random", "own_generator", "uuid", "urandom", "token"):
            self.assertNotEqual(other[key], first[key], key)
        for key in ("time", "now", "set_order", "at_import"):
            self.assertEqual(other[key], first[key], key)

        later = await pool.invoke(request("entropy:entropy", now=NOW + 1000.0), Handler())
        self.assertEqual(later["value"]["time"], NOW / 1000 + 1)

    async def test_actions_see_real_time_and_randomness(self) -> None:
        pool = await start_pool(self, {"entropy.py": ENTROPY})
        # A query first, so the action must not inherit its seeded state.
        await pool.invoke(request("entropy:entropy"), Handler())
        a = (await pool.invoke(request("entropy:action_entropy", udf_type="action"), Handler()))[
            "value"
        ]
        b = (await pool.invoke(request("entropy:action_entropy", udf_type="action"), Handler()))[
            "value"
        ]
        self.assertLess(abs(a["time"] - time.time()), 60)
        for key in ("random", "uuid", "urandom", "token", "own_generator"):
            self.assertNotEqual(a[key], b[key], key)


class NetworkTests(TestCase):
    async def test_no_network_in_queries(self) -> None:
        pool = await start_pool(self, {"net.py": NETWORK})
        for name in ("connect", "resolve", "raw_socket"):
            result = await pool.invoke(request(f"net:{name}"), Handler())
            self.assertEqual(
                result["error"]["message"],
                "Uncaught RuntimeError: Can't use the network in queries and mutations; "
                "use an action",
                name,
            )

    async def test_network_in_actions(self) -> None:
        pool = await start_pool(self, {"net.py": NETWORK})
        await pool.invoke(request("net:connect"), Handler())
        result = await pool.invoke(request("net:connect_locally", udf_type="action"), Handler())
        self.assertEqual(result["value"], "ping")


class ConsoleTests(TestCase):
    async def test_print_and_logging(self) -> None:
        pool = await start_pool(self, {"console.py": CONSOLE})
        result = await pool.invoke(request("console:chatty"), Handler())
        self.assertEqual(
            result["logLines"],
            [
                "[LOG] 'hello world'",
                "[LOG] 'two'",
                "[LOG] 'lines'",
                "[INFO] 'info 1'",
                "[WARN] 'careful'",
                "[ERROR] 'bad'",
                "[DEBUG] 'details'",
                "[ERROR] 'to stderr'",
                "[LOG] 'no newline'",
            ],
        )
        # Nothing leaks into the next invocation.
        result = await pool.invoke(request("console:flood"), Handler())
        self.assertEqual(result["logLines"][0], "[LOG] '0'")

    async def test_line_cap(self) -> None:
        pool = await start_pool(self, {"console.py": CONSOLE})
        lines = (await pool.invoke(request("console:flood"), Handler()))["logLines"]
        self.assertEqual(len(lines), 257)
        self.assertEqual(lines[:2], ["[LOG] '0'", "[LOG] '1'"])
        self.assertEqual(lines[255], "[LOG] '255'")
        self.assertEqual(
            lines[256],
            "[WARN] Log overflow (maximum 256). 44 remaining log lines omitted.",
        )

    async def test_line_size(self) -> None:
        pool = await start_pool(self, {"console.py": CONSOLE})
        [line] = (await pool.invoke(request("console:long_line"), Handler()))["logLines"]
        self.assertLessEqual(len(line.encode()), 4096)
        self.assertGreater(len(line.encode()), 4090)
        self.assertTrue(line.startswith("[LOG] 'éé"))

    async def test_logs_of_a_failed_invocation(self) -> None:
        pool = await start_pool(self, {"console.py": CONSOLE})
        result = await pool.invoke(request("console:log_then_fail"), Handler())
        self.assertFalse(result["success"])
        self.assertEqual(result["logLines"], ["[LOG] 'before'"])


class ErrorTests(TestCase):
    async def test_plain_exception(self) -> None:
        pool = await start_pool(self, {"errors.py": ERRORS})
        result = await pool.invoke(request("errors:value_error"), Handler())
        self.assertEqual(
            result,
            {
                "success": False,
                "error": {"message": "Uncaught ValueError: bad input"},
                "logLines": [],
            },
        )

    async def test_convex_error(self) -> None:
        pool = await start_pool(self, {"errors.py": ERRORS})
        result = await pool.invoke(request("errors:convex_error"), Handler())
        self.assertEqual(
            result["error"],
            {
                "message": 'Uncaught ConvexError: {"code":42,"why":"because"}',
                "data": to_json(from_python({"code": 42, "why": "because"})),
            },
        )
        result = await pool.invoke(request("errors:convex_error_message"), Handler())
        self.assertEqual(
            result["error"],
            {"message": "Uncaught ConvexError: just a message", "data": "just a message"},
        )

    async def test_system_exit_does_not_stop_the_worker(self) -> None:
        pool = await start_pool(self, {"errors.py": ERRORS})
        result = await pool.invoke(request("errors:exit"), Handler())
        self.assertEqual(result["error"], {"message": "Uncaught SystemExit: 3"})
        result = await pool.invoke(request("errors:value_error"), Handler())
        self.assertFalse(result["success"])
        self.assertEqual(pool.stats["restarts"], 0)

    async def test_environment(self) -> None:
        pool = await start_pool(self, {"errors.py": ERRORS})
        result = await pool.invoke(request("errors:env", env={"API_KEY": "k"}), Handler())
        self.assertEqual(result["value"], {"API_KEY": "k"})
        result = await pool.invoke(
            request("errors:env_action", udf_type="action", env={"A": "1"}), Handler()
        )
        self.assertEqual(result["value"], {"A": "1", "LEAK": "yes"})
        # What an invocation does to os.environ does not outlive it.
        result = await pool.invoke(request("errors:env", env={"B": "2"}), Handler())
        self.assertEqual(result["value"], {"B": "2"})


class HttpTests(TestCase):
    async def test_http_action(self) -> None:
        pool = await start_pool(self, {"http.py": HTTP})
        http_request = {
            "method": "POST",
            "url": "https://example.com/hello?x=1",
            "headers": [["content-type", "text/plain"]],
            "body": None,
        }
        result = await pool.invoke(request("http", http_request, udf_type="httpAction"), Handler())
        response = result["value"]
        self.assertEqual(response["status"], 200)
        self.assertEqual(base64.b64decode(response["body"]["$bytes"]), b"hello POST")
        missing = dict(http_request, url="https://example.com/other")
        result = await pool.invoke(request("http", missing, udf_type="httpAction"), Handler())
        self.assertEqual(result["value"]["status"], 404)


def _local_iso(ms: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(ms / 1000).isoformat()
