"""Tests for convex_backend.database.schema: validators and schemas."""

from __future__ import annotations

import json
import math
import string
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from convex_backend.database.schema import (
    AnyValidator,
    ArrayValidator,
    IdValidator,
    LiteralValidator,
    MappingValidationContext,
    NumberValidator,
    ObjectField,
    ObjectValidator,
    RecordValidator,
    SchemaError,
    StringValidator,
    UnionValidator,
    ValidationContext,
    ValidationError,
    Validator,
    parse_schema,
    parse_validator,
)
from convex_backend.values import (
    UNDEFINED,
    ConvexValueError,
    Int64,
    encode_id,
    to_json,
)
from tests.values.test_order import binaries, floats, int64s, texts, values

SETTINGS = settings(max_examples=300, deadline=None)

TABLES = {"users": 1, "messages": 2, "_storage": 3}
CTX = MappingValidationContext(TABLES)


def make_id(table: str, n: int = 0) -> str:
    return encode_id(TABLES[table], bytes([n]) * 16)


def v(obj: Any) -> Validator:
    return parse_validator(obj)


def obj_v(**fields: Any) -> dict:
    """Object validator JSON; a field given as ("?", validator) is optional."""
    out = {}
    for name, f in fields.items():
        optional = isinstance(f, tuple)
        out[name] = {"fieldType": f[1] if optional else f, "optional": optional}
    return {"type": "object", "value": out}


S = {"type": "string"}
N = {"type": "number"}
B = {"type": "bigint"}
BOOL = {"type": "boolean"}
NULL = {"type": "null"}
ANY = {"type": "any"}
BYTES = {"type": "bytes"}


def lit(x: Any) -> dict:
    return {"type": "literal", "value": to_json(x)}


def arr(e: dict) -> dict:
    return {"type": "array", "value": e}


def union(*ms: dict) -> dict:
    return {"type": "union", "value": list(ms)}


def record(k: dict, val: dict, optional: bool = False) -> dict:
    return {
        "type": "record",
        "keys": k,
        "values": {"fieldType": val, "optional": optional},
    }


def vid(t: str) -> dict:
    return {"type": "id", "tableName": t}


class ValidatorTestCase(SynchronousTestCase):
    def ok(self, validator: dict | Validator, value: Any) -> None:
        if isinstance(validator, dict):
            validator = v(validator)
        validator.check(value, CTX)
        self.assertTrue(validator.matches(value, CTX))

    def bad(self, validator: dict | Validator, value: Any, ctx: Any = CTX) -> ValidationError:
        if isinstance(validator, dict):
            validator = v(validator)
        self.assertFalse(validator.matches(value, ctx))
        e = self.assertRaises(ValidationError, validator.check, value, ctx)
        self.assertIsInstance(e, ConvexValueError)
        return e


class ScalarTests(ValidatorTestCase):
    def test_null(self) -> None:
        self.ok(NULL, None)
        for x in (0.0, False, "", [], {}, UNDEFINED):
            self.bad(NULL, x)

    def test_number_is_float64_only(self) -> None:
        for x in (0.0, -0.0, 1.5, math.inf, math.nan):
            self.ok(N, x)
        for x in (Int64(1), True, False, 1, "1", None):
            self.bad(N, x)

    def test_bool_is_not_a_number(self) -> None:
        e = self.bad(N, True)
        self.assertEqual(
            str(e),
            "Value does not match validator.\nValue: true\nValidator: v.float64()",
        )

    def test_bigint(self) -> None:
        self.ok(B, Int64(5))
        for x in (5.0, True, 5, "5"):
            self.bad(B, x)
        self.assertIn("Value: 5\n", str(self.bad(B, 5.0)))

    def test_commit_ts_checks_int64(self) -> None:
        self.ok({"type": "commitTs"}, Int64(10**18))
        e = self.bad({"type": "commitTs"}, 1.0)
        self.assertIn("Validator: v.commitTs()", str(e))

    def test_boolean(self) -> None:
        self.ok(BOOL, True)
        self.ok(BOOL, False)
        for x in (0.0, 1.0, None, "true"):
            self.bad(BOOL, x)

    def test_string(self) -> None:
        self.ok(S, "")
        self.ok(S, "héllo")
        for x in (b"x", None, 1.0):
            self.bad(S, x)

    def test_bytes(self) -> None:
        self.ok(BYTES, b"")
        self.ok(BYTES, b"\x00\xff")
        e = self.bad(BYTES, "abc")
        self.assertIn('Value: "abc"', str(e))
        e = self.bad(S, b"abc")
        self.assertIn("Value: ArrayBuffer(3 bytes)", str(e))

    def test_any(self) -> None:
        for x in (None, 1.0, Int64(1), True, "x", b"", [1.0], {"a": {"b": []}}):
            self.ok(ANY, x)


