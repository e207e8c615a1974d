"""Pagination through the engine: cursors, end cursors, gaplessness, limits."""

from __future__ import annotations

import random

from twisted.trial.unittest import TestCase

from convex_backend.database.cursors import InvalidCursor
from convex_backend.database.errors import DatabaseError
from tests.database.fixtures import open_database, scan


class PaginationTests(TestCase):
    async def setUpDb(self, n: int = 0):
        self.db = await open_database(self)
        if n:
            await self.db.run(lambda tx: [tx.insert("items", {"i": float(i)}) for i in range(n)])

    def page(self, cursor=None, size=3, query=None, **kwargs) -> dict:
        tx = self.db.begin()
        try:
            return tx.query_page(query or scan("items"), cursor=cursor, page_size=size, **kwargs)
        finally:
            tx.close()

    def all_pages(self, size: int, query=None) -> list[list[float]]:
        pages, cursor = [], None
        while True:
            result = self.page(cursor, size, query)
            pages.append([d["i"] for d in result["page"]])
            if result["isDone"]:
                return pages
            cursor = result["continueCursor"]

    async def test_pages_cover_everything_once(self) -> None:
        await self.setUpDb(10)
        self.assertEqual(self.all_pages(3), [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]])
        self.assertEqual(
            self.all_pages(5, scan("items", "desc")),
            [[9, 8, 7, 6, 5], [4, 3, 2, 1, 0], []],
        )

    async def test_result_shape(self) -> None:
        await self.setUpDb(4)
        result = self.page(size=4)
        self.assertEqual(
            set(result),
            {"page", "isDone", "continueCursor", "splitCursor", "pageStatus"},
        )
        self.assertIsInstance(result["continueCursor"], str)
        self.assertIsInstance(result["splitCursor"], str)
        last = self.page(result["continueCursor"])
        self.assertEqual((last["page"], last["isDone"]), ([], True))
        self.assertIsInstance(last["continueCursor"], str)

    async def test_end_cursor_reproduces_the_page_as_it_grows(self) -> None:
        await self.setUpDb(6)
        first = self.page(size=3)
        self.assertEqual([d["i"] for d in first["page"]], [0, 1, 2])
        # Insert a row that sorts inside the first page's range? Creation order
        # only grows, so instead delete one and check the page shrinks in place.
        victim = first["page"][1]["_id"]
        await self.db.run(lambda tx: tx.delete(victim))
        again = self.page(None, 3, end_cursor=first["continueCursor"])
        self.assertEqual([d["i"] for d in again["page"]], [0, 2])
        self.assertEqual(again["continueCursor"], first["continueCursor"])
        second = self.page(first["continueCursor"], 3)
        self.assertEqual([d["i"] for d in second["page"]], [3, 4, 5])

    async def test_gapless_under_concurrent_inserts(self) -> None:
        """Re-running each page at its journaled end cursor while rows are
        inserted everywhere never loses or duplicates a row."""
        await self.db_with_sorted_index()
        rng = random.Random(5)
        bounds = []  # (start cursor, end cursor) of each page, fixed at first run
        cursor = None
        while True:
            result = self.page(cursor, 4, self.by_value)
            bounds.append((cursor, result["continueCursor"]))
            if result["isDone"]:
                break
            cursor = result["continueCursor"]
        for _round in range(5):
            values = [rng.uniform(-10, 110) for _ in range(10)]
            await self.db.run(lambda tx, vs=values: [tx.insert("nums", {"v": v}) for v in vs])
            seen = []
            for start, end in bounds:
                result = self.page(start, 4, self.by_value, end_cursor=end)
                seen += [d["v"] for d in result["page"]]
            tx = self.db.begin()
            everything = [d["v"] for d in tx.query(self.by_value)]
            tx.close()
            self.assertEqual(seen, everything)

    async def db_with_sorted_index(self) -> None:
        await self.setUpDb()
        await self.db.add_index("nums", "by_v", ("v",))
        await self.db.run(lambda tx: [tx.insert("nums", {"v": float(v)}) for v in range(0, 100, 7)])
        self.by_value = {
            "source": {
                "type": "IndexRange",
                "indexName": "nums.by_v",
                "range": [],
                "order": "asc",
            },
            "operators": [],
        }

    async def test_filters_and_maximum_rows_read(self) -> None:
        await self.setUpDb(20)
        odd = {
            **scan("items"),
            "operators": [
                {
                    "filter": {
                        "$eq": [
                            {"$mod": [{"$field": "i"}, {"$literal": 2.0}]},
                            {"$literal": 1.0},
                        ]
                    }
                }
            ],
        }
        self.assertEqual(self.all_pages(4, odd), [[1, 3, 5, 7], [9, 11, 13, 15], [17, 19]])
        short = self.page(None, 10, odd, maximum_rows_read=5)
        self.assertEqual([d["i"] for d in short["page"]], [1, 3])
        self.assertFalse(short["isDone"])
        rest = self.page(short["continueCursor"], 10, odd)
        self.assertEqual([d["i"] for d in rest["page"]][:2], [5, 7])

    async def test_bad_requests(self) -> None:
        await self.setUpDb(3)
        with self.assertRaises(DatabaseError):
            self.page(size=0)
        with self.assertRaises(DatabaseError):
            self.page(size=3, maximum_rows_read=0)
        with self.assertRaises(InvalidCursor) as caught:
            self.page("garbage")
        self.assertIn("InvalidCursor", str(caught.exception))
        other_query = self.page(size=1, query=scan("items", "desc"))["continueCursor"]
        self.assertRaises(InvalidCursor, self.page, other_query)
        tx = self.db.begin()
        self.addCleanup(tx.close)
        tx.query_page(scan("items"), cursor=None, page_size=1)
        with self.assertRaises(DatabaseError) as caught:
            tx.query_page(scan("items"), cursor=None, page_size=1)
        self.assertEqual(caught.exception.code, "MultiplePaginatedDatabaseQueries")

    async def test_missing_table_is_one_empty_page(self) -> None:
        await self.setUpDb()
        result = self.page(query=scan("nothing"))
        self.assertEqual((result["page"], result["isDone"]), ([], True))
