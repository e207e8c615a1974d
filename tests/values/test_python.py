"""Tests for convex_backend.values.python (function code's Python mapping)."""

from __future__ import annotations

import enum
import types
from collections import OrderedDict
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from convex_backend.values.codec import from_json, to_json
from convex_backend.values.errors import ConvexValueError
from convex_backend.values.python import from_python, to_python
from convex_backend.values.types import UNDEFINED, Int64
from tests.values.test_codec import canon, field_names, nested_lists, values


class _Ctx:
    def assertRejects(self, fragment: str, f: Any, *args: Any, **kw: Any) -> str:
        e = self.assertRaises(ConvexValueError, f, *args, **kw)
        self.assertIn(fragment, str(e))
        return str(e)


class Color(enum.IntEnum):
    RED = 1


class FromPythonTests(_Ctx, SynchronousTestCase):
    def test_scalars(self) -> None:
        for v in (None, True, False, 1.5, -0.0, float("nan"), "s", b"b", Int64(3)):
            self.assertEqual(canon(from_python(v)), canon(v))

    def test_bool_is_not_int(self) -> None:
        self.assertIs(from_python(True), True)
        self.assertEqual(from_python([False]), [False])

    def test_int_becomes_float(self) -> None:
        self.assertIs(type(from_python(3)), float)
        self.assertEqual(from_python(-(2**53)), float(-(2**53)))
        self.assertEqual(from_python(2**63), 2.0**63)
        self.assertEqual(from_python(Color.RED), 1.0)
        self.assertIs(type(from_python(Color.RED)), float)

    def test_inexact_int_rejected(self) -> None:
        msg = self.assertRejects("exactly as a float64", from_python, 2**53 + 1)
        self.assertIn("Int64(9007199254740993)", msg)
        self.assertRejects("at .n", from_python, {"n": 10**400})

    def test_bytes_like(self) -> None:
        for v in (bytearray(b"ab"), memoryview(b"ab"), memoryview(b"xaby")[1:3]):
            out = from_python(v)
            self.assertIs(type(out), bytes)
            self.assertEqual(out, b"ab")

    def test_containers(self) -> None:
        self.assertEqual(from_python((1, (2,))), [1.0, [2.0]])
        out = from_python(types.MappingProxyType({"a": OrderedDict(b=1)}))
        self.assertIs(type(out), dict)
        self.assertIs(type(out["a"]), dict)
        self.assertEqual(out, {"a": {"b": 1.0}})

    def test_undefined(self) -> None:
        self.assertEqual(from_python({"a": UNDEFINED, "b": None}), {"b": None})
        self.assertRejects("only allowed as a dict value", from_python, UNDEFINED)
        self.assertRejects("at [1]", from_python, [1, UNDEFINED])

    def test_keys(self) -> None:
        self.assertRejects("must be strings", from_python, {1: 2})
        self.assertRejects("starts with a '$'", from_python, {"$a": 2})
        self.assertRejects("printable ASCII", from_python, {"é": 2})

    def test_unsupported_with_path(self) -> None:
        self.assertRejects(
            "set cannot be converted to a Convex value at .a[1]",
            from_python,
            {"a": [1, {2}]},
        )
        for bad in (object(), 1j, range(3), frozenset(), type):
            self.assertRejects("cannot be converted", from_python, bad)

    def test_strings(self) -> None:
        class S(str):
            pass

        self.assertIs(type(from_python(S("x"))), str)
        self.assertRejects("not valid Unicode", from_python, ["ok", "\ud800"])

    def test_nesting_and_cycles(self) -> None:
        from_python(nested_lists(64))
        self.assertRejects("nested too deeply", from_python, nested_lists(65))
        cyclic: dict = {}
        cyclic["self"] = cyclic
        self.assertRejects("nested too deeply", from_python, cyclic)

    def test_to_python_is_identity(self) -> None:
        v = {"a": [Int64(1), 2.0, b"x"]}
        self.assertIs(to_python(v), v)


_python_ish = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=6)
    | st.binary(max_size=6).map(bytearray)
    | st.sampled_from([UNDEFINED, object(), {1}, Int64(-1), Color.RED]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=4).map(tuple)
        | st.dictionaries(field_names | st.sampled_from(["$x", "é", 1]), children, max_size=4)
    ),
    max_leaves=20,
)


class FromPythonProperties(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(values)
    def test_canonical_values_unchanged(self, v: Any) -> None:
        self.assertEqual(canon(from_python(v)), canon(v))

    @settings(max_examples=300, deadline=None)
    @given(_python_ish)
    def test_result_is_canonical_or_value_error(self, obj: Any) -> None:
        try:
            v = from_python(obj)
        except ConvexValueError:
            return
        self.assertEqual(canon(from_json(to_json(v))), canon(v))
