"""The worker interface (``convex_backend.server._runtime``), end to end over the fake."""

from __future__ import annotations

import asyncio
import types

from twisted.trial.unittest import SynchronousTestCase

from convex_backend.server import (
    UNDEFINED,
    ConvexError,
    HttpRouter,
    Int64,
    QueryCtx,
    Response,
    action,
    define_schema,
    define_table,
    http_action,
    internal_mutation,
    mutation,
    query,
    v,
)
from convex_backend.server._runtime import (
    SyscallError,
    error_data_json,
    http_router,
    invoke,
    invoke_http,
    registered_functions,
    schema_export,
)
from convex_backend.server.context import ActionCtx, MutationCtx
from convex_backend.values import ConvexValueError
from tests.server.fakes import RecordingSyscalls, batches

ONE = {"$integer": "AQAAAAAAAAA="}


def module(name: str, **attrs: object) -> types.ModuleType:
    mod = types.ModuleType(name)
    for key, value in attrs.items():
        setattr(mod, key, value)
    return mod


class InvokeTests(SynchronousTestCase):
    def test_query(self) -> None:
        @query(args={"channel": v.string(), "n": v.int64()})
        def list_messages(ctx, args):
            assert isinstance(ctx, QueryCtx)
            rows = (
                ctx.db.query("messages")
                .with_index("by_channel", lambda q: q.eq("channel", args["channel"]))
                .take(10)
            )
            return {"rows": rows, "n": args["n"], "count": len(rows), "t": (1, 2)}

        fake = RecordingSyscalls(
            {"1.0/queryStreamNext": batches([{"_id": "a", "_creationTime": 1.0, "n": ONE}])}
        )
        result = invoke(list_messages, fake, {"channel": "general", "n": ONE})
        self.assertEqual(
            result,
            {
                "count": 1.0,
                "n": ONE,
                "rows": [{"_creationTime": 1.0, "_id": "a", "n": ONE}],
                "t": [1.0, 2.0],
            },
        )
        self.assertEqual(fake.ops(), ["1.0/queryStream", "1.0/queryStreamNext", "1.0/queryCleanup"])

    def test_mutation_async_handler(self) -> None:
        @internal_mutation
        async def send(ctx, args):
            assert isinstance(ctx, MutationCtx)
            await asyncio.sleep(0)
            new_id = ctx.db.insert("messages", args)
            ctx.db.patch(new_id, {"draft": UNDEFINED})
            return new_id

        fake = RecordingSyscalls({"1.0/insert": {"_id": "new"}, "1.0/shallowMerge": None})
        self.assertEqual(invoke(send, fake, {"body": "hi"}), "new")
        self.assertEqual(fake.ops(), ["1.0/insert", "1.0/shallowMerge"])

    def test_action_request_id(self) -> None:
        @action
        def act(ctx, args):
            assert isinstance(ctx, ActionCtx)
            return ctx.run_query("messages:list", args)

        fake = RecordingSyscalls({"1.0/actions/query": [ONE]})
        self.assertEqual(invoke(act, fake, {"a": 1}, request_id="req"), ONE)
        self.assertEqual(fake.calls[0][2]["requestId"], "req")

    def test_no_return_is_null(self) -> None:
        fn = mutation(lambda ctx: None)
        self.assertIsNone(invoke(fn, RecordingSyscalls(), {}))
        self.assertIsNone(invoke(query(lambda ctx, args: UNDEFINED), RecordingSyscalls(), {}))

    def test_returning_a_query_is_refused(self) -> None:
        fn = query(lambda ctx, args: ctx.db.query("messages"))
        e = self.assertRaises(TypeError, invoke, fn, RecordingSyscalls(), {})
        self.assertIn("collect()", str(e))

    def test_bad_return_value(self) -> None:
        fn = query(lambda ctx, args: {"x": object()})
        e = self.assertRaises(ConvexValueError, invoke, fn, RecordingSyscalls(), {})
        self.assertIn("return value", str(e))

    def test_convex_error_propagates(self) -> None:
        @mutation
        def fail(ctx, args):
            raise ConvexError({"code": 42, "big": Int64(1)})

        e = self.assertRaises(ConvexError, invoke, fail, RecordingSyscalls(), {})
        self.assertEqual(error_data_json(e), {"big": ONE, "code": 42.0})
        self.assertIsNone(error_data_json(ConvexError(None)))

    def test_nested_convex_error_passes_through(self) -> None:
        @action
        def act(ctx, args):
            ctx.run_mutation("m:fail")

        fake = RecordingSyscalls({"1.0/actions/mutation": SyscallError("boom", {"code": 1})})
        e = self.assertRaises(ConvexError, invoke, act, fake, {})
        self.assertEqual(e.data, {"code": 1.0})

    def test_other_errors_propagate(self) -> None:
        def boom(ctx, args):
            raise ValueError("bad input")

        self.assertRaises(ValueError, invoke, query(boom), RecordingSyscalls(), {})

    def test_open_streams_are_cleaned_and_ctx_dies(self) -> None:
        kept = []

        @query
        def leak(ctx, args):
            rows = iter(ctx.db.query("t"))
            next(rows)
            kept.append((ctx, rows))
            return None

        fake = RecordingSyscalls({"1.0/queryStreamNext": batches([{"a": 1}], [])})
        invoke(leak, fake, {})
        self.assertEqual(fake.ops()[-1], "1.0/queryCleanup")
        ctx, _ = kept[0]
        self.assertRaises(RuntimeError, ctx.db.get, "x")

    def test_nested_inline_invocation_of_async_handlers(self) -> None:
        # The worker may run a nested call in the same process while the
        # caller waits in a syscall; both handlers here are coroutines.
        @query
        async def inner(ctx, args):
            await asyncio.sleep(0)
            return args["x"] + 1

        class InlineSyscalls(RecordingSyscalls):
            def async_syscall(self, op, args):
                super().async_syscall(op, args)
                return invoke(inner, RecordingSyscalls(), args["args"])

        @mutation
        async def outer(ctx, args):
            await asyncio.sleep(0)
            first = ctx.run_query("m:inner", {"x": 1})
            await asyncio.sleep(0)
            return first + ctx.run_query("m:inner", {"x": 10})

        fake = InlineSyscalls({"1.0/runUdf": None})
        self.assertEqual(invoke(outer, fake, {}), 13.0)
        self.assertEqual(fake.ops(), ["1.0/runUdf", "1.0/runUdf"])

    def test_http_action_via_invoke(self) -> None:
        @http_action
        def echo(ctx, request):
            return Response(request.text().upper(), status=201)

        response = invoke(
            echo,
            RecordingSyscalls(),
            {"method": "POST", "url": "http://h/e", "headers": [], "body": {"$bytes": "aGk="}},
        )
        self.assertEqual(response["status"], 201)
        self.assertEqual(response["body"], {"$bytes": "SEk="})


