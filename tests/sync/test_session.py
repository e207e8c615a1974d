"""The session state machine over in-memory fakes (no database, no workers)."""

from __future__ import annotations

import json
import time

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from convex_backend.sync.hub import SyncLimits
from convex_backend.sync.protocol import decode_u64, encode_u64
from convex_backend.sync.session import SyncSession
from tests.sync.fakes import ADMIN_KEY, Client, Harness


def add(query_id: int, path: str, args: dict | None = None, **extra) -> dict:
    return {"type": "Add", "queryId": query_id, "udfPath": path, "args": [args or {}], **extra}


def modify(base: int, *modifications: dict, new: int | None = None) -> dict:
    return {
        "type": "ModifyQuerySet",
        "baseVersion": base,
        "newVersion": base + 1 if new is None else new,
        "modifications": list(modifications),
    }


def mutation(request_id: int, path: str, args: dict) -> dict:
    return {"type": "Mutation", "requestId": request_id, "udfPath": path, "args": [args]}


def ts_of(version: dict) -> int:
    return decode_u64(version["ts"])


class SessionTestCase(TestCase):
    limits: SyncLimits | None = None

    def setUp(self) -> None:
        self.h = Harness(self.limits)
        self.sessions: list = []
        self.addCleanup(lambda: self.h.close(*self.sessions))

    def open(self):
        session, client = self.h.session()
        self.sessions.append(session)
        return session, client

    def assertChains(self, messages: list[dict]) -> None:
        """Every Transition starts where the previous one ended; ts never decreases."""
        previous = {"querySet": 0, "identity": 0, "ts": encode_u64(0)}
        for message in messages:
            if message["type"] != "Transition":
                continue
            self.assertEqual(message["startVersion"], previous)
            self.assertGreaterEqual(ts_of(message["endVersion"]), ts_of(previous))
            previous = message["endVersion"]


class VersionTests(SessionTestCase):
    def test_transitions_chain(self) -> None:
        self.h.db.data["a"] = 1.0
        session, client = self.open()
        self.h.feed(session, {"type": "Connect", "sessionId": "s1"})
        self.h.feed(session, modify(0, add(0, "kv:get", {"key": "a"})))
        (t1,) = client.transitions()
        self.assertEqual(t1["startVersion"], {"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="})
        self.assertEqual(t1["endVersion"]["querySet"], 1)
        self.assertEqual(ts_of(t1["endVersion"]), self.h.db.published_ts)
        self.assertEqual(
            t1["modifications"],
            [
                {
                    "type": "QueryUpdated",
                    "queryId": 0,
                    "value": 1.0,
                    "logLines": ["[LOG] 'kv:get'"],
                    "journal": None,
                }
            ],
        )
        self.h.feed(session, modify(1, add(1, "kv", {"key": "b"}), new=5))
        self.h.feed(session, modify(5, {"type": "Remove", "queryId": 0}))
        messages = client.take()
        self.assertChains(messages)
        t2, t3 = messages[1:]
        self.assertEqual(t2["endVersion"]["querySet"], 5)
        # "kv" is canonicalized to "kv:default", which does not exist.
        self.assertEqual(t2["modifications"][0]["type"], "QueryFailed")
        self.assertIn("kv:default", t2["modifications"][0]["errorMessage"])
        self.assertNotIn("errorData", t2["modifications"][0])
        self.assertEqual(t3["modifications"], [{"type": "QueryRemoved", "queryId": 0}])
        self.assertEqual(session.query_count, 1)

    def test_several_messages_in_one_turn_coalesce(self) -> None:
        session, client = self.open()
        for i in range(3):
            session.receive(json.dumps(modify(i, add(i, "kv:get", {"key": "a"}))))
        self.h.pump()
        (transition,) = client.transitions()
        self.assertEqual(transition["endVersion"]["querySet"], 3)
        self.assertEqual(len(transition["modifications"]), 3)

    def test_internal_functions_need_admin(self) -> None:
        session, client = self.open()
        self.h.feed(session, modify(0, add(0, "kv:secret")))
        (failed,) = client.take()[0]["modifications"]
        self.assertEqual(failed["type"], "QueryFailed")
        self.h.feed(
            session,
            {"type": "Authenticate", "baseVersion": 0, "tokenType": "Admin", "value": ADMIN_KEY},
        )
        (transition,) = client.take()
        self.assertEqual(transition["modifications"][0]["value"], "secret")