class IdTests(ValidatorTestCase):
    def test_right_table(self) -> None:
        self.ok(vid("users"), make_id("users"))
        self.ok(vid("_storage"), make_id("_storage", 7))

    def test_wrong_table(self) -> None:
        e = self.bad(vid("users"), make_id("messages"))
        self.assertEqual(
            str(e),
            "Value does not match validator.\n"
            f'Value: "{make_id("messages")}"\n'
            'Validator: v.id("users")',
        )

    def test_unknown_table_matches_nothing(self) -> None:
        self.bad(vid("ghosts"), make_id("users"))
        self.bad(vid("users"), make_id("users"), ctx=None)
        self.bad(vid("users"), make_id("users"), ctx=MappingValidationContext())

    def test_not_an_id(self) -> None:
        for x in ("no bueno", "", make_id("users")[:-1], 1.0, None, b"x"):
            self.bad(vid("users"), x)

    def test_context_protocol(self) -> None:
        class Ctx:
            def table_number(self, table_name: str) -> int | None:
                return 2 if table_name == "things" else None

        self.assertIsInstance(Ctx(), ValidationContext)
        v(vid("things")).check(make_id("messages"), Ctx())


class LiteralTests(ValidatorTestCase):
    def test_string(self) -> None:
        self.ok(lit("a"), "a")
        self.bad(lit("a"), "b")
        self.assertEqual(str(v(lit("a"))), 'v.literal("a")')

    def test_int64_is_not_float(self) -> None:
        self.ok(lit(Int64(1)), Int64(1))
        self.bad(lit(Int64(1)), 1.0)
        self.bad(lit(Int64(1)), Int64(2))
        self.ok(lit(1.0), 1.0)
        self.bad(lit(1.0), Int64(1))
        self.assertEqual(str(v(lit(Int64(1)))), "v.literal(1n)")
        self.assertEqual(str(v(lit(1.0))), "v.literal(1)")

    def test_bool_is_not_number(self) -> None:
        self.ok(lit(True), True)
        self.bad(lit(True), 1.0)
        self.bad(lit(True), False)
        self.bad(lit(1.0), True)
        self.bad(lit(0.0), False)
        self.assertNotEqual(v(lit(True)), v(lit(1.0)))

    def test_exact_float_equality(self) -> None:
        self.bad(lit(0.0), -0.0)
        self.bad(lit(-0.0), 0.0)
        self.ok(lit(-0.0), -0.0)
        self.ok(lit(math.nan), math.nan)
        self.assertEqual(v(lit(math.nan)), v(lit(math.nan)))

    def test_non_scalar_literals_are_refused(self) -> None:
        for x in (None, [1.0], {"a": 1.0}, b"x"):
            e = self.assertRaises(SchemaError, v, lit(x))
            self.assertIn("$.value", str(e))


class ArrayTests(ValidatorTestCase):
    def test_elements(self) -> None:
        self.ok(arr(S), [])
        self.ok(arr(S), ["a", "b"])
        e = self.bad(arr(S), ["a", "b", 5.0])
        self.assertEqual(e.path, "[2]")
        self.assertEqual(
            str(e),
            "Value does not match validator.\nPath: [2]\nValue: 5\nValidator: v.string()",
        )
        self.bad(arr(S), ("a",))
        self.bad(arr(S), {"0": "a"})

    def test_any_elements(self) -> None:
        self.ok(arr(ANY), [None, 1.0, "x"])
        self.bad(arr(ANY), "x")


