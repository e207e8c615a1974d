"""File storage on a real database and a temporary data dir, for tests."""

from __future__ import annotations

import os
from pathlib import Path

from twisted.internet import defer
from twisted.internet.protocol import Protocol

from convex_backend.storage.blobs import BlobStore
from convex_backend.storage.files import FileStorage
from convex_backend.storage.tokens import UploadTokens
from tests.helpers import TEST_SECRET

ORIGIN = "http://files.test"


class Clock:
    """A settable clock (seconds since the epoch) for token expiry."""

    def __init__(self, now: float = 1_764_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_storage(
    testcase, db, *, max_file_bytes: int = 10 * 1024 * 1024, origin: str = ORIGIN, clock=None
) -> FileStorage:
    """A started FileStorage (watching deletions) in a fresh directory."""
    root = Path(testcase.mktemp()).absolute() / "storage"
    blobs = BlobStore(root)
    blobs.prepare()
    tokens = UploadTokens(TEST_SECRET, "convex-self-hosted", clock=clock or Clock())
    storage = FileStorage(db, blobs, tokens, origin=lambda: origin, max_file_bytes=max_file_bytes)
    storage.start_watching()
    testcase.addCleanup(storage.stop_watching)
    return storage


def every_byte(repeat: int = 1) -> bytes:
    """All 256 byte values, then random bytes: binary content that survives nothing
    but an exact round trip."""
    return bytes(range(256)) * repeat + os.urandom(1000)


def tmp_files(storage: FileStorage) -> list[str]:
    return sorted(p.name for p in storage.blobs.tmp.iterdir())


def blob_ids(storage: FileStorage) -> list[str]:
    return sorted(storage.blobs.stored_ids())


def storage_rows(db) -> list[dict]:
    from tests.database.fixtures import scan

    tx = db.begin(privileged=True)
    try:
        return tx.query(scan("_storage"), system=True).collect()
    finally:
        tx.close()


class RawClient(Protocol):
    """Sends ``payload``; optionally hangs up after it without waiting for an answer."""

    def __init__(self, payload: bytes, hang_up: bool = False) -> None:
        self.payload = payload
        self.hang_up = hang_up
        self.received = b""
        self.done: defer.Deferred = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.payload)
        if self.hang_up:
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason) -> None:
        self.done.callback(self.received)
