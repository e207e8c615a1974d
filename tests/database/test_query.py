"""Tests for convex_backend.database.query: parsing, filters, index ranges."""

from __future__ import annotations

import math
from functools import cmp_to_key
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from convex_backend.database.query import (
    MAX_EXPRESSION_DEPTH,
    MAX_QUERY_OPERATORS,
    Filter,
    FullTableScan,
    IndexRange,
    KeyRange,
    Limit,
    Query,
    QueryError,
    RangeExpr,
    SearchSource,
    field_value,
    index_key,
    index_key_function,
    parse_filter,
    parse_query,
    plan_range,
)
from convex_backend.values import (
    UNDEFINED,
    ConvexValueError,
    Int64,
    compare_values,
    encode_index_key,
    to_json,
)
from convex_backend.values.types import INT64_MAX, INT64_MIN
from tests.values.test_order import float_bits, values

SETTINGS = settings(max_examples=300, deadline=None)
NAN = float("nan")
INF = float("inf")

# The example captured from the 1.48 library (reference/server-syscalls.md §4),
# with the elided middle of the $and filled in.
CAPTURED = {
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
                    {
                        "$neq": [
                            {"$field": "meta.tag"},
                            {"$literal": {"$undefined": None}},
                        ]
                    },
                    {
                        "$lte": [
                            {"$field": "big"},
                            {"$literal": {"$integer": "BQAAAAAAAAA="}},
                        ]
                    },
                ]
            }
        },
        {"limit": 2},
    ],
}


def lit(v: Any) -> dict:
    """A $literal node for a canonical value (UNDEFINED allowed)."""
    if v is UNDEFINED:
        return {"$literal": {"$undefined": None}}
    return {"$literal": to_json(v)}


def field(path: str) -> dict:
    return {"$field": path}


def ev(expr: dict, doc: dict | None = None) -> Any:
    return parse_filter(expr).evaluate(doc or {})


