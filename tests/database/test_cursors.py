"""Tests for convex_backend.database.cursors: sealed pagination cursors."""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from convex_backend.database.cursors import (
    FINGERPRINT_SIZE,
    MAX_CURSOR_LENGTH,
    Cursor,
    CursorCodec,
    InvalidCursor,
    query_fingerprint,
)
from convex_backend.database.query import parse_query
from convex_backend.values import ConvexValueError

SETTINGS = settings(max_examples=300, deadline=None)
SECRET = "ab" * 32
OTHER_SECRET = "cd" * 32
FP = bytes(range(FINGERPRINT_SIZE))
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

CODEC = CursorCodec(SECRET)

fingerprints = st.binary(min_size=FINGERPRINT_SIZE, max_size=FINGERPRINT_SIZE)
positions = st.one_of(st.none(), st.binary(max_size=200))


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class RoundTripTests(SynchronousTestCase):
    @given(fingerprints, positions)
    @SETTINGS
    def test_round_trip(self, fp: bytes, position: bytes | None) -> None:
        text = CODEC.encode(Cursor(fp, position))
        self.assertRegex(text, r"^[A-Za-z0-9_-]+$")  # URL-safe, no padding
        self.assertEqual(CODEC.decode(text, fp), Cursor(fp, position))
        # Another codec from the same secret (a restart) reads it too.
        self.assertEqual(CursorCodec(SECRET).decode(text, fp), Cursor(fp, position))

    def test_empty_position_is_not_done(self) -> None:
        self.assertEqual(CODEC.decode(CODEC.encode(Cursor(FP, b"")), FP).position, b"")
        self.assertIsNone(CODEC.decode(CODEC.encode(Cursor(FP, None)), FP).position)

    def test_encoding_is_randomized(self) -> None:
        c = Cursor(FP, b"key")
        self.assertNotEqual(CODEC.encode(c), CODEC.encode(c))

    def test_contents_are_hidden(self) -> None:
        text = CODEC.encode(Cursor(FP, b"secret-position-" * 4))
        self.assertNotIn(b"secret-position", unb64(text))

    def test_encode_refuses_bad_cursors(self) -> None:
        for bad in (Cursor(b"short", None), Cursor(FP + b"x", None), Cursor(FP, 5)):
            self.assertRaises(ValueError, CODEC.encode, bad)

    def test_repr_hides_the_key(self) -> None:
        self.assertNotIn(SECRET, repr(CODEC))


class RejectionTests(SynchronousTestCase):
    def assertInvalid(self, text: Any, fp: bytes = FP) -> InvalidCursor:
        e = self.assertRaises(InvalidCursor, CODEC.decode, text, fp)
        self.assertIn("InvalidCursor", str(e))
        self.assertIsInstance(e, ConvexValueError)
        return e

    @given(positions, st.data())
    @SETTINGS
    def test_any_changed_character_is_refused(self, position: Any, data: Any) -> None:
        text = CODEC.encode(Cursor(FP, position))
        i = data.draw(st.integers(0, len(text) - 1))
        c = data.draw(st.sampled_from(B64URL.replace(text[i], "")))
        self.assertInvalid(text[:i] + c + text[i + 1 :])

    @given(positions, st.data())
    @SETTINGS
    def test_any_flipped_bit_is_refused(self, position: Any, data: Any) -> None:
        raw = bytearray(unb64(CODEC.encode(Cursor(FP, position))))
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= 1 << data.draw(st.integers(0, 7))
        self.assertInvalid(b64(bytes(raw)))

    @given(positions, st.data())
    @SETTINGS
    def test_truncated_or_extended_is_refused(self, position: Any, data: Any) -> None:
        text = CODEC.encode(Cursor(FP, position))
        self.assertInvalid(text[: data.draw(st.integers(0, len(text) - 1))])
        self.assertInvalid(text + data.draw(st.text(B64URL, min_size=1, max_size=8)))

    def test_non_canonical_base64_is_refused(self) -> None:
        text = CODEC.encode(Cursor(FP, b"abc"))
        self.assertNotEqual(len(text) % 4, 0)  # the last character has spare bits
        last = B64URL.index(text[-1])
        # Setting the lowest bit changes only bits the decoder throws away.
        twin = text[:-1] + B64URL[last | 1 if last % 2 == 0 else last & ~1]
        self.assertEqual(unb64(twin), unb64(text))
        self.assertInvalid(twin)
        self.assertInvalid(text + "=" * (-len(text) % 4))

    def test_wrong_fingerprint(self) -> None:
        text = CODEC.encode(Cursor(FP, b"k"))
        e = self.assertInvalid(text, bytes(FINGERPRINT_SIZE))
        self.assertIn("different query", str(e))

    def test_other_secret(self) -> None:
        text = CursorCodec(OTHER_SECRET).encode(Cursor(FP, b"k"))
        e = self.assertInvalid(text)
        self.assertIn("another deployment", str(e))

    def test_unknown_version(self) -> None:
        raw = bytearray(unb64(CODEC.encode(Cursor(FP, b"k"))))
        raw[0] = 2
        e = self.assertInvalid(b64(bytes(raw)))
        self.assertIn("version", str(e))

    def test_authentic_but_unreadable_contents(self) -> None:
        # White box: seal plaintexts that encode() never produces.
        for plaintext in (FP + b"\x07", FP + b"\x00extra"):
            nonce = bytes(12)
            raw = b"\x01" + nonce + CODEC._aead.encrypt(nonce, plaintext, b"\x01")
            self.assertInvalid(b64(raw))

    def test_too_long(self) -> None:
        e = self.assertInvalid("A" * (MAX_CURSOR_LENGTH + 1))
        self.assertIn("too long", str(e))

    def test_not_strings(self) -> None:
        text = CODEC.encode(Cursor(FP, b"k"))
        for obj in (None, 5, 1.5, True, text.encode(), [text], {"c": text}, object()):
            self.assertInvalid(obj)

    def test_garbage_examples(self) -> None:
        for text in (
            "",
            "A",
            "AA",
            "====",
            "a b",
            "abc=",
            "ab+/",
            "\x00",
            "é" * 40,
            "\ud800",
            "A" * 100,
            "_" * 77,
        ):
            self.assertInvalid(text)

    @given(st.one_of(st.text(), st.text(B64URL), st.text(B64URL, min_size=60)))
    @SETTINGS
    def test_garbage_strings(self, text: str) -> None:
        self.assertInvalid(text)

    @given(st.binary(max_size=300))
    @SETTINGS
    def test_garbage_bytes_in_base64(self, raw: bytes) -> None:
        self.assertInvalid(b64(raw))
        self.assertInvalid(b64(b"\x01" + raw))


