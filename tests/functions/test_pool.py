"""The worker pool with real worker processes: syscalls, faults, queueing, swaps."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from convex_backend.functions.pool import (
    FunctionTimeout,
    HostSyscallError,
    LoadError,
    Overloaded,
    PoolStopped,
    WorkerCrashed,
    WorkerPool,
    WorkerProtocolError,
)
from convex_backend.values import encode_id
from tests.functions.fixtures import Handler, request, start_pool, write_modules

MESSAGES = """
    import gc
    import os

    from convex_backend.server import mutation, query

    @query
    def echo(ctx, args):
        return args

    @query
    def get(ctx, args):
        return ctx.db.get(args["id"])

    @query
    def get_three(ctx, args):
        return [ctx.db.get(args["id"]) for _ in range(3)]

    @query
    def get_or_error(ctx, args):
        try:
            ctx.db.get(args["id"])
        except Exception as e:
            return type(e).__name__ + ": " + str(e)
        return "no error"

    @query
    def collect(ctx, args):
        return ctx.db.query("messages").collect()

    @query
    def normalize(ctx, args):
        return ctx.db.normalize_id(args["table"], args["id"])

    @query
    def snapshot(ctx, args):
        return ctx.db.get(args["id"])

    @query
    def outer(ctx, args):
        return {"inner": ctx.run_query("messages:echo", {"x": 1})}

    @mutation
    def insert(ctx, args):
        return ctx.db.insert("messages", {"body": args["body"]})

    @query
    def spin(ctx, args):
        while True:
            pass

    @query
    def crash(ctx, args):
        os._exit(1)

    @query
    def hog(ctx, args):
        return len(bytearray(int(args["size"])))

    @query
    def garbage(ctx, args):
        # Find the host pipe the way malicious code could, and break the protocol.
        channel = next(o for o in gc.get_objects() if type(o).__name__ == "_Channel")
        os.write(channel.wfd, b"\\x00\\x00\\x00\\x03abc")
        return None
