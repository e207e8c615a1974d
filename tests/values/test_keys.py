"""Tests for convex_backend.values.keys: order-preserving index key bytes."""

from __future__ import annotations

import math
from functools import cmp_to_key

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from convex_backend.values.errors import ConvexValueError
from convex_backend.values.keys import (
    decode_index_key,
    decode_key,
    encode_index_key,
    encode_key,
    prefix_successor,
)
from convex_backend.values.order import compare_values
from convex_backend.values.types import INT64_MAX, INT64_MIN, UNDEFINED, Int64
from tests.values.test_order import (
    CHAIN,
    NAN,
    NEG_NAN,
    SETTINGS,
    float_from_bits,
    same,
    sign,
    top_values,
    values,
)

index_tuples = st.lists(top_values, max_size=3)


def bytes_cmp(x: bytes, y: bytes) -> int:
    return (x > y) - (x < y)


def tuple_cmp(a: list, b: list) -> int:
    for x, y in zip(a, b, strict=False):
        c = compare_values(x, y)
        if c:
            return c
    return sign(len(a) - len(b))


class FormatTests(SynchronousTestCase):
    """Pin the byte format: it is persisted, so it must never drift."""

    def test_scalars(self) -> None:
        z7 = b"\x00" * 7
        cases = [
            (UNDEFINED, b"\x01"),
            (None, b"\x02"),
            (Int64(0), b"\x03\x80" + z7),
            (Int64(-1), b"\x03\x7f" + b"\xff" * 7),
            (Int64(INT64_MIN), b"\x03\x00" + z7),
            (Int64(INT64_MAX), b"\x03" + b"\xff" * 8),
            (0.0, b"\x04\x80" + z7),
            (-0.0, b"\x04\x7f" + b"\xff" * 7),
            (1.0, b"\x04\xbf\xf0" + b"\x00" * 6),
            (-math.inf, b"\x04\x00\x0f" + b"\xff" * 6),
            (NAN, b"\x04\xff\xf8" + b"\x00" * 6),
            (NEG_NAN, b"\x04\x00\x07" + b"\xff" * 6),
            (False, b"\x05"),
            (True, b"\x06"),
            ("", b"\x07\x00\x01"),
            ("a\x00b", b"\x07a\x00\xffb\x00\x01"),
            ("é", b"\x07\xc3\xa9\x00\x01"),
            (b"\x00\x00", b"\x08\x00\xff\x00\xff\x00\x01"),
        ]
        for value, expected in cases:
            self.assertEqual(encode_key(value), expected, repr(value))

    def test_containers(self) -> None:
        self.assertEqual(encode_key([]), b"\x09\x00")
        self.assertEqual(encode_key([None, True]), b"\x09\x02\x06\x00")
        self.assertEqual(encode_key({}), b"\x0a\x00")
        self.assertEqual(
            encode_key({"b": None, "": False}),
            b"\x0a\x01\x00\x01\x05\x01b\x00\x01\x02\x00",
        )

    def test_index_key_is_concatenation(self) -> None:
        self.assertEqual(
            encode_index_key([UNDEFINED, "a", Int64(1)]),
            encode_key(UNDEFINED) + encode_key("a") + encode_key(Int64(1)),
        )
        self.assertEqual(encode_index_key([]), b"")
        self.assertEqual(encode_index_key(("x",)), encode_key("x"))