class ObjectTests(ValidatorTestCase):
    message = obj_v(author=S, tags=arr(S), extra=("?", N))

    def test_accept(self) -> None:
        self.ok(self.message, {"author": "a", "tags": []})
        self.ok(self.message, {"author": "a", "tags": ["x"], "extra": 1.0})

    def test_path_in_message(self) -> None:
        e = self.bad(self.message, {"author": "a", "tags": ["x", "y", 5.0]})
        self.assertEqual(e.path, ".tags[2]")
        self.assertIn("Path: .tags[2]\nValue: 5\nValidator: v.string()", str(e))

    def test_missing_required(self) -> None:
        e = self.bad(self.message, {"tags": []})
        self.assertTrue(
            str(e).startswith("Object is missing the required field `author`."),
            str(e),
        )
        self.assertIn(
            "Validator: v.object({author: v.string(), tags: v.array(v.string()), "
            "extra: v.optional(v.float64())})",
            str(e),
        )

    def test_undefined_counts_as_absent(self) -> None:
        self.ok(self.message, {"author": "a", "tags": [], "extra": UNDEFINED})
        self.ok(self.message, {"author": "a", "tags": [], "other": UNDEFINED})
        e = self.bad(self.message, {"author": UNDEFINED, "tags": []})
        self.assertIn("missing the required field `author`", str(e))

    def test_extra_field(self) -> None:
        e = self.bad(self.message, {"author": "a", "tags": [], "iv": "x"})
        self.assertTrue(
            str(e).startswith("Object contains extra field `iv` that is not in the validator.")
        )
        self.assertIn('Object: {author: "a", tags: [], iv: "x"}', str(e))

    def test_not_an_object(self) -> None:
        for x in (None, [], "x", 1.0):
            self.bad(self.message, x)

    def test_nested(self) -> None:
        nested = obj_v(a=obj_v(b=arr(obj_v(c=B))))
        self.ok(nested, {"a": {"b": [{"c": Int64(1)}]}})
        e = self.bad(nested, {"a": {"b": [{"c": Int64(1)}, {"c": 1.0}]}})
        self.assertEqual(e.path, ".a.b[1].c")
        e = self.bad(nested, {"a": {"b": [{"c": Int64(1)}, {}]}})
        self.assertEqual(e.path, ".a.b[1]")
        self.assertIn("Path: .a.b[1]\n", str(e))

    def test_weird_field_names_in_paths(self) -> None:
        validator = obj_v(**{"a b": N})
        e = self.bad(validator, {"a b": "x"})
        self.assertEqual(e.path, '["a b"]')
        self.assertEqual(str(v(validator)), 'v.object({"a b": v.float64()})')

    def test_empty_object(self) -> None:
        self.ok(obj_v(), {})
        self.bad(obj_v(), {"a": 1.0})

    def test_get_field(self) -> None:
        parsed = v(self.message)
        assert isinstance(parsed, ObjectValidator)
        self.assertEqual(parsed.get_field("extra"), ObjectField("extra", NumberValidator(), True))
        self.assertIsNone(parsed.get_field("nope"))


class RecordTests(ValidatorTestCase):
    def test_string_keys(self) -> None:
        r = record(S, N)
        self.ok(r, {})
        self.ok(r, {"a": 1.0, "b c": 2.0})
        e = self.bad(r, {"a": 1.0, "b": "x"})
        self.assertEqual(e.path, ".b")
        self.bad(r, [])
        self.assertEqual(str(v(r)), "v.record(v.string(), v.float64())")

    def test_reserved_keys(self) -> None:
        r = record(S, N)
        for key in ("_a", "$a", "", "é"):
            e = self.bad(r, {key: 1.0})
            self.assertIn("record keys must be non-empty ASCII", str(e))

    def test_id_keys(self) -> None:
        r = record(vid("users"), BOOL)
        self.ok(r, {make_id("users", 1): True, make_id("users", 2): False})
        e = self.bad(r, {make_id("messages"): True})
        self.assertIn('does not match the key validator v.id("users")', str(e))

    def test_literal_keys(self) -> None:
        r = record(union(lit("a"), lit("b")), S)
        self.ok(r, {"a": "x", "b": "y"})
        self.bad(r, {"c": "x"})

    def test_undefined_values_are_absent(self) -> None:
        self.ok(record(S, N), {"a": UNDEFINED})

    def test_optional_values_round_trip(self) -> None:
        r = record(S, N, optional=True)
        self.assertEqual(v(r).to_json(), r)
        self.assertEqual(str(v(r)), "v.record(v.string(), v.optional(v.float64()))")

    def test_bad_key_validators(self) -> None:
        for keys in (N, B, lit(1.0), union(S, N), obj_v(), ANY):
            e = self.assertRaises(SchemaError, v, record(keys, N))
            self.assertIn("$.keys", str(e))


class UnionTests(ValidatorTestCase):
    def test_members(self) -> None:
        u = union(S, NULL, obj_v(kind=lit("x"), n=N))
        self.ok(u, "a")
        self.ok(u, None)
        self.ok(u, {"kind": "x", "n": 1.0})
        e = self.bad(u, {"kind": "y", "n": 1.0})
        self.assertIn(
            'Validator: v.union(v.string(), v.null(), v.object({kind: v.literal("x"), '
            "n: v.float64()}))",
            str(e),
        )

    def test_string_enum(self) -> None:
        u = union(lit("a"), lit("b"))
        self.ok(u, "a")
        self.bad(u, "c")
        self.bad(u, 1.0)
        self.bad(obj_v(e=u), {"e": "c"})

    def test_empty_union_matches_nothing(self) -> None:
        self.bad(union(), None)

    def test_path_inside_union(self) -> None:
        e = self.bad(obj_v(x=arr(union(S, N))), {"x": [1.0, True]})
        self.assertEqual(e.path, ".x[1]")


