"""Validator JSON (``reference/server-syscalls.md`` §5) for every ``v`` builder."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from convex_backend.server import Int64, pagination_opts_validator, v
from convex_backend.server.validators import as_args_validator


class ScalarValidatorTests(SynchronousTestCase):
    def test_scalars(self) -> None:
        cases = [
            (v.string(), {"type": "string"}),
            (v.number(), {"type": "number"}),
            (v.float64(), {"type": "number"}),
            (v.int64(), {"type": "bigint"}),
            (v.bigint(), {"type": "bigint"}),
            (v.boolean(), {"type": "boolean"}),
            (v.null(), {"type": "null"}),
            (v.bytes(), {"type": "bytes"}),
            (v.any(), {"type": "any"}),
            (v.id("messages"), {"type": "id", "tableName": "messages"}),
        ]
        for validator, expected in cases:
            self.assertEqual(validator.json, expected, validator)
            self.assertFalse(validator.is_optional)

    def test_literals(self) -> None:
        self.assertEqual(v.literal("a").json, {"type": "literal", "value": "a"})
        self.assertEqual(v.literal(True).json, {"type": "literal", "value": True})
        # A Python int is a float64 literal, Int64 an int64 one.
        self.assertEqual(v.literal(3).json, {"type": "literal", "value": 3.0})
        self.assertEqual(
            v.literal(Int64(1)).json,
            {"type": "literal", "value": {"$integer": "AQAAAAAAAAA="}},
        )

    def test_bad_literals(self) -> None:
        for bad in (None, [1], {"a": 1}, b"x"):
            self.assertRaises(TypeError, v.literal, bad)

    def test_id_needs_table_name(self) -> None:
        self.assertRaises(TypeError, v.id, 3)


class CompoundValidatorTests(SynchronousTestCase):
    def test_array(self) -> None:
        self.assertEqual(v.array(v.string()).json, {"type": "array", "value": {"type": "string"}})

    def test_object_and_optional(self) -> None:
        validator = v.object(
            {"body": v.string(), "tags": v.optional(v.array(v.string())), "n": v.number()}
        )
        self.assertEqual(
            validator.json,
            {
                "type": "object",
                "value": {
                    "body": {"fieldType": {"type": "string"}, "optional": False},
                    "tags": {
                        "fieldType": {"type": "array", "value": {"type": "string"}},
                        "optional": True,
                    },
                    "n": {"fieldType": {"type": "number"}, "optional": False},
                },
            },
        )
        # Field order is kept.
        self.assertEqual(list(validator.json["value"]), ["body", "tags", "n"])

    def test_optional_json_is_the_inner_json(self) -> None:
        optional = v.optional(v.id("users"))
        self.assertTrue(optional.is_optional)
        self.assertEqual(optional.json, {"type": "id", "tableName": "users"})
        self.assertIs(v.optional(optional), optional)

    def test_optional_does_not_change_the_original(self) -> None:
        inner = v.string()
        v.optional(inner)
        self.assertFalse(inner.is_optional)

    def test_record(self) -> None:
        self.assertEqual(
            v.record(v.string(), v.number()).json,
            {
                "type": "record",
                "keys": {"type": "string"},
                "values": {"fieldType": {"type": "number"}, "optional": False},
            },
        )

    def test_union_and_nullable(self) -> None:
        self.assertEqual(
            v.union(v.literal("a"), v.literal("b")).json,
            {
                "type": "union",
                "value": [
                    {"type": "literal", "value": "a"},
                    {"type": "literal", "value": "b"},
                ],
            },
        )
        self.assertEqual(
            v.nullable(v.string()).json,
            {"type": "union", "value": [{"type": "string"}, {"type": "null"}]},
        )

    def test_optional_only_in_objects(self) -> None:
        opt = v.optional(v.string())
        self.assertRaises(TypeError, v.array, opt)
        self.assertRaises(TypeError, v.union, v.string(), opt)
        self.assertRaises(TypeError, v.record, v.string(), opt)
        self.assertRaises(TypeError, v.record, opt, v.string())

    def test_non_validators_are_refused(self) -> None:
        self.assertRaises(TypeError, v.array, str)
        self.assertRaises(TypeError, v.object, {"a": "string"})
        self.assertRaises(TypeError, v.object, [v.string()])
        self.assertRaises(TypeError, v.optional, None)

    def test_object_helpers(self) -> None:
        base = v.object({"a": v.string(), "b": v.number()})
        self.assertEqual(list(base.extend({"c": v.null()}).fields), ["a", "b", "c"])
        self.assertEqual(list(base.pick("b").fields), ["b"])
        self.assertEqual(list(base.omit("b").fields), ["a"])
        self.assertEqual([f.is_optional for f in base.partial().fields.values()], [True, True])

    def test_equality_and_repr(self) -> None:
        self.assertEqual(v.array(v.string()), v.array(v.string()))
        self.assertNotEqual(v.string(), v.optional(v.string()))
        self.assertEqual(repr(v.optional(v.array(v.int64()))), "v.optional(v.array(v.int64()))")

    def test_pagination_opts_validator(self) -> None:
        string_or_null = {"type": "union", "value": [{"type": "string"}, {"type": "null"}]}
        self.assertEqual(
            pagination_opts_validator.json,
            {
                "type": "object",
                "value": {
                    "numItems": {"fieldType": {"type": "number"}, "optional": False},
                    "cursor": {"fieldType": string_or_null, "optional": False},
                    "endCursor": {"fieldType": string_or_null, "optional": True},
                    "id": {"fieldType": {"type": "number"}, "optional": True},
                    "maximumRowsRead": {"fieldType": {"type": "number"}, "optional": True},
                    "maximumBytesRead": {"fieldType": {"type": "number"}, "optional": True},
                },
            },
        )

    def test_args_validator(self) -> None:
        self.assertIsNone(as_args_validator(None))
        self.assertEqual(as_args_validator({"a": v.string()}), v.object({"a": v.string()}))
        self.assertRaises(TypeError, as_args_validator, [v.string()])
        self.assertRaises(TypeError, as_args_validator, v.optional(v.any()))