class AuthTests(SessionTestCase):
    def test_identity_bumps_and_reruns(self) -> None:
        session, client = self.open()
        self.h.feed(session, modify(0, add(0, "kv:whoami")))
        identity = {"subject": "u1", "issuer": "https://iss", "name": "Bob"}
        self.h.feed(
            session,
            {
                "type": "Authenticate",
                "baseVersion": 0,
                "tokenType": "Admin",
                "value": ADMIN_KEY,
                "impersonating": identity,
            },
        )
        self.h.feed(session, {"type": "Authenticate", "baseVersion": 1, "tokenType": "None"})
        messages = client.take()
        self.assertChains(messages)
        first, second, third = messages
        self.assertEqual(first["modifications"][0]["value"], None)
        self.assertEqual(second["startVersion"]["identity"], 0)
        self.assertEqual(second["endVersion"]["identity"], 1)
        self.assertEqual(
            second["modifications"][0]["value"],
            {**identity, "tokenIdentifier": "https://iss|u1"},
        )
        self.assertEqual(third["endVersion"]["identity"], 2)
        self.assertEqual(third["modifications"][0]["value"], None)
        self.assertIsNone(session.identity)

    def test_authenticate_alone_still_transitions(self) -> None:
        session, client = self.open()
        self.h.feed(
            session,
            {
                "type": "Authenticate",
                "baseVersion": 0,
                "tokenType": "Admin",
                "value": ADMIN_KEY,
                "actingAs": {"tokenIdentifier": "t|x"},
            },
        )
        (transition,) = client.take()
        self.assertEqual(transition["modifications"], [])
        self.assertEqual(transition["endVersion"]["identity"], 1)
        self.assertEqual(session.identity, {"tokenIdentifier": "t|x"})

    def test_invalid_identity(self) -> None:
        session, client = self.open()
        self.h.feed(
            session,
            {
                "type": "Authenticate",
                "baseVersion": 0,
                "tokenType": "Admin",
                "value": ADMIN_KEY,
                "impersonating": {"name": "no subject"},
            },
        )
        (error,) = client.take()
        self.assertEqual(error["type"], "AuthError")
        self.assertIn("subject", error["error"])

    def test_bad_admin_key(self) -> None:
        session, client = self.open()
        self.h.feed(
            session,
            {
                "type": "Authenticate",
                "baseVersion": 0,
                "tokenType": "Admin",
                "value": ADMIN_KEY + "0",
            },
        )
        (error,) = client.take()
        self.assertEqual(error["type"], "AuthError")
        self.assertEqual((error["baseVersion"], error["authUpdateAttempted"]), (0, True))
        self.assertEqual(client.closed, (1000, "AuthError"))
        self.assertTrue(session.closed)

    def test_user_tokens_not_supported(self) -> None:
        session, client = self.open()
        self.h.feed(
            session,
            {"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": "eyJ.x.y"},
        )
        (error,) = client.take()
        self.assertEqual(error["type"], "AuthError")
        self.assertIn("not supported", error["error"])
        self.assertIsNotNone(client.closed)

    def test_wrong_identity_base_version(self) -> None:
        session, client = self.open()
        self.h.feed(session, {"type": "Authenticate", "baseVersion": 1, "tokenType": "None"})
        (error,) = client.take()
        self.assertEqual(error["type"], "FatalError")
        self.assertEqual(client.closed, (1000, "FatalError"))


