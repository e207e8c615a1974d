"""Parsing client messages and encoding server messages."""

from __future__ import annotations

import json

from twisted.trial.unittest import TestCase

from convex_backend.sync import protocol as p
from convex_backend.values import Int64


class U64Tests(TestCase):
    def test_known_values(self) -> None:
        self.assertEqual(p.encode_u64(0), "AAAAAAAAAAA=")
        self.assertEqual(p.encode_u64(1000), "6AMAAAAAAAA=")
        self.assertEqual(p.decode_u64("6AMAAAAAAAA="), 1000)
        self.assertEqual(p.decode_u64("uAsAAAAAAAA="), 3000)

    def test_round_trip_and_url_safe(self) -> None:
        for value in (1, 255, 2**40 + 7, 1795496868623000000, p.MAX_TS):
            self.assertEqual(p.decode_u64(p.encode_u64(value)), value)
        text = p.encode_u64(2**62 + 2**61 + 63 * 2**50)
        self.assertEqual(p.decode_u64(text.replace("+", "-").replace("/", "_")), p.decode_u64(text))

    def test_rejects(self) -> None:
        for bad in ("AAAAAAAAAAA", "AAAA", 5, None, "AAAAAAAAAA==", "////////////"):
            with self.assertRaises((p.ProtocolError, ValueError)):
                p.decode_u64(bad)
        for bad in (-1, 2**63, 1.0, True):
            with self.assertRaises(ValueError):
                p.encode_u64(bad)


class ParseTests(TestCase):
    def parse(self, message: object) -> object:
        return p.parse_client_message(json.dumps(message))

    def test_connect(self) -> None:
        m = self.parse(
            {
                "type": "Connect",
                "sessionId": "53d3",
                "connectionCount": 1,
                "lastCloseReason": "InternalServerError: test",
                "clientTs": 1795496832442,
                "maxObservedTimestamp": "uAsAAAAAAAA=",
            }
        )
        self.assertEqual(m.session_id, "53d3")
        self.assertEqual(m.max_observed_ts, 3000)
        m = self.parse({"type": "Connect", "sessionId": "x", "lastCloseReason": None})
        self.assertIsNone(m.max_observed_ts)

    def test_modify_query_set(self) -> None:
        m = self.parse(
            {
                "type": "ModifyQuerySet",
                "baseVersion": 0,
                "newVersion": 1.0,
                "modifications": [
                    {
                        "type": "Add",
                        "queryId": 0,
                        "udfPath": "messages:list",
                        "args": [{"big": {"$integer": "CgAAAAAAAAA="}, "n": 3}],
                        "journal": None,
                    },
                    {"type": "Remove", "queryId": 7},
                ],
            }
        )
        self.assertEqual((m.base_version, m.new_version), (0, 1))
        add, remove = m.modifications
        self.assertEqual(add.args, {"big": Int64(10), "n": 3.0})
        self.assertIsNone(add.journal)
        self.assertEqual(remove.query_id, 7)

    def test_requests_and_auth(self) -> None:
        m = self.parse({"type": "Mutation", "requestId": 3, "udfPath": "a/b", "args": [{}]})
        self.assertIsInstance(m, p.MutationRequest)
        m = self.parse({"type": "Action", "requestId": 4, "udfPath": "a:b", "args": {}})
        self.assertIsInstance(m, p.ActionRequest)
        m = self.parse(
            {
                "type": "Authenticate",
                "baseVersion": 0,
                "tokenType": "Admin",
                "value": "secret-key",
                "actingAs": {"subject": "u1", "issuer": "iss"},
            }
        )
        self.assertEqual(m.impersonating, {"subject": "u1", "issuer": "iss"})
        self.assertNotIn("secret-key", repr(m))
        m = self.parse({"type": "Authenticate", "baseVersion": 3, "tokenType": "None"})
        self.assertIsNone(m.value)
        m = self.parse({"type": "Event", "eventType": "ClientConnect", "event": [1]})
        self.assertIsInstance(m, p.Event)

    def test_garbage(self) -> None:
        bad = [
            "not json",
            "[1, 2]",
            '"Connect"',
            json.dumps({"type": "Nope"}),
            json.dumps({"noType": 1}),
            json.dumps(
                {"type": "ModifyQuerySet", "baseVersion": "0", "newVersion": 1, "modifications": []}
            ),
            json.dumps({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1}),
            json.dumps(
                {"type": "ModifyQuerySet", "baseVersion": -1, "newVersion": 1, "modifications": []}
            ),
            json.dumps(
                {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1.5, "modifications": []}
            ),
            json.dumps(
                {
                    "type": "ModifyQuerySet",
                    "baseVersion": 0,
                    "newVersion": 1,
                    "modifications": [
                        {"type": "Add", "queryId": 0, "udfPath": "a", "args": [{}, {}]}
                    ],
                }
            ),
            json.dumps(
                {
                    "type": "ModifyQuerySet",
                    "baseVersion": 0,
                    "newVersion": 1,
                    "modifications": [
                        {"type": "Add", "queryId": 0, "udfPath": "a", "args": [{"$bad": 1}]}
                    ],
                }
            ),
            json.dumps(
                {
                    "type": "ModifyQuerySet",
                    "baseVersion": 0,
                    "newVersion": 1,
                    "modifications": [{"type": "Change", "queryId": 0}],
                }
            ),
            json.dumps({"type": "Mutation", "requestId": True, "udfPath": "a", "args": [{}]}),
            json.dumps({"type": "Mutation", "requestId": 1, "udfPath": "", "args": [{}]}),
            json.dumps({"type": "Mutation", "requestId": 1, "udfPath": "a", "args": [5]}),
            json.dumps({"type": "Authenticate", "baseVersion": 0, "tokenType": "Magic"}),
            json.dumps({"type": "Connect", "maxObservedTimestamp": "nope"}),
        ]
        for text in bad:
            with self.assertRaises(p.ProtocolError, msg=text):
                p.parse_client_message(text)


