"""The serialized query JSON (``reference/server-syscalls.md`` §4) and how
queries run over ``queryStream``/``queryStreamNext``/``queryCleanup``/``queryPage``."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from convex_backend.server import UNDEFINED, Int64
from convex_backend.server._syscalls import Invocation
from convex_backend.server.context import MutationCtx, QueryCtx
from tests.server.fakes import RecordingSyscalls, batches

BIG_5 = {"$integer": "BQAAAAAAAAA="}


def doc(n: int) -> dict:
    return {"_id": f"id{n}", "_creationTime": float(n), "n": n}


def query_ctx(answers: dict | None = None) -> tuple[QueryCtx, RecordingSyscalls]:
    fake = RecordingSyscalls(answers)
    return QueryCtx(Invocation(fake)), fake


def streamed_query(fake: RecordingSyscalls) -> dict:
    """The query of the one ``queryStream`` call."""
    [args] = fake.args_of("1.0/queryStream")
    return args["query"]


class QueryJsonTests(SynchronousTestCase):
    def test_captured_example(self) -> None:
        ctx, fake = query_ctx({"1.0/queryStreamNext": batches([doc(1)])})
        rows = (
            ctx.db.query("messages")
            .with_index(
                "by_author",
                lambda q: q.eq("author", "bob").gt("_creationTime", 5).lte("_creationTime", 100),
            )
            .order("desc")
            .filter(
                lambda q: q.and_(
                    q.eq(q.field("deleted"), False),
                    q.neq(q.field("author"), None),
                    q.lte(q.field("big"), Int64(5)),
                )
            )
            .take(2)
        )
        self.assertEqual(rows, [doc(1)])
        self.assertEqual(
            fake.calls[0],
            (
                "sync",
                "1.0/queryStream",
                {
                    "query": {
                        "source": {
                            "type": "IndexRange",
                            "indexName": "messages.by_author",
                            "range": [
                                {"type": "Eq", "fieldPath": "author", "value": "bob"},
                                {"type": "Gt", "fieldPath": "_creationTime", "value": 5},
                                {"type": "Lte", "fieldPath": "_creationTime", "value": 100},
                            ],
                            "order": "desc",
                        },
                        "operators": [
                            {
                                "filter": {
                                    "$and": [
                                        {"$eq": [{"$field": "deleted"}, {"$literal": False}]},
                                        {"$neq": [{"$field": "author"}, {"$literal": None}]},
                                        {"$lte": [{"$field": "big"}, {"$literal": BIG_5}]},
                                    ]
                                }
                            },
                            {"limit": 2},
                        ],
                    },
                    "version": "1.48.0",
                },
            ),
        )
        self.assertEqual(
            fake.calls[1:],
            [
                ("async", "1.0/queryStreamNext", {"queryId": 0, "maxRows": 100}),
                ("sync", "1.0/queryCleanup", {"queryId": 0}),
            ],
        )

    def test_full_table_scan(self) -> None:
        ctx, fake = query_ctx({"1.0/queryStreamNext": batches([])})
        self.assertEqual(ctx.db.query("messages").collect(), [])
        self.assertEqual(
            streamed_query(fake),
            {
                "source": {"type": "FullTableScan", "tableName": "messages", "order": None},
                "operators": [],
            },
        )

    def test_with_index_without_range(self) -> None:
        ctx, fake = query_ctx({"1.0/queryStreamNext": batches([])})
        ctx.db.query("messages").with_index("by_creation_time").order("asc").collect()
        self.assertEqual(
            streamed_query(fake)["source"],
            {
                "type": "IndexRange",
                "indexName": "messages.by_creation_time",
                "range": [],
                "order": "asc",
            },
        )

    def test_range_operators_and_undefined(self) -> None:
        ctx, fake = query_ctx({"1.0/queryStreamNext": batches([])})
        ctx.db.query("t").with_index(
            "i", lambda q: q.eq("a", UNDEFINED).gte("b", b"\x01").lt("b", [1, "x"])
        ).collect()
        self.assertEqual(
            streamed_query(fake)["source"]["range"],
            [
                {"type": "Eq", "fieldPath": "a", "value": {"$undefined": None}},
                {"type": "Gte", "fieldPath": "b", "value": {"$bytes": "AQ=="}},
                {"type": "Lt", "fieldPath": "b", "value": [1.0, "x"]},
            ],
        )

    def test_every_filter_operator(self) -> None:
        ctx, fake = query_ctx({"1.0/queryStreamNext": batches([])})
        f = {"$field": "a.b"}

        def lit(x):
            return {"$literal": x}

        ctx.db.query("t").filter(
            lambda q: q.or_(
                q.eq(q.field("a.b"), 1),
                q.neq(q.field("a.b"), 1),
                q.lt(q.field("a.b"), 1),
                q.lte(q.field("a.b"), 1),
                q.gt(q.field("a.b"), 1),
                q.gte(q.field("a.b"), 1),
                q.eq(q.add(q.field("a.b"), 1), q.sub(2, q.field("a.b"))),
                q.eq(q.mul(q.field("a.b"), 3), q.div(q.field("a.b"), 4)),
                q.eq(q.mod(q.field("a.b"), 5), q.neg(q.field("a.b"))),
                q.not_(q.eq(q.field("a.b"), UNDEFINED)),
                q.and_(),
            )
        ).collect()
        self.assertEqual(
            streamed_query(fake)["operators"],
            [
                {
                    "filter": {
                        "$or": [
                            {"$eq": [f, lit(1)]},
                            {"$neq": [f, lit(1)]},
                            {"$lt": [f, lit(1)]},
                            {"$lte": [f, lit(1)]},
                            {"$gt": [f, lit(1)]},
                            {"$gte": [f, lit(1)]},
                            {"$eq": [{"$add": [f, lit(1)]}, {"$sub": [lit(2), f]}]},
                            {"$eq": [{"$mul": [f, lit(3)]}, {"$div": [f, lit(4)]}]},
                            {"$eq": [{"$mod": [f, lit(5)]}, {"$neg": f}]},
                            {"$not": {"$eq": [f, lit({"$undefined": None})]}},
                            {"$and": []},
                        ]
                    }
                }
            ],
        )

    def test_filters_in_call_order_and_literal_predicate(self) -> None:
        ctx, fake = query_ctx({"1.0/queryStreamNext": batches([])})
        ctx.db.query("t").filter(lambda q: True).limit(3).filter(
            lambda q: q.eq(q.field("x"), "y")
        ).collect()
        self.assertEqual(
            streamed_query(fake)["operators"],
            [
                {"filter": {"$literal": True}},
                {"limit": 3},
                {"filter": {"$eq": [{"$field": "x"}, {"$literal": "y"}]}},
            ],
        )

    def test_python_boolean_operators_are_refused(self) -> None:
        ctx, _ = query_ctx()
        e = self.assertRaises(
            TypeError,
            ctx.db.query("t").filter,
            lambda q: q.eq(q.field("a"), 1) and q.eq(q.field("b"), 2),
        )
        self.assertIn("and_", str(e))

    def test_first_and_unique_limits(self) -> None:
        ctx, fake = query_ctx({"1.0/queryStreamNext": batches([doc(1)])})
        self.assertEqual(ctx.db.query("t").first(), doc(1))
        self.assertEqual(streamed_query(fake)["operators"], [{"limit": 1}])

        ctx, fake = query_ctx({"1.0/queryStreamNext": batches([])})
        self.assertIsNone(ctx.db.query("t").first())

        ctx, fake = query_ctx({"1.0/queryStreamNext": batches([doc(1)])})
        self.assertEqual(ctx.db.query("t").unique(), doc(1))
        self.assertEqual(streamed_query(fake)["operators"], [{"limit": 2}])

        ctx, fake = query_ctx({"1.0/queryStreamNext": batches([])})
        self.assertIsNone(ctx.db.query("t").unique())

    def test_unique_raises_on_two(self) -> None:
        ctx, fake = query_ctx({"1.0/queryStreamNext": batches([doc(1), doc(2)])})
        e = self.assertRaises(ValueError, ctx.db.query("messages").unique)
        self.assertIn("more than one result from table messages", str(e))
        self.assertIn("id1, id2", str(e))
        self.assertEqual(fake.ops()[-1], "1.0/queryCleanup")

    def test_take_validation(self) -> None:
        ctx, _ = query_ctx()
        self.assertRaises(ValueError, ctx.db.query("t").take, -1)
        self.assertRaises(ValueError, ctx.db.query("t").take, 1.5)
        self.assertRaises(TypeError, ctx.db.query("t").take, "3")
        self.assertRaises(TypeError, ctx.db.query("t").take, True)

    def test_take_zero(self) -> None:
        ctx, fake = query_ctx({"1.0/queryStreamNext": batches([])})
        self.assertEqual(ctx.db.query("t").take(0), [])
        self.assertEqual(streamed_query(fake)["operators"], [{"limit": 0}])

    def test_order_rules(self) -> None:
        ctx, _ = query_ctx()
        e = self.assertRaises(ValueError, ctx.db.query("t").order("asc").order, "desc")
        self.assertIn("at most once", str(e))
        self.assertRaises(ValueError, ctx.db.query("t").order, "up")

    def test_search_query(self) -> None:
        ctx, fake = query_ctx({"1.0/queryStreamNext": batches([])})
        ctx.db.query("messages").with_search_index(
            "search_body", lambda q: q.search("body", "hello world").eq("channel", "general")
        ).take(5)
        self.assertEqual(
            streamed_query(fake),
            {
                "source": {
                    "type": "Search",
                    "indexName": "messages.search_body",
                    "filters": [
                        {"type": "Search", "fieldPath": "body", "value": "hello world"},
                        {"type": "Eq", "fieldPath": "channel", "value": "general"},
                    ],
                },
                "operators": [{"limit": 5}],
            },
        )
        search = ctx.db.query("m").with_search_index("s", lambda q: q.search("b", "x"))
        self.assertRaises(ValueError, search.order, "desc")
        self.assertRaises(
            RuntimeError, ctx.db.query("m").with_search_index, "s", lambda q: q.eq("a", 1)
        )

    def test_range_builder_must_be_chained(self) -> None:
        ctx, _ = query_ctx()

        def unchained(q):
            q.eq("a", 1)
            return q.eq("b", 2)

        self.assertRaises(RuntimeError, ctx.db.query("t").with_index, "i", unchained)
        self.assertRaises(TypeError, ctx.db.query("t").with_index, "i", lambda q: None)

    def test_too_many_operators(self) -> None:
        ctx, _ = query_ctx()
        query = ctx.db.query("t").full_table_scan()
        for _ in range(256):
            query = query.limit(1)
        self.assertRaises(ValueError, query.limit, 1)


class QueryExecutionTests(SynchronousTestCase):
    def test_batches_are_decoded_and_concatenated(self) -> None:
        big = {"_id": "x", "_creationTime": 1.0, "big": {"$integer": "AQAAAAAAAAA="}}
        ctx, fake = query_ctx({"1.0/queryStreamNext": batches([doc(1), doc(2)], [], [big])})
        rows = ctx.db.query("t").collect()
        self.assertEqual(
            rows, [doc(1), doc(2), {"_id": "x", "_creationTime": 1.0, "big": Int64(1)}]
        )
        self.assertEqual(
            fake.ops(),
            ["1.0/queryStream"] + ["1.0/queryStreamNext"] * 3 + ["1.0/queryCleanup"],
        )

    def test_one_row_answers_are_understood(self) -> None:
        ctx, _ = query_ctx(
            {
                "1.0/queryStreamNext": [
                    {"value": doc(1), "done": False},
                    {"value": None, "done": True},
                ]
            }
        )
        self.assertEqual(ctx.db.query("t").collect(), [doc(1)])

    def test_iteration_and_break_clean_up(self) -> None:
        ctx, fake = query_ctx({"1.0/queryStreamNext": batches([doc(1), doc(2)], [doc(3)])})
        seen = []
        for row in ctx.db.query("t").with_index("by_n"):
            seen.append(row)
            break
        self.assertEqual(seen, [doc(1)])
        self.assertEqual(fake.ops(), ["1.0/queryStream", "1.0/queryStreamNext", "1.0/queryCleanup"])

    def test_iterating_the_initializer(self) -> None:
        ctx, _ = query_ctx({"1.0/queryStreamNext": batches([doc(1)])})
        self.assertEqual(list(ctx.db.query("t")), [doc(1)])

    def test_take_cuts_even_if_the_host_does_not(self) -> None:
        ctx, fake = query_ctx({"1.0/queryStreamNext": batches([doc(1), doc(2), doc(3)], [doc(4)])})
        self.assertEqual(ctx.db.query("t").take(2), [doc(1), doc(2)])
        self.assertEqual(fake.ops()[-1], "1.0/queryCleanup")
        self.assertEqual(fake.ops().count("1.0/queryStreamNext"), 1)

    def test_take_stops_at_n_without_fetching_more(self) -> None:
        ctx, fake = query_ctx({"1.0/queryStreamNext": batches([doc(1), doc(2)], [doc(3)])})
        self.assertEqual(ctx.db.query("t").take(2), [doc(1), doc(2)])
        self.assertEqual(fake.ops().count("1.0/queryStreamNext"), 1)

    def test_query_used_once(self) -> None:
        ctx, _ = query_ctx({"1.0/queryStreamNext": batches([])})
        query = ctx.db.query("t").full_table_scan()
        query.filter(lambda q: True)
        self.assertRaises(RuntimeError, query.collect)
        query = ctx.db.query("t").order("desc")
        query.collect()
        self.assertRaises(RuntimeError, query.order, "asc")
        self.assertRaises(RuntimeError, iter, query)

    def test_initializer_is_reusable(self) -> None:
        ctx, _ = query_ctx({"1.0/queryStreamNext": batches([]), "1.0/count": 0})
        initializer = ctx.db.query("t")
        initializer.filter(lambda q: True)
        initializer.order("desc")
        initializer.collect()

    def test_streams_left_open_are_cleaned_at_the_end(self) -> None:
        fake = RecordingSyscalls({"1.0/queryStreamNext": batches([doc(1)], [doc(2)])})
        invocation = Invocation(fake)
        rows = iter(QueryCtx(invocation).db.query("t"))
        self.assertEqual(next(rows), doc(1))
        invocation.finish()
        self.assertEqual(fake.ops()[-1], "1.0/queryCleanup")
        del rows  # closing the generator now must not send anything
        self.assertEqual(fake.ops().count("1.0/queryCleanup"), 1)

    def test_count(self) -> None:
        ctx, fake = query_ctx({"1.0/count": 7})
        self.assertEqual(ctx.db.query("messages").count(), 7.0)
        self.assertEqual(fake.calls, [("async", "1.0/count", {"table": "messages"})])


class PaginateTests(SynchronousTestCase):
    page_answer = {
        "page": [doc(1), {"_id": "b", "_creationTime": 2.0, "x": {"$bytes": "AQ=="}}],
        "isDone": False,
        "continueCursor": "c1",
        "splitCursor": None,
        "pageStatus": None,
    }

    def test_paginate(self) -> None:
        ctx, fake = query_ctx({"1.0/queryPage": self.page_answer})
        result = (
            ctx.db.query("messages")
            .with_index("by_channel", lambda q: q.eq("channel", "general"))
            .order("desc")
            .paginate({"numItems": 10.0, "cursor": None})
        )
        self.assertEqual(
            result,
            {
                "page": [doc(1), {"_id": "b", "_creationTime": 2.0, "x": b"\x01"}],
                "isDone": False,
                "continueCursor": "c1",
                "splitCursor": None,
                "pageStatus": None,
            },
        )
        self.assertEqual(
            fake.calls,
            [
                (
                    "async",
                    "1.0/queryPage",
                    {
                        "query": {
                            "source": {
                                "type": "IndexRange",
                                "indexName": "messages.by_channel",
                                "range": [
                                    {"type": "Eq", "fieldPath": "channel", "value": "general"}
                                ],
                                "order": "desc",
                            },
                            "operators": [],
                        },
                        "cursor": None,
                        "endCursor": None,
                        "pageSize": 10,
                        "maximumRowsRead": None,
                        "version": "1.48.0",
                    },
                )
            ],
        )
        # maximumBytesRead is left out when unset.
        self.assertNotIn("maximumBytesRead", fake.calls[0][2])

    def test_paginate_all_options(self) -> None:
        ctx, fake = query_ctx({"1.0/queryPage": self.page_answer})
        ctx.db.query("t").paginate(
            {
                "numItems": 5,
                "cursor": "c0",
                "endCursor": "c9",
                "maximumRowsRead": 100.0,
                "maximumBytesRead": 2000.0,
                "id": 3.0,
            }
        )
        [args] = fake.args_of("1.0/queryPage")
        self.assertEqual(
            {k: args[k] for k in args if k != "query"},
            {
                "cursor": "c0",
                "endCursor": "c9",
                "pageSize": 5,
                "maximumRowsRead": 100,
                "maximumBytesRead": 2000,
                "version": "1.48.0",
            },
        )

    def test_paginate_validation(self) -> None:
        ctx, fake = query_ctx()
        self.assertRaises(ValueError, ctx.db.query("t").paginate, {"numItems": -1, "cursor": None})
        self.assertRaises(ValueError, ctx.db.query("t").paginate, {"cursor": None})
        self.assertRaises(TypeError, ctx.db.query("t").paginate, 10)
        self.assertEqual(fake.calls, [])


class MutationQueryTests(SynchronousTestCase):
    def test_mutations_query_too(self) -> None:
        fake = RecordingSyscalls({"1.0/queryStreamNext": batches([doc(1)])})
        ctx = MutationCtx(Invocation(fake))
        self.assertEqual(ctx.db.query("t").first(), doc(1))
