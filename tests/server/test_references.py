"""``api``/``internal`` references: names, errors, and their use by ``ctx.run_*``."""

from __future__ import annotations

import copy
import pickle

from twisted.trial.unittest import SynchronousTestCase

from convex_backend.server import (
    FunctionReference,
    api,
    get_function_name,
    internal,
    mutation,
    query,
)
from convex_backend.server._syscalls import Invocation
from convex_backend.server.context import ActionCtx, MutationCtx, QueryCtx, function_address
from tests.server.fakes import RecordingSyscalls


class ReferenceTests(SynchronousTestCase):
    def test_paths(self) -> None:
        self.assertEqual(get_function_name(api.messages.send), "messages:send")
        self.assertEqual(get_function_name(internal.messages.send), "messages:send")
        self.assertEqual(get_function_name(api.folder.file.fn), "folder/file:fn")
        self.assertEqual(get_function_name(api.a.b.c.d), "a/b/c:d")
        self.assertEqual(get_function_name(api["my-module"].send), "my-module:send")
        self.assertEqual(get_function_name(api.messages.default), "messages:default")
        self.assertEqual(api.messages.send.__convex_path__, "messages:send")

    def test_strings_and_registered_functions(self) -> None:
        self.assertEqual(get_function_name("messages"), "messages:default")
        self.assertEqual(get_function_name("dir/messages.py:send"), "dir/messages:send")

        @query
        def count(ctx):
            return 0

        with self.assertRaisesRegex(ValueError, "no path yet"):
            get_function_name(count)
        count.path = "counts:count"
        self.assertEqual(get_function_name(count), "counts:count")
        with self.assertRaises(TypeError):
            get_function_name(42)

    def test_incomplete_and_private_names(self) -> None:
        for ref, shown in ((api, "api"), (internal.messages, "internal.messages")):
            with self.assertRaisesRegex(ValueError, f"{shown} is not a function reference"):
                get_function_name(ref)
        with self.assertRaises(AttributeError):
            api.messages._private  # noqa: B018
        with self.assertRaises(AttributeError):
            api.__wrapped__  # noqa: B018
        for bad in ("", "a/b", "a:b", 5):
            with self.assertRaises(KeyError):
                api[bad]
        with self.assertRaisesRegex(TypeError, "cannot be called directly"):
            api.messages.send({"x": 1})

    def test_value_semantics(self) -> None:
        self.assertEqual(api.messages.send, api.messages.send)
        self.assertNotEqual(api.messages.send, internal.messages.send)
        self.assertNotEqual(api.messages.send, api.messages.list)
        self.assertEqual(len({api.m.f, api.m.f, internal.m.f}), 2)
        self.assertIsInstance(api.m.f, FunctionReference)
        self.assertEqual(repr(internal.dir.m.f), "<FunctionReference internal.dir.m.f>")
        # copy and pickle see plain objects (no magic attributes are invented).
        self.assertEqual(copy.copy(api.m.f), api.m.f)
        self.assertEqual(pickle.loads(pickle.dumps(api.m.f)), api.m.f)

    def test_function_address(self) -> None:
        self.assertEqual(function_address(api.dir.m.f, "query"), {"name": "dir/m:f"})
        self.assertEqual(function_address(internal.m.f, None), {"name": "m:f"})

        @mutation
        def send(ctx):
            return None

        send.path = "m:send"
        self.assertEqual(function_address(send, None), {"name": "m:send"})
        with self.assertRaisesRegex(TypeError, "is a mutation, not a query"):
            function_address(send, "query")


class RunWithReferencesTests(SynchronousTestCase):
    def test_ctx_run_calls_accept_references(self) -> None:
        syscalls = RecordingSyscalls(
            {"1.0/runUdf": 7.0, "1.0/actions/query": 1.0, "1.0/actions/mutation": 2.0}
        )
        invocation = Invocation(syscalls, "req-1")
        self.assertEqual(QueryCtx(invocation).run_query(api.m.q, {"a": 1}), 7.0)
        self.assertEqual(MutationCtx(invocation).run_mutation(internal.dir.m.mut), 7.0)
        action = ActionCtx(invocation)
        self.assertEqual(action.run_query(api.m.q), 1.0)
        self.assertEqual(action.run_mutation(internal.m.mut, {"n": 2}), 2.0)
        self.assertEqual(
            syscalls.args_of("1.0/runUdf"),
            [
                {"udfType": "query", "args": {"a": 1}, "name": "m:q"},
                {"udfType": "mutation", "args": {}, "name": "dir/m:mut"},
            ],
        )
        [mutation_call] = syscalls.args_of("1.0/actions/mutation")
        self.assertEqual(mutation_call["name"], "m:mut")
        self.assertEqual(mutation_call["requestId"], "req-1")