def same(a: Any, b: Any) -> bool:
    """Exact equality: same types, floats bit for bit."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return float_bits(a) == float_bits(b) or (math.isnan(a) and math.isnan(b))
    return a == b


class ParseExampleTests(SynchronousTestCase):
    def test_captured_example(self) -> None:
        q = parse_query(CAPTURED)
        self.assertEqual(
            q.source,
            IndexRange(
                "messages",
                "by_author",
                (
                    RangeExpr("Eq", "author", "bob"),
                    RangeExpr("Gt", "_creationTime", 5.0),
                    RangeExpr("Lte", "_creationTime", 100.0),
                ),
                "desc",
            ),
        )
        self.assertEqual(len(q.operators), 2)
        flt, limit = q.operators
        self.assertIsInstance(flt, Filter)
        self.assertEqual(limit, Limit(2))
        self.assertEqual(q.filters, (flt,))
        good = {"deleted": False, "meta": {"tag": "x"}, "big": Int64(5)}
        self.assertTrue(flt.matches(good))
        self.assertFalse(flt.matches({**good, "deleted": True}))
        self.assertFalse(flt.matches({**good, "meta": {}}))
        self.assertFalse(flt.matches({**good, "big": Int64(6)}))
        # A float sorts after every int64, so it is not <= Int64(5).
        self.assertFalse(flt.matches({**good, "big": 1.0}))

    def test_captured_range_plans(self) -> None:
        q = parse_query(CAPTURED)
        assert isinstance(q.source, IndexRange)
        fields = ["author", "_creationTime", "_id"]
        r = plan_range(fields, q.source.range)
        doc = {"author": "bob", "_creationTime": 50.0, "_id": "x"}
        self.assertIn(index_key(doc, fields), r)
        for t in (5.0, 100.5):
            self.assertNotIn(index_key({**doc, "_creationTime": t}, fields), r)
        self.assertIn(index_key({**doc, "_creationTime": 100.0}, fields), r)
        self.assertNotIn(index_key({**doc, "author": "bobby"}, fields), r)


class ParseSourceTests(SynchronousTestCase):
    def test_full_table_scan_orders(self) -> None:
        for order, expected in ((None, "asc"), ("asc", "asc"), ("desc", "desc")):
            q = parse_query(
                {
                    "source": {
                        "type": "FullTableScan",
                        "tableName": "t",
                        "order": order,
                    },
                    "operators": [],
                }
            )
            self.assertEqual(q.source, FullTableScan("t", expected))
            self.assertEqual(q.operators, ())

    def test_bad_order(self) -> None:
        for order in ("ASC", "relevance", 1, [], True):
            src = {"type": "FullTableScan", "tableName": "t", "order": order}
            e = self.assertRaises(QueryError, parse_query, {"source": src, "operators": []})
            self.assertIn("order", str(e))

    def test_index_range_without_range_items(self) -> None:
        q = parse_query(
            {
                "source": {
                    "type": "IndexRange",
                    "indexName": "t.by_creation_time",
                    "range": [],
                    "order": None,
                },
                "operators": [],
            }
        )
        self.assertEqual(q.source, IndexRange("t", "by_creation_time", (), "asc"))

    def test_undefined_range_value(self) -> None:
        src = {
            "type": "IndexRange",
            "indexName": "t.by_a",
            "range": [{"type": "Eq", "fieldPath": "a", "value": {"$undefined": None}}],
            "order": "asc",
        }
        q = parse_query({"source": src, "operators": []})
        self.assertIs(q.source.range[0].value, UNDEFINED)

    def test_search_source(self) -> None:
        src = {
            "type": "Search",
            "indexName": "msgs.search_body",
            "filters": [
                {"type": "Search", "fieldPath": "body", "value": "hello world"},
                {"type": "Eq", "fieldPath": "channel", "value": "c"},
                {"type": "Eq", "fieldPath": "n", "value": {"$undefined": None}},
            ],
        }
        q = parse_query({"source": src, "operators": [{"limit": 10}]})
        self.assertEqual(
            q.source,
            SearchSource(
                "msgs",
                "search_body",
                "body",
                "hello world",
                (("channel", "c"), ("n", UNDEFINED)),
            ),
        )

    def test_bad_search_sources(self) -> None:
        search = {"type": "Search", "fieldPath": "body", "value": "x"}
        eq = {"type": "Eq", "fieldPath": "c", "value": 1}
        for filters in (
            [],
            [eq],
            [eq, search],
            [search, search],
            [{"type": "Search", "fieldPath": "body", "value": 3}],
            [{"type": "Search", "fieldPath": "body"}],
            [search, {"type": "Gt", "fieldPath": "c", "value": 1}],
            [search, 5],
            "x",
        ):
            src = {"type": "Search", "indexName": "t.s", "filters": filters}
            self.assertRaises(QueryError, parse_query, {"source": src, "operators": []})

    def test_bad_sources(self) -> None:
        def ir(**kw: Any) -> dict:
            src = {"type": "IndexRange", "indexName": "t.i", "range": [], "order": None}
            src.update(kw)
            return src

        cases = [
            None,
            [],
            "FullTableScan",
            {"type": "Nope", "tableName": "t"},
            {"type": ["FullTableScan"]},
            {"tableName": "t"},
            {"type": "FullTableScan"},
            {"type": "FullTableScan", "tableName": 5},
            ir(indexName="noDot"),
            ir(indexName="a.b.c"),
            ir(indexName=".i"),
            ir(indexName="t."),
            ir(indexName=None),
            ir(range=None),
            ir(range={"type": "Eq"}),
            ir(range=[5]),
            ir(range=[{"type": "Between", "fieldPath": "a", "value": 1}]),
            ir(range=[{"type": ["Eq"], "fieldPath": "a", "value": 1}]),
            ir(range=[{"type": "Eq", "fieldPath": 1, "value": 1}]),
            ir(range=[{"type": "Eq", "fieldPath": "a"}]),
            ir(range=[{"type": "Eq", "fieldPath": "a", "value": {"$integer": "x"}}]),
            ir(
                range=[
                    {
                        "type": "Eq",
                        "fieldPath": "a",
                        "value": {"x": {"$undefined": None}},
                    }
                ]
            ),
            ir(range=[{"type": "Eq", "fieldPath": "a", "value": {"$commitTs": None}}]),
        ]
        for src in cases:
            self.assertRaises(QueryError, parse_query, {"source": src, "operators": []})

    def test_bad_top_level(self) -> None:
        src = {"type": "FullTableScan", "tableName": "t", "order": None}
        for q in (None, [], "q", {"operators": []}, {"source": src, "operators": {}}):
            self.assertRaises(QueryError, parse_query, q)

    def test_query_error_is_a_value_error(self) -> None:
        self.assertTrue(issubclass(QueryError, ConvexValueError))


class OperatorTests(SynchronousTestCase):
    def query(self, operators: Any) -> Query:
        src = {"type": "FullTableScan", "tableName": "t", "order": None}
        return parse_query({"source": src, "operators": operators})

    def test_limits(self) -> None:
        for n, expected in ((0, 0), (2, 2), (2.0, 2), (1e3, 1000), (-0.0, 0)):
            self.assertEqual(self.query([{"limit": n}]).operators, (Limit(expected),))
            self.assertIs(type(self.query([{"limit": n}]).operators[0].n), int)

    def test_bad_limits(self) -> None:
        for n in (
            -1,
            -1.0,
            1.5,
            INF,
            NAN,
            True,
            "2",
            None,
            [2],
            {"$integer": "AQAAAAAAAAA="},
        ):
            e = self.assertRaises(QueryError, self.query, [{"limit": n}])
            self.assertIn("limit", str(e))

    def test_bad_operators(self) -> None:
        eq = {"$eq": [{"$field": "a"}, {"$literal": 1}]}
        for op in (None, 5, [], {}, {"filter": eq, "limit": 1}, {"order": "asc"}):
            self.assertRaises(QueryError, self.query, [op])

    def test_operator_count(self) -> None:
        self.assertEqual(
            len(self.query([{"limit": 1}] * MAX_QUERY_OPERATORS).operators),
            MAX_QUERY_OPERATORS,
        )
        e = self.assertRaises(QueryError, self.query, [{"limit": 1}] * (MAX_QUERY_OPERATORS + 1))
        self.assertIn(str(MAX_QUERY_OPERATORS), str(e))

    def test_pipeline_applies_operators_in_order(self) -> None:
        docs = [{"n": float(i)} for i in range(10)]
        even = {"$eq": [{"$mod": [{"$field": "n"}, {"$literal": 2}]}, {"$literal": 0}]}
        big = {"$gte": [{"$field": "n"}, {"$literal": 4}]}
        q = self.query([{"filter": even}, {"limit": 3}, {"filter": big}])
        self.assertEqual([d["n"] for d in q.apply(docs)], [4.0])
        q = self.query([{"filter": big}, {"filter": even}, {"limit": 2}])
        self.assertEqual([d["n"] for d in q.apply(docs)], [4.0, 6.0])
        self.assertEqual(len(q.filters), 2)

    def test_limit_stops_reading(self) -> None:
        pulled = []

        def rows():
            for i in range(100):
                pulled.append(i)
                yield {"n": float(i)}

        q = self.query([{"limit": 3}])
        self.assertEqual(len(list(q.apply(rows()))), 3)
        self.assertEqual(pulled, [0, 1, 2])
        pulled.clear()
        self.assertEqual(list(self.query([{"limit": 0}]).apply(rows())), [])
        self.assertEqual(pulled, [])


class FieldValueTests(SynchronousTestCase):
    def test_lookup(self) -> None:
        doc = {"a": {"b": {"c": 1.0}, "l": [1.0]}, "x": None, "s": "str"}
        self.assertEqual(field_value(doc, "a.b.c"), 1.0)
        self.assertEqual(field_value(doc, "a.b"), {"c": 1.0})
        self.assertIs(field_value(doc, "x"), None)
        for path in ("missing", "a.missing", "a.b.c.d", "a.l.0", "s.length", "x.y", ""):
            self.assertIs(field_value(doc, path), UNDEFINED, path)

    def test_index_key(self) -> None:
        doc = {"a": 1.0, "n": {"b": "x"}, "_id": "id1", "_creationTime": 3.0}
        fields = ["a", "n.b", "zz", "_creationTime", "_id"]
        expected = encode_index_key([1.0, "x", UNDEFINED, 3.0, "id1"])
        self.assertEqual(index_key(doc, fields), expected)
        self.assertEqual(index_key_function(fields)(doc), expected)


class FilterTests(SynchronousTestCase):
    DOC = {"a": 1.0, "s": "x", "n": None, "i": Int64(3), "o": {"p": True}}

    def test_field_and_literal(self) -> None:
        self.assertEqual(ev(field("a"), self.DOC), 1.0)
        self.assertIs(ev(field("o.p"), self.DOC), True)
        self.assertIs(ev(field("zz"), self.DOC), UNDEFINED)
        self.assertIs(ev(lit(UNDEFINED)), UNDEFINED)
        self.assertEqual(ev({"$literal": {"$integer": "BQAAAAAAAAA="}}), Int64(5))
        self.assertEqual(ev({"$literal": {"k": [1, "x"]}}), {"k": [1.0, "x"]})

    def test_comparisons(self) -> None:
        # (left, right, compare_values result)
        pairs = [
            (1.0, 1.0, 0),
            (1.0, 2.0, -1),
            (Int64(5), 1.0, -1),  # int64 sorts before float64
            (UNDEFINED, None, -1),
            (UNDEFINED, UNDEFINED, 0),
            (None, False, -1),
            ("b", "a", 1),
            (0.0, -0.0, 1),
            (NAN, NAN, 0),
            ([1.0], [1.0, 2.0], -1),
            ({"a": 1.0}, {"a": 1.0}, 0),
            (b"\x00", "a", 1),
        ]
        ops = {
            "$eq": lambda c: c == 0,
            "$neq": lambda c: c != 0,
            "$lt": lambda c: c < 0,
            "$lte": lambda c: c <= 0,
            "$gt": lambda c: c > 0,
            "$gte": lambda c: c >= 0,
        }
        for left, right, c in pairs:
            for op, test in ops.items():
                got = ev({op: [lit(left), lit(right)]})
                self.assertIs(got, test(c), (op, left, right))

    def test_missing_fields(self) -> None:
        missing = field("nope")
        self.assertIs(ev({"$eq": [missing, lit(UNDEFINED)]}, self.DOC), True)
        self.assertIs(ev({"$eq": [missing, lit(None)]}, self.DOC), False)
        self.assertIs(ev({"$lt": [missing, lit(None)]}, self.DOC), True)
        self.assertIs(ev({"$neq": [field("n"), lit(UNDEFINED)]}, self.DOC), True)
        self.assertIs(ev({"$eq": [field("a.b"), lit(UNDEFINED)]}, self.DOC), True)

    def test_float_arithmetic(self) -> None:
        cases = [
            ("$add", 1.5, 2.0, 3.5),
            ("$sub", 1.0, 3.0, -2.0),
            ("$mul", 1e308, 10.0, INF),
            ("$div", 1.0, 4.0, 0.25),
            ("$div", 1.0, 0.0, INF),
            ("$div", -1.0, 0.0, -INF),
            ("$div", 1.0, -0.0, -INF),
            ("$div", 0.0, 0.0, NAN),
            ("$div", NAN, 0.0, NAN),
            ("$mod", 7.0, 3.0, 1.0),
            ("$mod", -7.0, 3.0, -1.0),
            ("$mod", 7.0, -3.0, 1.0),
            ("$mod", 5.5, 2.0, 1.5),
            ("$mod", 1.0, 0.0, NAN),
            ("$mod", INF, 2.0, NAN),
            ("$mod", 5.0, INF, 5.0),
            ("$mod", -0.0, 5.0, -0.0),
            ("$add", INF, -INF, NAN),
        ]
        for op, a, b, expected in cases:
            got = ev({op: [lit(a), lit(b)]})
            self.assertTrue(same(got, expected), (op, a, b, got))

    def test_int64_arithmetic(self) -> None:
        cases = [
            ("$add", 2, 3, 5),
            ("$add", INT64_MAX, 1, INT64_MIN),
            ("$sub", INT64_MIN, 1, INT64_MAX),
            ("$mul", 2**62, 4, 0),
            ("$mul", INT64_MAX, 2, -2),
            ("$div", 7, 2, 3),
            ("$div", -7, 2, -3),
            ("$div", 7, -2, -3),
            ("$div", -7, -2, 3),
            ("$div", INT64_MIN, -1, INT64_MIN),
            ("$mod", 7, 3, 1),
            ("$mod", -7, 3, -1),
            ("$mod", 7, -3, 1),
            ("$mod", -7, -3, -1),
            ("$mod", INT64_MIN, -1, 0),
        ]
        for op, a, b, expected in cases:
            got = ev({op: [lit(Int64(a)), lit(Int64(b))]})
            self.assertEqual(got, Int64(expected), (op, a, b))

    @given(
        st.integers(INT64_MIN, INT64_MAX),
        st.integers(INT64_MIN, INT64_MAX).filter(bool),
    )
    @SETTINGS
    def test_int64_division_identity(self, a: int, b: int) -> None:
        q = ev({"$div": [lit(Int64(a)), lit(Int64(b))]}).value
        r = ev({"$mod": [lit(Int64(a)), lit(Int64(b))]}).value
        self.assertEqual(((q * b + r) - a) % 2**64, 0)
        self.assertLess(abs(r), abs(b))
        self.assertTrue(r == 0 or (r < 0) == (a < 0))

    def test_division_by_int64_zero(self) -> None:
        for op in ("$div", "$mod"):
            e = self.assertRaises(QueryError, ev, {op: [lit(Int64(1)), lit(Int64(0))]})
            self.assertIn("zero", str(e))

    def test_neg(self) -> None:
        self.assertEqual(ev({"$neg": lit(Int64(5))}), Int64(-5))
        self.assertEqual(ev({"$neg": lit(Int64(INT64_MIN))}), Int64(INT64_MIN))
        self.assertTrue(same(ev({"$neg": lit(0.0)}), -0.0))
        self.assertEqual(ev({"$neg": field("a")}, self.DOC), -1.0)
        for v in (UNDEFINED, None, True, "1", [1.0]):
            e = self.assertRaises(QueryError, ev, {"$neg": lit(v)})
            self.assertIn("$neg", str(e))

    def test_type_mixing_is_an_error(self) -> None:
        bad = [
            (1.0, Int64(1), "float64 and int64"),
            (Int64(1), 1.0, "int64 and float64"),
            (1.0, "1", "string"),
            (1.0, UNDEFINED, "undefined"),
            (None, 1.0, "null"),
            (True, 1.0, "boolean"),
            ([1.0], [2.0], "array"),
        ]
        for op in ("$add", "$sub", "$mul", "$div", "$mod"):
            for a, b, word in bad:
                e = self.assertRaises(QueryError, ev, {op: [lit(a), lit(b)]})
                self.assertIn(op, str(e))
                self.assertIn(word, str(e))
        # A missing field in arithmetic fails too: no implicit conversions.
        e = self.assertRaises(QueryError, ev, {"$add": [field("zz"), lit(1.0)]}, self.DOC)
        self.assertIn("missing", str(e))

    def test_logic(self) -> None:
        t, f = lit(True), lit(False)
        self.assertIs(ev({"$and": []}), True)
        self.assertIs(ev({"$or": []}), False)
        self.assertIs(ev({"$and": [t, t, t]}), True)
        self.assertIs(ev({"$and": [t, f, t]}), False)
        self.assertIs(ev({"$or": [f, f, t]}), True)
        self.assertIs(ev({"$or": [f, f]}), False)
        self.assertIs(ev({"$not": t}), False)
        self.assertIs(ev({"$not": f}), True)
        # Evaluation stops at the deciding operand.
        boom = {"$div": [lit(Int64(1)), lit(Int64(0))]}
        self.assertIs(ev({"$and": [f, boom]}), False)
        self.assertIs(ev({"$or": [t, boom]}), True)
        self.assertRaises(QueryError, ev, {"$and": [t, boom]})

    def test_logic_needs_booleans(self) -> None:
        for v in (UNDEFINED, None, 1.0, Int64(1), "true", [True]):
            for expr in (
                {"$and": [lit(True), lit(v)]},
                {"$or": [lit(False), lit(v)]},
                {"$not": lit(v)},
            ):
                e = self.assertRaises(QueryError, ev, expr)
                self.assertIn("boolean", str(e))

    def test_filter_keeps_only_true(self) -> None:
        for v, keep in (
            (True, True),
            (False, False),
            (1.0, False),
            ("true", False),
            (UNDEFINED, False),
            (None, False),
            ([True], False),
        ):
            self.assertIs(parse_filter(lit(v)).matches({}), keep, v)

    def test_bad_expressions(self) -> None:
        cases = [
            None,
            5,
            "a",
            [],
            {},
            {"$field": "a", "$literal": 1},
            {"$bogus": 1},
            {"field": "a"},
            {"$field": 1},
            {"$field": None},
            {"$eq": [field("a")]},
            {"$eq": [field("a"), lit(1.0), lit(1.0)]},
            {"$eq": field("a")},
            {"$add": [lit(1.0)]},
            {"$and": lit(True)},
            {"$or": None},
            {"$not": [lit(True)]},
            {"$neg": [lit(1.0)]},
            {"$eq": [{"a": 1}, lit(1.0)]},
            {"$literal": {"$integer": "nope"}},
            {"$literal": {"a": {"$undefined": None}}},
            {"$literal": [{"$undefined": None}]},
            {"$literal": {"$undefined": 1}},
        ]
        for expr in cases:
            self.assertRaises(QueryError, parse_filter, expr)

    def test_depth_limit(self) -> None:
        def nested(n: int) -> dict:
            expr: dict = lit(True)
            for _ in range(n - 1):
                expr = {"$not": expr}
            return expr

        self.assertIs(ev(nested(MAX_EXPRESSION_DEPTH)), MAX_EXPRESSION_DEPTH % 2 == 1)
        self.assertRaises(QueryError, parse_filter, nested(MAX_EXPRESSION_DEPTH + 1))
        self.assertRaises(QueryError, parse_filter, nested(5000))

    def test_equal_filters_compare_equal(self) -> None:
        a = parse_filter({"$eq": [field("a"), lit(1.0)]})
        b = parse_filter({"$eq": [field("a"), {"$literal": 1}]})
        c = parse_filter({"$eq": [field("a"), lit(Int64(1))]})
        self.assertEqual(a, b)
        self.assertEqual(hash(a), hash(b))
        self.assertNotEqual(a, c)


class PlanRangeShapeTests(SynchronousTestCase):
    FIELDS = ["a", "b", "_creationTime", "_id"]

    def plan(self, *exprs: tuple) -> KeyRange:
        return plan_range(self.FIELDS, [RangeExpr(op, f, v) for op, f, v in exprs])

    def test_legal_shapes(self) -> None:
        self.assertEqual(self.plan(), KeyRange(b"", None))
        legal = [
            [("Eq", "a", 1.0)],
            [("Eq", "a", 1.0), ("Eq", "b", 2.0)],
            [("Gt", "a", 1.0)],
            [("Lte", "a", 1.0)],
            [("Gte", "a", 1.0), ("Lt", "a", 5.0)],
            [("Lt", "a", 5.0), ("Gte", "a", 1.0)],
            [("Eq", "a", 1.0), ("Gt", "b", 1.0), ("Lt", "b", 2.0)],
            [("Eq", "a", 1.0), ("Eq", "b", 1.0), ("Eq", "_creationTime", 1.0)],
            [
                ("Eq", "a", 1.0),
                ("Eq", "b", 1.0),
                ("Eq", "_creationTime", 1.0),
                ("Eq", "_id", "x"),
            ],
            [("Eq", "a", 1.0), ("Eq", "b", 1.0), ("Gt", "_creationTime", 1.0)],
            [
                ("Eq", "a", 1.0),
                ("Eq", "b", 1.0),
                ("Eq", "_creationTime", 1.0),
                ("Gte", "_id", "x"),
            ],
        ]
        for exprs in legal:
            self.plan(*exprs)

    def test_crossed_bounds_are_empty(self) -> None:
        r = self.plan(("Gt", "a", 5.0), ("Lt", "a", 1.0))
        self.assertTrue(r.is_empty)
        r = self.plan(("Gt", "a", 5.0), ("Lte", "a", 5.0))
        self.assertTrue(r.is_empty)
        r = self.plan(("Gte", "a", 5.0), ("Lte", "a", 5.0))
        self.assertFalse(r.is_empty)

    def test_illegal_shapes(self) -> None:
        # (expressions, a phrase the message must contain)
        illegal = [
            ([("Eq", "b", 1.0)], "'a' was expected"),
            ([("Eq", "a", 1.0), ("Eq", "_creationTime", 1.0)], "'b' was expected"),
            ([("Eq", "a", 1.0), ("Eq", "a", 1.0)], "'b' was expected"),
            ([("Gt", "b", 1.0)], "'a' was expected"),
            ([("Eq", "a", 1.0), ("Lt", "a", 1.0)], "'b' was expected"),
            ([("Gt", "a", 1.0), ("Eq", "b", 1.0)], "after a range bound"),
            ([("Gt", "a", 1.0), ("Eq", "a", 1.0)], "after a range bound"),
            ([("Gt", "a", 1.0), ("Lt", "b", 1.0)], "'a' was expected"),
            ([("Lt", "a", 1.0), ("Gt", "b", 1.0)], "'a' was expected"),
            ([("Gt", "a", 1.0), ("Gte", "a", 1.0)], "two lower bounds"),
            ([("Gte", "a", 1.0), ("Gt", "a", 1.0)], "two lower bounds"),
            ([("Lt", "a", 1.0), ("Lte", "a", 1.0)], "two upper bounds"),
            ([("Lt", "a", 1.0), ("Lt", "a", 1.0)], "two upper bounds"),
            ([("Gt", "a", 1.0), ("Lt", "a", 2.0), ("Gt", "a", 0.0)], "two lower"),
            ([("Eq", "nope", 1.0)], "'a' was expected"),
            ([("Eq", "a.x", 1.0)], "'a' was expected"),
            (
                [
                    ("Eq", "a", 1.0),
                    ("Eq", "b", 1.0),
                    ("Eq", "_creationTime", 1.0),
                    ("Eq", "_id", "x"),
                    ("Eq", "_id", "x"),
                ],
                "already have an Eq",
            ),
            (
                [
                    ("Eq", "a", 1.0),
                    ("Eq", "b", 1.0),
                    ("Eq", "_creationTime", 1.0),
                    ("Eq", "_id", "x"),
                    ("Gt", "_id", "x"),
                ],
                "already have an Eq",
            ),
        ]
        for exprs, phrase in illegal:
            e = self.assertRaises(QueryError, self.plan, *exprs)
            self.assertIn("Uh oh! Index range expression", str(e))
            self.assertIn(phrase, str(e), exprs)

    def test_message_names_the_index(self) -> None:
        e = self.assertRaises(
            QueryError,
            plan_range,
            ["a", "_creationTime", "_id"],
            [RangeExpr("Eq", "b", 1.0)],
            index_name="t.by_a",
        )
        self.assertIn("'t.by_a'", str(e))

    def test_not_range_exprs(self) -> None:
        self.assertRaises(QueryError, plan_range, ["a"], [{"type": "Eq"}])


# --- property tests ------------------------------------------------------------

FULL_FIELDS = ["a", "b.c", "_creationTime", "_id"]

# A small pool so that equalities and neighbours actually occur.
POOL = [
    UNDEFINED,
    None,
    Int64(-1),
    Int64(0),
    Int64(1),
    -INF,
    -1.0,
    -0.0,
    0.0,
    1.0,
    INF,
    NAN,
    False,
    True,
    "",
    "a",
    "a\x00",
    "ab",
    "b",
    b"",
    b"\x00",
    b"\xff",
    [],
    [1.0],
    {},
    {"x": 1.0},
]
pool_values = st.sampled_from(POOL)
mixed_values = st.one_of(pool_values, pool_values, values)
absent = object()


def _present(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """A field value or ``absent`` (the field is left out of the document)."""
    present = strategy.filter(lambda v: v is not UNDEFINED)
    return st.one_of(st.just(absent), present, present, present)


@st.composite
def documents(draw: Any, n: int) -> list[dict]:
    docs = []
    for i in range(n):
        doc: dict = {
            "_id": f"id{i:04d}",
            "_creationTime": draw(st.sampled_from([1.0, 2.0, 3.0, 2.5])),
        }
        a = draw(_present(mixed_values))
        if a is not absent:
            doc["a"] = a
        # "b" missing, not an object, or an object with or without "c".
        shape = draw(st.integers(0, 3))
        if shape == 1:
            doc["b"] = draw(
                mixed_values.filter(lambda v: v is not UNDEFINED and type(v) is not dict)
            )
        elif shape >= 2:
            c = draw(_present(mixed_values)) if shape == 2 else absent
            doc["b"] = {} if c is absent else {"c": c}
        docs.append(doc)
    return docs


@st.composite
def docs_and_range(draw: Any) -> tuple[list[dict], list[RangeExpr]]:
    docs = draw(documents(draw(st.integers(0, 16))))

    def some_value(path: str) -> Any:
        # Mostly values that occur in the documents, so ranges hit something.
        seen = [field_value(d, path) for d in docs]
        if seen and draw(st.booleans()):
            return draw(st.sampled_from(seen))
        return draw(st.one_of(pool_values, values))

    n_eq = draw(st.integers(0, len(FULL_FIELDS)))
    exprs = [RangeExpr("Eq", f, some_value(f)) for f in FULL_FIELDS[:n_eq]]
    if n_eq < len(FULL_FIELDS):
        f = FULL_FIELDS[n_eq]
        bounds = []
        if draw(st.booleans()):
            bounds.append(RangeExpr(draw(st.sampled_from(["Gt", "Gte"])), f, some_value(f)))
        if draw(st.booleans()):
            bounds.append(RangeExpr(draw(st.sampled_from(["Lt", "Lte"])), f, some_value(f)))
        exprs += draw(st.permutations(bounds))
    return docs, exprs


_PREDICATES = {
    "Eq": lambda c: c == 0,
    "Gt": lambda c: c > 0,
    "Gte": lambda c: c >= 0,
    "Lt": lambda c: c < 0,
    "Lte": lambda c: c <= 0,
}


def brute_force(doc: dict, exprs: list[RangeExpr]) -> bool:
    return all(
        _PREDICATES[e.op](compare_values(field_value(doc, e.field_path), e.value)) for e in exprs
    )


def tuple_cmp(a: list, b: list) -> int:
    for x, y in zip(a, b, strict=True):
        c = compare_values(x, y)
        if c:
            return c
    return 0


class RangePropertyTests(SynchronousTestCase):
    @given(docs_and_range())
    @SETTINGS
    def test_range_equals_brute_force(self, case: tuple) -> None:
        docs, exprs = case
        r = plan_range(FULL_FIELDS, exprs)
        in_range = {d["_id"] for d in docs if index_key(d, FULL_FIELDS) in r}
        expected = {d["_id"] for d in docs if brute_force(d, exprs)}
        self.assertEqual(in_range, expected)
        if r.is_empty:
            self.assertEqual(expected, set())

    @given(st.integers(0, 12).flatmap(documents))
    @SETTINGS
    def test_index_order_is_value_order(self, docs: list[dict]) -> None:
        key = index_key_function(FULL_FIELDS)
        by_key = sorted(docs, key=key)
        by_values = sorted(
            docs,
            key=cmp_to_key(
                lambda x, y: tuple_cmp(
                    [field_value(x, f) for f in FULL_FIELDS],
                    [field_value(y, f) for f in FULL_FIELDS],
                )
            ),
        )
        # _id is unique, so both orders are total and must agree exactly.
        self.assertEqual([d["_id"] for d in by_key], [d["_id"] for d in by_values])

    @given(
        st.lists(pool_values, min_size=2, max_size=2),
        st.sampled_from(list(_PREDICATES)),
    )
    @SETTINGS
    def test_filter_comparisons_agree_with_range_predicates(self, pair: list, op: str) -> None:
        # The filter language and index ranges share one order.
        name = {"Eq": "$eq", "Gt": "$gt", "Gte": "$gte", "Lt": "$lt", "Lte": "$lte"}[op]
        got = ev({name: [lit(pair[0]), lit(pair[1])]})
        self.assertIs(got, _PREDICATES[op](compare_values(pair[0], pair[1])))


# --- robustness: anything malformed raises QueryError and nothing else ---------

WORDS = [
    "t",
    "t.i",
    "a",
    "a.b",
    "asc",
    "desc",
    "FullTableScan",
    "IndexRange",
    "Search",
    "Eq",
    "Gt",
    "Lte",
    "\ud800",
    "t.\udfff",
    "",
]
EXPR_OPS = [
    "$field",
    "$literal",
    "$eq",
    "$neq",
    "$lt",
    "$gte",
    "$add",
    "$sub",
    "$mul",
    "$div",
    "$mod",
    "$neg",
    "$not",
    "$and",
    "$or",
    "$integer",
    "$undefined",
    "$bytes",
    "$float",
    "$bogus",
]
KEYS = [
    "source",
    "operators",
    "type",
    "tableName",
    "indexName",
    "range",
    "order",
    "filters",
    "fieldPath",
    "value",
    "filter",
    "limit",
    *EXPR_OPS,
]
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.sampled_from(WORDS),
    st.text(max_size=4),
    st.sampled_from(["AQAAAAAAAAA=", "AAAAAAAA8D8=", "AA=="]),
)
garbage = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(KEYS), st.text(max_size=3)), children, max_size=3
        ),
    ),
    max_leaves=20,
)


def _expr(children: st.SearchStrategy) -> st.SearchStrategy:
    op = st.sampled_from(EXPR_OPS)
    return st.one_of(
        st.builds(lambda o, a: {o: a}, op, st.lists(children, max_size=3)),
        st.builds(lambda o, a: {o: a}, op, children),
    )


expressions = st.recursive(
    st.one_of(
        st.builds(lambda p: {"$field": p}, st.sampled_from(["a", "b", "a.b", "zz"])),
        st.builds(lambda v: {"$literal": v}, garbage),
        pool_values.map(lit),
        garbage,
    ),
    _expr,
    max_leaves=12,
)
sources = st.one_of(
    garbage,
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["FullTableScan", "IndexRange", "Search"]),
            "tableName": json_scalars,
            "indexName": json_scalars,
            "order": json_scalars,
            "range": st.lists(
                st.fixed_dictionaries(
                    {"type": json_scalars, "fieldPath": json_scalars, "value": garbage}
                ),
                max_size=3,
            ),
            "filters": st.lists(
                st.fixed_dictionaries(
                    {"type": json_scalars, "fieldPath": json_scalars, "value": garbage}
                ),
                max_size=3,
            ),
        }
    ),
)
defined_values = mixed_values.filter(lambda v: v is not UNDEFINED)
fuzz_docs = st.fixed_dictionaries(
    {},
    optional={
        "a": defined_values,
        "b": st.one_of(defined_values, st.dictionaries(st.just("b"), defined_values)),
    },
)


class RobustnessTests(SynchronousTestCase):
    @given(st.one_of(garbage, st.fixed_dictionaries({"source": sources, "operators": garbage})))
    @SETTINGS
    def test_parse_query_raises_only_query_error(self, obj: Any) -> None:
        try:
            q = parse_query(obj)
        except QueryError:
            return
        self.assertIsInstance(q, Query)

    @given(expressions, st.lists(fuzz_docs, max_size=4))
    @SETTINGS
    def test_filters_raise_only_query_error(self, expr: Any, docs: list) -> None:
        try:
            f = parse_filter(expr)
        except QueryError:
            return
        for doc in docs:
            try:
                f.matches(doc)
            except QueryError:
                pass

    def test_huge_limit(self) -> None:
        q = parse_query(
            {
                "source": {"type": "FullTableScan", "tableName": "t", "order": None},
                "operators": [{"limit": 1e300}],
            }
        )
        self.assertEqual(len(list(q.apply([{}] * 3))), 3)

    def test_lone_surrogates(self) -> None:
        self.assertRaises(QueryError, parse_filter, {"$field": "\ud800"})
        self.assertRaises(QueryError, parse_filter, {"$literal": "\ud800"})
        for src in (
            {"type": "FullTableScan", "tableName": "\ud800", "order": None},
            {"type": "IndexRange", "indexName": "t.\ud800", "range": [], "order": None},
            {
                "type": "Search",
                "indexName": "t.s",
                "filters": [{"type": "Search", "fieldPath": "b", "value": "\ud800"}],
            },
        ):
            self.assertRaises(QueryError, parse_query, {"source": src, "operators": []})
