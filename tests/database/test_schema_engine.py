"""Schemas applied to a live database: validation of writes, indexes, refusals."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from convex_backend.database.errors import DatabaseError
from convex_backend.database.schema import SchemaError, parse_schema
from tests.database.fixtures import index_range, open_database, reopen


def schema_json(indexes=(("by_author", ["author"]),), validation=True, extra_field=None):
    fields = {
        "author": {"fieldType": {"type": "string"}, "optional": False},
        "body": {"fieldType": {"type": "string"}, "optional": False},
    }
    if extra_field:
        fields[extra_field] = {"fieldType": {"type": "number"}, "optional": False}
    return {
        "tables": [
            {
                "tableName": "messages",
                "indexes": [{"indexDescriptor": n, "fields": f} for n, f in indexes],
                "searchIndexes": [],
                "vectorIndexes": [],
                "documentType": {"type": "object", "value": fields},
            }
        ],
        "schemaValidation": validation,
    }


class SchemaEngineTests(TestCase):
    async def test_writes_are_validated(self) -> None:
        db = await open_database(self)
        await db.set_schema(parse_schema(schema_json()))
        await db.run(lambda tx: tx.insert("messages", {"author": "a", "body": "b"}))
        tx = db.begin()
        self.addCleanup(tx.close)
        with self.assertRaises(DatabaseError) as caught:
            tx.insert("messages", {"author": "a", "body": 5.0})
        self.assertEqual(caught.exception.code, "SchemaValidationFailed")
        self.assertIn("does not match the schema", str(caught.exception))
        # Tables outside the schema are not validated.
        tx.insert("other", {"anything": 1.0})

    async def test_index_is_created_backfilled_and_queryable(self) -> None:
        db = await open_database(self)
        await db.run(
            lambda tx: [
                tx.insert("messages", {"author": a, "body": str(i)})
                for i, a in enumerate("cabab" * 1000)
            ]
        )
        changes = await db.set_schema(parse_schema(schema_json()))
        self.assertIn("added index messages.by_author", changes)
        tx = db.begin()
        rows = tx.query(index_range("messages", "by_author", ("Eq", "author", "b"))).collect()
        tx.close()
        self.assertEqual(len(rows), 2000)
        self.assertEqual([r["author"] for r in rows], ["b"] * 2000)
        # Rows come in creation order inside one author.
        times = [r["_creationTime"] for r in rows]
        self.assertEqual(times, sorted(times))
        # New writes keep the index current, and it survives a restart.
        await db.run(lambda tx: tx.insert("messages", {"author": "b", "body": "new"}))
        db2 = await reopen(self, db)
        tx = db2.begin()
        rows = tx.query(index_range("messages", "by_author", ("Eq", "author", "b"))).collect()
        tx.close()
        self.assertEqual(len(rows), 2001)
        self.assertIsNotNone(db2.schema)

    async def test_index_removed_from_schema_is_dropped(self) -> None:
        db = await open_database(self)
        await db.set_schema(parse_schema(schema_json()))
        changes = await db.set_schema(parse_schema(schema_json(indexes=())))
        self.assertIn("dropped index messages.by_author", changes)
        tx = db.begin()
        self.addCleanup(tx.close)
        with self.assertRaises(DatabaseError) as caught:
            tx.query(index_range("messages", "by_author"))
        self.assertEqual(caught.exception.code, "IndexNotFound")

    async def test_incompatible_schema_is_refused_with_a_report(self) -> None:
        db = await open_database(self)
        [doc_id] = (await db.run(lambda tx: [tx.insert("messages", {"author": "a", "body": "b"})]))[
            0
        ]
        with self.assertRaises(SchemaError) as caught:
            await db.set_schema(parse_schema(schema_json(extra_field="score")))
        self.assertIn(doc_id, str(caught.exception))
        self.assertIsNone(db.schema)
        # Without validation the same schema is accepted.
        await db.set_schema(parse_schema(schema_json(extra_field="score", validation=False)))


class SchemaChangeRaceTests(TestCase):
    """Writes that race a schema change are checked against the schema that wins."""

    async def test_a_transaction_begun_before_the_change_is_checked_at_commit(self) -> None:
        db = await open_database(self)
        await db.run(lambda tx: tx.insert("messages", {"author": "a", "body": "b"}))
        tx = db.begin()
        tx.insert("messages", {"author": "a", "body": 5.0})  # fine without a schema
        await db.set_schema(parse_schema(schema_json()))
        with self.assertRaises(DatabaseError) as caught:
            await db.commit(tx)
        self.assertEqual(caught.exception.code, "SchemaValidationFailed")
        # A matching write begun before the change commits.
        tx = db.begin()
        tx.insert("messages", {"author": "c", "body": "d"})
        await db.set_schema(parse_schema(schema_json(indexes=())))
        await db.commit(tx)

    async def test_a_commit_landing_during_the_change_is_checked(self) -> None:
        db = await open_database(self)
        await db.run(lambda tx: tx.insert("messages", {"author": "a", "body": "b"}))
        # The first check of existing documents runs at once; the bad write is
        # committed while the index is still being built, under the old schema.
        change = defer.ensureDeferred(db.set_schema(parse_schema(schema_json())))
        _id, _ts = await db.run(lambda tx: tx.insert("messages", {"author": "a", "body": 5.0}))
        with self.assertRaises(SchemaError) as caught:
            await change
        self.assertIn("existing documents do not match", str(caught.exception))
        self.assertIsNone(db.schema)