class RenderTests(SynchronousTestCase):
    def test_str(self) -> None:
        cases = {
            'v.id("users")': vid("users"),
            "v.null()": NULL,
            "v.float64()": N,
            "v.int64()": B,
            "v.boolean()": BOOL,
            "v.string()": S,
            "v.bytes()": BYTES,
            "v.any()": ANY,
            "v.literal(true)": lit(True),
            "v.array(v.string())": arr(S),
            "v.object({author: v.string(), tags: v.array(v.string())})": obj_v(
                author=S, tags=arr(S)
            ),
            "v.union(v.string(), v.null())": union(S, NULL),
        }
        for text, validator in cases.items():
            self.assertEqual(str(v(validator)), text)

    def test_value_rendering(self) -> None:
        validator = v(S)
        e = self.assertRaises(
            ValidationError,
            validator.check,
            {"a": [Int64(5), 1.5, -0.0, math.inf, None, False], "b": b"xy"},
        )
        self.assertIn(
            "Value: {a: [5n, 1.5, -0, Infinity, null, false], b: ArrayBuffer(2 bytes)}",
            str(e),
        )

    def test_huge_values_are_cut(self) -> None:
        e = self.assertRaises(ValidationError, v(S).check, ["x" * 1000] * 1000)
        self.assertLess(len(str(e)), 700)


class ParseValidatorTests(SynchronousTestCase):
    def bad(self, obj: Any, *fragments: str) -> None:
        e = self.assertRaises(SchemaError, parse_validator, obj)
        self.assertIsInstance(e, ConvexValueError)
        for f in fragments:
            self.assertIn(f, str(e))

    def test_malformed(self) -> None:
        self.bad(None, "at $", "got null")
        self.bad([], "at $", "got array")
        self.bad({}, 'missing "type"')
        self.bad({"type": "strin"}, 'unknown validator type "strin"')
        self.bad({"type": 5}, "unknown validator type 5")
        self.bad({"type": "id"}, "$.tableName")
        self.bad({"type": "id", "tableName": "bad name"}, "$.tableName")
        self.bad({"type": "id", "tableName": "t" * 65}, "longer than 64")
        self.bad({"type": "literal"}, '"value"')
        self.bad({"type": "literal", "value": {"$integer": "x"}}, "$.value")
        self.bad({"type": "array"}, '"value"')
        self.bad({"type": "array", "value": {"type": "nope"}}, "$.value:")
        self.bad({"type": "object"}, "$.value")
        self.bad({"type": "object", "value": []}, "$.value")
        self.bad({"type": "object", "value": {"a": S}}, "$.value.a", "fieldType")
        self.bad({"type": "object", "value": {"a": "x"}}, "$.value.a")
        self.bad(
            {"type": "object", "value": {"a": {"fieldType": S, "optional": 1}}},
            "$.value.a.optional",
            "expected a boolean",
        )
        self.bad({"type": "object", "value": {"$a": {"fieldType": S}}}, "starts with a '$'")
        self.bad({"type": "object", "value": {"": {"fieldType": S}}}, "field name")
        self.bad(obj_v(a=obj_v(b={"type": "x"})), "$.value.a.fieldType.value.b.fieldType")
        self.bad({"type": "record", "keys": S}, '"keys" and "values"')
        self.bad({"type": "record", "keys": S, "values": N}, "$.values", "fieldType")
        self.bad({"type": "union"}, "$.value")
        self.bad({"type": "union", "value": [S, 5]}, "$.value[1]")

    def test_text_input(self) -> None:
        self.assertEqual(parse_validator('{"type": "string"}'), StringValidator())
        self.bad("{", "Invalid validator JSON")
        self.bad("[" * 100000 + "]" * 100000, "Invalid validator JSON")

    def test_too_deep(self) -> None:
        deep: dict = S
        for _ in range(100):
            deep = arr(deep)
        self.bad(deep, "nested more than 64 levels deep")

    def test_optional_defaults_to_false(self) -> None:
        parsed = v({"type": "object", "value": {"a": {"fieldType": S}}})
        self.assertEqual(parsed, ObjectValidator((ObjectField("a", StringValidator()),)))

    def test_structural_equality(self) -> None:
        self.assertEqual(v(obj_v(a=arr(S))), v(obj_v(a=arr(S))))
        self.assertNotEqual(v(obj_v(a=arr(S))), v(obj_v(a=arr(N))))
        self.assertEqual(v(vid("users")), IdValidator("users"))
        self.assertEqual(v(lit("x")), LiteralValidator("x"))
        self.assertEqual(v(record(S, ANY)), RecordValidator(StringValidator(), AnyValidator()))
        self.assertEqual(v(arr(S)), ArrayValidator(StringValidator()))
        self.assertEqual(v(union(S)), UnionValidator((StringValidator(),)))


# -- schemas ------------------------------------------------------------------