class InvokeHttpTests(SynchronousTestCase):
    def setUp(self) -> None:
        @http_action
        async def post_message(ctx, request):
            body = request.json()
            identity = ctx.auth.get_user_identity()
            ctx.run_mutation("messages:send", {"body": body["body"]})
            return Response(
                {"who": identity and identity["subject"], "path": request.path},
                headers={"X-Trace": "1"},
            )

        self.router = HttpRouter()
        self.router.route(path="/post", method="POST", handler=post_message)
        self.router.route(path_prefix="/get/", method="GET", handler=lambda ctx, req: "nope")

    def test_routed_request(self) -> None:
        fake = RecordingSyscalls(
            {"1.0/getUserIdentity": {"subject": "u1"}, "1.0/actions/mutation": None}
        )
        response = invoke_http(
            self.router,
            fake,
            {
                "method": "POST",
                "url": "https://host/post?x=1",
                "headers": [["content-type", "application/json"]],
                "body": {"$bytes": "eyJib2R5IjogImhpIn0="},
            },
            request_id="r7",
        )
        self.assertEqual(
            response,
            {
                "status": 200,
                "headers": [["x-trace", "1"], ["content-type", "application/json"]],
                "body": {"$bytes": "eyJ3aG8iOiJ1MSIsInBhdGgiOiIvcG9zdCJ9"},
            },
        )
        self.assertEqual(
            fake.calls,
            [
                ("async", "1.0/getUserIdentity", {"requestId": "r7"}),
                (
                    "async",
                    "1.0/actions/mutation",
                    {
                        "name": "messages:send",
                        "args": {"body": "hi"},
                        "version": "1.48.0",
                        "requestId": "r7",
                    },
                ),
            ],
        )

    def test_not_found(self) -> None:
        response = invoke_http(
            self.router,
            RecordingSyscalls(),
            {"method": "GET", "url": "https://host/post", "headers": [], "body": None},
        )
        self.assertEqual(response["status"], 404)
        self.assertEqual(response["headers"], [["content-type", "application/json"]])
        body = Response.from_json(response).json()
        self.assertEqual(body["code"], "NotFound")
        self.assertIn("/post", body["message"])

    def test_handler_must_return_a_response(self) -> None:
        self.assertRaises(
            TypeError,
            invoke_http,
            self.router,
            RecordingSyscalls(),
            {"method": "HEAD", "url": "https://host/get/x", "headers": [], "body": None},
        )


class AnalyzeTests(SynchronousTestCase):
    def test_registered_functions(self) -> None:
        q = query(lambda ctx, args: 1)
        m = mutation(lambda ctx, args: 1)
        mod = module("messages", list=q, send=m, helper=lambda: 1, _private=q, CONST=3)
        self.assertEqual(registered_functions(mod), [("list", q), ("send", m)])
        mod.__all__ = ["send", "_private", "missing"]
        self.assertEqual(registered_functions(mod), [("send", m), ("_private", q)])

    def test_schema_export(self) -> None:
        schema = define_schema({"t": define_table({"a": v.string()})})
        self.assertEqual(schema_export(module("schema", schema=schema)), schema.export())
        self.assertIsNone(schema_export(module("schema")))
        self.assertRaises(TypeError, schema_export, module("schema", schema={"tables": []}))

    def test_http_router(self) -> None:
        router = HttpRouter()
        self.assertIs(http_router(module("http", http=router)), router)
        self.assertIsNone(http_router(module("http")))
        self.assertRaises(TypeError, http_router, module("http", http=object()))
