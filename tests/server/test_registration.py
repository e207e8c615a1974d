"""Registration metadata of ``query``/``mutation``/``action``/``http_action``."""

from __future__ import annotations

import inspect

from twisted.trial.unittest import SynchronousTestCase

from convex_backend.server import (
    RegisteredFunction,
    action,
    http_action,
    internal_action,
    internal_mutation,
    internal_query,
    mutation,
    query,
    v,
)


@query
def bare(ctx, args):
    return 1


@internal_mutation(args={"body": v.string()}, returns=v.null())
def with_validators(ctx, args):
    return None


def _lambda_handler(ctx):
    return "only ctx"


object_style = action(args=v.object({"n": v.number()}), handler=_lambda_handler)


class RegistrationTests(SynchronousTestCase):
    def test_types_and_visibility(self) -> None:
        handler = lambda ctx, args: None  # noqa: E731
        cases = [
            (query, "query", "public"),
            (mutation, "mutation", "public"),
            (action, "action", "public"),
            (internal_query, "query", "internal"),
            (internal_mutation, "mutation", "internal"),
            (internal_action, "action", "internal"),
        ]
        for register, udf_type, visibility in cases:
            for fn in (register(handler), register()(handler), register(handler=handler)):
                self.assertIsInstance(fn, RegisteredFunction)
                self.assertEqual((fn.udf_type, fn.visibility), (udf_type, visibility))
                self.assertIs(fn.handler, handler)
                self.assertIsNone(fn.path)

    def test_bare_decorator(self) -> None:
        self.assertEqual(bare.udf_type, "query")
        self.assertEqual(bare.args_json(), {"type": "any"})
        self.assertIsNone(bare.returns_json())
        self.assertEqual(bare.__name__, "bare")

    def test_validators(self) -> None:
        self.assertEqual(
            with_validators.args_json(),
            {
                "type": "object",
                "value": {"body": {"fieldType": {"type": "string"}, "optional": False}},
            },
        )
        self.assertEqual(with_validators.returns_json(), {"type": "null"})
        self.assertEqual(
            object_style.args_json(),
            {
                "type": "object",
                "value": {"n": {"fieldType": {"type": "number"}, "optional": False}},
            },
        )

    def test_line(self) -> None:
        # The first line of the handler's source (its decorator, if any).
        _, first = inspect.getsourcelines(bare.handler)
        self.assertEqual(bare.line, first)
        self.assertEqual(object_style.line, inspect.getsourcelines(_lambda_handler)[1])

    def test_path_is_settable(self) -> None:
        fn = query(lambda ctx, args: None)
        fn.path = "dir/mod:name"
        self.assertEqual(fn.path, "dir/mod:name")
        self.assertIn("dir/mod:name", repr(fn))

    def test_handler_arity(self) -> None:
        self.assertEqual(object_style.call_handler("ctx", {"n": 1.0}), "only ctx")
        self.assertEqual(query(lambda ctx, args: args).call_handler("ctx", {"a": 1}), {"a": 1})
        self.assertEqual(query(lambda *a: a).call_handler("ctx", {}), ("ctx", {}))

    def test_direct_call_is_refused(self) -> None:
        e = self.assertRaises(TypeError, bare, None, {})
        self.assertIn("cannot be called directly", str(e))
        self.assertIn("run_query", str(e))

    def test_http_action(self) -> None:
        @http_action
        def handler(ctx, request):
            return None

        self.assertEqual(handler.udf_type, "httpAction")
        self.assertIsNone(handler.visibility)
        self.assertIsNone(handler.args_json())
        self.assertIsNone(handler.returns_json())

    def test_bad_registrations(self) -> None:
        self.assertRaises(TypeError, query, args=[v.string()])
        self.assertRaises(TypeError, query, returns={"a": v.string()})
        self.assertRaises(TypeError, query, args={"a": "string"})
        self.assertRaises(TypeError, query, 3)
        self.assertRaises(TypeError, mutation, bare)
        self.assertRaises(TypeError, query, lambda c, a: 1, handler=lambda c, a: 2)
        self.assertRaises(TypeError, query, handlr=lambda c, a: 2)
