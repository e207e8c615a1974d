"""``ctx.run_*`` op choice per function type, ``ctx.auth``, and how host errors
reach user code."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from convex_backend.server import (
    ConvexError,
    ConvexFunctionError,
    Int64,
    action,
    mutation,
    query,
)
from convex_backend.server._runtime import SyscallError
from convex_backend.server._syscalls import Invocation
from convex_backend.server.context import (
    ActionCtx,
    MutationCtx,
    QueryCtx,
    canonical_function_name,
)
from tests.server.fakes import RecordingSyscalls

ONE = {"$integer": "AQAAAAAAAAA="}


class RunFunctionTests(SynchronousTestCase):
    def test_query_ctx(self) -> None:
        fake = RecordingSyscalls({"1.0/runUdf": {"n": ONE}})
        ctx = QueryCtx(Invocation(fake, "r1"))
        self.assertEqual(ctx.run_query("messages:list", {"a": 1}), {"n": Int64(1)})
        self.assertEqual(
            fake.calls,
            [
                (
                    "async",
                    "1.0/runUdf",
                    {"udfType": "query", "args": {"a": 1.0}, "name": "messages:list"},
                )
            ],
        )
        self.assertFalse(hasattr(ctx, "run_mutation"))
        self.assertFalse(hasattr(ctx, "run_action"))

    def test_mutation_ctx(self) -> None:
        fake = RecordingSyscalls({"1.0/runUdf": None})
        ctx = MutationCtx(Invocation(fake))
        ctx.run_query("messages:list")
        ctx.run_mutation("dir/mod:send", {"body": "x"})
        self.assertEqual(
            fake.args_of("1.0/runUdf"),
            [
                {"udfType": "query", "args": {}, "name": "messages:list"},
                {"udfType": "mutation", "args": {"body": "x"}, "name": "dir/mod:send"},
            ],
        )
        self.assertFalse(hasattr(ctx, "run_action"))

    def test_action_ctx(self) -> None:
        fake = RecordingSyscalls(
            {"1.0/actions/query": 1, "1.0/actions/mutation": 2, "1.0/actions/action": 3}
        )
        ctx = ActionCtx(Invocation(fake, "req-9"))
        self.assertEqual(ctx.run_query("m:q"), 1.0)
        self.assertEqual(ctx.run_mutation("m:m", {"x": True}), 2.0)
        self.assertEqual(ctx.run_action("m:a"), 3.0)
        self.assertEqual(
            fake.calls,
            [
                (
                    "async",
                    "1.0/actions/query",
                    {"name": "m:q", "args": {}, "version": "1.48.0", "requestId": "req-9"},
                ),
                (
                    "async",
                    "1.0/actions/mutation",
                    {"name": "m:m", "args": {"x": True}, "version": "1.48.0", "requestId": "req-9"},
                ),
                (
                    "async",
                    "1.0/actions/action",
                    {"name": "m:a", "args": {}, "version": "1.48.0", "requestId": "req-9"},
                ),
            ],
        )
        self.assertFalse(hasattr(ctx, "db"))

    def test_registered_function_references(self) -> None:
        fake = RecordingSyscalls({"1.0/runUdf": None})
        ctx = MutationCtx(Invocation(fake))
        fn = mutation(lambda ctx, args: None)
        self.assertRaises(ValueError, ctx.run_mutation, fn)
        fn.path = "dir/mod:send"
        ctx.run_mutation(fn, {})
        self.assertEqual(fake.args_of("1.0/runUdf")[0]["name"], "dir/mod:send")
        # The wrong kind of function is refused before any syscall.
        q = query(lambda ctx, args: None)
        q.path = "m:q"
        self.assertRaises(TypeError, ctx.run_mutation, q)
        self.assertRaises(TypeError, ActionCtx(Invocation(fake)).run_query, action(lambda c: 1))
        self.assertEqual(len(fake.calls), 1)

    def test_function_handles_and_names(self) -> None:
        fake = RecordingSyscalls({"1.0/actions/action": None})
        ActionCtx(Invocation(fake)).run_action("function://abc")
        self.assertEqual(fake.args_of("1.0/actions/action")[0]["functionHandle"], "function://abc")
        self.assertNotIn("name", fake.args_of("1.0/actions/action")[0])
        self.assertEqual(canonical_function_name("dir/mod"), "dir/mod:default")
        self.assertEqual(canonical_function_name("dir/mod.py:f"), "dir/mod:f")
        self.assertEqual(canonical_function_name("mod:f"), "mod:f")
        self.assertRaises(ValueError, canonical_function_name, ":f")
        self.assertRaises(TypeError, ActionCtx(Invocation(fake)).run_action, 3)

    def test_args_must_be_a_dict(self) -> None:
        ctx = QueryCtx(Invocation(RecordingSyscalls()))
        self.assertRaises(TypeError, ctx.run_query, "m:q", [1])


class ErrorTests(SynchronousTestCase):
    def test_convex_error_from_syscall(self) -> None:
        fake = RecordingSyscalls(
            {"1.0/runUdf": SyscallError("Uncaught ConvexError: boom", {"code": 42, "big": ONE})}
        )
        ctx = QueryCtx(Invocation(fake))
        e = self.assertRaises(ConvexError, ctx.run_query, "m:q")
        self.assertEqual(e.data, {"code": 42.0, "big": Int64(1)})
        self.assertEqual(str(e), "Uncaught ConvexError: boom")
        self.assertEqual(e.message, "Uncaught ConvexError: boom")

    def test_convex_error_with_null_data(self) -> None:
        fake = RecordingSyscalls({"1.0/actions/query": SyscallError("x", None, has_data=True)})
        e = self.assertRaises(ConvexError, ActionCtx(Invocation(fake)).run_query, "m:q")
        self.assertIsNone(e.data)

    def test_plain_error_from_syscall(self) -> None:
        fake = RecordingSyscalls({"1.0/get": SyscallError("Table not found")})
        e = self.assertRaises(ConvexFunctionError, QueryCtx(Invocation(fake)).db.get, "x")
        self.assertEqual(str(e), "Table not found")
        self.assertNotIsInstance(e, ConvexError)

    def test_convex_error_message(self) -> None:
        self.assertEqual(str(ConvexError("msg")), "msg")
        self.assertEqual(str(ConvexError({"a": 1, "n": Int64(5)})), '{"a":1,"n":"5n"}')
        self.assertEqual(ConvexError({"a": 1}).data, {"a": 1})

    def test_ctx_is_dead_after_the_call(self) -> None:
        fake = RecordingSyscalls({"1.0/get": None})
        invocation = Invocation(fake)
        ctx = MutationCtx(invocation)
        invocation.finish()
        self.assertRaises(RuntimeError, ctx.db.get, "x")
        self.assertEqual(fake.calls, [])


class AuthTests(SynchronousTestCase):
    def test_get_user_identity(self) -> None:
        identity = {"tokenIdentifier": "iss|sub", "subject": "sub", "issuer": "iss"}
        fake = RecordingSyscalls({"1.0/getUserIdentity": [identity, None]})
        self.assertEqual(ActionCtx(Invocation(fake, "r")).auth.get_user_identity(), identity)
        self.assertIsNone(QueryCtx(Invocation(fake)).auth.get_user_identity())
        self.assertEqual(
            fake.calls,
            [
                ("async", "1.0/getUserIdentity", {"requestId": "r"}),
                ("async", "1.0/getUserIdentity", {"requestId": ""}),
            ],
        )