class OrderTests(SynchronousTestCase):
    def test_chain(self) -> None:
        encoded = [encode_key(v) for v in CHAIN]
        self.assertEqual(encoded, sorted(encoded))
        self.assertEqual(len(set(encoded)), len(encoded))

    def test_empty_object_vs_empty_key(self) -> None:
        # Without a per-field marker, {} (0A 00) would be ambiguous with the
        # start of {"": ...} and these would sort wrongly.
        chain = [
            [{}],
            [{}, None],
            [{}, {}],
            [{}, {"": None}],
            [{"": None}],
            [{"": None}, None],
            [{"": {}}],
            [{"": {"": None}}],
            [{"": []}],
            [{"": [{}]}],
            [{"": {}}, {}],
        ]
        for a in chain:
            for b in chain:
                self.assertEqual(
                    sign(bytes_cmp(encode_key(a), encode_key(b))),
                    compare_values(a, b),
                    f"{a!r} vs {b!r}",
                )
        self.assertEqual(
            sorted(chain, key=encode_key),
            sorted(chain, key=cmp_to_key(compare_values)),
        )

    def test_prefix_tuples_sort_first(self) -> None:
        self.assertLess(encode_index_key(["a"]), encode_index_key(["a", UNDEFINED]))
        self.assertLess(encode_index_key(["a", None]), encode_index_key(["a\x00"]))
        self.assertLess(encode_index_key([]), encode_index_key([UNDEFINED]))
        self.assertLess(encode_index_key([[]]), encode_index_key([[], UNDEFINED]))

    @SETTINGS
    @given(top_values, top_values)
    def test_bytes_order_is_value_order(self, a: object, b: object) -> None:
        ka, kb = encode_key(a), encode_key(b)
        self.assertEqual(bytes_cmp(ka, kb), compare_values(a, b))

    @SETTINGS
    @given(st.lists(top_values, max_size=12))
    def test_sorting_by_key_is_sorting_by_order(self, items: list) -> None:
        indices = range(len(items))
        by_key = sorted(indices, key=lambda i: encode_key(items[i]))
        by_order = sorted(indices, key=cmp_to_key(lambda i, j: compare_values(items[i], items[j])))
        self.assertEqual(by_key, by_order)

    @SETTINGS
    @given(index_tuples, index_tuples)
    def test_index_keys_compare_tuple_wise(self, a: list, b: list) -> None:
        self.assertEqual(bytes_cmp(encode_index_key(a), encode_index_key(b)), tuple_cmp(a, b))

    @SETTINGS
    @given(index_tuples, index_tuples, index_tuples)
    def test_prefix_range_holds_exactly_the_extensions(
        self, prefix: list, a: list, b: list
    ) -> None:
        low = encode_index_key(prefix)
        high = prefix_successor(low)
        for other in (prefix + a, a, prefix[:-1] + b):
            key = encode_index_key(other)
            in_range = low <= key and (high is None or key < high)
            extends = len(other) >= len(prefix) and all(map(same, other, prefix))
            self.assertEqual(in_range, extends)


class RoundTripTests(SynchronousTestCase):
    @SETTINGS
    @given(top_values)
    def test_round_trip(self, value: object) -> None:
        decoded = decode_key(encode_key(value))
        self.assertTrue(same(decoded, value), f"{decoded!r} != {value!r}")

    @SETTINGS
    @given(index_tuples)
    def test_index_round_trip(self, items: list) -> None:
        decoded = decode_index_key(encode_index_key(items))
        self.assertEqual(len(decoded), len(items))
        self.assertTrue(all(map(same, decoded, items)))

    def test_nan_payloads_and_negative_zero_survive(self) -> None:
        for bits in (
            0x7FF0000000000001,
            0x7FF4000000000000,
            0xFFF8000000000001,
            0x8000000000000000,
            0x0000000000000001,
        ):
            f = float_from_bits(bits)
            self.assertTrue(same(decode_key(encode_key(f)), f), hex(bits))

    def test_bytes_like_input(self) -> None:
        data = encode_key(["x", b"\x00"])
        self.assertEqual(decode_key(bytearray(data)), ["x", b"\x00"])
        self.assertEqual(decode_key(memoryview(data)), ["x", b"\x00"])
        self.assertEqual(decode_index_key(memoryview(data + data)), [["x", b"\x00"]] * 2)

    def test_decoded_object_keys_are_sorted(self) -> None:
        self.assertEqual(
            list(decode_key(encode_key({"b": None, "a": None, "": None}))),
            ["", "a", "b"],
        )


def _mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """Small corruptions of a valid key: they sit close to the valid ones."""
    n = len(data)
    positions = st.integers(0, n)
    byte = st.integers(0, 255)
    return st.one_of(
        st.tuples(positions, byte).map(lambda t: data[: t[0]] + bytes([t[1]]) + data[t[0] + 1 :]),
        st.tuples(positions, byte).map(lambda t: data[: t[0]] + bytes([t[1]]) + data[t[0] :]),
        positions.map(lambda i: data[:i] + data[i + 1 :]),
        positions.map(lambda i: data[:i]),
    )


corrupt_keys = st.one_of(
    st.binary(max_size=40),
    st.lists(st.sampled_from(range(12)), max_size=30).map(bytes),
    st.builds(encode_key, values).flatmap(_mutations),
    st.builds(encode_index_key, index_tuples).flatmap(_mutations),
)