MESSAGES_DOC = obj_v(author=S, body=S, tags=arr(S), extra=("?", N))
SAMPLE = {
    "tables": [
        {
            "tableName": "messages",
            "indexes": [{"indexDescriptor": "by_author", "fields": ["author"]}],
            "stagedDbIndexes": [{"indexDescriptor": "staged_idx", "fields": ["body"]}],
            "searchIndexes": [
                {
                    "indexDescriptor": "search_body",
                    "searchField": "body",
                    "filterFields": ["author"],
                }
            ],
            "stagedSearchIndexes": [],
            "vectorIndexes": [
                {
                    "indexDescriptor": "by_embedding",
                    "vectorField": "tags",
                    "dimensions": 1536,
                    "filterFields": ["author"],
                }
            ],
            "stagedVectorIndexes": [],
            "documentType": MESSAGES_DOC,
        },
        {
            "tableName": "users",
            "indexes": [{"indexDescriptor": "by_name_age", "fields": ["name", "profile.age"]}],
            "searchIndexes": [],
            "vectorIndexes": [],
            "documentType": union(
                obj_v(kind=lit("person"), name=S, profile=obj_v(age=N)),
                obj_v(kind=lit("bot"), name=S, owner=vid("users")),
            ),
        },
        {
            "tableName": "anything",
            "indexes": [],
            "searchIndexes": [],
            "vectorIndexes": [],
            "documentType": ANY,
        },
    ],
    "schemaValidation": True,
}


def table(name: str = "t", **extra: Any) -> dict:
    t = {
        "tableName": name,
        "indexes": [],
        "searchIndexes": [],
        "vectorIndexes": [],
        "documentType": obj_v(a=S),
    }
    t.update(extra)
    return t


def schema_with(*tables: dict, **extra: Any) -> dict:
    return {"tables": list(tables), "schemaValidation": True, **extra}


def index(name: str, *fields: str) -> dict:
    return {"indexDescriptor": name, "fields": list(fields)}