class BadMessageTests(SessionTestCase):
    def check_fatal(self, *messages, text: str | None = None, binary: bool = False) -> dict:
        session, client = self.open()
        for message in messages:
            session.receive(json.dumps(message))
        if text is not None:
            session.receive(text)
        if binary:
            session.receive_binary()
        self.h.pump()
        fatal = [m for m in client.messages if m["type"] == "FatalError"]
        self.assertEqual(len(fatal), 1, client.messages)
        self.assertEqual(client.closed, (1000, "FatalError"))
        self.assertTrue(session.closed)
        return fatal[0]

    def test_query_set_errors(self) -> None:
        error = self.check_fatal(modify(1, add(0, "kv:get", {"key": "a"})))
        self.assertIn("doesn't match", error["error"])
        self.check_fatal(modify(0, add(0, "kv:get", {"key": "a"}), new=0))
        self.check_fatal(modify(0, add(0, "kv:get"), add(0, "kv:get")))
        self.check_fatal(modify(0, {"type": "Remove", "queryId": 3}))
        self.check_fatal(modify(0, add(0, "kv:get")), modify(1, add(0, "kv:get")))

    def test_garbage(self) -> None:
        self.check_fatal(text="{not json")
        self.check_fatal(text='{"type": "Unknown"}')
        self.check_fatal(text='{"type": "Mutation", "requestId": "x", "udfPath": "a", "args": []}')
        self.check_fatal(binary=True)

    def test_garbage_goes_unnoticed_by_others(self) -> None:
        good, good_client = self.open()
        self.h.feed(good, modify(0, add(0, "kv:get", {"key": "a"})))
        self.check_fatal(text="\x00\x01garbage")
        self.h.db.commit({"a": 5.0})
        self.h.pump()
        (_, update) = good_client.take()
        self.assertEqual(update["modifications"][0]["value"], 5.0)
        self.assertFalse(good.closed)


class LimitTests(SessionTestCase):
    limits = SyncLimits(max_queries=2, max_queued_mutations=1, max_message_bytes=1000)

    def test_too_many_queries(self) -> None:
        session, client = self.open()
        self.h.feed(session, modify(0, add(0, "kv:get"), add(1, "kv:get"), add(2, "kv:get")))
        self.assertIn("Too many queries", client.messages[-1]["error"])

    def test_message_too_large(self) -> None:
        session, client = self.open()
        self.h.feed(session, mutation(0, "kv:set", {"key": "a", "value": "x" * 2000}))
        self.assertIn("too large", client.messages[-1]["error"])

    def test_mutation_queue_is_bounded(self) -> None:
        gate = self.h.runner.gates["kv:set"] = defer.Deferred()
        session, client = self.open()
        for i in range(3):
            session.receive(json.dumps(mutation(i, "kv:set", {"key": "a", "value": 1.0})))
        # One running, one queued, the third refused at once.
        (refused,) = client.take()
        self.assertEqual((refused["requestId"], refused["success"]), (2, False))
        self.assertIn("TooManyConcurrentMutations", refused["result"])
        del self.h.runner.gates["kv:set"]
        gate.callback(None)
        self.h.pump()
        responses = [m for m in client.messages if m["type"] == "MutationResponse"]
        self.assertEqual([r["requestId"] for r in responses], [0, 1])


class PingTests(SessionTestCase):
    def test_ping_after_silence(self) -> None:
        session, client = self.open()
        self.h.clock.advance(14)
        self.assertEqual(client.take(), [])
        self.h.feed(session, modify(0))
        client.take()
        self.h.clock.advance(14)
        self.assertEqual(client.take(), [])
        self.h.clock.advance(1)
        self.assertEqual(client.take(), [{"type": "Ping"}])
        self.h.clock.advance(15)
        self.assertEqual(client.take(), [{"type": "Ping"}])
        session.connection_lost()
        self.h.clock.advance(60)
        self.assertEqual(client.take(), [])