class EncodeTests(TestCase):
    def test_transition(self) -> None:
        message = p.transition(p.StateVersion(), p.StateVersion(1, 0, 1000), [p.query_removed(1)])
        self.assertEqual(
            message["startVersion"], {"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="}
        )
        self.assertEqual(
            message["endVersion"], {"querySet": 1, "identity": 0, "ts": "6AMAAAAAAAA="}
        )

    def test_error_data_only_for_convex_errors(self) -> None:
        plain = p.query_failed(1, "boom", [], None)
        self.assertNotIn("errorData", plain)
        self.assertEqual(plain["logLines"], [])
        with_data = p.query_failed(1, "boom", [], None, None)
        self.assertIn("errorData", with_data)
        failure = p.mutation_failure(2, "boom", ["[LOG] 'x'"])
        self.assertEqual((failure["result"], failure["ts"]), ("boom", None))
        self.assertNotIn("errorData", failure)
        failure = p.mutation_failure(2, "boom", [], {"code": Int64(7)})
        self.assertEqual(failure["errorData"], {"code": {"$integer": "BwAAAAAAAAA="}})
        success = p.mutation_success(3, None, 2000, [])
        self.assertEqual((success["result"], success["ts"]), (None, "0AcAAAAAAAA="))
        action = p.action_failure(4, "nope", [], {"a": 1.0})
        self.assertNotIn("ts", action)
        self.assertEqual(action["errorData"], {"a": 1.0})


class TransitionExtrasTests(TestCase):
    def test_clock_fields_only_when_known(self) -> None:
        plain = p.transition(p.StateVersion(), p.StateVersion(1, 0, 1000), [])
        self.assertNotIn("clientClockSkew", plain)
        self.assertNotIn("serverTs", plain)
        timed = p.transition(
            p.StateVersion(),
            p.StateVersion(1, 0, 1000),
            [],
            client_clock_skew=-42,
            server_ts=1795496868623000000,
        )
        # Numbers, as the npm client and the Rust client read them (ms and ns).
        text = p.encode_message(timed)
        self.assertIn('"clientClockSkew":-42', text)
        self.assertIn('"serverTs":1795496868623000000', text)


class TransitionChunkTests(TestCase):
    def transition_text(self) -> str:
        # Quotes, backslashes and non-ASCII (escaped by encode_message) in the value,
        # so that chunk boundaries fall inside escapes.
        value = ['say "hi" \\ été 😀 ' * 40, "x" * 3000]
        message = p.transition(
            p.StateVersion(), p.StateVersion(1, 0, 5), [p.query_updated(0, value, [], None)]
        )
        return p.encode_message(message)

    def test_chunks_reassemble_to_the_transition(self) -> None:
        text = self.transition_text()
        self.assertTrue(text.isascii())
        chunks = p.transition_chunks(text, "7", 1000)
        self.assertEqual(len(chunks), -(-len(text) // 1000))
        for number, chunk in enumerate(chunks):
            self.assertEqual(
                set(chunk), {"type", "chunk", "partNumber", "totalParts", "transitionId"}
            )
            self.assertEqual(chunk["type"], "TransitionChunk")
            self.assertEqual(chunk["partNumber"], number)
            self.assertEqual(chunk["totalParts"], len(chunks))
            self.assertEqual(chunk["transitionId"], "7")
            self.assertLessEqual(len(chunk["chunk"]), 1000)
        # What the client does: parse each frame, join the chunks, parse the result.
        frames = [json.loads(p.encode_message(chunk)) for chunk in chunks]
        joined = "".join(frame["chunk"] for frame in frames)
        self.assertEqual(joined, text)
        self.assertEqual(json.loads(joined), json.loads(text))

    def test_small_and_odd_inputs(self) -> None:
        [only] = p.transition_chunks("{}", "1", 10)
        self.assertEqual((only["chunk"], only["totalParts"]), ("{}", 1))
        self.assertEqual(len(p.transition_chunks("x" * 20, "1", 10)), 2)
        self.assertEqual(len(p.transition_chunks("x" * 21, "1", 10)), 3)
        with self.assertRaises(ValueError):
            p.transition_chunks("{}", "1", 0)

    def test_which_clients_take_chunks(self) -> None:
        cases = [
            # (Convex-Client header, request path) -> chunks?
            (None, "/api/1.48.0/sync", True),
            (None, b"/api/1.28.0/sync", True),
            (None, "/api/1.28.0-alpha.1/sync", True),
            (None, "/prefix/api/2.0.0/sync?x=1", True),
            (None, "//api/1.48.0/sync", True),
            (None, "/api/1.27.9/sync", False),
            (None, "/api/0.99.0/sync", False),
            (None, "/api/sync", False),
            (None, "/api/garbage/sync", False),
            (None, "/api/1.48.0/other", False),
            (None, None, False),
            ("npm-1.48.0", "/api/sync", True),
            ("npm-1.20.0", "/api/1.48.0/sync", False),
            ("python-0.8.1", "/api/sync", False),
            ("python-0.8.1", "/api/1.48.0/sync", False),
            ("rust-0.10.4", "/api/sync", False),
            ("npm-", "/api/sync", False),
            ("npm", "/api/sync", False),
            ("", "/api/1.48.0/sync", True),
        ]
        for header, path, expected in cases:
            self.assertEqual(
                p.supports_transition_chunks(header, path), expected, f"{header!r} {path!r}"
            )
