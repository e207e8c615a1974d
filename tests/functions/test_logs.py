"""The function log buffer: entries, cursors, the long poll, filters and bounds.

The buffer alone runs on a task.Clock (no sleeps); the entries of real
executions come from the real runner and worker pools.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from twisted.internet import defer, task
from twisted.trial.unittest import TestCase

from convex_backend.functions.logs import FunctionLogs, make_filter, structured_line
from convex_backend.functions.metrics import FunctionMetrics
from convex_backend.functions.runner import Caller, FunctionError
from tests.database.fixtures import open_database
from tests.functions.fixtures import deploy_app

T0 = 1_764_000_000.0


class FakeWall:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def buffer(**options) -> tuple[FunctionLogs, task.Clock, FakeWall]:
    clock, wall = task.Clock(), FakeWall()
    return FunctionLogs(clock, wall=wall, **options), clock, wall


def fired(d: defer.Deferred):
    results = []
    d.addBoth(results.append)
    return results


class BufferTests(TestCase):
    def test_entry_shape(self) -> None:
        logs, _clock, wall = buffer()
        entry = logs.record(
            "messages:list",
            "query",
            caller=Caller("client", {"subject": "u1"}),
            request_id="req1",
            seconds=0.25,
            log_lines=["[LOG] 'hello'", "[WARN] 'careful'", "no level"],
        ).entry
        self.assertEqual(entry["kind"], "Completion")
        self.assertEqual(entry["udfType"], "Query")
        self.assertEqual(entry["identifier"], "messages:list")
        self.assertIsNone(entry["componentPath"])
        self.assertEqual(entry["timestamp"], T0)
        self.assertEqual(entry["executionTimestamp"], T0 - 0.25)
        self.assertEqual(entry["executionTime"], 0.25)
        self.assertIsNone(entry["error"])
        self.assertIsNone(entry["success"])
        self.assertFalse(entry["cachedResult"])
        self.assertEqual(entry["requestId"], "req1")
        self.assertEqual(len(entry["executionId"]), 32)
        self.assertEqual(entry["caller"], "client")
        self.assertEqual(entry["identityType"], "User")
        self.assertIsNone(entry["parentExecutionId"])
        self.assertEqual(entry["environment"], "python")
        self.assertIsNone(entry["occInfo"])
        self.assertEqual(
            entry["logLines"],
            [
                {
                    "messages": ["'hello'"],
                    "level": "LOG",
                    "isTruncated": False,
                    "timestamp": T0 * 1000,
                    "systemMetadata": None,
                },
                {
                    "messages": ["'careful'"],
                    "level": "WARN",
                    "isTruncated": False,
                    "timestamp": T0 * 1000,
                    "systemMetadata": None,
                },
                {
                    "messages": ["no level"],
                    "level": "LOG",
                    "isTruncated": False,
                    "timestamp": T0 * 1000,
                    "systemMetadata": None,
                },
            ],
        )
        wall.now += 1
        other = logs.record("m:f", "httpAction", caller=Caller("admin"), retries=3).entry
        self.assertEqual(other["udfType"], "HttpAction")
        self.assertEqual(other["identityType"], "DeploymentAdmin")
        self.assertEqual(other["occInfo"], {"retryCount": 3})
        self.assertNotEqual(other["executionId"], entry["executionId"])
        # Built once: every read sees the same entry.
        self.assertIs(logs.read(0)[0][0], entry)

    def test_structured_lines(self) -> None:
        for raw, level, text in [
            ("[ERROR] 'x'", "ERROR", "'x'"),
            ("[DEBUG] 'y z'", "DEBUG", "'y z'"),
            ("[INFO] ", "INFO", ""),
            ("[NOPE] 'x'", "LOG", "[NOPE] 'x'"),
            ("[LOG]'x'", "LOG", "[LOG]'x'"),
            ("", "LOG", ""),
        ]:
            line = structured_line(raw, 5.0)
            self.assertEqual((line["level"], line["messages"]), (level, [text]), raw)

    def test_identity_types(self) -> None:
        logs, _clock, _wall = buffer()
        cases = [
            (Caller("client"), "None"),
            (Caller("client", {"subject": "a"}), "User"),
            (Caller("admin", {"subject": "a"}), "ActingUser"),
            (Caller("system"), "System"),
            (Caller("function"), "None"),
        ]
        for caller, expected in cases:
            self.assertEqual(
                logs.record("m:f", "query", caller=caller).entry["identityType"], expected
            )

    def test_cursors_strictly_increase_within_a_millisecond(self) -> None:
        logs, _clock, wall = buffer()
        for _ in range(50):
            logs.record("m:f", "query")
        wall.now -= 5  # the clock stepped back
        logs.record("m:f", "query")
        cursors = [record.cursor for record in logs.records]
        self.assertEqual(cursors[0], T0 * 1000)
        self.assertEqual(len(set(cursors)), 51)
        self.assertEqual(cursors, sorted(cursors))
        # Each cursor reads exactly the entries after it.
        for i, cursor in enumerate(cursors):
            entries, new_cursor = logs.read(cursor)
            self.assertEqual(len(entries), 50 - i)
            self.assertEqual(new_cursor, cursors[-1] if i < 50 else cursor)

    def test_read_history_and_tail(self) -> None:
        logs, _clock, wall = buffer()
        self.assertEqual(logs.read(0), ([], 0))
        for i in range(5):
            wall.now = T0 + i
            logs.record(f"m:f{i}", "query")
        entries, cursor = logs.read(0)
        self.assertEqual([e["identifier"] for e in entries], [f"m:f{i}" for i in range(5)])
        self.assertEqual(cursor, (T0 + 4) * 1000)
        self.assertEqual(logs.read(cursor), ([], cursor))
        entries, after = logs.read((T0 + 2) * 1000)
        self.assertEqual([e["identifier"] for e in entries], ["m:f3", "m:f4"])
        self.assertEqual(after, cursor)

    def test_limit_keeps_newest_history_and_oldest_tail(self) -> None:
        logs, _clock, wall = buffer()
        for i in range(10):
            wall.now = T0 + i
            logs.record(f"m:f{i}", "query")
        history, cursor = logs.read(0, limit=3)
        self.assertEqual([e["identifier"] for e in history], ["m:f7", "m:f8", "m:f9"])
        self.assertEqual(cursor, (T0 + 9) * 1000)
        # A tail that fell behind gets the oldest first and then the rest: nothing lost.
        seen = []
        cursor = (T0 + 1) * 1000
        while True:
            entries, cursor = logs.read(cursor, limit=3)
            if not entries:
                break
            seen += [e["identifier"] for e in entries]
        self.assertEqual(seen, [f"m:f{i}" for i in range(2, 10)])

    def test_filters(self) -> None:
        logs, _clock, wall = buffer()
        logs.record("a:q", "query", log_lines=["[LOG] 'x'"])
        logs.record("a:m", "mutation", error="Uncaught Error: no", log_lines=["[ERROR] 'bad'"])
        logs.record("b:q", "query", log_lines=["[WARN] 'w'", "[DEBUG] 'd'"])

        def names(**filters) -> list[str]:
            entries, _cursor = logs.read(0, match=make_filter(**filters))
            return [e["identifier"] for e in entries]

        self.assertIsNone(make_filter())
        self.assertEqual(names(functions=["a:q", "b:q"]), ["a:q", "b:q"])
        self.assertEqual(names(status="failure"), ["a:m"])
        self.assertEqual(names(status="success"), ["a:q", "b:q"])
        self.assertEqual(names(level="DEBUG"), ["b:q"])
        self.assertEqual(names(level="ERROR", status="failure", functions=["a:m"]), ["a:m"])
        self.assertEqual(names(level="INFO"), [])
        # The cursor moves past what a filter skipped.
        entries, cursor = logs.read(0, match=make_filter(level="INFO"))
        self.assertEqual((entries, cursor), ([], logs.records[-1].cursor))

    def test_bounded_by_count(self) -> None:
        logs, _clock, _wall = buffer(capacity=100)
        for i in range(250):
            logs.record(f"m:f{i}", "query", log_lines=["[LOG] 'x'"])
        self.assertEqual(len(logs), 100)
        entries, _cursor = logs.read(0, limit=1000)
        self.assertEqual(entries[0]["identifier"], "m:f150")
        self.assertEqual(entries[-1]["identifier"], "m:f249")

    def test_bounded_by_bytes(self) -> None:
        logs, _clock, _wall = buffer(max_bytes=100_000)
        line = "[LOG] '" + "x" * 4000 + "'"
        for _ in range(100):
            logs.record("m:f", "query", log_lines=[line] * 5)
        self.assertLessEqual(logs.bytes, 100_000)
        self.assertEqual(len(logs), 4)
        self.assertEqual(logs.bytes, sum(record.size for record in logs.records))
        # One entry larger than the whole budget is still kept (alone).
        logs.record("m:huge", "query", log_lines=[line] * 50)
        self.assertEqual([r.entry["identifier"] for r in logs.records], ["m:huge"])
        with self.assertRaises(ValueError):
            FunctionLogs(task.Clock(), capacity=0)

    def test_gauge(self) -> None:
        registry = CollectorRegistry()
        logs = FunctionLogs(task.Clock(), registry=registry)
        logs.record("m:f", "query")
        logs.record("m:f", "query")
        self.assertEqual(registry.get_sample_value("convex_function_log_entries"), 2.0)


class LongPollTests(TestCase):
    def test_answers_at_once_with_history(self) -> None:
        logs, clock, _wall = buffer()
        logs.record("m:f", "query")
        results = fired(logs.wait_for(0, 60))
        self.assertEqual(len(results), 1)
        entries, cursor = results[0]
        self.assertEqual([e["identifier"] for e in entries], ["m:f"])
        self.assertEqual(cursor, T0 * 1000)
        self.assertEqual((logs.waiting, clock.getDelayedCalls()), (0, []))

    def test_waits_and_wakes_on_a_new_entry(self) -> None:
        logs, clock, wall = buffer()
        logs.record("m:old", "query")
        cursor = logs.read(0)[1]
        results = fired(logs.wait_for(cursor, 60))
        clock.advance(30)
        self.assertEqual((results, logs.waiting), ([], 1))
        wall.now += 30
        logs.record("m:new", "mutation")
        self.assertEqual(len(results), 1)
        entries, new_cursor = results[0]
        self.assertEqual([e["identifier"] for e in entries], ["m:new"])
        self.assertEqual(new_cursor, (T0 + 30) * 1000)
        # The timer went with the waiter.
        self.assertEqual((logs.waiting, clock.getDelayedCalls()), (0, []))

    def test_times_out_empty_with_the_same_cursor(self) -> None:
        logs, clock, _wall = buffer()
        logs.record("m:f", "query")
        cursor = logs.read(0)[1]
        results = fired(logs.wait_for(cursor, 60))
        clock.advance(59.9)
        self.assertEqual(results, [])
        clock.advance(0.1)
        self.assertEqual(results, [([], cursor)])
        self.assertEqual(logs.waiting, 0)

    def test_filtered_poll_waits_for_a_matching_entry(self) -> None:
        logs, clock, wall = buffer()
        results = fired(logs.wait_for(0, 60, match=make_filter(functions=["m:wanted"])))
        logs.record("m:other", "query")
        self.assertEqual(results, [])
        wall.now += 1
        logs.record("m:wanted", "query", error="Uncaught Error: x")
        entries, cursor = results[0]
        self.assertEqual([e["identifier"] for e in entries], ["m:wanted"])
        self.assertEqual(cursor, (T0 + 1) * 1000)
        # A timed-out filtered poll still moves past the entries it skipped.
        results = fired(logs.wait_for(cursor, 5, match=make_filter(status="success")))
        wall.now += 1
        logs.record("m:other", "query", error="Uncaught Error: y")
        clock.advance(5)
        self.assertEqual(results, [([], (T0 + 2) * 1000)])

    def test_several_waiters(self) -> None:
        logs, clock, _wall = buffer()
        first = fired(logs.wait_for(0, 10))
        second = fired(logs.wait_for(0, 20, match=make_filter(level="ERROR")))
        logs.record("m:f", "query", log_lines=["[LOG] 'x'"])
        self.assertEqual(len(first), 1)
        self.assertEqual((second, logs.waiting), ([], 1))
        logs.record("m:g", "query", log_lines=["[ERROR] 'x'"])
        self.assertEqual([e["identifier"] for e in second[0][0]], ["m:g"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_cancel_forgets_the_waiter(self) -> None:
        logs, clock, _wall = buffer()
        d = logs.wait_for(0, 60)
        self.assertEqual(logs.waiting, 1)
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual((logs.waiting, clock.getDelayedCalls()), (0, []))
        # Later entries and timers touch nothing.
        logs.record("m:f", "query")
        clock.advance(120)

    def test_stopping_answers_waiting_polls(self) -> None:
        logs, clock, _wall = buffer()
        logs.startService()
        results = fired(logs.wait_for(0, 60))
        logs.stopService()
        self.assertEqual(results, [([], 0)])
        self.assertEqual(clock.getDelayedCalls(), [])
        # While stopped, a poll never waits.
        self.assertEqual(fired(logs.wait_for(0, 60)), [([], 0)])
        logs.startService()
        self.assertEqual(fired(logs.wait_for(0, 60)), [])


LOGGED = """
import logging