class MutationTests(SessionTestCase):
    def test_response_then_transition_with_effects(self) -> None:
        session, client = self.open()
        self.h.feed(session, {"type": "Connect", "sessionId": "s"})
        self.h.feed(
            session, modify(0, add(0, "kv:get", {"key": "a"}), add(1, "kv:get", {"key": "b"}))
        )
        client.take()
        self.h.feed(session, mutation(0, "kv:set", {"key": "a", "value": 2.0}))
        response, transition = client.take()
        self.assertEqual(response["type"], "MutationResponse")
        self.assertEqual((response["success"], response["result"]), (True, 2.0))
        commit_ts = decode_u64(response["ts"])
        self.assertEqual(commit_ts, self.h.db.published_ts)
        self.assertGreaterEqual(ts_of(transition["endVersion"]), commit_ts)
        # Only the changed query: b's result is the same.
        self.assertEqual(
            [(m["queryId"], m["value"]) for m in transition["modifications"]], [(0, 2.0)]
        )

    def test_mutation_touching_nothing_still_transitions(self) -> None:
        session, client = self.open()
        self.h.feed(session, mutation(0, "kv:set", {"key": "zzz", "value": 1.0}))
        response, transition = client.take()
        self.assertEqual(transition["type"], "Transition")
        self.assertEqual(transition["modifications"], [])
        self.assertGreaterEqual(ts_of(transition["endVersion"]), decode_u64(response["ts"]))

    def test_failures(self) -> None:
        session, client = self.open()
        self.h.feed(session, mutation(0, "kv:boom", {}), mutation(1, "kv:nothing", {}))
        self.h.feed(session, mutation(2, "kv:get", {"key": "a"}))
        responses = [m for m in client.messages if m["type"] == "MutationResponse"]
        self.assertEqual([r["success"] for r in responses], [False] * 3)
        self.assertEqual(responses[0]["result"], "Uncaught Error: boom")
        self.assertIsNone(responses[0]["ts"])
        self.assertNotIn("errorData", responses[0])
        self.assertIn("Could not find public function", responses[1]["result"])
        self.assertChains(client.messages)

    def test_mutations_run_in_order(self) -> None:
        gate = self.h.runner.gates["kv:set"] = defer.Deferred()
        session, client = self.open()
        self.h.feed(
            session,
            mutation(0, "kv:set", {"key": "a", "value": 1.0}),
            mutation(1, "kv:set", {"key": "a", "value": 2.0}),
        )
        self.assertEqual(self.h.runner.calls, [("mutation", "kv:set")])
        del self.h.runner.gates["kv:set"]
        gate.callback(None)
        self.h.pump()
        self.assertEqual(self.h.db.data["a"], 2.0)
        ids = [m["requestId"] for m in client.messages if m["type"] == "MutationResponse"]
        self.assertEqual(ids, [0, 1])

    def test_resent_mutation_is_not_run_again(self) -> None:
        self.h.runner.define(
            "kv:incr",
            "mutation",
            lambda w, a, c: w.update({"n": self.h.db.data.get("n", 0.0) + 1}) or "done",
        )
        first, first_client = self.open()
        self.h.feed(first, {"type": "Connect", "sessionId": "abc"}, mutation(7, "kv:incr", {}))
        original = first_client.take()[0]
        first.connection_lost()
        second, second_client = self.open()
        self.h.feed(
            second,
            {"type": "Connect", "sessionId": "abc", "connectionCount": 1},
            mutation(7, "kv:incr", {}),
        )
        replay, transition = second_client.take()
        self.assertEqual(replay, original)
        self.assertEqual(self.h.db.data["n"], 1.0)
        self.assertGreaterEqual(ts_of(transition["endVersion"]), decode_u64(replay["ts"]))
        # Another session id is another client: it runs.
        third, _ = self.open()
        self.h.feed(third, {"type": "Connect", "sessionId": "xyz"}, mutation(7, "kv:incr", {}))
        self.assertEqual(self.h.db.data["n"], 2.0)
        # Without a Connect there is no idempotency.
        fourth, _ = self.open()
        self.h.feed(fourth, mutation(7, "kv:incr", {}), mutation(7, "kv:incr", {}))
        self.assertEqual(self.h.db.data["n"], 4.0)

    def test_resent_while_original_in_flight(self) -> None:
        gate = self.h.runner.gates["kv:set"] = defer.Deferred()
        first, _ = self.open()
        self.h.feed(
            first,
            {"type": "Connect", "sessionId": "abc"},
            mutation(0, "kv:set", {"key": "a", "value": 1.0}),
        )
        first.connection_lost()
        second, client = self.open()
        self.h.feed(
            second,
            {"type": "Connect", "sessionId": "abc"},
            mutation(0, "kv:set", {"key": "a", "value": 1.0}),
        )
        self.assertEqual(client.messages, [])
        gate.callback(None)
        self.h.pump()
        self.assertEqual(self.h.runner.calls, [("mutation", "kv:set")])
        self.assertTrue(client.messages[0]["success"])

    def test_action(self) -> None:
        session, client = self.open()
        self.h.feed(
            session, {"type": "Action", "requestId": 3, "udfPath": "kv:echo", "args": [{"x": "hi"}]}
        )
        response = client.messages[0]
        self.assertEqual(
            response,
            {
                "type": "ActionResponse",
                "requestId": 3,
                "success": True,
                "result": {"echo": "hi"},
                "logLines": [],
            },
        )
        self.h.feed(session, {"type": "Action", "requestId": 4, "udfPath": "kv:get", "args": [{}]})
        failed = [m for m in client.messages if m["type"] == "ActionResponse"][1]
        self.assertFalse(failed["success"])
        self.assertNotIn("ts", failed)


