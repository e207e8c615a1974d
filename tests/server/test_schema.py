"""Schema export JSON (``reference/server-syscalls.md`` §8)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from convex_backend.server import define_schema, define_table, v


class SchemaExportTests(SynchronousTestCase):
    def test_reference_sample_shape(self) -> None:
        schema = define_schema(
            {
                "messages": define_table(
                    {"author": v.string(), "body": v.string(), "tags": v.array(v.number())}
                )
                .index("by_author", ["author"])
                .index("staged_idx", ["body"], staged=True)
                .search_index("search_body", search_field="body", filter_fields=["author"])
                .vector_index(
                    "by_embedding", vector_field="tags", dimensions=1536, filter_fields=["author"]
                )
            }
        )
        self.assertEqual(
            schema.export(),
            {
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
                        "documentType": {
                            "type": "object",
                            "value": {
                                "author": {"fieldType": {"type": "string"}, "optional": False},
                                "body": {"fieldType": {"type": "string"}, "optional": False},
                                "tags": {
                                    "fieldType": {"type": "array", "value": {"type": "number"}},
                                    "optional": False,
                                },
                            },
                        },
                    }
                ],
                "schemaValidation": True,
            },
        )
        self.assertNotIn("stagedDocumentType", schema.export()["tables"][0])

    def test_several_tables_validators_and_flags(self) -> None:
        schema = define_schema(
            {
                "a": define_table(v.union(v.object({"k": v.literal("x")}), v.object({}))),
                "b": define_table(v.any()).index("by_nested", ("x.y", "z")),
                "c": define_table({}),
            },
            schema_validation=False,
        )
        exported = schema.export()
        self.assertFalse(exported["schemaValidation"])
        self.assertEqual([t["tableName"] for t in exported["tables"]], ["a", "b", "c"])
        self.assertEqual(exported["tables"][0]["documentType"]["type"], "union")
        self.assertEqual(exported["tables"][1]["documentType"], {"type": "any"})
        self.assertEqual(
            exported["tables"][1]["indexes"],
            [{"indexDescriptor": "by_nested", "fields": ["x.y", "z"]}],
        )
        self.assertEqual(exported["tables"][2]["documentType"], {"type": "object", "value": {}})
        self.assertEqual(exported["tables"][2]["searchIndexes"], [])

    def test_checks(self) -> None:
        table = define_table({"a": v.string()}).index("by_a", ["a"])
        self.assertRaises(ValueError, table.index, "by_a", ["a"])
        self.assertRaises(ValueError, table.search_index, "by_a", search_field="a")
        self.assertRaises(ValueError, table.index, "by_creation_time", ["a"])
        self.assertRaises(ValueError, table.index, "_x", ["a"])
        self.assertRaises(ValueError, table.index, "empty", [])
        self.assertRaises(TypeError, table.index, "one", "a")
        self.assertRaises(ValueError, table.vector_index, "vec", vector_field="a", dimensions=0)
        self.assertRaises(TypeError, define_table, [v.string()])
        self.assertRaises(TypeError, define_table, v.optional(v.any()))
        self.assertRaises(ValueError, define_schema, {"_system": define_table({})})
        self.assertRaises(TypeError, define_schema, {"t": {"a": v.string()}})
