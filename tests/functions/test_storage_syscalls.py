"""ctx.storage from real functions: the SDK, the worker pipe and the host syscalls."""

from __future__ import annotations

import hashlib

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from convex_backend.database.store import id_key
from convex_backend.database.tables import BY_ID
from convex_backend.functions.runner import Caller, FunctionError
from tests.database.fixtures import open_database
from tests.functions.fixtures import deploy_app
from tests.storage.fixtures import ORIGIN, blob_ids, every_byte, make_storage, storage_rows

ADMIN = Caller("admin")

FILES = """
from convex_backend.server import ConvexError, action, mutation, query, v


@query(args={"id": v.string()})
def url(ctx, args):
    return ctx.storage.get_url(args["id"])


@query(args={"id": v.string()})
def meta(ctx, args):
    return ctx.storage.get_metadata(args["id"])


@query(args={"id": v.id("_storage")})
def row(ctx, args):
    return ctx.db.system.get(args["id"])


@query
def sneaky_upload_url(ctx, args):
    # Not on a query's ctx.storage; the host refuses the op too.
    return ctx.storage._call("1.0/storageGenerateUploadUrl")


@query(args={"id": v.string()})
def sneaky_delete(ctx, args):
    return ctx.storage._call("1.0/storageDelete", storageId=args["id"])


@mutation
def upload_url(ctx, args):
    return ctx.storage.generate_upload_url()


@mutation(args={"id": v.id("_storage")})
def remove(ctx, args):
    ctx.storage.delete(args["id"])
    return ctx.storage.get_url(args["id"])


@mutation(args={"id": v.string()})
def remove_then_fail(ctx, args):
    ctx.storage.delete(args["id"])
    raise ConvexError("changed my mind")


@mutation(args={"id": v.string()})
def read(ctx, args):
    return ctx.storage.get(args["id"])


@mutation
def store_in_mutation(ctx, args):
    return ctx.storage._call("1.0/storageStore", blob="", contentType=None)


@action(args={"data": v.bytes(), "type": v.optional(v.string())})
def store(ctx, args):
    return ctx.storage.store(args["data"], args.get("type"))


@action(args={"data": v.bytes(), "sha256": v.string()})
def store_checked(ctx, args):
    return ctx.storage.store(args["data"], sha256=args["sha256"])


@action(args={"id": v.string()})
def get(ctx, args):
    return ctx.storage.get(args["id"])


@action(args={"id": v.string()})
def describe(ctx, args):
    return {"url": ctx.storage.get_url(args["id"]), "meta": ctx.storage.get_metadata(args["id"])}


@action(args={"id": v.string()})
def delete(ctx, args):
    ctx.storage.delete(args["id"])


@action
def upload_url_action(ctx, args):
    return ctx.storage.generate_upload_url()


@action
def wrong_type(ctx, args):
    return ctx.storage.store("text, not bytes")
"""