class UpdateTests(SessionTestCase):
    def test_consistent_snapshot_and_suppression(self) -> None:
        session, client = self.open()
        self.h.feed(
            session, modify(0, *(add(i, "kv:get", {"key": k}) for i, k in enumerate("abc")))
        )
        client.take()
        ts = self.h.db.commit({"a": 1.0, "b": 2.0})
        self.h.pump()
        (transition,) = client.take()
        self.assertEqual(ts_of(transition["endVersion"]), ts)
        self.assertEqual(
            sorted((m["queryId"], m["value"]) for m in transition["modifications"]),
            [(0, 1.0), (1, 2.0)],
        )
        # Writing the same value re-runs the query but sends nothing new for it.
        calls = len(self.h.runner.calls)
        ts = self.h.db.commit({"a": 1.0})
        self.h.pump()
        self.assertEqual(len(self.h.runner.calls), calls + 1)
        (transition,) = client.take()
        self.assertEqual(transition["modifications"], [])
        self.assertEqual(ts_of(transition["endVersion"]), ts)
        # A write nobody read sends nothing at all.
        self.h.db.commit({"zzz": 1.0})
        self.h.pump()
        self.assertEqual(client.take(), [])

    def test_slow_client_coalesces(self) -> None:
        session, client = self.open()
        self.h.feed(session, modify(0, add(0, "kv:get", {"key": "a"})))
        client.take()
        session.pause_output()
        for value in range(5):
            self.h.db.commit({"a": float(value)})
            self.h.pump()
        self.assertEqual(client.take(), [])
        session.resume_output()
        self.h.pump()
        (transition,) = client.take()
        self.assertEqual(transition["modifications"][0]["value"], 4.0)
        self.assertEqual(ts_of(transition["endVersion"]), self.h.db.published_ts)

    def test_errors_and_recovery(self) -> None:
        session, client = self.open()
        self.h.feed(session, modify(0, add(0, "kv:strict", {"key": "k"})))
        (failed,) = client.take()[0]["modifications"]
        self.assertEqual(failed["type"], "QueryFailed")
        self.assertEqual(failed["errorData"], {"missing": "k"})
        self.assertEqual(failed["logLines"], ["[ERROR] 'x'"])
        self.h.db.commit({"k": "here"})
        self.h.pump()
        (updated,) = client.take()[0]["modifications"]
        self.assertEqual((updated["type"], updated["value"]), ("QueryUpdated", "here"))

    def test_shared_cache(self) -> None:
        one, one_client = self.open()
        two, two_client = self.open()
        self.h.feed(one, modify(0, add(0, "kv:get", {"key": "a"})))
        self.h.feed(two, modify(0, add(5, "kv:get", {"key": "a"})))
        self.assertEqual(self.h.runner.calls, [("query", "kv:get")])
        manager = self.h.hub.manager
        self.assertEqual((manager.stats.hits, manager.stats.misses), (1, 1))
        self.h.db.commit({"a": 9.0})
        self.h.pump()
        # Both sessions re-ran it at the same snapshot: one run.
        self.assertEqual(len(self.h.runner.calls), 2)
        a = one_client.transitions()[-1]
        b = two_client.transitions()[-1]
        self.assertEqual(a["endVersion"]["ts"], b["endVersion"]["ts"])
        self.assertEqual(a["modifications"][0]["value"], 9.0)
        self.assertEqual(b["modifications"][0]["value"], 9.0)
        # Subscribing and unsubscribing again is served from the cache.
        self.h.feed(one, modify(1, {"type": "Remove", "queryId": 0}))
        self.h.feed(one, modify(2, add(1, "kv:get", {"key": "a"})))
        self.assertEqual(len(self.h.runner.calls), 2)
        metrics = self.h.deployment.metrics.render().decode()
        # 1 (second subscriber) + 2 (both sessions after the manager's re-run) + 1
        self.assertIn("convex_query_cache_hits_total 4.0", metrics)
        self.assertIn("convex_query_cache_misses_total 2.0", metrics)
        self.assertIn("convex_sync_sessions 2.0", metrics)
        self.assertIn("convex_sync_subscriptions 2.0", metrics)

    def test_different_identities_do_not_share(self) -> None:
        one, _ = self.open()
        two, two_client = self.open()
        self.h.feed(one, modify(0, add(0, "kv:whoami")))
        self.h.feed(
            two,
            {
                "type": "Authenticate",
                "baseVersion": 0,
                "tokenType": "Admin",
                "value": ADMIN_KEY,
                "actingAs": {"tokenIdentifier": "s"},
            },
        )
        self.h.feed(two, modify(0, add(0, "kv:whoami")))
        self.assertEqual(
            two_client.transitions()[-1]["modifications"][0]["value"], {"tokenIdentifier": "s"}
        )
        self.assertEqual(len(self.h.runner.calls), 2)

    def test_redeploy_reruns(self) -> None:
        session, client = self.open()
        self.h.feed(session, modify(0, add(0, "kv:get", {"key": "a"})))
        client.take()
        self.h.runner.define("kv:get", "query", lambda r, a, c: "new code")
        self.h.clock.advance(self.h.hub.limits.deploy_check_interval)
        self.h.pump()
        (transition,) = client.take()
        self.assertEqual(transition["modifications"][0]["value"], "new code")

    def test_update_while_query_in_flight(self) -> None:
        session, client = self.open()
        gate = self.h.runner.gates["kv:get"] = defer.Deferred()
        self.h.feed(session, modify(0, add(0, "kv:get", {"key": "a"})))
        # A commit lands while the first run is in flight, and a second query arrives.
        self.h.db.commit({"a": 1.0})
        self.h.feed(session, modify(1, add(1, "kv:get", {"key": "b"})))
        del self.h.runner.gates["kv:get"]
        gate.callback(None)
        self.h.pump()
        messages = client.take()
        self.assertChains(messages)
        last = messages[-1]
        self.assertEqual(last["endVersion"]["querySet"], 2)
        values = {}
        for message in messages:
            for m in message["modifications"]:
                values[m["queryId"]] = m["value"]
        self.assertEqual(values, {0: 1.0, 1: None})