from convex_backend.server import ConvexError, action, mutation, query, v


@query(args={"n": v.number()})
def read(ctx, args):
    print("reading", args["n"])
    logging.debug("debug detail")
    return args["n"] * 2


@mutation(args={})
def write(ctx, args):
    logging.info("inserting")
    logging.warning("careful")
    return ctx.db.insert("things", {"n": 1})


@query(args={})
def fails(ctx, args):
    print("about to fail")
    raise ValueError("broken on purpose")


@mutation(args={})
def fails_with_data(ctx, args):
    raise ConvexError({"why": "data"})


@action(args={})
def act(ctx, args):
    print("in the action")
    value = ctx.run_query("logged:read", {"n": 21.0})
    logging.error("after the query")
    return value


@mutation(args={})
def bump(ctx, args):
    counter = ctx.db.query("counters").first()
    if counter is None:
        return ctx.db.insert("counters", {"n": 1})
    ctx.db.patch(counter["_id"], {"n": counter["n"] + 1})
"""

HTTP = """
from convex_backend.server import HttpRouter, Response, http_action


@http_action
def hook(ctx, request):
    print("http hook", request.method)
    return Response("ok")


@http_action
def hook_fails(ctx, request):
    raise RuntimeError("http broke")


http = HttpRouter()
http.route(path="/hook", method="POST", handler=hook)
http.route(path="/broken", method="GET", handler=hook_fails)
"""


class RunnerEntriesTests(TestCase):
    """Every kind of execution, through the real runner and workers."""

    timeout = 60

    async def setUp(self) -> None:
        self.db = await open_database(self)
        self.runner, _pools, _deployer = await deploy_app(
            self, self.db, {"logged.py": LOGGED, "http.py": HTTP}, workers=1
        )
        self.logs = FunctionLogs(task.Clock())
        self.runner.log_sink = self.logs.sink

    def entries(self) -> list[dict]:
        return self.logs.read(0, limit=100)[0]

    async def test_query_mutation_action_entries(self) -> None:
        result = await self.runner.call("logged:read", {"n": 2.0}, request_id="r1")
        self.assertEqual(result.value, 4.0)
        [entry] = self.entries()
        self.assertEqual(entry["udfType"], "Query")
        self.assertEqual(entry["identifier"], "logged:read")
        self.assertEqual(entry["requestId"], "r1")
        self.assertEqual(entry["caller"], "client")
        self.assertEqual(entry["identityType"], "None")
        self.assertIsNone(entry["error"])
        self.assertGreater(entry["executionTime"], 0)
        self.assertLess(entry["executionTime"], 30)
        self.assertEqual(
            [(line["level"], line["messages"]) for line in entry["logLines"]],
            [("LOG", ["'reading 2.0'"]), ("DEBUG", ["'debug detail'"])],
        )

        await self.runner.call("logged:write", {}, caller=Caller("admin"))
        entry = self.entries()[-1]
        self.assertEqual((entry["udfType"], entry["identifier"]), ("Mutation", "logged:write"))
        self.assertEqual(entry["identityType"], "DeploymentAdmin")
        self.assertEqual(
            [line["level"] for line in entry["logLines"]],
            ["INFO", "WARN"],
        )
        self.assertIsNone(entry["occInfo"])

    async def test_action_and_its_nested_query_have_their_own_entries(self) -> None:
        result = await self.runner.call("logged:act", {}, request_id="req-act")
        self.assertEqual(result.value, 42.0)
        query, action = self.entries()
        self.assertEqual((query["udfType"], query["identifier"]), ("Query", "logged:read"))
        self.assertEqual(query["caller"], "function")
        self.assertEqual(query["requestId"], "req-act")
        self.assertEqual([line["messages"] for line in query["logLines"]][0], ["'reading 21.0'"])
        self.assertEqual((action["udfType"], action["identifier"]), ("Action", "logged:act"))
        self.assertEqual(action["requestId"], "req-act")
        self.assertNotEqual(action["executionId"], query["executionId"])
        # The action's entry has its own lines only; the caller still gets them all.
        self.assertEqual(
            [(line["level"], line["messages"]) for line in action["logLines"]],
            [("LOG", ["'in the action'"]), ("ERROR", ["'after the query'"])],
        )
        self.assertEqual(len(result.log_lines), 4)

    async def test_failures_have_the_message_and_no_traceback(self) -> None:
        with self.assertRaises(FunctionError):
            await self.runner.call("logged:fails", {})
        with self.assertRaises(FunctionError):
            await self.runner.call("logged:fails_with_data", {})
        fails, with_data = self.entries()
        self.assertEqual(fails["error"], "Uncaught ValueError: broken on purpose")
        self.assertEqual(fails["logLines"][0]["messages"], ["'about to fail'"])
        self.assertIn("ConvexError", with_data["error"])
        for entry in (fails, with_data):
            self.assertNotIn("Traceback", str(entry))
            self.assertNotIn('File "', str(entry))
        # Calls refused before running (unknown function, bad args) are not executions.
        with self.assertRaises(FunctionError):
            await self.runner.call("logged:nope", {})
        with self.assertRaises(FunctionError):
            await self.runner.call("logged:read", {"n": "x"})
        self.assertEqual(len(self.entries()), 2)

    async def test_query_at_a_snapshot(self) -> None:
        await self.runner.call_query_at("logged:read", {"n": 1.0}, self.db.published_ts)
        [entry] = self.entries()
        self.assertEqual((entry["udfType"], entry["identifier"]), ("Query", "logged:read"))

    async def test_http_actions(self) -> None:
        request = {
            "method": "POST",
            "url": "http://site.test/hook?token=secret",
            "headers": [],
            "body": None,
        }
        response = await self.runner.call_http(request)
        self.assertEqual(response["status"], 200)
        broken = await self.runner.call_http(
            {"method": "GET", "url": "http://site.test/broken", "headers": [], "body": None}
        )
        self.assertEqual(broken["status"], 500)
        hook, failed = self.entries()
        self.assertEqual((hook["udfType"], hook["identifier"]), ("HttpAction", "POST /hook"))
        self.assertEqual(hook["logLines"][0]["messages"], ["'http hook POST'"])
        self.assertIsNone(hook["error"])
        self.assertNotIn("secret", str(hook))
        self.assertEqual(failed["identifier"], "GET /broken")
        self.assertEqual(failed["error"], "Uncaught RuntimeError: http broke")

    async def test_mutation_retries_are_counted(self) -> None:
        registry = CollectorRegistry()
        self.runner.metrics = FunctionMetrics(registry, {})
        await self.runner.call("logged:bump", {})
        # Contending read-modify-writes of one document conflict and re-run.
        await defer.gatherResults(
            [defer.ensureDeferred(self.runner.call("logged:bump", {})) for _ in range(8)]
        )
        entries = self.entries()
        self.assertEqual(len(entries), 9)
        self.assertTrue(all(entry["error"] is None for entry in entries))
        retries = [entry["occInfo"]["retryCount"] for entry in entries if entry["occInfo"]]
        # They all began at the same snapshot: every one but the first conflicted.
        self.assertEqual(len(retries), 7)
        self.assertTrue(all(n > 0 for n in retries))
        # One entry per execution, however often it re-ran: its retries add up.
        self.assertEqual(sum(retries), registry.get_sample_value("convex_mutation_retries_total"))
