"""Tests for convex_backend.values.codec (Convex-JSON and clean JSON).

The exact-comparison helper and the value strategies defined here are also
used by the size and python tests.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from convex_backend.values.codec import (
    MAX_FIELD_NAME_LENGTH,
    check_field_name,
    dumps,
    from_json,
    loads,
    to_clean_json,
    to_json,
    validate_field_name,
)
from convex_backend.values.errors import ConvexValueError
from convex_backend.values.types import INT64_MAX, INT64_MIN, UNDEFINED, Int64

NAN = float("nan")
INF = float("inf")

# -- helpers shared with the other value tests -------------------------------


def canon(v: Any) -> Any:
    """An exact, hashable form of a value: floats by their bits (so NaN
    payloads and -0.0 count), types kept apart (True is not 1.0)."""
    if v is None:
        return ("null",)
    if type(v) is bool:
        return ("bool", v)
    if type(v) is float:
        return ("float", struct.pack("<d", v))
    if type(v) is Int64:
        return ("int64", v.value)
    if type(v) is str:
        return ("str", v)
    if type(v) is bytes:
        return ("bytes", v)
    if type(v) is list:
        return ("array", tuple(canon(x) for x in v))
    if type(v) is dict:
        return ("object", tuple(sorted((k, canon(x)) for k, x in v.items())))
    raise AssertionError(f"not a canonical value: {v!r}")


field_names = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=8
).filter(lambda s: not s.startswith("$"))

scalars = (
    st.none()
    | st.booleans()
    | st.floats()
    | st.sampled_from([0.0, -0.0, NAN, -NAN, INF, -INF])
    | st.builds(Int64, st.integers(INT64_MIN, INT64_MAX))
    | st.text(max_size=10)
    | st.binary(max_size=12)
)

values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(field_names, children, max_size=4)
    ),
    max_leaves=25,
)


def nested_lists(depth: int, leaf: Any = None) -> Any:
    """``depth`` lists around ``leaf``, built without recursion."""
    v = leaf
    for _ in range(depth):
        v = [v]
    return v


def nested_objects(depth: int, leaf: Any = None) -> Any:
    """``depth`` single-field objects around ``leaf``."""
    v = leaf
    for _ in range(depth):
        v = {"a": v}
    return v


class _Ctx:
    """Mixin: assert a ConvexValueError whose message contains a fragment."""

    def assertRejects(self, fragment: str, f: Any, *args: Any, **kw: Any) -> str:
        e = self.assertRaises(ConvexValueError, f, *args, **kw)
        self.assertIn(fragment, str(e))
        return str(e)


# -- encoding ------------------------------------------------------------------


class ToJsonTests(_Ctx, SynchronousTestCase):
    # The captured examples of client-protocol.md §3.1.
    EXAMPLES = [
        (Int64(1), {"$integer": "AQAAAAAAAAA="}),
        (Int64(-1), {"$integer": "//////////8="}),
        (Int64(INT64_MAX), {"$integer": "/////////38="}),
        (Int64(INT64_MIN), {"$integer": "AAAAAAAAAIA="}),
        (NAN, {"$float": "AAAAAAAA+H8="}),
        (INF, {"$float": "AAAAAAAA8H8="}),
        (-INF, {"$float": "AAAAAAAA8P8="}),
        (-0.0, {"$float": "AAAAAAAAAIA="}),
        (1.5, 1.5),
        (bytes([0, 255, 16, 1]), {"$bytes": "AP8QAQ=="}),
    ]

    def test_captured_examples(self) -> None:
        for value, encoded in self.EXAMPLES:
            self.assertEqual(to_json(value), encoded, value)

    def test_captured_examples_decode(self) -> None:
        for value, encoded in self.EXAMPLES:
            self.assertEqual(canon(from_json(encoded)), canon(value), encoded)

    def test_key_sorting_and_undefined_fields(self) -> None:
        value = {"b": 1.0, "a": 2.0, "B": 3.0, "_x": 4.0, "u": UNDEFINED}
        encoded = to_json(value)
        self.assertEqual(list(encoded), ["B", "_x", "a", "b"])
        self.assertEqual(dumps(value), '{"B":3.0,"_x":4.0,"a":2.0,"b":1.0}')

    def test_nested_keys_sorted(self) -> None:
        self.assertEqual(
            dumps({"z": [{"y": None, "x": True}], "a": {"d": "", "c": b""}}),
            '{"a":{"c":{"$bytes":""},"d":""},"z":[{"x":true,"y":null}]}',
        )

    def test_scalars(self) -> None:
        for v in (None, True, False, "", "héllo 😀", 0.0, -2.5, 1e300, 5e-324):
            self.assertEqual(canon(to_json(v)), canon(v))

    def test_positive_zero_is_a_number(self) -> None:
        self.assertEqual(dumps(0.0), "0.0")
        self.assertEqual(dumps(-0.0), '{"$float":"AAAAAAAAAIA="}')

    def test_nan_payload_kept(self) -> None:
        bits = struct.pack("<Q", 0xFFF8_0000_0000_0001)
        nan = struct.unpack("<d", bits)[0]
        self.assertEqual(to_json(nan), {"$float": base64.b64encode(bits).decode("ascii")})

    def test_dumps_is_compact_and_not_ascii_escaped(self) -> None:
        self.assertEqual(dumps({"a": ["é", None]}), '{"a":["é",null]}')

    def test_rejects_python_int_with_hint(self) -> None:
        msg = self.assertRejects("from_python", to_json, 3)
        self.assertIn("Int64(3)", msg)

    def test_rejects_with_path(self) -> None:
        self.assertRejects(" at .a[2].b", to_json, {"a": [1.0, 2.0, {"b": 3}]})
        self.assertRejects(' at ["x y"][0]', to_json, {"x y": [set()]})

    def test_rejects_unsupported_types(self) -> None:
        for bad in ((1.0,), {1.0}, bytearray(b"x"), object(), 1j, Int64):
            self.assertRejects("not a supported", to_json, bad)

    def test_rejects_undefined_outside_fields(self) -> None:
        self.assertRejects("only an object field", to_json, UNDEFINED)
        self.assertRejects("at [1]", to_json, [None, UNDEFINED])

    def test_rejects_bad_keys(self) -> None:
        self.assertRejects("must be strings", to_json, {1: None})
        self.assertRejects("starts with a '$'", to_json, {"$a": None})
        self.assertRejects("printable ASCII", to_json, {"é": None})
        self.assertRejects("printable ASCII", to_json, {"a\n": None})
        self.assertRejects("too long", to_json, {"a" * 1025: None})

    def test_key_checked_even_when_undefined(self) -> None:
        self.assertRejects("starts with a '$'", to_json, {"$a": UNDEFINED})

    def test_rejects_lone_surrogate(self) -> None:
        self.assertRejects("not valid Unicode", to_json, {"a": "x\ud800"})

    def test_nesting(self) -> None:
        to_json(nested_lists(64))
        to_json(nested_objects(64, NAN))
        self.assertRejects("nested too deeply", to_json, nested_lists(65))
        self.assertRejects("nested too deeply", to_json, nested_objects(65))

    def test_cycle_is_a_value_error(self) -> None:
        cyclic: list = []
        cyclic.append(cyclic)
        self.assertRejects("nested too deeply", to_json, cyclic)

    def test_subclasses_of_canonical_types(self) -> None:
        class S(str):
            pass

        class D(dict):
            pass

        self.assertEqual(dumps(D(b=S("x"), a=1.0)), '{"a":1.0,"b":"x"}')


# -- decoding ------------------------------------------------------------------


class FromJsonTests(_Ctx, SynchronousTestCase):
    def test_numbers_become_floats(self) -> None:
        self.assertIs(type(from_json(3)), float)
        self.assertEqual(from_json([1, -2]), [1.0, -2.0])
        self.assertIs(from_json(True), True)
        self.assertRejects("float64 range", from_json, 10**400)

    def test_plain_number_forms_are_accepted(self) -> None:
        # JSON.parse semantics: a plain -0 or 1e400 is still a number.
        self.assertEqual(canon(loads("-0")), canon(-0.0))
        self.assertEqual(loads("1e400"), INF)
        self.assertEqual(loads("1" + "0" * 400), INF)

    def test_float_must_be_special(self) -> None:
        one = base64.b64encode(struct.pack("<d", 1.0)).decode()
        self.assertRejects("Float 1.0 should be encoded as a number", from_json, {"$float": one})
        self.assertRejects(
            "Float 0.0 should be encoded",
            from_json,
            {"$float": "AAAAAAAAAAA="},
        )

    def test_eight_bytes(self) -> None:
        self.assertRejects("received 4 bytes, expected 8", from_json, {"$integer": "AAAAAA=="})
        self.assertRejects("received 9 bytes, expected 8", from_json, {"$float": "AAAAAAAA+H8A"})
        self.assertRejects("received 0 bytes", from_json, {"$integer": ""})

    def test_bad_base64(self) -> None:
        for bad in (
            "AP8QAQ",  # no padding
            "AP8QAQ=",  # length not a multiple of 4
            "AP8Q AQ=",
            "AP8QAQ==\n",
            "-_8=",  # URL-safe alphabet
            "é===",
            "AAAA====",
            "=AAA",
            "AA=A",
        ):
            self.assertRejects("invalid base64", from_json, {"$bytes": bad})
        self.assertRejects("must hold a base64 string", from_json, {"$bytes": 1})
        self.assertRejects("must hold a base64 string", from_json, {"$integer": None})

    def test_bytes(self) -> None:
        self.assertEqual(from_json({"$bytes": ""}), b"")
        self.assertEqual(from_json({"$bytes": "AP8QAQ=="}), bytes([0, 255, 16, 1]))

    def test_special_forms_need_exactly_one_key(self) -> None:
        self.assertRejects(
            "'$integer' starts with a '$'",
            from_json,
            {"$integer": "AQAAAAAAAAA=", "x": 1},
        )

    def test_retired_and_internal_forms(self) -> None:
        self.assertRejects("no longer supported", from_json, {"$set": []})
        self.assertRejects("no longer supported", from_json, {"$map": []})
        self.assertRejects("not supported", from_json, {"$commitTs": None})
        self.assertRejects("starts with a '$'", from_json, {"$foo": 1})
        self.assertRejects("starts with a '$'", from_json, {"$": 1})

    def test_undefined(self) -> None:
        self.assertRejects("only accepted in patches", from_json, {"$undefined": None})
        self.assertIs(from_json({"$undefined": None}, allow_undefined=True), UNDEFINED)
        patch = from_json({"a": {"$undefined": None}, "b": 1}, allow_undefined=True)
        self.assertEqual(patch, {"a": UNDEFINED, "b": 1.0})
        self.assertRejects("must hold null", from_json, {"$undefined": 0}, allow_undefined=True)
        self.assertRejects(
            "array element cannot be undefined",
            from_json,
            [{"$undefined": None}],
            allow_undefined=True,
        )

    def test_field_names(self) -> None:
        self.assertRejects("too long", from_json, {"a" * 1025: 1})
        self.assertEqual(from_json({"a" * 1024: 1}), {"a" * 1024: 1.0})
        for bad in ("a\x00", "\x1f", "\x7f", "é", "😀"):
            self.assertRejects("printable ASCII", from_json, {bad: 1})
        self.assertEqual(from_json({" ~_": 1, "": 2}), {" ~_": 1.0, "": 2.0})
        self.assertRejects("must be strings", from_json, {1: 2})

    def test_strings_must_be_unicode(self) -> None:
        self.assertRejects("not valid Unicode", from_json, "\ud800")
        self.assertRejects("not valid Unicode", loads, '["ok", "\\udc00x"]')
        self.assertRejects("printable ASCII", loads, '{"\\ud800": 1}')
        self.assertEqual(loads('"\\ud83d\\ude00"'), "😀")

    def test_path_in_message(self) -> None:
        self.assertRejects(" at .a[1].b", from_json, {"a": [1, {"b": {"$integer": "AA=="}}]})
        self.assertRejects(' at ["a-b"]', from_json, {"a-b": {"$set": []}})

    def test_nesting(self) -> None:
        from_json(nested_lists(64, 1))
        # A special form is a scalar: it adds no level.
        from_json(nested_objects(64, {"$integer": "AQAAAAAAAAA="}))
        self.assertRejects("nested too deeply", from_json, nested_lists(65))
        self.assertRejects("nested too deeply", from_json, nested_objects(65))
        self.assertRejects("nested too deeply", from_json, nested_lists(100_000))

    def test_non_json_types(self) -> None:
        for bad in ((1,), b"x", object(), Int64(1), {1.0}, UNDEFINED):
            self.assertRejects("not a JSON value", from_json, bad)

    def test_preserves_decoded_order(self) -> None:
        self.assertEqual(list(from_json({"b": 1, "a": 2})), ["b", "a"])


class LoadsTests(_Ctx, SynchronousTestCase):
    def test_roundtrip_examples(self) -> None:
        text = '{"a":[{"$integer":"AQAAAAAAAAA="},{"$float":"AAAAAAAA+H8="},3]}'
        v = loads(text)
        self.assertEqual(canon(v), canon({"a": [Int64(1), NAN, 3.0]}))
        self.assertEqual(
            dumps(v),
            '{"a":[{"$integer":"AQAAAAAAAAA="},{"$float":"AAAAAAAA+H8="},3.0]}',
        )

    def test_bytes_input(self) -> None:
        self.assertEqual(loads(b'"\xc3\xa9"'), "é")
        self.assertEqual(loads(bytearray(b"[1]")), [1.0])

    def test_invalid_utf8(self) -> None:
        self.assertRejects("Invalid UTF-8", loads, b'"\xff"')
        self.assertRejects("Invalid UTF-8", loads, b'"\xed\xa0\x80"')  # surrogate

    def test_invalid_json(self) -> None:
        for bad in ("", "{", "[1,]", "'a'", "01", "1 2", "\ufeff1", "{a:1}", '"\t"'):
            self.assertRejects("Invalid JSON", loads, bad)

    def test_non_standard_constants(self) -> None:
        for bad in ("NaN", "[Infinity]", '{"a":-Infinity}'):
            self.assertRejects("not valid JSON", loads, bad)

    def test_duplicate_keys_last_wins(self) -> None:
        self.assertEqual(loads('{"a":1,"a":2}'), {"a": 2.0})

    def test_deep_text(self) -> None:
        self.assertRejects("nested too deeply", loads, "[" * 100 + "]" * 100)
        self.assertRejects("nested too deeply", loads, "[" * 200_000)

    def test_wrong_type(self) -> None:
        self.assertRejects("must be str or bytes", loads, 1)


class CleanJsonTests(_Ctx, SynchronousTestCase):
    def test_forms(self) -> None:
        value = {
            "i": Int64(-5),
            "big": Int64(INT64_MAX),
            "nan": NAN,
            "inf": INF,
            "ninf": -INF,
            "nz": -0.0,
            "f": 1.5,
            "b": bytes([0, 255, 16, 1]),
            "u": UNDEFINED,
            "l": [None, True, "s", {"y": 1.0, "x": Int64(0)}],
        }
        clean = to_clean_json(value)
        self.assertEqual(
            json.dumps(clean, separators=(",", ":")),
            '{"b":"AP8QAQ==","big":"9223372036854775807","f":1.5,"i":"-5",'
            '"inf":"Infinity","l":[null,true,"s",{"x":"0","y":1.0}],'
            '"nan":"NaN","ninf":"-Infinity","nz":-0.0}',
        )
        self.assertEqual(math.copysign(1.0, clean["nz"]), -1.0)

    def test_rejects(self) -> None:
        self.assertRejects("at .a[0]", to_clean_json, {"a": [3]})
        self.assertRejects("only an object field", to_clean_json, UNDEFINED)


class FieldNameTests(_Ctx, SynchronousTestCase):
    def test_alias(self) -> None:
        self.assertIs(validate_field_name, check_field_name)

    def test_rules(self) -> None:
        for good in ("", "a", "_id", " ", "~", "a$", "x" * MAX_FIELD_NAME_LENGTH):
            validate_field_name(good)
        self.assertRejects("too long", validate_field_name, "x" * 1025)
        self.assertRejects("starts with a '$'", validate_field_name, "$x")
        self.assertRejects("printable ASCII", validate_field_name, "\x7f")
        self.assertRejects("must be strings", validate_field_name, b"a")
        self.assertRejects(" at .a[3]", validate_field_name, "$x", ".a[3]")


# -- properties ----------------------------------------------------------------


class RoundTripProperties(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(values)
    def test_from_json_to_json(self, v: Any) -> None:
        encoded = to_json(v)
        self.assertEqual(canon(from_json(encoded)), canon(v))
        # Re-encoding is stable and the encoded form is strict JSON.
        self.assertEqual(to_json(from_json(encoded)), encoded)
        json.dumps(encoded, allow_nan=False)

    @settings(max_examples=300, deadline=None)
    @given(values)
    def test_loads_dumps(self, v: Any) -> None:
        text = dumps(v)
        self.assertEqual(canon(loads(text)), canon(v))
        self.assertEqual(canon(loads(text.encode("utf-8"))), canon(v))
        self.assertEqual(dumps(loads(text)), text)


def _b64_of(n: int) -> st.SearchStrategy[str]:
    return st.binary(min_size=n, max_size=n).map(lambda b: base64.b64encode(b).decode("ascii"))


_special_keys = st.sampled_from(
    [
        "$integer",
        "$float",
        "$bytes",
        "$undefined",
        "$set",
        "$map",
        "$commitTs",
        "$foo",
        "$",
    ]
)
_payloads = (
    _b64_of(8)
    | st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode("ascii"))
    | st.text(alphabet="AB+/=-_ \n", max_size=14)
    | st.none()
    | st.integers()
    | st.lists(st.none(), max_size=2)
)
_surrogate_text = st.lists(st.integers(0xD800, 0xDFFF).map(chr) | st.characters(), max_size=6).map(
    "".join
)
_garbage_keys = (
    st.text(max_size=6)
    | _special_keys
    | _surrogate_text
    | st.integers()
    | st.sampled_from(["a" * 1025, "\x7f", "a b"])
)
_garbage_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**400, -(10**400), 2**63, 2**1024])
    | st.floats()
    | st.text(max_size=8)
    | _surrogate_text
    | st.builds(lambda k, p: {k: p}, _special_keys, _payloads)
    | st.sampled_from([b"x", (1,), object(), Int64(1), UNDEFINED, {1.0}, 1j])
)
garbage = st.recursive(
    _garbage_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(_garbage_keys, children, max_size=4)
        | st.builds(lambda k, p: {k: p}, _special_keys, children)
    ),
    max_leaves=20,
)


class MalformedInputProperties(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(garbage)
    def test_from_json_only_raises_value_errors(self, g: Any) -> None:
        try:
            v = from_json(g)
        except ConvexValueError:
            pass
        else:
            # Whatever is accepted is a valid value that round-trips.
            self.assertEqual(canon(from_json(to_json(v))), canon(v))
        try:
            from_json(g, allow_undefined=True)
        except ConvexValueError:
            pass

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=40))
    def test_loads_random_bytes(self, data: bytes) -> None:
        try:
            loads(data)
        except ConvexValueError:
            pass

    @settings(max_examples=300, deadline=None)
    @given(
        garbage.map(lambda g: json.dumps(g, default=repr)),
        st.integers(0, 40),
        st.text(alphabet='{}[]":,$\\0-9eE.+nulltrue', max_size=4),
    )
    def test_loads_mangled_json(self, text: str, at: int, insert: str) -> None:
        for candidate in (text, text[:at] + insert + text[at:], text[:at]):
            for form in (candidate, candidate.encode("utf-8", "surrogatepass")):
                try:
                    loads(form)
                except ConvexValueError:
                    pass