class TransientErrorTests(SessionTestCase):
    def test_internal_failures_are_retried(self) -> None:
        from convex_backend.functions.runner import FunctionError
        from convex_backend.sync.subscriptions import RETRY_DELAY

        attempts = []

        def flaky(reads, args, caller):
            attempts.append(1)
            if len(attempts) == 1:
                # A worker crash: no read set, says nothing about the data.
                raise FunctionError("The worker crashed", code="WorkerCrashed")
            return "fine"

        async def call(path, args, **kwargs):
            if path == "kv:flaky":
                try:
                    return await original(path, args, **kwargs)
                except FunctionError as e:
                    del e.read_set
                    raise
            return await original(path, args, **kwargs)

        self.h.runner.define("kv:flaky", "query", flaky)
        original = self.h.runner.call
        self.h.runner.call = call
        session, client = self.open()
        self.h.feed(session, modify(0, add(0, "kv:flaky")))
        (failed,) = client.take()[0]["modifications"]
        self.assertEqual(failed["type"], "QueryFailed")
        self.h.clock.advance(RETRY_DELAY)
        self.h.pump()
        (updated,) = client.take()[0]["modifications"]
        self.assertEqual(updated["value"], "fine")


def reassemble(messages: list[dict]) -> list[dict]:
    """What the npm client makes of the frames: TransitionChunks joined (checked as it
    checks them: parts in order, one id and total per sequence) into Transitions."""
    out: list[dict] = []
    buffer: list[dict] = []
    for message in messages:
        if message["type"] != "TransitionChunk":
            assert not buffer, f"{message['type']} in the middle of a chunked transition"
            out.append(message)
            continue
        if buffer:
            assert message["transitionId"] == buffer[0]["transitionId"]
            assert message["totalParts"] == buffer[0]["totalParts"]
        assert message["partNumber"] == len(buffer), "parts out of order"
        buffer.append(message)
        if len(buffer) == message["totalParts"]:
            out.append(json.loads("".join(part["chunk"] for part in buffer)))
            buffer = []
    assert not buffer, "an unfinished chunked transition"
    return out