def q(source: dict, operators: list | None = None) -> Any:
    return parse_query({"source": source, "operators": operators or []})


EQ_A = {"filter": {"$eq": [{"$field": "a"}, {"$literal": 1}]}}
EQ_B = {"filter": {"$eq": [{"$field": "b"}, {"$literal": 1}]}}


def scan(table: str = "t", order: str | None = None) -> dict:
    return {"type": "FullTableScan", "tableName": table, "order": order}


def index(name: str = "t.by_a", rng: list | None = None, order: str | None = None) -> dict:
    return {"type": "IndexRange", "indexName": name, "range": rng or [], "order": order}


def eq(path: str, value: Any) -> dict:
    return {"type": "Eq", "fieldPath": path, "value": value}


class FingerprintTests(SynchronousTestCase):
    def test_size_and_determinism(self) -> None:
        fp = query_fingerprint(q(scan()))
        self.assertEqual(len(fp), FINGERPRINT_SIZE)
        self.assertEqual(fp, query_fingerprint(q(scan())))

    def test_limits_do_not_count(self) -> None:
        self.assertEqual(
            query_fingerprint(q(scan(), [EQ_A, {"limit": 5}])),
            query_fingerprint(q(scan(), [{"limit": 50}, EQ_A])),
        )

    def test_default_order_is_ascending(self) -> None:
        self.assertEqual(
            query_fingerprint(q(scan(order=None))),
            query_fingerprint(q(scan(order="asc"))),
        )

    def test_everything_else_counts(self) -> None:
        search = {
            "type": "Search",
            "indexName": "t.s",
            "filters": [{"type": "Search", "fieldPath": "body", "value": "hi"}],
        }
        queries = [
            q(scan()),
            q(scan("u")),
            q(scan(order="desc")),
            q(scan(), [EQ_A]),
            q(scan(), [EQ_B]),
            q(scan(), [EQ_A, EQ_B]),
            q(scan(), [EQ_B, EQ_A]),
            q(index()),
            q(index("t.by_b")),
            q(index("u.by_a")),
            q(index(order="desc")),
            q(index(rng=[eq("a", 1)])),
            q(index(rng=[eq("a", 2)])),
            q(index(rng=[eq("a", {"$integer": "AQAAAAAAAAA="})])),
            q(index(rng=[eq("a", {"$undefined": None})])),
            q(index(rng=[eq("a", None)])),
            q(index(rng=[eq("b", 1)])),
            q(index(rng=[{"type": "Gt", "fieldPath": "a", "value": 1}])),
            q(index(rng=[{"type": "Gte", "fieldPath": "a", "value": 1}])),
            q(index(rng=[eq("a", 1), eq("b", 1)])),
            q(index(rng=[eq("a", 1)]), [EQ_A]),
            q(search),
            q({**search, "indexName": "t.s2"}),
            q(
                {
                    **search,
                    "filters": [*search["filters"], eq("c", "x")],
                }
            ),
        ]
        fps = [query_fingerprint(x) for x in queries]
        self.assertEqual(len(set(fps)), len(fps))

    def test_cursor_of_one_query_fails_on_another(self) -> None:
        a = query_fingerprint(q(index(rng=[eq("a", 1)])))
        b = query_fingerprint(q(index(rng=[eq("a", 2)])))
        text = CODEC.encode(Cursor(a, b"pos"))
        self.assertEqual(CODEC.decode(text, a).position, b"pos")
        self.assertRaises(InvalidCursor, CODEC.decode, text, b)
