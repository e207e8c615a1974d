"""Tests for convex_backend.values.order: Convex's total order of values.

The hypothesis strategies here are shared with test_keys.
"""

from __future__ import annotations

import math
import struct
from collections import OrderedDict
from enum import Enum
from functools import cmp_to_key

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from convex_backend.values.errors import ConvexValueError
from convex_backend.values.order import compare_values, sort_key, type_rank
from convex_backend.values.types import INT64_MAX, INT64_MIN, UNDEFINED, Int64

SETTINGS = settings(max_examples=300, deadline=None)


def float_from_bits(bits: int) -> float:
    return struct.unpack(">d", struct.pack(">Q", bits))[0]


def float_bits(f: float) -> int:
    return struct.unpack(">Q", struct.pack(">d", f))[0]


NAN = float_from_bits(0x7FF8000000000000)
NEG_NAN = float_from_bits(0xFFF8000000000000)
# A signalling NaN and NaNs with other payloads, of both signs.
NAN_PAYLOADS = [
    float_from_bits(b)
    for b in (
        0x7FF0000000000001,
        0x7FF4000000000000,
        0x7FFFFFFFFFFFFFFF,
        0xFFF0000000000001,
        0xFFFFFFFFFFFFFFFF,
    )
]

int64s = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([INT64_MIN, INT64_MIN + 1, -1, 0, INT64_MAX - 1, INT64_MAX]),
    st.integers(INT64_MIN, INT64_MAX),
).map(Int64)
floats = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, NAN, NEG_NAN, *NAN_PAYLOADS]),
    st.floats(),
    # Every bit pattern: NaNs of any payload and sign, subnormals.
    st.integers(0, 2**64 - 1).map(float_from_bits),
)
SPECIAL_TEXT = [
    "",
    "a",
    "ab",
    "\x00",
    "a\x00",
    "\x01",
    "é",
    "\uffff",
    "😀",
    "\U0010ffff",
]
texts = st.one_of(
    st.sampled_from(SPECIAL_TEXT),
    st.text(alphabet="a\x00\x01é\uffff😀", max_size=4),
    st.text(max_size=8),
)
binaries = st.one_of(
    st.lists(st.sampled_from([0, 1, 0xFF]), max_size=4).map(bytes),
    st.binary(max_size=10),
)
keys = st.one_of(st.sampled_from(["", "a", "a\x00", "b", "é", "😀"]), st.text(max_size=4))
scalars = st.one_of(st.none(), int64s, floats, st.booleans(), texts, binaries)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=4),
    ),
    max_leaves=12,
)
# What an index key can hold: any value, or a missing field at the top.
top_values = st.one_of(st.just(UNDEFINED), values)