class CorruptInputTests(SynchronousTestCase):
    @SETTINGS
    @given(corrupt_keys)
    def test_decode_key_is_strict(self, data: bytes) -> None:
        try:
            value = decode_key(data)
        except ConvexValueError:
            return
        self.assertEqual(encode_key(value), data)

    @SETTINGS
    @given(corrupt_keys)
    def test_decode_index_key_is_strict(self, data: bytes) -> None:
        try:
            items = decode_index_key(data)
        except ConvexValueError:
            return
        self.assertEqual(encode_index_key(items), data)

    def test_specific_corruptions(self) -> None:
        cases = {
            "empty": b"",
            "unknown tag": b"\x0b",
            "zero tag": b"\x00",
            "truncated int64": b"\x03\x80\x00",
            "truncated float": b"\x04",
            "unterminated string": b"\x07abc",
            "string ends in 00": b"\x07abc\x00",
            "bad escape": b"\x07a\x00\x02\x00\x01",
            "invalid UTF-8": b"\x07\xff\x00\x01",
            "encoded surrogate": b"\x07\xed\xa0\x80\x00\x01",
            "overlong UTF-8": b"\x07\xc0\x80\x00\x01",
            "unterminated array": b"\x09\x02",
            "unterminated object": b"\x0a\x01a\x00\x01\x02",
            "object key without value": b"\x0a\x01a\x00\x01",
            "bad field marker": b"\x0a\x02",
            "unsorted keys": b"\x0a\x01b\x00\x01\x02\x01a\x00\x01\x02\x00",
            "duplicate keys": b"\x0a\x01a\x00\x01\x02\x01a\x00\x01\x02\x00",
            "nested undefined": b"\x09\x01\x00",
            "undefined field": b"\x0a\x01a\x00\x01\x01\x00",
            "trailing bytes": b"\x02\x02",
            "too deep": b"\x09" * 5000 + b"\x00" * 5000,
        }
        for name, data in cases.items():
            self.assertRaises(ConvexValueError, decode_key, data)
            if name not in ("empty", "trailing bytes"):
                self.assertRaises(ConvexValueError, decode_index_key, data)

    def test_non_bytes_input(self) -> None:
        for bad in ("\x02", 2, None, [2]):
            self.assertRaises(ConvexValueError, decode_key, bad)
            self.assertRaises(ConvexValueError, decode_index_key, bad)


class EncodeErrorTests(SynchronousTestCase):
    def test_not_values(self) -> None:
        for bad in (1, object(), (1.0,), bytearray(b"")):
            self.assertRaises(ConvexValueError, encode_key, bad)
            self.assertRaises(ConvexValueError, encode_key, [bad])
            self.assertRaises(ConvexValueError, encode_index_key, [None, bad])

    def test_undefined_only_at_top(self) -> None:
        self.assertRaises(ConvexValueError, encode_key, [UNDEFINED])
        self.assertRaises(ConvexValueError, encode_key, {"a": UNDEFINED})

    def test_lone_surrogate(self) -> None:
        self.assertRaises(ConvexValueError, encode_key, "\udc80")
        self.assertRaises(ConvexValueError, encode_key, {"\udc80": None})

    def test_non_string_field_name(self) -> None:
        self.assertRaises(ConvexValueError, encode_key, {Int64(1): None})

    def test_too_deep(self) -> None:
        deep: list = []
        for _ in range(5000):
            deep = [deep]
        self.assertRaises(ConvexValueError, encode_key, deep)
        nested: dict = {}
        for _ in range(5000):
            nested = {"a": nested}
        self.assertRaises(ConvexValueError, encode_key, nested)


class PrefixSuccessorTests(SynchronousTestCase):
    def test_examples(self) -> None:
        self.assertEqual(prefix_successor(b"a"), b"b")
        self.assertEqual(prefix_successor(b"a\xff\xff"), b"b")
        self.assertEqual(prefix_successor(b"\x00\xfe"), b"\x00\xff")
        self.assertIsNone(prefix_successor(b""))
        self.assertIsNone(prefix_successor(b"\xff\xff"))

    @SETTINGS
    @given(st.binary(max_size=4), st.binary(max_size=4))
    def test_range_is_exactly_the_prefixed_strings(self, p: bytes, t: bytes) -> None:
        high = prefix_successor(p)
        for s in (t, p + t, p[:-1] + t):
            in_range = s >= p and (high is None or s < high)
            self.assertEqual(in_range, s.startswith(p))
        if high is not None:
            # Nothing below the successor lies outside the prefix range.
            self.assertFalse(high.startswith(p))
            self.assertTrue(p < high)
            self.assertLessEqual(len(high), len(p))
