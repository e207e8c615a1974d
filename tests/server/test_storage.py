"""``ctx.storage``: which methods each kind of function gets, and the op shapes sent."""

from __future__ import annotations

import base64

from twisted.trial.unittest import SynchronousTestCase

from convex_backend.server import ConvexFunctionError
from convex_backend.server._runtime import SyscallError
from convex_backend.server._syscalls import Invocation
from convex_backend.server.context import ActionCtx, MutationCtx, QueryCtx
from convex_backend.server.storage import StorageActionWriter, StorageReader, StorageWriter
from tests.server.fakes import RecordingSyscalls

SID = "kg2b9xy7f4aqm2d0gvf7h8j6zs7x0abc"
META = {"storageId": SID, "sha256": "ab" * 32, "size": 3.0, "contentType": None}


class StorageSdkTests(SynchronousTestCase):
    def test_each_ctx_gets_its_storage(self) -> None:
        fake = RecordingSyscalls()
        query = QueryCtx(Invocation(fake, "")).storage
        mutation = MutationCtx(Invocation(fake, "")).storage
        action = ActionCtx(Invocation(fake, "req")).storage
        self.assertIs(type(query), StorageReader)
        self.assertIs(type(mutation), StorageWriter)
        self.assertIs(type(action), StorageActionWriter)
        self.assertFalse(hasattr(query, "generate_upload_url"))
        self.assertFalse(hasattr(query, "delete"))
        self.assertFalse(hasattr(mutation, "store"))

    def test_reader_ops(self) -> None:
        fake = RecordingSyscalls(
            {"1.0/storageGetUrl": "http://x/api/storage/" + SID, "1.0/storageGetMetadata": META}
        )
        storage = QueryCtx(Invocation(fake, "")).storage
        self.assertEqual(storage.get_url(SID), "http://x/api/storage/" + SID)
        self.assertEqual(storage.get_metadata(SID), META)
        self.assertEqual(
            fake.calls,
            [
                (
                    "async",
                    "1.0/storageGetUrl",
                    {"requestId": "", "version": "1.48.0", "storageId": SID},
                ),
                (
                    "async",
                    "1.0/storageGetMetadata",
                    {"requestId": "", "version": "1.48.0", "storageId": SID},
                ),
            ],
        )

    def test_writer_ops(self) -> None:
        fake = RecordingSyscalls(
            {
                "1.0/storageGenerateUploadUrl": "http://x/api/storage/upload?token=t",
                "1.0/storageDelete": None,
                "1.0/storageGet": [{"blob": base64.b64encode(b"\x00\xff").decode()}, None],
            }
        )
        storage = MutationCtx(Invocation(fake, "")).storage
        self.assertEqual(storage.generate_upload_url(), "http://x/api/storage/upload?token=t")
        self.assertIsNone(storage.delete(SID))
        self.assertEqual(storage.get(SID), b"\x00\xff")
        self.assertIsNone(storage.get(SID))
        self.assertEqual(
            fake.ops(),
            [
                "1.0/storageGenerateUploadUrl",
                "1.0/storageDelete",
                "1.0/storageGet",
                "1.0/storageGet",
            ],
        )
        self.assertEqual(
            fake.args_of("1.0/storageDelete"),
            [{"requestId": "", "version": "1.48.0", "storageId": SID}],
        )

    def test_store_sends_base64_and_the_request_id(self) -> None:
        fake = RecordingSyscalls({"1.0/storageStore": SID})
        storage = ActionCtx(Invocation(fake, "req-1")).storage
        self.assertEqual(storage.store(b"\x00\x01", "text/plain"), SID)
        self.assertEqual(storage.store(bytearray(b"ab"), sha256="cd" * 32), SID)
        self.assertEqual(
            fake.args_of("1.0/storageStore"),
            [
                {
                    "requestId": "req-1",
                    "version": "1.48.0",
                    "blob": "AAE=",
                    "contentType": "text/plain",
                },
                {
                    "requestId": "req-1",
                    "version": "1.48.0",
                    "blob": "YWI=",
                    "contentType": None,
                    "sha256": "cd" * 32,
                },
            ],
        )

    def test_bad_arguments_never_reach_the_host(self) -> None:
        fake = RecordingSyscalls()
        storage = ActionCtx(Invocation(fake, "")).storage
        with self.assertRaises(TypeError):
            storage.store("text")
        with self.assertRaises(TypeError):
            storage.store(b"x", content_type=5)
        with self.assertRaises(TypeError):
            storage.get_url(None)
        self.assertEqual(fake.calls, [])

    def test_host_errors_reach_user_code(self) -> None:
        fake = RecordingSyscalls({"1.0/storageGetUrl": SyscallError("Invalid storage id 'x'")})
        storage = QueryCtx(Invocation(fake, "")).storage
        with self.assertRaises(ConvexFunctionError) as caught:
            storage.get_url("x")
        self.assertIn("Invalid storage id", str(caught.exception))
