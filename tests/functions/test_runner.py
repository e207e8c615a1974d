"""The function runner with a real database and real workers."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from convex_backend.functions.runner import Caller, FunctionError
from tests.database.fixtures import open_database
from tests.functions.fixtures import deploy_app
from tests.functions.runner_app import COUNTERS, NOTES, SCHEMA

ADMIN = Caller("admin")


class RunnerTests(TestCase):
    timeout = 60

    async def setUp(self) -> None:
        self.db = await open_database(self)
        self.runner, self.pools, _deployer = await deploy_app(
            self,
            self.db,
            {"schema.py": SCHEMA, "notes.py": NOTES, "counters.py": COUNTERS},
        )

    async def call(self, path: str, args: dict | None = None, caller=ADMIN):
        return (await self.runner.call(path, args or {}, caller=caller)).value

    async def fails(self, path: str, args: dict | None = None, caller=ADMIN) -> FunctionError:
        try:
            await self.runner.call(path, args or {}, caller=caller)
        except FunctionError as e:
            return e
        self.fail(f"{path} did not fail")

    async def test_document_methods(self) -> None:
        note = await self.call("notes:add", {"owner": "ada", "n": 1.0})
        tagged = await self.call("notes:tag", {"id": note, "tag": "x"})
        self.assertEqual(tagged["tag"], "x")
        untagged = await self.call("notes:tag", {"id": note})
        self.assertNotIn("tag", untagged)
        reset = await self.call("notes:reset", {"id": note})
        self.assertEqual((reset["owner"], reset["n"]), ("nobody", 0.0))
        self.assertEqual(await self.call("notes:normalize", {"id": note}), note)
        self.assertIsNone(await self.call("notes:normalize", {"id": "nope"}))
        self.assertIsNone(await self.call("notes:remove", {"id": note}))

    async def test_query_shapes(self) -> None:
        for owner, n in [("ada", 1.0), ("bob", 2.0), ("ada", 3.0), ("ada", 4.0)]:
            await self.call("notes:add", {"owner": owner, "n": n})
        shapes = await self.call("notes:shapes", {"owner": "ada"})
        self.assertEqual(
            shapes,
            {
                "all": [1.0, 2.0, 3.0, 4.0],
                "desc": [4.0, 3.0],
                "owned": [1.0, 3.0, 4.0],
                "range": [3.0],
                "filtered": [1.0, 4.0],
                "first": 1.0,
                "none": None,
                "count": 4.0,
            },
        )
        error = await self.fails("notes:not_unique")
        self.assertIn("unique", error.message)
        page = await self.call("notes:page", {"opts": {"numItems": 3.0, "cursor": None}})
        self.assertEqual([d["n"] for d in page["page"]], [1.0, 2.0, 3.0])
        rest = await self.call(
            "notes:page", {"opts": {"numItems": 3.0, "cursor": page["continueCursor"]}}
        )
        self.assertEqual([d["n"] for d in rest["page"]], [4.0])
        self.assertTrue(rest["isDone"])

    async def test_validation_and_visibility(self) -> None:
        bad = await self.fails("notes:add", {"owner": 5.0, "n": 1.0})
        self.assertIn("ArgumentValidationError", bad.message)
        extra = await self.fails("notes:add", {"owner": "a", "n": 1.0, "x": 1.0})
        self.assertIn("ArgumentValidationError", extra.message)
        wrong = await self.fails("notes:wrong_return")
        self.assertIn("ReturnsValidationError", wrong.message)
        hidden = await self.fails("notes:secret", caller=Caller("client"))
        self.assertIn("Could not find public function", hidden.message)
        self.assertEqual(await self.call("notes:reveal", caller=Caller("client")), "internal")
        missing = await self.fails("notes:nothing")
        self.assertIn("Could not find public function", missing.message)
        wrong_kind = await self.runner.call("notes:add", {"owner": "a", "n": 1.0}, caller=ADMIN)
        self.assertIsNotNone(wrong_kind.value)
        try:
            await self.runner.call("notes:add", {"owner": "a", "n": 1.0}, expected="query")
        except FunctionError as e:
            self.assertIn("as Query, but it is defined as Mutation", e.message)

    async def test_queries_are_read_only(self) -> None:
        # The SDK gives queries a reader without write methods.
        error = await self.fails("notes:sneaky_write")
        self.assertIn("insert", error.message)
        self.assertEqual((await self.call("notes:shapes", {"owner": "x"}))["count"], 0.0)

    async def test_convex_error_rolls_back(self) -> None:
        error = await self.fails("notes:fail")
        self.assertEqual(error.data, {"why": "because"})
        self.assertEqual((await self.call("notes:shapes", {"owner": "ghost"}))["count"], 0.0)

    async def test_log_lines(self) -> None:
        result = await self.runner.call("notes:logs", {}, caller=ADMIN)
        self.assertEqual(result.log_lines, ["[LOG] 'hello from a query'"])

    async def test_concurrent_increments_are_exact(self) -> None:
        await defer.gatherResults(
            [
                defer.ensureDeferred(self.call("counters:increment", {"name": "c"}))
                for _ in range(40)
            ]
        )
        self.assertEqual(await self.call("counters:read", {"name": "c"}), 40.0)

    async def test_nested_calls_share_the_transaction(self) -> None:
        self.assertEqual(await self.call("counters:nested", {"name": "n"}), 1.0)
        self.assertEqual(await self.call("counters:read", {"name": "n-boom"}), 0)