class ConnectTests(SessionTestCase):
    limits = SyncLimits(observed_ts_wait=2.0)

    def connect(self, session, **fields) -> None:
        self.h.feed(session, {"type": "Connect", "sessionId": "s", **fields})

    def test_clock_skew_and_server_ts(self) -> None:
        session, client = self.open()
        self.connect(session, clientTs=time.time() * 1000 + 5000)
        self.h.feed(session, modify(0, add(0, "kv:get", {"key": "a"})))
        (transition,) = client.take()
        # The client's clock is 5 s ahead of ours (less the time this test took).
        self.assertTrue(3000 <= transition["clientClockSkew"] <= 5000, transition)
        self.assertIsInstance(transition["clientClockSkew"], int)
        self.assertLess(abs(transition["serverTs"] - time.time_ns()), 60 * 10**9)
        # The Python client sends clientTs 0, and a client may send no Connect.
        for fields in ({"clientTs": 0}, None):
            other, other_client = self.open()
            if fields is not None:
                self.connect(other, **fields)
            self.h.feed(other, modify(0, add(0, "kv:get", {"key": "a"})))
            (transition,) = other_client.take()
            self.assertNotIn("clientClockSkew", transition)
            self.assertIsInstance(transition["serverTs"], int)

    def test_observed_ts_the_database_has_is_served_at_once(self) -> None:
        session, client = self.open()
        self.connect(session, maxObservedTimestamp=encode_u64(self.h.db.published_ts))
        self.h.feed(session, modify(0, add(0, "kv:get", {"key": "a"})))
        (transition,) = client.take()
        self.assertEqual(ts_of(transition["endVersion"]), self.h.db.published_ts)

    def test_client_ahead_of_the_database_waits_for_it(self) -> None:
        """A client that has seen ts 115 while the database is at 100 (another node
        that is ahead, say) is answered only once the database reaches 115."""
        observed = self.h.db.published_ts + 15
        session, client = self.open()
        self.connect(session, maxObservedTimestamp=encode_u64(observed))
        self.h.feed(
            session,
            modify(0, add(0, "kv:get", {"key": "a"})),
            mutation(0, "kv:set", {"key": "b", "value": 1.0}),
        )
        self.h.clock.advance(0.5)
        self.h.db.commit({"a": 1.0})  # ts 110: not there yet
        self.h.clock.advance(0.5)
        self.assertEqual(client.messages, [])
        self.assertEqual(self.h.runner.calls, [])
        self.h.db.commit({"a": 2.0})  # ts 120
        self.h.clock.advance(0.05)
        self.h.pump()
        messages = client.take()
        # The held messages, handled in order (the fake runs the mutation at once,
        # so one Transition answers both).
        self.assertEqual([m["type"] for m in messages], ["MutationResponse", "Transition"])
        self.assertTrue(messages[0]["success"])
        self.assertChains(messages)
        transition = messages[1]
        self.assertGreaterEqual(ts_of(transition["endVersion"]), observed)
        self.assertEqual(transition["modifications"][0]["value"], 2.0)
        self.assertEqual(self.h.db.data["b"], 1.0)
        self.assertIsNone(client.closed)

    def test_client_ahead_is_refused_when_the_database_does_not_get_there(self) -> None:
        """Data restored from an older backup: the client is refused (retryable close,
        as the real backend does) rather than shown an older snapshot."""
        bystander, bystander_client = self.open()
        session, client = self.open()
        self.connect(session, maxObservedTimestamp=encode_u64(10**18))
        self.h.feed(
            session,
            modify(0, add(0, "kv:get", {"key": "a"})),
            mutation(0, "kv:set", {"key": "b", "value": 1.0}),
        )
        self.h.clock.advance(1.9)
        self.assertIsNone(client.closed)
        self.h.clock.advance(0.2)
        self.assertEqual(client.messages, [])
        self.assertEqual(client.closed[0], 1011)
        self.assertTrue(client.closed[1].startswith("InternalServerError: "), client.closed)
        self.assertLessEqual(len(client.closed[1].encode()), 123)
        self.assertEqual(self.h.runner.calls, [])
        self.assertNotIn("b", self.h.db.data)
        registry = self.h.deployment.metrics.registry
        self.assertEqual(registry.get_sample_value("convex_sync_connects_refused_total"), 1.0)
        # Nobody else noticed.
        self.h.feed(bystander, modify(0, add(0, "kv:get", {"key": "a"})))
        self.assertEqual(len(bystander_client.transitions()), 1)

    def test_close_while_waiting(self) -> None:
        session, client = self.open()
        self.connect(session, maxObservedTimestamp=encode_u64(10**18))
        self.h.feed(session, modify(0, add(0, "kv:get", {"key": "a"})))
        session.connection_lost()
        self.h.clock.advance(5)
        self.assertEqual((client.messages, client.closed), ([], None))
        self.assertEqual(self.h.hub._ts_waits, {})


