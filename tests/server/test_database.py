"""``ctx.db`` syscall shapes: get, normalize_id, insert, patch, replace, delete,
and the ``db`` versus ``db.system`` rule."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from convex_backend.server import UNDEFINED, Int64
from convex_backend.server._syscalls import Invocation
from convex_backend.server.context import MutationCtx, QueryCtx
from convex_backend.values import ConvexValueError
from tests.server.fakes import RecordingSyscalls

DOC = {"_id": "abc", "_creationTime": 1.5, "n": {"$integer": "AQAAAAAAAAA="}}


def mutation_ctx(answers: dict | None = None) -> tuple[MutationCtx, RecordingSyscalls]:
    fake = RecordingSyscalls(answers)
    return MutationCtx(Invocation(fake)), fake


class ReaderTests(SynchronousTestCase):
    def test_get(self) -> None:
        fake = RecordingSyscalls({"1.0/get": DOC})
        ctx = QueryCtx(Invocation(fake))
        self.assertEqual(ctx.db.get("abc"), {"_id": "abc", "_creationTime": 1.5, "n": Int64(1)})
        self.assertEqual(ctx.db.get("messages", "abc")["_id"], "abc")
        self.assertEqual(
            fake.calls,
            [
                ("async", "1.0/get", {"id": "abc", "isSystem": False, "version": "1.48.0"}),
                (
                    "async",
                    "1.0/get",
                    {"id": "abc", "isSystem": False, "version": "1.48.0", "table": "messages"},
                ),
            ],
        )

    def test_get_missing(self) -> None:
        fake = RecordingSyscalls({"1.0/get": None})
        self.assertIsNone(QueryCtx(Invocation(fake)).db.get("abc"))

    def test_get_needs_string_id(self) -> None:
        ctx = QueryCtx(Invocation(RecordingSyscalls()))
        self.assertRaises(TypeError, ctx.db.get, 3)
        self.assertRaises(TypeError, ctx.db.get, "t", None)

    def test_system_get(self) -> None:
        fake = RecordingSyscalls({"1.0/get": None})
        ctx = QueryCtx(Invocation(fake))
        ctx.db.system.get("sid")
        ctx.db.system.get("_storage", "sid")
        self.assertEqual(
            fake.args_of("1.0/get"),
            [
                {"id": "sid", "isSystem": True, "version": "1.48.0"},
                {"id": "sid", "isSystem": True, "version": "1.48.0", "table": "_storage"},
            ],
        )

    def test_system_table_rule(self) -> None:
        fake = RecordingSyscalls()
        ctx = QueryCtx(Invocation(fake))
        self.assertRaises(ValueError, ctx.db.query, "_storage")
        self.assertRaises(ValueError, ctx.db.get, "_storage", "x")
        self.assertRaises(ValueError, ctx.db.normalize_id, "_storage", "x")
        self.assertRaises(ValueError, ctx.db.system.query, "messages")
        self.assertRaises(ValueError, ctx.db.system.get, "messages", "x")
        self.assertRaises(ValueError, ctx.db.system.normalize_id, "messages", "x")
        self.assertEqual(fake.calls, [])

    def test_normalize_id(self) -> None:
        fake = RecordingSyscalls({"1.0/db/normalizeId": [{"id": "canon"}, {"id": None}]})
        ctx = QueryCtx(Invocation(fake))
        self.assertEqual(ctx.db.normalize_id("messages", "raw"), "canon")
        self.assertIsNone(ctx.db.system.normalize_id("_storage", "raw"))
        self.assertEqual(
            fake.calls,
            [
                ("sync", "1.0/db/normalizeId", {"table": "messages", "idString": "raw"}),
                ("sync", "1.0/db/normalizeId", {"table": "_storage", "idString": "raw"}),
            ],
        )

    def test_query_ctx_db_is_read_only(self) -> None:
        ctx = QueryCtx(Invocation(RecordingSyscalls()))
        for name in ("insert", "patch", "replace", "delete"):
            self.assertFalse(hasattr(ctx.db, name), name)

    def test_table_reader(self) -> None:
        fake = RecordingSyscalls({"1.0/get": None})
        ctx = QueryCtx(Invocation(fake))
        ctx.db.table("messages").get("abc")
        self.assertEqual(fake.args_of("1.0/get")[0]["table"], "messages")
        self.assertFalse(hasattr(ctx.db.table("messages"), "insert"))


class WriterTests(SynchronousTestCase):
    def test_insert(self) -> None:
        ctx, fake = mutation_ctx({"1.0/insert": {"_id": "new"}})
        new_id = ctx.db.insert(
            "messages", {"body": "hi", "n": 3, "big": Int64(1), "gone": UNDEFINED}
        )
        self.assertEqual(new_id, "new")
        self.assertEqual(
            fake.calls,
            [
                (
                    "async",
                    "1.0/insert",
                    {
                        "table": "messages",
                        "value": {"big": {"$integer": "AQAAAAAAAAA="}, "body": "hi", "n": 3.0},
                    },
                )
            ],
        )

    def test_insert_checks(self) -> None:
        ctx, fake = mutation_ctx()
        e = self.assertRaises(ValueError, ctx.db.insert, "_storage", {})
        self.assertIn("read-only", str(e))
        self.assertRaises(TypeError, ctx.db.insert, "t", [1])
        self.assertRaises(ConvexValueError, ctx.db.insert, "t", {"$bad": 1})
        self.assertRaises(ConvexValueError, ctx.db.insert, "t", {"a": object()})
        self.assertEqual(fake.calls, [])

    def test_patch(self) -> None:
        ctx, fake = mutation_ctx({"1.0/shallowMerge": None})
        self.assertIsNone(ctx.db.patch("abc", {"z": 1, "draft": UNDEFINED, "a": [1, (2,)]}))
        ctx.db.patch("messages", "abc", {"body": "x"})
        calls = fake.args_of("1.0/shallowMerge")
        self.assertEqual(
            calls,
            [
                {
                    "id": "abc",
                    "value": {"a": [1.0, [2.0]], "draft": {"$undefined": None}, "z": 1.0},
                },
                {"id": "abc", "value": {"body": "x"}, "table": "messages"},
            ],
        )
        # Keys come out sorted, as convexToJson does.
        self.assertEqual(list(calls[0]["value"]), ["a", "draft", "z"])

    def test_patch_checks_removed_field_names(self) -> None:
        ctx, _ = mutation_ctx()
        self.assertRaises(ConvexValueError, ctx.db.patch, "abc", {"$x": UNDEFINED})
        self.assertRaises(TypeError, ctx.db.patch, "abc", "not a dict")

    def test_replace(self) -> None:
        ctx, fake = mutation_ctx({"1.0/replace": None})
        ctx.db.replace("abc", {"body": "new"})
        ctx.db.replace("messages", "abc", {"body": "newer"})
        self.assertEqual(
            fake.args_of("1.0/replace"),
            [
                {"id": "abc", "value": {"body": "new"}},
                {"id": "abc", "value": {"body": "newer"}, "table": "messages"},
            ],
        )
        self.assertRaises(ConvexValueError, ctx.db.replace, "abc", {"a": UNDEFINED, "b": {1: 2}})

    def test_delete(self) -> None:
        ctx, fake = mutation_ctx({"1.0/remove": None})
        ctx.db.delete("abc")
        ctx.db.delete("messages", "abc")
        self.assertEqual(
            fake.calls,
            [
                ("async", "1.0/remove", {"id": "abc"}),
                ("async", "1.0/remove", {"id": "abc", "table": "messages"}),
            ],
        )
        self.assertRaises(TypeError, ctx.db.delete, 5)

    def test_table_writer(self) -> None:
        ctx, fake = mutation_ctx(
            {"1.0/insert": {"_id": "n"}, "1.0/shallowMerge": None, "1.0/remove": None}
        )
        table = ctx.db.table("messages")
        self.assertEqual(table.insert({"a": 1}), "n")
        table.patch("n", {"a": 2})
        table.delete("n")
        self.assertEqual([args.get("table") for _, _, args in fake.calls], ["messages"] * 3)

    def test_mutation_system_is_a_reader(self) -> None:
        ctx, _ = mutation_ctx()
        self.assertFalse(hasattr(ctx.db.system, "insert"))
