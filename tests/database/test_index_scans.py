"""Index scans agree with a brute-force sort and filter of the same documents.

The documents are committed once in ``setUp``; hypothesis then draws writes
that stay buffered in a transaction (so the read-your-writes overlay is part
of every scan) and a random legal index range, and the engine's answer is
compared with sorting everything by Convex's total order.
"""

from __future__ import annotations

import functools
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import TestCase

from convex_backend.database.query import field_value
from convex_backend.values import UNDEFINED, Int64, compare_values
from tests.database.fixtures import index_range, open_database

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3).map(float),
    st.integers(-3, 3).map(Int64),
    st.sampled_from(["", "a", "b", "ab", "é"]),
    st.just(b"\x00"),
    st.lists(st.integers(0, 2).map(float), max_size=2),
)
FIELD = st.one_of(st.just(UNDEFINED), VALUES)
OPS = ["Eq", "Gt", "Gte", "Lt", "Lte"]


def random_value(rng: random.Random):
    return rng.choice(
        [
            UNDEFINED,
            None,
            True,
            False,
            float(rng.randint(-3, 3)),
            Int64(rng.randint(-3, 3)),
            rng.choice(["", "a", "b", "ab", "é"]),
            b"\x00",
            [float(rng.randint(0, 2))],
        ]
    )


def random_doc(rng: random.Random) -> dict:
    doc = {}
    for name in ("a", "b"):
        value = random_value(rng)
        if value is not UNDEFINED:
            doc[name] = value
    return doc


@st.composite
def ranges(draw):
    fields = ["a", "b"]
    n_eq = draw(st.integers(0, 2))
    exprs = [("Eq", fields[i], draw(FIELD)) for i in range(n_eq)]
    if n_eq < 2:
        field = fields[n_eq]
        if draw(st.booleans()):
            exprs.append((draw(st.sampled_from(["Gt", "Gte"])), field, draw(FIELD)))
        if draw(st.booleans()):
            exprs.append((draw(st.sampled_from(["Lt", "Lte"])), field, draw(FIELD)))
    return exprs


def satisfies(doc: dict, exprs) -> bool:
    for op, field, value in exprs:
        c = compare_values(field_value(doc, field), value)
        ok = {"Eq": c == 0, "Gt": c > 0, "Gte": c >= 0, "Lt": c < 0, "Lte": c <= 0}[op]
        if not ok:
            return False
    return True


def sort_key(doc: dict):
    return [field_value(doc, f) for f in ("a", "b", "_creationTime", "_id")]


def compare_docs(x: dict, y: dict) -> int:
    for a, b in zip(sort_key(x), sort_key(y), strict=True):
        c = compare_values(a, b)
        if c:
            return c
    return 0


class IndexScanTests(TestCase):
    async def setUp(self) -> None:
        self.db = await open_database(self)
        await self.db.add_index("docs", "by_ab", ("a", "b"))
        rng = random.Random(99)
        await self.db.run(lambda tx: [tx.insert("docs", random_doc(rng)) for _ in range(300)])
        tx = self.db.begin()
        self.ids = [d["_id"] for d in tx.query(index_range("docs", "by_ab"))]
        tx.close()

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        exprs=ranges(),
        order=st.sampled_from(["asc", "desc"]),
        inserts=st.lists(
            st.fixed_dictionaries({}, optional={"a": VALUES, "b": VALUES}), max_size=5
        ),
        patches=st.lists(
            st.tuples(st.integers(0, 299), st.fixed_dictionaries({}, optional={"a": VALUES})),
            max_size=5,
        ),
        deletes=st.lists(st.integers(0, 299), max_size=5),
    )
    def test_scan_matches_brute_force(self, exprs, order, inserts, patches, deletes) -> None:
        tx = self.db.begin()
        try:
            for doc in inserts:
                tx.insert("docs", doc)
            for i, patch in patches:
                if tx.get(self.ids[i]) is not None:
                    tx.patch(self.ids[i], patch)
            for i in deletes:
                if tx.get(self.ids[i]) is not None:
                    tx.delete(self.ids[i])
            everything = tx.query(index_range("docs", "by_ab")).collect()
            got = tx.query(index_range("docs", "by_ab", *exprs, order=order)).collect()
        finally:
            tx.close()
        expected = sorted(
            (d for d in everything if satisfies(d, exprs)),
            key=functools.cmp_to_key(compare_docs),
            reverse=order == "desc",
        )
        self.assertEqual([d["_id"] for d in got], [d["_id"] for d in expected])
