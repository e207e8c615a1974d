"""Blob files: spools, atomic installs, removal and the cleaning of leftovers."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from twisted.trial.unittest import TestCase

from convex_backend.storage.blobs import BlobStore, check_storage_id_text
from convex_backend.storage.errors import StorageError
from convex_backend.values import encode_id, new_internal_id

STORAGE_ID = encode_id(2, new_internal_id())


class BlobStoreTests(TestCase):
    def setUp(self) -> None:
        self.root = Path(self.mktemp()).absolute()
        self.store = BlobStore(self.root)
        self.store.prepare()

    def tmp(self) -> list[str]:
        return [p.name for p in self.store.tmp.iterdir()]

    def test_a_spool_is_hashed_and_installed(self) -> None:
        data = bytes(range(256)) * 1000
        spool = self.store.new_spool()
        self.assertTrue(spool.path.name.startswith(self.store.boot + "-"))
        for i in range(0, len(data), 4096):
            spool.write(data[i : i + 4096])
        self.assertEqual(spool.tell(), len(data))
        digest, size = spool.finish()
        self.assertEqual((digest, size), (hashlib.sha256(data).digest(), len(data)))
        self.store.install(spool, STORAGE_ID)
        spool.close()  # twisted.web closes the body afterwards: the blob stays
        path = self.store.path_for(STORAGE_ID)
        self.assertEqual(path, self.root / "blobs" / STORAGE_ID[-2:] / STORAGE_ID)
        self.assertEqual(path.read_bytes(), data)
        self.assertEqual(self.store.read(STORAGE_ID), data)
        self.assertEqual(self.store.stored_ids(), [STORAGE_ID])
        self.assertEqual(self.tmp(), [])

    def test_closing_an_uninstalled_spool_leaves_nothing(self) -> None:
        spool = self.store.new_spool()
        spool.write(b"half an upload")
        self.assertEqual(len(self.tmp()), 1)
        spool.close()
        spool.close()
        self.assertEqual(self.tmp(), [])
        finished = self.store.spool_bytes(b"done but refused")
        finished.finish()
        finished.close()
        self.assertEqual(self.tmp(), [])

    def test_spool_from_enforces_the_limit(self) -> None:
        spool = self.store.spool_from(io.BytesIO(b"12345"), limit=5)
        self.assertEqual(spool.finish()[1], 5)
        spool.close()
        with self.assertRaises(StorageError) as caught:
            self.store.spool_from(io.BytesIO(b"123456"), limit=5)
        self.assertEqual((caught.exception.status, caught.exception.code), (413, "FileTooLarge"))
        self.assertEqual(self.tmp(), [])

    def test_remove(self) -> None:
        spool = self.store.spool_bytes(b"x")
        spool.finish()
        self.store.install(spool, STORAGE_ID)
        self.assertTrue(self.store.remove(STORAGE_ID))
        self.assertFalse(self.store.remove(STORAGE_ID))
        self.assertIsNone(self.store.open(STORAGE_ID))
        self.assertIsNone(self.store.read(STORAGE_ID))
        self.assertEqual(self.store.stored_ids(), [])

    def test_clean_tmp_spares_this_process(self) -> None:
        (self.store.tmp / "0123456789ab-old.part").write_bytes(b"from a crash")
        (self.store.tmp / "stray").write_bytes(b"?")
        live = self.store.new_spool()
        live.write(b"in progress")
        self.assertEqual(self.store.clean_tmp(), 2)
        self.assertEqual(self.tmp(), [live.path.name])
        live.close()

    def test_ids_never_reach_the_file_system_unchecked(self) -> None:
        for bad in ("../../etc/passwd", "", "A" * 32, "x/y" * 10, "abc"):
            with self.assertRaises(StorageError):
                self.store.path_for(bad)
            with self.assertRaises(StorageError):
                check_storage_id_text(bad)