class StorageSyscallTests(TestCase):
    timeout = 60

    async def setUp(self) -> None:
        self.db = await open_database(self)
        self.runner, _pools, _deployer = await deploy_app(self, self.db, {"files.py": FILES})
        self.storage = make_storage(self, self.db, max_file_bytes=1024 * 1024)
        self.runner.storage = self.storage

    async def call(self, path: str, args: dict | None = None):
        return (await self.runner.call(path, args or {}, caller=ADMIN)).value

    async def fails(self, path: str, args: dict | None = None) -> FunctionError:
        try:
            await self.runner.call(path, args or {}, caller=ADMIN)
        except FunctionError as e:
            return e
        self.fail(f"{path} did not fail")

    async def test_store_and_get_from_an_action(self) -> None:
        data = every_byte(100)
        storage_id = await self.call("files:store", {"data": data, "type": "image/png"})
        self.assertEqual(await self.call("files:get", {"id": storage_id}), data)
        [row] = storage_rows(self.db)
        self.assertEqual(row["_id"], storage_id)
        self.assertEqual(self.storage.blobs.read(storage_id), data)
        described = await self.call("files:describe", {"id": storage_id})
        self.assertEqual(described["url"], f"{ORIGIN}/api/storage/{storage_id}")
        self.assertEqual(
            described["meta"],
            {
                "storageId": storage_id,
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": float(len(data)),
                "contentType": "image/png",
            },
        )

    async def test_metadata_and_url_from_a_query(self) -> None:
        data = b"query me"
        storage_id = await self.storage.store_bytes(data, "text/plain")
        result = await self.runner.call("files:meta", {"id": storage_id}, caller=ADMIN)
        self.assertEqual(result.value["sha256"], hashlib.sha256(data).hexdigest())
        self.assertEqual(result.value["size"], 8.0)
        # The row was read through the query's transaction: a change to it
        # invalidates the query.
        index_id = self.db.store.tables_by_name["_storage"].indexes[BY_ID].descriptor.index_id
        self.assertTrue(result.read_set.contains(index_id, id_key(storage_id)))
        self.assertEqual(
            await self.call("files:url", {"id": storage_id}), f"{ORIGIN}/api/storage/{storage_id}"
        )
        row = await self.call("files:row", {"id": storage_id})
        self.assertEqual(
            (row["_id"], row["size"], row["contentType"]), (storage_id, 8.0, "text/plain")
        )

    async def test_missing_files_are_null(self) -> None:
        storage_id = await self.storage.store_bytes(b"x")
        await self.storage.delete(storage_id)
        self.assertIsNone(await self.call("files:url", {"id": storage_id}))
        self.assertIsNone(await self.call("files:meta", {"id": storage_id}))
        self.assertIsNone(await self.call("files:get", {"id": storage_id}))
        self.assertIsNone(await self.call("files:read", {"id": storage_id}))
        self.assertEqual(
            await self.call("files:describe", {"id": storage_id}), {"url": None, "meta": None}
        )

    async def test_invalid_ids_are_errors(self) -> None:
        for path in ("files:url", "files:meta", "files:get", "files:delete", "files:read"):
            error = await self.fails(path, {"id": "not-a-storage-id"})
            self.assertIn("Invalid storage id", error.message)

    async def test_delete_in_a_mutation_is_transactional(self) -> None:
        storage_id = await self.storage.store_bytes(b"doomed")
        kept = await self.storage.store_bytes(b"kept")
        error = await self.fails("files:remove_then_fail", {"id": kept})
        self.assertIn("changed my mind", error.message)
        # The mutation saw its own delete...
        self.assertIsNone(await self.call("files:remove", {"id": storage_id}))
        # ...and once it committed the row is gone, then the blob.
        self.assertEqual([r["_id"] for r in storage_rows(self.db)], [kept])
        for _ in range(500):
            if blob_ids(self.storage) == [kept]:
                break
            await deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(blob_ids(self.storage), [kept])
        self.assertEqual(await self.call("files:read", {"id": kept}), b"kept")
        error = await self.fails("files:remove", {"id": storage_id})
        self.assertIn("not found", error.message)

    async def test_delete_from_an_action(self) -> None:
        storage_id = await self.call("files:store", {"data": b"bye"})
        await self.call("files:delete", {"id": storage_id})
        self.assertEqual(storage_rows(self.db), [])
        self.assertEqual(blob_ids(self.storage), [])
        error = await self.fails("files:delete", {"id": storage_id})
        self.assertIn("not found", error.message)

    async def test_upload_urls(self) -> None:
        for path in ("files:upload_url", "files:upload_url_action"):
            url = await self.call(path)
            self.assertTrue(url.startswith(f"{ORIGIN}/api/storage/upload?token="))
            self.storage.tokens.check(url.rsplit("=", 1)[1])

    async def test_what_queries_and_mutations_may_not_do(self) -> None:
        storage_id = await self.storage.store_bytes(b"safe")
        error = await self.fails("files:sneaky_upload_url")
        self.assertIn("not available in a query", error.message)
        error = await self.fails("files:sneaky_delete", {"id": storage_id})
        self.assertIn("not available in a query", error.message)
        error = await self.fails("files:store_in_mutation")
        self.assertIn("available in actions only", error.message)
        error = await self.fails("files:wrong_type")
        self.assertIn("takes bytes", error.message)
        self.assertEqual(len(storage_rows(self.db)), 1)

    async def test_expected_sha256_and_size_limit(self) -> None:
        data = b"exact"
        good = hashlib.sha256(data).hexdigest()
        self.assertTrue(await self.call("files:store_checked", {"data": data, "sha256": good}))
        error = await self.fails("files:store_checked", {"data": data, "sha256": "0" * 64})
        self.assertIn("sha256", error.message)
        error = await self.fails("files:store", {"data": b"x" * (1024 * 1024 + 1)})
        self.assertIn("larger than the limit", error.message)
        self.assertEqual(len(storage_rows(self.db)), 1)

    async def test_without_storage_the_ops_fail_clearly(self) -> None:
        self.runner.storage = None
        error = await self.fails("files:upload_url")
        self.assertIn("File storage is not available", error.message)