class ParseSchemaTests(SynchronousTestCase):
    def test_sample_parses(self) -> None:
        schema = parse_schema(json.dumps(SAMPLE))
        self.assertTrue(schema.schema_validation)
        self.assertEqual(list(schema.tables), ["messages", "users", "anything"])
        messages = schema.tables["messages"]
        self.assertEqual(messages.name, "messages")
        self.assertEqual(dict(messages.indexes), {"by_author": ("author",)})
        self.assertEqual(dict(messages.staged_indexes), {"staged_idx": ("body",)})
        self.assertEqual(messages.search_indexes["search_body"].search_field, "body")
        self.assertEqual(messages.search_indexes["search_body"].filter_fields, ("author",))
        self.assertEqual(messages.vector_indexes["by_embedding"].dimensions, 1536)
        self.assertEqual(messages.document_validator, v(MESSAGES_DOC))
        self.assertEqual(
            dict(schema.tables["users"].indexes),
            {"by_name_age": ("name", "profile.age")},
        )
        self.assertIsNone(schema.tables["anything"].document_validator)
        self.assertIs(schema.table("messages"), messages)
        self.assertIsNone(schema.table("nope"))

    def test_round_trip(self) -> None:
        schema = parse_schema(SAMPLE)
        out = schema.to_json()
        self.assertEqual(out["tables"][0], SAMPLE["tables"][0])
        self.assertEqual(out["schemaValidation"], True)
        again = parse_schema(json.loads(json.dumps(out)))
        self.assertEqual(again, schema)
        self.assertEqual(again.to_json(), out)
        # Missing list keys come back as empty lists.
        self.assertEqual(out["tables"][1]["stagedDbIndexes"], [])
        self.assertEqual(out["tables"][2]["documentType"], ANY)

    def test_staged_document_type_kept(self) -> None:
        schema = parse_schema(schema_with(table(stagedDocumentType=obj_v(b=N))))
        t = schema.tables["t"]
        self.assertEqual(t.staged_document_validator, v(obj_v(b=N)))
        self.assertEqual(schema.to_json()["tables"][0]["stagedDocumentType"], obj_v(b=N))
        self.assertNotIn(
            "stagedDocumentType",
            parse_schema(schema_with(table())).to_json()["tables"][0],
        )

    def test_defaults(self) -> None:
        schema = parse_schema({"tables": [{"tableName": "t"}]})
        self.assertTrue(schema.schema_validation)
        self.assertIsNone(schema.tables["t"].document_validator)
        self.assertEqual(dict(schema.tables["t"].indexes), {})
        off = parse_schema({"tables": [], "schemaValidation": False})
        self.assertFalse(off.schema_validation)
        self.assertIsNone(
            parse_schema(schema_with(table(documentType=None))).tables["t"].document_validator
        )

    def bad(self, obj: Any, *fragments: str) -> None:
        e = self.assertRaises(SchemaError, parse_schema, obj)
        for f in fragments:
            self.assertIn(f, str(e))

    def test_malformed_top_level(self) -> None:
        self.bad("{", "Invalid schema JSON")
        self.bad([], "expected a JSON object")
        self.bad({}, '"tables" must be an array')
        self.bad({"tables": {}}, '"tables" must be an array')
        self.bad({"tables": [], "schemaValidation": "yes"}, '"schemaValidation"')
        self.bad({"tables": [5]}, "tables[0] must be an object")

    def test_table_names(self) -> None:
        self.bad(schema_with(table("_system")), "starts with '_'")
        self.bad(schema_with(table("1abc")), "must start with a letter")
        self.bad(schema_with(table("a-b")), "must start with a letter")
        self.bad(schema_with(table("")), "must start with a letter")
        self.bad(schema_with(table("t" * 65)), "too long")
        self.bad(schema_with({"indexes": []}), "table name must be a string")
        self.bad(schema_with(table("t"), table("t")), 'table "t" is declared twice')
        parse_schema(schema_with(table("t" * 64), table("A_1")))

    def test_index_names(self) -> None:
        for name in ("by_id", "by_creation_time"):
            self.bad(schema_with(table(indexes=[index(name, "a")])), "reserved")
        self.bad(schema_with(table(indexes=[index("_x", "a")])), "starts with '_'")
        self.bad(schema_with(table(indexes=[index("a b", "a")])), "is invalid")
        self.bad(schema_with(table(indexes=[index("i" * 65, "a")])), "too long")
        self.bad(
            schema_with(table(indexes=[index("i", "a"), index("i", "b")])),
            'Invalid schema for table "t"',
            'index name "i" is used twice',
        )
        self.bad(
            schema_with(
                table(
                    indexes=[index("i", "a")],
                    searchIndexes=[{"indexDescriptor": "i", "searchField": "a"}],
                )
            ),
            "used twice",
        )
        self.bad(
            schema_with(table(indexes=[index("i", "a")], stagedDbIndexes=[index("i", "a")])),
            "used twice",
        )

    def test_index_limits(self) -> None:
        many = [index(f"i{n}", "a") for n in range(32)]
        parse_schema(schema_with(table(indexes=many)))
        self.bad(
            schema_with(table(indexes=[*many, index("i32", "a")])),
            "33 indexes, more than the limit of 32",
        )
        self.bad(
            schema_with(table(indexes=many, stagedDbIndexes=[index("s", "a")])),
            "limit of 32",
        )
        fields = [f"f{n}" for n in range(16)]
        parse_schema(schema_with(table(indexes=[index("i", *fields)])))
        self.bad(
            schema_with(table(indexes=[index("i", *fields, "f16")])),
            "17 fields, more than the limit of 16",
        )
        self.bad(schema_with(table(indexes=[index("i")])), "has no fields")
        self.bad(
            schema_with(table(indexes=[{"indexDescriptor": "i"}])),
            "expected an array of field paths",
        )

    def test_index_fields(self) -> None:
        self.bad(schema_with(table(indexes=[index("i", "_id")])), "`_id` cannot")
        self.bad(schema_with(table(indexes=[index("i", "a", "a")])), "'a' twice")
        for path in ("", "a..b", "a.", "1a", "a-b", "a.b c"):
            self.bad(schema_with(table(indexes=[index("i", path)])), "invalid field path")
        self.bad(
            schema_with(table(indexes=[{"indexDescriptor": "i", "fields": [1]}])),
            "must be a string",
        )
        parse_schema(schema_with(table(indexes=[index("i", "a.b.c", "_creationTime")])))

    def test_search_and_vector_indexes(self) -> None:
        def vec(name: str, dims: Any) -> dict:
            return {
                "indexDescriptor": name,
                "vectorField": "v",
                "dimensions": dims,
                "filterFields": [],
            }

        parse_schema(schema_with(table(vectorIndexes=[vec("v", 2), vec("w", 4096)])))
        for dims in (1, 4097, "3", True, 2.5, None):
            self.bad(schema_with(table(vectorIndexes=[vec("v", dims)])), "dimensions")
        self.bad(
            schema_with(table(vectorIndexes=[vec(f"v{n}", 8) for n in range(5)])),
            "5 vector indexes",
        )
        self.bad(
            schema_with(
                table(
                    searchIndexes=[
                        {"indexDescriptor": f"s{n}", "searchField": "a"} for n in range(5)
                    ]
                )
            ),
            "5 search indexes",
        )
        self.bad(
            schema_with(table(searchIndexes=[{"indexDescriptor": "s"}])),
            'search index "s"',
        )
        self.bad(schema_with(table(searchIndexes={})), '"searchIndexes" must be an array')

    def test_document_type_shape(self) -> None:
        for doc_type in (S, arr(S), record(S, S), union(obj_v(), S), union()):
            self.bad(schema_with(table(documentType=doc_type)), "documentType")
        self.bad(schema_with(table(documentType=obj_v(_id=S))), "system field `_id`")
        self.bad(schema_with(table(documentType=obj_v(_x=S))), "starts with '_'")
        self.bad(schema_with(table(documentType=obj_v(**{"a-b": S}))), "is invalid")
        self.bad(
            schema_with(table(documentType={"type": "bogus"})),
            'Invalid schema for table "t": documentType: Invalid validator at $',
        )
        parse_schema(schema_with(table(documentType=union(obj_v(a=S), obj_v(b=N)))))


class ValidateDocumentTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.schema = parse_schema(SAMPLE)

    def doc(self, table: str, n: int = 0, **fields: Any) -> dict:
        return {"_id": make_id(table, n), "_creationTime": 1000.0 + n, **fields}

    def test_strips_system_fields(self) -> None:
        good = self.doc("messages", author="a", body="b", tags=[])
        self.schema.validate_document("messages", good, CTX)
        self.schema.validate_document("messages", {"author": "a", "body": "b", "tags": []}, CTX)
        self.assertIn("_id", good)  # not modified

    def test_error_prefix(self) -> None:
        e = self.assertRaises(
            ValidationError,
            self.schema.validate_document,
            "messages",
            self.doc("messages", author="a", body="b", tags=[1.0]),
            CTX,
        )
        self.assertEqual(
            str(e),
            'Failed to insert or update a document in table "messages" because it '
            "does not match the schema: Value does not match validator.\n"
            "Path: .tags[0]\nValue: 1\nValidator: v.string()",
        )
        self.assertEqual(e.path, ".tags[0]")

    def test_union_document_with_ids(self) -> None:
        owner = make_id("users", 9)
        self.schema.validate_document(
            "users", self.doc("users", kind="bot", name="b", owner=owner), CTX
        )
        e = self.assertRaises(
            ValidationError,
            self.schema.validate_document,
            "users",
            self.doc("users", kind="bot", name="b", owner=make_id("messages")),
            CTX,
        )
        self.assertIn("does not match the schema: Value does not match validator", str(e))

    def test_undeclared_and_unvalidated_tables(self) -> None:
        # The docs: a schema only validates the tables it lists.
        self.schema.validate_document("other", {"whatever": 1.0}, CTX)
        self.schema.validate_document("anything", {"whatever": 1.0}, CTX)
        off = parse_schema({**SAMPLE, "schemaValidation": False})
        off.validate_document("messages", {"nope": True}, CTX)
        self.assertEqual(off.check_existing("messages", [{"nope": True}], CTX), [])

    def test_check_existing(self) -> None:
        docs = [
            self.doc("messages", 0, author="a", body="b", tags=[]),
            self.doc("messages", 1, author="a", body="b"),
            self.doc("messages", 2, author="a", body="b", tags=[], extra="x"),
            self.doc("messages", 3, author="a", body="b", tags=[], extra=1.0),
        ]
        out = self.schema.check_existing("messages", docs, CTX)
        self.assertEqual(len(out), 2)
        self.assertTrue(
            out[0].startswith(
                f'Document with ID "{make_id("messages", 1)}" in table "messages" '
                "does not match the schema: Object is missing the required field "
                "`tags`."
            ),
            out[0],
        )
        self.assertIn(make_id("messages", 2), out[1])
        self.assertIn("Path: .extra", out[1])
        self.assertEqual(self.schema.check_existing("messages", docs[:1], CTX), [])
        bad = [self.doc("messages", n) for n in range(20)]
        self.assertEqual(len(self.schema.check_existing("messages", bad, CTX)), 10)
        self.assertEqual(len(self.schema.check_existing("messages", bad, CTX, limit=3)), 3)
        self.assertEqual(self.schema.check_existing("other", bad, CTX), [])

    def test_check_existing_is_lazy(self) -> None:
        seen = []

        def docs():
            for n in range(100):
                seen.append(n)
                yield self.doc("messages", n)

        self.schema.check_existing("messages", docs(), CTX, limit=2)
        self.assertEqual(seen, [0, 1])


# -- property tests -------------------------------------------------------------

field_names = st.one_of(
    st.sampled_from(["a", "b", "author", "a b", "x-y", "_private"]),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True),
)
record_key_text = st.text(
    alphabet=string.ascii_letters + string.digits + " -_", min_size=1, max_size=5
).filter(lambda k: k[0] not in "$_")
literal_values = st.one_of(texts, floats, int64s, st.booleans())
scalar_validators = st.one_of(
    st.sampled_from(
        [
            {"type": t}
            for t in (
                "null",
                "number",
                "bigint",
                "commitTs",
                "boolean",
                "string",
                "bytes",
                "any",
            )
        ]
    ),
    st.sampled_from(sorted(TABLES)).map(vid),
    literal_values.map(lit),
)
key_validators = st.one_of(
    st.just(S),
    st.sampled_from(sorted(TABLES)).map(vid),
    record_key_text.map(lit),
    st.lists(
        st.one_of(record_key_text.map(lit), st.sampled_from(sorted(TABLES)).map(vid)),
        max_size=3,
    ).map(lambda ms: union(*ms)),
)


def _object_json(fields: dict[str, tuple[dict, bool]]) -> dict:
    return {
        "type": "object",
        "value": {n: {"fieldType": f, "optional": o} for n, (f, o) in fields.items()},
    }