"""

DOC = {"_id": "x", "body": "hello"}


def get_handler(**ops: Any) -> Handler:
    return Handler({"1.0/get": lambda args: DOC, **ops})


class SyscallTests(TestCase):
    async def test_query_with_a_syscall(self) -> None:
        pool = await start_pool(self, {"messages.py": MESSAGES})
        handler = get_handler()
        result = await pool.invoke(request("messages:get", {"id": "x"}), handler)
        self.assertEqual(result, {"success": True, "value": DOC, "logLines": []})
        [(op, args, notification)] = handler.calls
        self.assertEqual(op, "1.0/get")
        self.assertEqual(args["id"], "x")
        self.assertFalse(notification)

    async def test_deferred_and_coroutine_answers(self) -> None:
        pool = await start_pool(self, {"messages.py": MESSAGES})

        def later(args: Any) -> defer.Deferred:
            return task.deferLater(reactor, 0.01, lambda: DOC)

        result = await pool.invoke(
            request("messages:get", {"id": "x"}), get_handler(**{"1.0/get": later})
        )
        self.assertEqual(result["value"], DOC)

        async def coroutine(args: Any) -> Any:
            return DOC

        result = await pool.invoke(
            request("messages:get", {"id": "x"}), get_handler(**{"1.0/get": coroutine})
        )
        self.assertEqual(result["value"], DOC)

    async def test_host_errors_reach_user_code(self) -> None:
        pool = await start_pool(self, {"messages.py": MESSAGES})

        def refuse(args: Any) -> Any:
            raise HostSyscallError("Document is gone")

        result = await pool.invoke(
            request("messages:get_or_error", {"id": "x"}), get_handler(**{"1.0/get": refuse})
        )
        self.assertEqual(result["value"], "ConvexFunctionError: Document is gone")

        def deferred_refusal(args: Any) -> Any:
            return defer.fail(HostSyscallError("Later gone"))

        result = await pool.invoke(
            request("messages:get_or_error", {"id": "x"}),
            get_handler(**{"1.0/get": deferred_refusal}),
        )
        self.assertEqual(result["value"], "ConvexFunctionError: Later gone")

    async def test_host_bugs_are_internal_errors(self) -> None:
        pool = await start_pool(self, {"messages.py": MESSAGES})

        def broken(args: Any) -> Any:
            raise KeyError("secret host detail")

        result = await pool.invoke(
            request("messages:get_or_error", {"id": "x"}), get_handler(**{"1.0/get": broken})
        )
        self.assertEqual(result["value"], "ConvexFunctionError: Internal error")
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    async def test_uncaught_host_error(self) -> None:
        pool = await start_pool(self, {"messages.py": MESSAGES})

        def refuse(args: Any) -> Any:
            raise HostSyscallError("Nope", {"code": 7.0})

        result = await pool.invoke(
            request("messages:get", {"id": "x"}), get_handler(**{"1.0/get": refuse})
        )
        self.assertFalse(result["success"])
        self.assertEqual(
            result["error"], {"message": "Uncaught ConvexError: Nope", "data": {"code": 7.0}}
        )

    async def test_query_streams(self) -> None:
        pool = await start_pool(self, {"messages.py": MESSAGES})
        rows = [{"_id": "a"}, {"_id": "b"}]

        def next_rows(args: Any) -> Any:
            return {"values": rows, "done": True}

        handler = Handler({"1.0/queryStreamNext": next_rows})
        result = await pool.invoke(request("messages:collect"), handler)
        self.assertEqual(result["value"], rows)
        (op, args, notification), *rest = handler.calls
        self.assertEqual(op, "1.0/queryStreamNext")
        self.assertEqual(args["queryId"], 0)
        self.assertEqual(args["query"]["source"]["tableName"], "messages")
        self.assertFalse(notification)
        # The host saw the stream, so it hears about its end.
        self.assertEqual(rest, [("1.0/queryCleanup", {"queryId": 0}, True)])

    async def test_normalize_id_and_snapshot_ts_are_local(self) -> None:
        pool = await start_pool(self, {"messages.py": MESSAGES})
        good = encode_id(10001, bytes(16))
        other = encode_id(10002, bytes(16))
        handler = Handler()
        tables = {"messages": 10001, "users": 10002}
        for table, id_string, expected in [
            ("messages", good, good),
            ("messages", other, None),
            ("users", other, other),
            ("missing", good, None),
            ("messages", "not an id", None),
        ]:
            result = await pool.invoke(
                request("messages:normalize", {"table": table, "id": id_string}, tables=tables),
                handler,
            )
            self.assertEqual(result["value"], expected, (table, id_string))
        self.assertEqual(handler.calls, [])

    async def test_nested_call_run_inline(self) -> None:
        pool = await start_pool(self, {"messages.py": MESSAGES})
        handler = Handler(
            {
                "1.0/runUdf": lambda args: {
                    "inline": {"path": "messages:echo", "udfType": "query", "args": args["args"]}
                },
                "1.0/runUdfDone": lambda args: args["value"],
            }
        )
        result = await pool.invoke(request("messages:outer"), handler)
        self.assertEqual(result["value"], {"inner": {"x": 1.0}})
        self.assertEqual([c[0] for c in handler.calls], ["1.0/runUdf", "1.0/runUdfDone"])
        self.assertEqual(handler.calls[1][1], {"value": {"x": 1.0}})

    async def test_mutation(self) -> None:
        pool = await start_pool(self, {"messages.py": MESSAGES})
        handler = Handler({"1.0/insert": lambda args: {"_id": "new"}})
        result = await pool.invoke(
            request("messages:insert", {"body": "hi"}, udf_type="mutation"), handler
        )
        self.assertEqual(result["value"], "new")
        self.assertEqual(handler.calls[0][1]["value"], {"body": "hi"})

    async def test_unknown_function(self) -> None:
        pool = await start_pool(self, {"messages.py": MESSAGES})
        result = await pool.invoke(request("messages:nope"), Handler())
        self.assertEqual(
            result["error"], {"message": "Could not find function for 'messages:nope'"}
        )
        result = await pool.invoke(request("messages:echo", udf_type="mutation"), Handler())
        self.assertEqual(result["error"], {"message": "messages:echo is a query, not a mutation"})


class FaultTests(TestCase):
    async def assert_healthy(self, pool: WorkerPool) -> None:
        result = await pool.invoke(request("messages:echo", {"ok": True}), Handler())
        self.assertEqual(result["value"], {"ok": True})

    async def test_timeout(self) -> None:
        pool = await start_pool(self, {"messages.py": MESSAGES}, query_timeout=0.3)
        started = reactor.seconds()
        with self.assertRaises(FunctionTimeout) as caught:
            await pool.invoke(request("messages:spin"), Handler())
        self.assertEqual(str(caught.exception), "Function execution timed out after 0.3s")
        self.assertEqual(caught.exception.code, "FunctionTimeout")
        self.assertLess(reactor.seconds() - started, 2.0)
        await self.assert_healthy(pool)
        self.assertEqual(pool.stats["timeouts"], 1)
        self.assertEqual(pool.stats["restarts"], 1)

    async def test_clock_stops_while_the_host_answers(self) -> None:
        pool = await start_pool(self, {"messages.py": MESSAGES}, query_timeout=0.3)

        def slow(args: Any) -> defer.Deferred:
            return task.deferLater(reactor, 0.2, lambda: DOC)

        result = await pool.invoke(
            request("messages:get_three", {"id": "x"}), get_handler(**{"1.0/get": slow})
        )
        self.assertEqual(result["value"], [DOC, DOC, DOC])

    async def test_crash(self) -> None:
        pool = await start_pool(self, {"messages.py": MESSAGES})
        with self.assertRaises(WorkerCrashed) as caught:
            await pool.invoke(request("messages:crash"), Handler())
        self.assertEqual(str(caught.exception), "The function's worker process exited unexpectedly")
        await self.assert_healthy(pool)
        self.assertEqual(pool.stats["crashes"], 1)

    async def test_memory_limit(self) -> None:
        pool = await start_pool(self, {"messages.py": MESSAGES}, memory_limit=512 * 1024 * 1024)
        result = await pool.invoke(request("messages:hog", {"size": 2.0**31}), Handler())
        self.assertFalse(result["success"])
        self.assertEqual(
            result["error"]["message"],
            "Function ran out of memory (the worker's limit is 512 MiB)",
        )
        await self.assert_healthy(pool)
        # A modest allocation is fine.
        result = await pool.invoke(request("messages:hog", {"size": 2.0**20}), Handler())
        self.assertEqual(result["value"], 2.0**20)

    async def test_invocation_handed_to_a_worker_exiting_after_oom_runs_elsewhere(self) -> None:
        pool = await start_pool(self, {"messages.py": MESSAGES}, memory_limit=512 * 1024 * 1024)
        # Queued behind the memory hog, this one lands on the exiting worker first.
        first = pool.invoke(request("messages:hog", {"size": 2.0**31}), Handler())
        second = pool.invoke(request("messages:echo", {"n": 2}), Handler())
        self.assertFalse((await first)["success"])
        self.assertEqual((await second)["value"], {"n": 2})

    async def test_malformed_frame(self) -> None:
        pool = await start_pool(self, {"messages.py": MESSAGES})
        with self.assertRaises(WorkerProtocolError):
            await pool.invoke(request("messages:garbage"), Handler())
        await self.assert_healthy(pool)

    async def test_other_invocations_are_unaffected(self) -> None:
        pool = await start_pool(self, {"messages.py": MESSAGES}, size=2, query_timeout=0.3)
        gate: defer.Deferred = defer.Deferred()
        handler = get_handler(**{"1.0/get": lambda args: gate})
        waiting = pool.invoke(request("messages:get", {"id": "x"}), handler)
        with self.assertRaises(WorkerCrashed):
            await pool.invoke(request("messages:crash"), Handler())
        with self.assertRaises(FunctionTimeout):
            await pool.invoke(request("messages:spin"), Handler())
        gate.callback(DOC)
        self.assertEqual((await waiting)["value"], DOC)


class QueueTests(TestCase):
    async def test_overloaded(self) -> None:
        pool = await start_pool(self, {"messages.py": MESSAGES}, queue_limit=1)
        gate: defer.Deferred = defer.Deferred()
        handler = get_handler(**{"1.0/get": lambda args: gate})
        running = pool.invoke(request("messages:get", {"id": "x"}), handler)
        await task.deferLater(reactor, 0.05, lambda: None)
        queued = pool.invoke(request("messages:echo", {"n": 1}), Handler())
        self.assertEqual(pool.stats["queue_length"], 1)
        self.assertEqual(pool.stats["busy_workers"], 1)
        with self.assertRaises(Overloaded) as caught:
            await pool.invoke(request("messages:echo", {"n": 2}), Handler())
        self.assertEqual(caught.exception.code, "Overloaded")
        self.assertIn("try again later", str(caught.exception))
        gate.callback(DOC)
        self.assertEqual((await running)["value"], DOC)
        self.assertEqual((await queued)["value"], {"n": 1})
        self.assertEqual(pool.stats["overloaded"], 1)

    async def test_many_concurrent_invocations(self) -> None:
        pool = await start_pool(self, {"messages.py": MESSAGES}, size=2)
        results = await defer.gatherResults(
            [pool.invoke(request("messages:echo", {"n": float(i)}), Handler()) for i in range(50)]
        )
        self.assertEqual([r["value"]["n"] for r in results], [float(i) for i in range(50)])
        self.assertEqual(pool.stats["invocations"], 50)

    async def test_stopped_pool(self) -> None:
        pool = await start_pool(self, {"messages.py": MESSAGES})
        await pool.stopService()
        with self.assertRaises(PoolStopped):
            await pool.invoke(request("messages:echo"), Handler())


BROKEN_AT_IMPORT = """
    from convex_backend.server import query

    VALUE = 1
    raise RuntimeError("boom at import")