def same(a: object, b: object) -> bool:
    """Exact equality: same types, floats bit for bit (NaN payloads, -0.0)."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return float_bits(a) == float_bits(b)
    if type(a) is list:
        return len(a) == len(b) and all(map(same, a, b))
    if type(a) is dict:
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def sign(x: int) -> int:
    return (x > 0) - (x < 0)


# client-protocol.md §3.5, captured from the real client, with UNDEFINED first.
CHAIN = [
    UNDEFINED,
    None,
    Int64(-5),
    Int64(3),
    NEG_NAN,
    -math.inf,
    -1.0,
    -0.0,
    0.0,
    1.0,
    math.inf,
    NAN,
    False,
    True,
    "",
    "a",
    "é",
    "\uffff",
    "😀",
    b"\x00",
    b"\x00\x01",
    [],
    [Int64(1)],
    [1.0],
    {},
    {"a": 1.0},
    {"a": 1.0, "b": 0.0},
    {"b": 0.0},
]


class CapturedOrderTests(SynchronousTestCase):
    def test_chain_pairwise(self) -> None:
        for i, a in enumerate(CHAIN):
            for j, b in enumerate(CHAIN):
                self.assertEqual(compare_values(a, b), sign(i - j), f"{a!r} vs {b!r}")

    def test_sorting_a_shuffled_chain(self) -> None:
        shuffled = CHAIN[::-1][5:] + CHAIN[::-1][:5]
        result = sorted(shuffled, key=cmp_to_key(compare_values))
        self.assertTrue(all(map(same, result, CHAIN)))
        result = sorted(shuffled, key=sort_key)
        self.assertTrue(all(map(same, result, CHAIN)))

    def test_type_rank(self) -> None:
        self.assertEqual(
            [type_rank(v) for v in (UNDEFINED, None, Int64(0), 0.0, True, "", b"")],
            [0, 1, 2, 3, 4, 5, 6],
        )
        self.assertEqual([type_rank([]), type_rank({})], [7, 8])


class WithinTypeTests(SynchronousTestCase):
    def assertAscending(self, *chain: object) -> None:
        for a, b in zip(chain, chain[1:], strict=False):
            self.assertEqual(compare_values(a, b), -1, f"{a!r} < {b!r}")
            self.assertEqual(compare_values(b, a), 1, f"{b!r} > {a!r}")
            self.assertLess(sort_key(a), sort_key(b))

    def test_int64_extremes(self) -> None:
        self.assertAscending(Int64(INT64_MIN), Int64(-1), Int64(0), Int64(1), Int64(INT64_MAX))

    def test_int64_before_any_float(self) -> None:
        self.assertAscending(Int64(INT64_MAX), -math.inf)
        self.assertEqual(compare_values(Int64(3), 3.0), -1)

    def test_float_total_order(self) -> None:
        tiny = float_from_bits(1)
        self.assertAscending(
            float_from_bits(0xFFFFFFFFFFFFFFFF),  # -NaN, largest payload
            float_from_bits(0xFFF8000000000000),
            float_from_bits(0xFFF0000000000001),  # -NaN, smallest payload
            -math.inf,
            -1e308,
            -1.0,
            -tiny,
            -0.0,
            0.0,
            tiny,
            1.0,
            1e308,
            math.inf,
            float_from_bits(0x7FF0000000000001),
            float_from_bits(0x7FF8000000000000),
            float_from_bits(0x7FFFFFFFFFFFFFFF),
        )

    def test_equal_floats(self) -> None:
        self.assertEqual(compare_values(NAN, float_from_bits(float_bits(NAN))), 0)
        self.assertEqual(compare_values(-0.0, -0.0), 0)
        self.assertEqual(compare_values(2.5, 2.5), 0)

    def test_booleans(self) -> None:
        self.assertAscending(False, True)
        # bool is an int subclass in Python, but sorts after every number here.
        self.assertAscending(math.nan, False)

    def test_strings_by_utf8_bytes(self) -> None:
        # In UTF-16, "\U00010000" (D800 DC00) would sort before "\ue000".
        self.assertAscending(
            "",
            "\x00",
            "\x00\x00",
            "\x01",
            "a",
            "a\x00",
            "ab",
            "\x7f",
            "\x80",
            "é",
            "\ue000",
            "\uffff",
            "\U00010000",
            "😀",
            "\U0010ffff",
        )

    def test_lone_surrogates_are_not_strings(self) -> None:
        self.assertRaises(ConvexValueError, compare_values, "\ud800", "a\udfff")
        self.assertRaises(ConvexValueError, compare_values, {"\ud83d": 1.0}, {})

    def test_bytes(self) -> None:
        self.assertAscending(b"", b"\x00", b"\x00\x00", b"\x00\x01", b"\x01", b"\xff")

    def test_arrays(self) -> None:
        self.assertAscending([], [None], [None, None], [Int64(1)], [1.0], [1.0, None], [2.0], [[]])

    def test_objects(self) -> None:
        self.assertAscending(
            {},
            {"": None},
            {"": 1.0},
            {"": 1.0, "a": None},
            {"a": 1.0},
            {"a": 1.0, "b": 0.0},
            {"a\x00": None},
            {"b": 0.0},
            {"é": None},
        )

    def test_object_fields_compare_in_key_order(self) -> None:
        # Insertion order is irrelevant; fields are sorted by key.
        self.assertEqual(compare_values({"b": 0.0, "a": 1.0}, {"a": 1.0, "b": 0.0}), 0)
        self.assertEqual(compare_values({"b": 0.0, "a": 2.0}, {"a": 1.0}), 1)

    def test_subclasses_sort_as_their_base(self) -> None:
        class Color(str, Enum):
            RED = "red"

        self.assertEqual(compare_values(Color.RED, "red"), 0)
        self.assertEqual(compare_values(OrderedDict(a=1.0), {"a": 1.0}), 0)


class RejectionTests(SynchronousTestCase):
    def test_python_int_is_not_a_value(self) -> None:
        error = self.assertRaises(ConvexValueError, compare_values, 1, Int64(1))
        self.assertIn("Int64", str(error))

    def test_undefined_only_at_top(self) -> None:
        self.assertRaises(ConvexValueError, compare_values, [UNDEFINED], [None])
        self.assertRaises(ConvexValueError, compare_values, {"a": UNDEFINED}, {"a": None})

    def test_other_types(self) -> None:
        for bad in (object(), (1.0,), {1.0}, bytearray(b"x")):
            self.assertRaises(ConvexValueError, compare_values, bad, None)
            self.assertRaises(ConvexValueError, compare_values, None, bad)

    def test_non_string_field_names(self) -> None:
        self.assertRaises(ConvexValueError, compare_values, {1.0: None}, {})

    def test_too_deep(self) -> None:
        deep: list = []
        for _ in range(1000):
            deep = [deep]
        self.assertRaises(ConvexValueError, compare_values, deep, deep)


class OrderPropertyTests(SynchronousTestCase):
    @SETTINGS
    @given(top_values, top_values)
    def test_antisymmetric(self, a: object, b: object) -> None:
        self.assertEqual(compare_values(a, b), -compare_values(b, a))

    @SETTINGS
    @given(top_values)
    def test_reflexive(self, a: object) -> None:
        self.assertEqual(compare_values(a, a), 0)

    @SETTINGS
    @given(top_values, top_values, top_values)
    def test_transitive(self, a: object, b: object, c: object) -> None:
        x, y, z = sorted([a, b, c], key=cmp_to_key(compare_values))
        self.assertLessEqual(compare_values(x, y), 0)
        self.assertLessEqual(compare_values(y, z), 0)
        self.assertLessEqual(compare_values(x, z), 0)

    @SETTINGS
    @given(top_values, top_values)
    def test_zero_means_identical(self, a: object, b: object) -> None:
        self.assertEqual(compare_values(a, b) == 0, same(a, b))