validator_jsons = st.recursive(
    scalar_validators,
    lambda children: st.one_of(
        children.map(arr),
        st.dictionaries(field_names, st.tuples(children, st.booleans()), max_size=4).map(
            _object_json
        ),
        st.tuples(key_validators, children, st.booleans()).map(lambda t: record(*t)),
        st.lists(children, min_size=1, max_size=3).map(lambda ms: union(*ms)),
    ),
    max_leaves=12,
)

ids_for = {
    name: st.builds(encode_id, st.just(number), st.binary(min_size=16, max_size=16))
    for name, number in TABLES.items()
}


def keys_for(validator: Validator) -> st.SearchStrategy:
    if isinstance(validator, StringValidator):
        return record_key_text
    if isinstance(validator, UnionValidator):
        return st.one_of(*map(keys_for, validator.members))
    return values_for(validator)


def values_for(validator: Validator) -> st.SearchStrategy:
    """Values that match ``validator`` (an empty union has none)."""
    j = validator.to_json()
    kind = j["type"]
    simple = {
        "any": values,
        "null": st.none(),
        "number": floats,
        "bigint": int64s,
        "commitTs": int64s,
        "boolean": st.booleans(),
        "string": texts,
        "bytes": binaries,
    }
    if kind in simple:
        return simple[kind]
    if isinstance(validator, IdValidator):
        return ids_for[validator.table_name]
    if isinstance(validator, LiteralValidator):
        return st.just(validator.value)
    if isinstance(validator, ArrayValidator):
        return st.lists(values_for(validator.element), max_size=3)
    if isinstance(validator, ObjectValidator):
        required = {f.name: values_for(f.validator) for f in validator.fields if not f.optional}
        optional = {
            f.name: st.one_of(st.just(UNDEFINED), values_for(f.validator))
            for f in validator.fields
            if f.optional
        }
        return st.fixed_dictionaries(required, optional=optional)
    if isinstance(validator, RecordValidator):
        keys = validator.keys
        if isinstance(keys, UnionValidator) and not keys.members:
            return st.just({})  # no key can match
        return st.dictionaries(keys_for(validator.keys), values_for(validator.values), max_size=3)
    assert isinstance(validator, UnionValidator)
    return st.one_of(*map(values_for, validator.members))


json_garbage = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=5),
        st.sampled_from(
            [
                "id",
                "null",
                "number",
                "bigint",
                "literal",
                "array",
                "object",
                "record",
                "union",
                "string",
                "$integer",
                "AAAAAAAAAAA=",
            ]
        ),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(
            st.one_of(
                st.sampled_from(
                    [
                        "type",
                        "value",
                        "tableName",
                        "keys",
                        "values",
                        "fieldType",
                        "optional",
                        "$integer",
                        "$float",
                        "$bytes",
                    ]
                ),
                st.text(max_size=3),
            ),
            children,
            max_size=4,
        ),
    ),
    max_leaves=15,
)


class PropertyTests(SynchronousTestCase):
    @SETTINGS
    @given(validator_jsons, st.data())
    def test_generated_values_match(self, vjson: dict, data: st.DataObject) -> None:
        validator = parse_validator(vjson)
        self.assertEqual(validator.to_json(), vjson)
        self.assertEqual(parse_validator(json.dumps(validator.to_json())), validator)
        str(validator)
        value = data.draw(values_for(validator))
        validator.check(value, CTX)
        # Any object validator also accepts its values under a schema table.
        if isinstance(validator, ObjectValidator) and all(
            _ok_top_level(f.name) for f in validator.fields
        ):
            schema = parse_schema(schema_with(table("t", documentType=vjson)))
            schema.validate_document("t", {"_id": make_id("users"), **value}, CTX)

    @SETTINGS
    @given(validator_jsons, values)
    def test_check_only_raises_validation_error(self, vjson: dict, value: Any) -> None:
        validator = parse_validator(vjson)
        try:
            validator.check(value, CTX)
        except ValidationError as e:
            self.assertFalse(validator.matches(value, CTX))
            self.assertTrue(str(e))
        else:
            self.assertTrue(validator.matches(value, CTX))

    @SETTINGS
    @given(json_garbage)
    def test_garbage_only_raises_schema_error(self, obj: Any) -> None:
        try:
            validator = parse_validator(obj)
        except SchemaError:
            return
        self.assertEqual(parse_validator(validator.to_json()), validator)

    @SETTINGS
    @given(st.one_of(json_garbage, st.text(max_size=20)))
    def test_schema_garbage_only_raises_schema_error(self, obj: Any) -> None:
        for candidate in (
            obj,
            {"tables": [obj]},
            {"tables": [{"tableName": "t", "documentType": obj}]},
        ):
            try:
                schema = parse_schema(candidate)
            except SchemaError:
                continue
            self.assertEqual(parse_schema(schema.to_json()), schema)


def _ok_top_level(name: str) -> bool:
    return name[:1].isalpha() and all(c.isalnum() or c == "_" for c in name) and name.isascii()
