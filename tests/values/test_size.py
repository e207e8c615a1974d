"""Tests for convex_backend.values.size (the size formula and the limits)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from twisted.trial.unittest import SynchronousTestCase

from convex_backend.values import size as size_module
from convex_backend.values.errors import ConvexValueError
from convex_backend.values.size import (
    MAX_ARRAY_LENGTH,
    MAX_DOCUMENT_NESTING,
    MAX_DOCUMENT_SIZE,
    MAX_OBJECT_FIELDS,
    MAX_VALUE_SIZE,
    check_document,
    check_value,
    validate_identifier,
    validate_user_table_name,
    value_size,
)
from convex_backend.values.types import UNDEFINED, Int64
from tests.values.test_codec import nested_lists, nested_objects, values


class _Ctx:
    def assertRejects(self, fragment: str, f: Any, *args: Any, **kw: Any) -> str:
        e = self.assertRaises(ConvexValueError, f, *args, **kw)
        self.assertIn(fragment, str(e))
        return str(e)


def _reference_size(v: Any) -> int:
    """The formula written out plainly, for the property test."""
    if v is None or isinstance(v, bool):
        return 1
    if isinstance(v, (float, Int64)):
        return 9
    if isinstance(v, str):
        return 2 + len(v.encode("utf-8"))
    if isinstance(v, bytes):
        return 2 + len(v)
    if isinstance(v, list):
        return 2 + sum(_reference_size(x) for x in v)
    return 2 + sum(len(k.encode("utf-8")) + 1 + _reference_size(x) for k, x in v.items())


class ConstantsTests(SynchronousTestCase):
    def test_values(self) -> None:
        self.assertEqual(
            {
                name: getattr(size_module, name)
                for name in (
                    "MAX_VALUE_SIZE",
                    "MAX_DOCUMENT_SIZE",
                    "MAX_NESTING_DEPTH_VALUE",
                    "MAX_DOCUMENT_NESTING",
                    "MAX_OBJECT_FIELDS",
                    "MAX_ARRAY_LENGTH",
                    "MAX_FIELD_NAME_LENGTH",
                    "MAX_TOP_LEVEL_FIELD_NAME_LENGTH",
                    "MAX_IDENTIFIER_LENGTH",
                )
            },
            {
                "MAX_VALUE_SIZE": 16 * 1024 * 1024,
                "MAX_DOCUMENT_SIZE": 1024 * 1024,
                "MAX_NESTING_DEPTH_VALUE": 64,
                "MAX_DOCUMENT_NESTING": 16,
                "MAX_OBJECT_FIELDS": 1024,
                "MAX_ARRAY_LENGTH": 8192,
                "MAX_FIELD_NAME_LENGTH": 1024,
                "MAX_TOP_LEVEL_FIELD_NAME_LENGTH": 64,
                "MAX_IDENTIFIER_LENGTH": 64,
            },
        )


class ValueSizeTests(_Ctx, SynchronousTestCase):
    def test_formula(self) -> None:
        cases = [
            (None, 1),
            (True, 1),
            (False, 1),
            (Int64(-7), 9),
            (1.5, 9),
            (float("nan"), 9),
            ("", 2),
            ("abc", 5),
            ("é", 4),
            ("😀", 6),
            (b"", 2),
            (b"abc", 5),
            ([], 2),
            ([None, 1.0], 12),
            ({}, 2),
            ({"a": 1.0}, 13),
            ({"ab": "c", "d": []}, 2 + (2 + 1 + 3) + (1 + 1 + 2)),
            ({"a": UNDEFINED}, 2),
        ]
        for v, expected in cases:
            self.assertEqual(value_size(v), expected, v)

    def test_rejects_non_values(self) -> None:
        self.assertRejects("Python int", value_size, {"a": [1]})
        self.assertRejects("at .a[0]", value_size, {"a": [1]})
        self.assertRejects("only an object field", value_size, UNDEFINED)
        self.assertRejects("not valid Unicode", value_size, ["\udfff"])
        self.assertRejects("not a supported", value_size, (1.0,))
        self.assertRejects("nested too deeply", value_size, nested_lists(65))

    @settings(max_examples=300, deadline=None)
    @given(values)
    def test_matches_reference(self, v: Any) -> None:
        self.assertEqual(value_size(v), _reference_size(v))


class CheckValueTests(_Ctx, SynchronousTestCase):
    def test_size_limit(self) -> None:
        self.assertEqual(check_value("a" * 8, max_size=10), 10)
        msg = self.assertRejects(
            "Value is too large (11 bytes, limit 10)",
            check_value,
            "a" * 9,
            max_size=10,
        )
        self.assertNotIn(" at ", msg)

    def test_default_limit(self) -> None:
        check_value("x" * (MAX_VALUE_SIZE - 2))
        self.assertRejects(
            f"({MAX_VALUE_SIZE + 1} bytes, limit {MAX_VALUE_SIZE})",
            check_value,
            "x" * (MAX_VALUE_SIZE - 1),
        )

    def test_depth(self) -> None:
        check_value(nested_objects(64))
        msg = self.assertRejects(
            "Return value is nested too deeply (more than 64 levels",
            check_value,
            nested_objects(65),
            what="return value",
        )
        self.assertIn(" at .a.a.a", msg)
        check_value(nested_lists(3), max_depth=3)
        self.assertRejects(
            "Arguments are nested too deeply (more than 2 levels",
            check_value,
            nested_lists(3),
            max_depth=2,
            what="arguments",
        )

    def test_names_what(self) -> None:
        self.assertRejects("Arguments are too large", check_value, {}, max_size=1, what="arguments")


def _doc(**fields: Any) -> dict:
    return {"_id": "k" * 32, "_creationTime": 1.7e12, **fields}


class CheckDocumentTests(_Ctx, SynchronousTestCase):
    def test_valid(self) -> None:
        doc = _doc(
            name="x",
            n=Int64(3),
            nested={"a-b c": [1.0, {"_x": b"\x00", "~": None}]},
            gone=UNDEFINED,
        )
        self.assertEqual(check_document(doc), value_size(doc))

    def test_size(self) -> None:
        # {"s": "..."} is 2 + (1 + 1 + 2 + n) bytes.
        check_document({"s": "x" * (MAX_DOCUMENT_SIZE - 6)})
        self.assertRejects(
            f"Document is too large ({MAX_DOCUMENT_SIZE + 1} bytes, limit {MAX_DOCUMENT_SIZE})",
            check_document,
            {"s": "x" * (MAX_DOCUMENT_SIZE - 5)},
        )

    def test_nesting(self) -> None:
        # The document itself is level 1.
        check_document(nested_objects(MAX_DOCUMENT_NESTING))
        check_document({"a": nested_lists(MAX_DOCUMENT_NESTING - 1)})
        msg = self.assertRejects(
            "Document is nested too deeply (more than 16 levels",
            check_document,
            nested_objects(MAX_DOCUMENT_NESTING + 1),
        )
        self.assertIn(" at .a.a", msg)
        self.assertRejects(
            "nested too deeply",
            check_document,
            {"a": nested_lists(MAX_DOCUMENT_NESTING)},
        )

    def test_fields_per_object(self) -> None:
        many = {f"f{i}": None for i in range(MAX_OBJECT_FIELDS)}
        check_document(many)
        check_document({"o": many})
        more = {f"f{i}": None for i in range(MAX_OBJECT_FIELDS + 1)}
        self.assertRejects("too many fields (1025, limit 1024)", check_document, more)
        self.assertRejects(
            "Object has too many fields (1025, limit 1024) at .o[0]",
            check_document,
            {"o": [more]},
        )

    def test_array_length(self) -> None:
        check_document({"a": [None] * MAX_ARRAY_LENGTH})
        self.assertRejects(
            "Array is too long (8193 elements, limit 8192) at .a",
            check_document,
            {"a": [None] * (MAX_ARRAY_LENGTH + 1)},
        )

    def test_top_level_names(self) -> None:
        check_document({"a" * 64: None, "A_1": None, "_id": "x", "_creationTime": 1.0})
        self.assertRejects("too long (65 characters, limit 64)", check_document, {"a" * 65: 1.0})
        for bad in ("", "1a", "a-b", "a b", "é", "$a"):
            self.assertRejects("must be non-empty", check_document, {bad: None})
        self.assertRejects("reserved for system fields", check_document, {"_foo": None})
        self.assertRejects("must be strings", check_document, {1: None})

    def test_nested_names(self) -> None:
        self.assertRejects("starts with a '$'", check_document, {"a": [{"$x": None}]})
        self.assertRejects("printable ASCII", check_document, {"a": {"b": {"\n": None}}})
        self.assertRejects("too long", check_document, {"a": {"x" * 1025: None}})

    def test_values(self) -> None:
        self.assertRejects("not valid Unicode", check_document, {"s": "\ud800"})
        self.assertRejects("Python int", check_document, {"a": {"b": 1}})
        self.assertRejects("A document must be an object", check_document, [])


class IdentifierTests(_Ctx, SynchronousTestCase):
    def test_valid(self) -> None:
        for name in ("a", "_", "users", "Users_2", "_storage", "a" * 64):
            validate_identifier(name)

    def test_invalid(self) -> None:
        for bad in ("", "1a", "a-b", "a b", "é", "a\n"):
            self.assertRejects("Invalid table name", validate_identifier, bad)
        self.assertRejects("too long", validate_identifier, "a" * 65)
        self.assertRejects("Invalid index name", validate_identifier, "-", "index name")
        self.assertRejects("expected a string", validate_identifier, None)

    def test_user_table_names(self) -> None:
        validate_user_table_name("messages")
        self.assertRejects("reserved for system tables", validate_user_table_name, "_x")
        self.assertRejects("Invalid table name", validate_user_table_name, "9")
