"""FileStorage on a real database: rows and blobs in step, URLs, paging."""

from __future__ import annotations

import base64
import hashlib
import io

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from convex_backend.storage.errors import StorageError
from convex_backend.storage.files import check_content_type, token_of
from convex_backend.storage.rows import delete_row, metadata, read_row
from tests.database.fixtures import open_database
from tests.storage.fixtures import (
    ORIGIN,
    blob_ids,
    every_byte,
    make_storage,
    storage_rows,
    tmp_files,
)


async def settle(condition, timeout: float = 10.0) -> bool:
    """Wait (polling) until ``condition()`` holds; False on timeout."""
    waited = 0.0
    while not condition():
        if waited >= timeout:
            return False
        await deferLater(reactor, 0.01, lambda: None)
        waited += 0.01
    return True


class FileStorageTests(TestCase):
    timeout = 30

    async def setUp(self) -> None:
        self.db = await open_database(self)
        self.storage = make_storage(self, self.db, max_file_bytes=64 * 1024)

    async def refused(self, coroutine, code: str) -> StorageError:
        try:
            await coroutine
        except StorageError as e:
            self.assertEqual(e.code, code)
            return e
        self.fail(f"no {code} error")

    async def test_store_records_sha256_size_and_type(self) -> None:
        data = every_byte(10)
        storage_id = await self.storage.store_bytes(data, "image/png")
        [row] = storage_rows(self.db)
        self.assertEqual(row["_id"], storage_id)
        digest = hashlib.sha256(data).digest()
        # The table keeps base64 (as Convex); metadata shows hex.
        self.assertEqual(row["sha256"], base64.b64encode(digest).decode())
        self.assertEqual(row["size"], float(len(data)))
        self.assertEqual(row["contentType"], "image/png")
        self.assertEqual(
            metadata(row),
            {
                "storageId": storage_id,
                "sha256": digest.hex(),
                "size": float(len(data)),
                "contentType": "image/png",
            },
        )
        self.assertEqual(blob_ids(self.storage), [storage_id])
        self.assertEqual(self.storage.blobs.read(storage_id), data)
        self.assertEqual(tmp_files(self.storage), [])
        self.assertEqual(await self.storage.read(storage_id), (data, "image/png"))

    async def test_without_content_type(self) -> None:
        storage_id = await self.storage.store_bytes(b"")
        [row] = storage_rows(self.db)
        self.assertNotIn("contentType", row)
        self.assertEqual(row["size"], 0.0)
        self.assertEqual(await self.storage.read(storage_id), (b"", None))

    async def test_expected_sha256(self) -> None:
        data = b"checked"
        good = hashlib.sha256(data).hexdigest()
        self.assertTrue(await self.storage.store_bytes(data, None, good))
        await self.refused(self.storage.store_bytes(data, None, "0" * 64), "Sha256Mismatch")
        await self.refused(self.storage.store_bytes(data, None, "xyz"), "InvalidSha256")
        self.assertEqual(len(storage_rows(self.db)), 1)
        self.assertEqual(len(blob_ids(self.storage)), 1)
        self.assertEqual(tmp_files(self.storage), [])

    async def test_size_limit(self) -> None:
        await self.refused(self.storage.store_bytes(b"x" * (64 * 1024 + 1)), "FileTooLarge")
        await self.refused(
            self.storage.store_upload(io.BytesIO(b"x" * (64 * 1024 + 1)), self.token(), None),
            "FileTooLarge",
        )
        self.assertEqual(storage_rows(self.db), [])
        self.assertEqual(blob_ids(self.storage), [])
        self.assertEqual(tmp_files(self.storage), [])

    def token(self) -> str:
        return token_of(self.storage.upload_url().split(ORIGIN, 1)[1].encode())

    async def test_upload_body_spool_and_token(self) -> None:
        url = self.storage.upload_url()
        self.assertTrue(url.startswith(f"{ORIGIN}/api/storage/upload?token="))
        uri = url[len(ORIGIN) :].encode()
        spool = self.storage.upload_body(uri)
        spool.write(b"streamed")
        storage_id = await self.storage.store_upload(spool, token_of(uri), b"text/plain")
        self.assertEqual(await self.storage.read(storage_id), (b"streamed", "text/plain"))
        # A bad token gets no spool: the body is thrown away as it arrives.
        refused = self.storage.upload_body(b"/api/storage/upload?token=forged")
        refused.write(b"ignored")
        self.assertEqual(tmp_files(self.storage), [])
        await self.refused(self.storage.store_upload(refused, "forged", None), "InvalidUploadToken")
        await self.refused(
            self.storage.store_upload(io.BytesIO(b"x"), None, None), "MissingUploadToken"
        )
        self.assertEqual(len(storage_rows(self.db)), 1)

    async def test_a_refused_spool_is_deleted(self) -> None:
        uri = self.storage.upload_url()[len(ORIGIN) :].encode()
        spool = self.storage.upload_body(uri)
        spool.write(b"data")
        self.assertEqual(len(tmp_files(self.storage)), 1)
        await self.refused(
            self.storage.store_upload(spool, token_of(uri), "bad\ntype"), "InvalidContentType"
        )
        self.assertEqual(tmp_files(self.storage), [])
        self.assertEqual(storage_rows(self.db), [])

    async def test_delete_removes_row_then_blob(self) -> None:
        storage_id = await self.storage.store_bytes(b"bye")
        await self.storage.delete(storage_id)
        self.assertEqual(storage_rows(self.db), [])
        self.assertEqual(blob_ids(self.storage), [])
        self.assertIsNone(await self.storage.read(storage_id))
        self.assertIsNone(self.storage.lookup(storage_id))
        await self.refused(self.storage.delete(storage_id), "FileNotFound")
        await self.refused(self.storage.delete("not an id"), "InvalidStorageId")

    async def test_a_row_deleted_by_any_transaction_loses_its_blob(self) -> None:
        kept = await self.storage.store_bytes(b"kept")
        gone = await self.storage.store_bytes(b"gone")
        # As ctx.storage.delete in a mutation: the row goes in a user transaction.
        await self.db.run(lambda tx: delete_row(tx, gone))
        self.assertTrue(await settle(lambda: blob_ids(self.storage) == [kept]))
        self.assertEqual([row["_id"] for row in storage_rows(self.db)], [kept])

    async def test_a_rolled_back_delete_keeps_the_blob(self) -> None:
        storage_id = await self.storage.store_bytes(b"stays")
        tx = self.db.begin()
        delete_row(tx, storage_id)
        tx.close()  # the mutation failed: never committed
        await self.storage.store_bytes(b"another commit to look at")
        await deferLater(reactor, 0.05, lambda: None)
        self.assertIn(storage_id, blob_ids(self.storage))
        self.assertEqual(await self.storage.read(storage_id), (b"stays", None))

    async def test_sweep_removes_blobs_without_rows(self) -> None:
        kept = await self.storage.store_bytes(b"kept")
        orphan = "".join(reversed(kept))  # any id-shaped name with no row
        spool = self.storage.blobs.spool_bytes(b"orphan")
        spool.finish()
        self.storage.blobs.install(spool, orphan)
        self.assertEqual(await self.storage.sweep(), 1)
        self.assertEqual(blob_ids(self.storage), [kept])

    async def test_reads_in_a_transaction_are_recorded(self) -> None:
        storage_id = await self.storage.store_bytes(b"watched")
        tx = self.db.begin()
        try:
            self.assertIsNotNone(read_row(tx, storage_id))
            self.assertGreater(tx.read_set.count, 0)
            self.assertEqual((await self.storage.read(storage_id, tx=tx))[0], b"watched")
            with self.assertRaises(StorageError) as caught:
                await self.storage.read(storage_id, tx=tx, limit=3)
            self.assertEqual(caught.exception.code, "FileTooLarge")
        finally:
            tx.close()

    async def test_ids_of_other_tables_are_refused(self) -> None:
        [user_id], _ = await self.db.run(lambda tx: [tx.insert("things", {"a": 1.0})])
        for bad in (user_id, "garbage", 5):
            with self.assertRaises(StorageError) as caught:
                self.storage.lookup(bad)
            self.assertEqual(caught.exception.code, "InvalidStorageId")

    async def test_list_page(self) -> None:
        ids = [await self.storage.store_bytes(bytes([i]), "a/b") for i in range(5)]
        first = self.storage.list_page(3, None)
        self.assertEqual([f["storageId"] for f in first["page"]], ids[::-1][:3])
        self.assertFalse(first["isDone"])
        entry = first["page"][0]
        self.assertEqual(
            set(entry), {"storageId", "sha256", "size", "contentType", "_creationTime", "url"}
        )
        self.assertEqual(entry["url"], f"{ORIGIN}/api/storage/{ids[-1]}")
        self.assertEqual(entry["sha256"], hashlib.sha256(bytes([4])).hexdigest())
        rest = self.storage.list_page(3, first["continueCursor"])
        self.assertEqual([f["storageId"] for f in rest["page"]], ids[::-1][3:])
        self.assertTrue(rest["isDone"])

    def test_content_types(self) -> None:
        self.assertEqual(check_content_type(b" image/png "), "image/png")
        self.assertIsNone(check_content_type(None))
        self.assertIsNone(check_content_type(""))
        for bad in ("a\r\nb", "x" * 2000, "é", 5):
            with self.assertRaises(StorageError):
                check_content_type(bad)