"""

SYNTAX_ERROR = """
    from convex_backend.server import query

    def broken(:
        pass
"""


class LoadTests(TestCase):
    def pool(self) -> WorkerPool:
        pool = WorkerPool(reactor, write_modules(self, {}), size=1)
        return pool

    async def test_analyze(self) -> None:
        directory = write_modules(
            self,
            {
                "messages.py": """
                    from convex_backend.server import internal_mutation, query, v

                    @query(args={"n": v.number()}, returns=v.number())
                    def double(ctx, args):
                        return args["n"] * 2

                    @internal_mutation
                    def default(ctx, args):
                        return None
                """,
                "dir/mod.py": """
                    from convex_backend.server import action

                    @action
                    def run(ctx, args):
                        return None
                """,
                "schema.py": """
                    from convex_backend.server import define_schema, define_table, v

                    schema = define_schema({"messages": define_table({"body": v.string()})})
                """,
                "http.py": """
                    from convex_backend.server import HttpRouter, Response, http_action

                    @http_action
                    def hello(ctx, request):
                        return Response("hi")

                    http = HttpRouter()
                    http.route(path="/hello", method="GET", handler=hello)
                """,
            },
        )
        analysis = await self.pool().analyze(directory)
        functions = {f["path"]: f for f in analysis["functions"]}
        self.assertEqual(
            sorted(functions), ["dir/mod:run", "http:hello", "messages", "messages:double"]
        )
        self.assertEqual(
            functions["messages:double"],
            {
                "name": "double",
                "module": "messages.py",
                "path": "messages:double",
                "udfType": "query",
                "visibility": "public",
                "args": {
                    "type": "object",
                    "value": {"n": {"fieldType": {"type": "number"}, "optional": False}},
                },
                "returns": {"type": "number"},
                "line": 4,
            },
        )
        self.assertEqual(functions["messages"]["visibility"], "internal")
        self.assertEqual(functions["dir/mod:run"]["module"], "dir/mod.py")
        self.assertEqual(functions["http:hello"]["udfType"], "httpAction")
        self.assertIsNone(functions["http:hello"]["args"])
        self.assertEqual(analysis["httpRoutes"], [{"path": "/hello", "method": "GET"}])
        self.assertEqual(analysis["schema"]["tables"][0]["tableName"], "messages")
        self.assertNotIn("type", analysis)

    async def test_module_level_code_sees_the_deployment_environment(self) -> None:
        auth_config = {
            "auth_config.py": """
                import os

                providers = [{"domain": os.environ["ISSUER"], "applicationID": "app"}]
            """
        }
        pool = self.pool()
        with self.assertRaises(LoadError) as caught:
            await pool.analyze(write_modules(self, auth_config))
        self.assertEqual(caught.exception.message, "KeyError: 'ISSUER'")
        # Names that would change how the process starts stay out of it.
        pool.environment = {"ISSUER": "https://issuer.test", "PYTHONPATH": "/nowhere"}
        analysis = await pool.analyze(write_modules(self, auth_config))
        self.assertEqual(
            analysis["authConfig"], [{"domain": "https://issuer.test", "applicationID": "app"}]
        )

    async def test_exception_at_import(self) -> None:
        directory = write_modules(self, {"ok.py": "X = 1\n", "bad.py": BROKEN_AT_IMPORT})
        with self.assertRaises(LoadError) as caught:
            await self.pool().analyze(directory)
        error = caught.exception
        self.assertEqual(error.message, "RuntimeError: boom at import")
        self.assertEqual((error.file, error.line), ("bad.py", 5))
        self.assertEqual(error.code, "LoadError")

    async def test_exception_in_an_imported_helper(self) -> None:
        directory = write_modules(
            self,
            {
                "main.py": "from .lib import helper\n",
                "lib/helper.py": "\n\n1 / 0\n",
            },
        )
        with self.assertRaises(LoadError) as caught:
            await self.pool().analyze(directory)
        error = caught.exception
        self.assertEqual(error.message, "ZeroDivisionError: division by zero")
        self.assertEqual((error.file, error.line), ("lib/helper.py", 3))

    async def test_syntax_error(self) -> None:
        directory = write_modules(self, {"broken.py": SYNTAX_ERROR})
        with self.assertRaises(LoadError) as caught:
            await self.pool().analyze(directory)
        error = caught.exception
        self.assertTrue(error.message.startswith("SyntaxError: "), error.message)
        self.assertNotIn("/", error.message)
        self.assertEqual((error.file, error.line), ("broken.py", 4))

    async def test_missing_module(self) -> None:
        directory = write_modules(self, {"a.py": "from . import nothing_here\n"})
        with self.assertRaises(LoadError) as caught:
            await self.pool().analyze(directory)
        self.assertNotIn("_convex_modules", caught.exception.message)
        self.assertEqual((caught.exception.file, caught.exception.line), ("a.py", 1))

    async def test_pool_on_broken_modules(self) -> None:
        pool = WorkerPool(reactor, write_modules(self, {"bad.py": BROKEN_AT_IMPORT}), size=2)
        pool.startService()
        self.addCleanup(pool.stopService)
        with self.assertRaises(LoadError):
            await pool.when_ready()
        with self.assertRaises(LoadError):
            await pool.invoke(request("bad:x"), Handler())


def version_module(version: str) -> dict[str, str]:
    return {
        "messages.py": f"""
            from convex_backend.server import query

            @query
            def version(ctx, args):
                return "{version}"

            @query
            def wait_then_version(ctx, args):
                ctx.db.get("x")
                return "{version}"
        """
    }


class SwapTests(TestCase):
    async def test_swap_changes_behaviour(self) -> None:
        pool = await start_pool(self, version_module("a"), size=2)
        self.assertEqual((await pool.invoke(request("messages:version"), Handler()))["value"], "a")
        gate: defer.Deferred = defer.Deferred()
        in_flight = pool.invoke(
            request("messages:wait_then_version"), get_handler(**{"1.0/get": lambda a: gate})
        )
        await pool.swap(write_modules(self, version_module("b")))
        self.assertEqual((await pool.invoke(request("messages:version"), Handler()))["value"], "b")
        # The invocation that started on the old code finishes on it.
        gate.callback(None)
        self.assertEqual((await in_flight)["value"], "a")
        self.assertEqual(pool.stats["workers"], 2)

    async def test_failed_swap_keeps_the_old_code(self) -> None:
        pool = await start_pool(self, version_module("a"))
        with self.assertRaises(LoadError):
            await pool.swap(write_modules(self, {"bad.py": BROKEN_AT_IMPORT}))
        self.assertEqual((await pool.invoke(request("messages:version"), Handler()))["value"], "a")


class LoadTimeoutTests(TestCase):
    async def test_modules_that_never_finish_importing(self) -> None:
        directory = write_modules(self, {"slow.py": "while True:\n    pass\n"})
        pool = WorkerPool(reactor, directory, size=1, load_timeout=0.5)
        with self.assertRaises(LoadError) as caught:
            await pool.analyze(directory)
        self.assertEqual(caught.exception.message, "Timed out after 0.5s importing the modules")
        pool.startService()
        self.addCleanup(pool.stopService)
        with self.assertRaises(LoadError):
            await pool.when_ready()