class TransitionChunkTests(SessionTestCase):
    limits = SyncLimits(max_transition_bytes=500)

    def open_chunked(self):
        client = Client()
        session = SyncSession(
            self.h.hub, client.send, client.close, self.h.clock, transition_chunks=True
        )
        self.sessions.append(session)
        return session, client

    def test_large_transitions_go_in_chunks(self) -> None:
        big = 'é"\\x' * 600
        self.h.db.data["a"] = big
        session, client = self.open_chunked()
        self.h.feed(session, modify(0, add(0, "kv:get", {"key": "a"})))
        chunks = client.take()
        self.assertGreater(len(chunks), 3)
        self.assertEqual({m["type"] for m in chunks}, {"TransitionChunk"})
        self.assertTrue(all(len(m["chunk"]) <= 500 for m in chunks))
        (first,) = reassemble(chunks)
        self.assertEqual(first["type"], "Transition")
        self.assertEqual(first["modifications"][0]["value"], big)
        # A small one after it goes whole, and chains from the reassembled one.
        self.h.feed(session, mutation(0, "kv:set", {"key": "a", "value": "small"}))
        small = client.take()
        self.assertEqual([m["type"] for m in small], ["MutationResponse", "Transition"])
        self.assertChains([first, *small])
        # Each chunked transition has its own id.
        self.h.feed(session, mutation(1, "kv:set", {"key": "a", "value": big + "!"}))
        frames = client.take()
        self.assertEqual(frames[0]["type"], "MutationResponse")
        self.assertEqual({m["transitionId"] for m in frames[1:]}, {"2"})
        (third,) = reassemble(frames[1:])
        self.assertChains([first, small[1], third])
        self.assertEqual(third["modifications"][0]["value"], big + "!")

    def test_clients_without_chunk_support_get_it_whole(self) -> None:
        self.h.db.data["a"] = "x" * 2000
        session, client = self.open()
        self.h.feed(session, modify(0, add(0, "kv:get", {"key": "a"})))
        (transition,) = client.take()
        self.assertEqual(transition["type"], "Transition")
        self.assertEqual(transition["modifications"][0]["value"], "x" * 2000)
