"""File storage of one deployment: blobs on disk, rows in ``_storage``, tokens, URLs.

:class:`FileStorage` is what the HTTP routes, the syscalls and the admin API
call. Its invariants:

* **A row only for a durable blob.** A blob is written to a temporary file,
  fsynced, hashed, then renamed into place (and its directory fsynced)
  *before* the transaction inserting its row commits; if the commit fails the
  blob is removed. Until the commit resolves the id is *pinned*, so no sweep
  removes the blob in between.
* **The blob goes after the row.** A row is deleted in a transaction (a
  mutation's own, for ``ctx.storage.delete``); once that commit is durable the
  blob is removed. Deletions are found in the write log (a subscription to the
  ``by_id`` index of ``_storage``), so blobs follow rows whoever deleted them.
* **Orphans are swept.** At startup, and whenever the write log no longer
  reaches back far enough to say what was deleted, every blob without a row
  (and not pinned) is removed; temporary files of earlier processes are too.

All file I/O runs on threads (``deferToThread``); the reactor only sees
metadata (creating a temporary file name, looking up rows in memory).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

from twisted.internet import defer, threads
from twisted.logger import Logger

from convex_backend.config import DEFAULT_MAX_FILE_BYTES
from convex_backend.database.watch import TableWatcher
from convex_backend.storage.blobs import BlobStore, DiscardedBody, UploadSpool, too_large
from convex_backend.storage.errors import StorageError
from convex_backend.storage.rows import (
    STORAGE_TABLE,
    check_storage_id,
    delete_row,
    new_row,
    read_row,
)
from convex_backend.storage.tokens import UploadTokens

log = Logger(namespace="convex.storage")

MAX_CONTENT_TYPE_LENGTH = 1024
_CONTENT_TYPE = re.compile(r"[\x20-\x7e]*")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def check_content_type(value: object) -> str | None:
    """A stored ``Content-Type``: printable ASCII (it is sent back as a header)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        raise StorageError(400, "InvalidContentType", "The content type must be a string")
    value = value.strip()
    if len(value) > MAX_CONTENT_TYPE_LENGTH or not _CONTENT_TYPE.fullmatch(value):
        raise StorageError(
            400,
            "InvalidContentType",
            f"The content type must be printable ASCII of at most {MAX_CONTENT_TYPE_LENGTH} "
            "characters",
        )
    return value or None


def token_of(uri: bytes) -> str | None:
    """The ``token`` query parameter of a request URI."""
    query = urlsplit(uri).query
    try:
        values = parse_qs(query.decode("utf-8"), max_num_fields=20).get("token")
    except (UnicodeDecodeError, ValueError):
        return None
    return values[0] if values else None


class FileStorage:
    def __init__(
        self,
        database,
        blobs: BlobStore,
        tokens: UploadTokens,
        *,
        origin: Callable[[], str],
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        self.database = database
        self.blobs = blobs
        self.tokens = tokens
        self.origin = origin
        self.max_file_bytes = max_file_bytes
        #: Ids whose blob is in place but whose row is not committed yet.
        self.pinned: set[str] = set()
        self._watcher: TableWatcher | None = None

    # -- URLs ------------------------------------------------------------------------

    def upload_url(self) -> str:
        """A signed upload URL, valid for an hour (``generateUploadUrl``)."""
        return f"{self.origin()}/api/storage/upload?token={self.tokens.issue()}"

    def file_url(self, storage_id: str) -> str:
        return f"{self.origin()}/api/storage/{storage_id}"

    # -- storing ---------------------------------------------------------------------

    def upload_body(self, uri: bytes) -> UploadSpool | DiscardedBody:
        """Where twisted.web should put the body of ``POST /api/storage/upload``
        (called as its headers arrive): a spool on disk when the token is good,
        else nowhere (the route then answers with the token's error)."""
        try:
            self.tokens.check(token_of(uri))
        except StorageError:
            return DiscardedBody()
        spool = self.blobs.new_spool()
        spool.started = self.tokens.clock()
        return spool

    async def store_upload(self, content: Any, token: str | None, content_type: Any) -> str:
        """Store an uploaded body; ``content`` is the request's body file.

        The token is checked as of when the body started to arrive, so a long
        upload begun with a valid URL is not refused for its length.
        """
        started = content.started if isinstance(content, UploadSpool) else None
        try:
            self.tokens.check(token, now=started)
            content_type = check_content_type(content_type)
            if isinstance(content, DiscardedBody):
                # The token was refused when the body began and is accepted now.
                raise StorageError(
                    401, "InvalidUploadToken", "The upload token was refused; try again"
                )
        except StorageError:
            if isinstance(content, UploadSpool):
                content.close()
            raise
        if isinstance(content, UploadSpool):
            spool = content
        else:
            # A body twisted.web kept itself (no upload hook on this site).
            spool = await threads.deferToThread(self.blobs.spool_from, content, self.max_file_bytes)
        return await self._store(spool, content_type)

    async def store_bytes(
        self, data: bytes, content_type: Any = None, sha256_hex: str | None = None
    ) -> str:
        """Store ``data`` (``ctx.storage.store``); ``sha256_hex``, if given, must match."""
        content_type = check_content_type(content_type)
        if len(data) > self.max_file_bytes:
            raise too_large(self.max_file_bytes)
        if sha256_hex is not None and not _SHA256_HEX.fullmatch(sha256_hex):
            raise StorageError(400, "InvalidSha256", "sha256 must be 64 lowercase hex digits")
        spool = await threads.deferToThread(self.blobs.spool_bytes, data)
        return await self._store(spool, content_type, sha256_hex)

    async def _store(
        self, spool: UploadSpool, content_type: str | None, sha256_hex: str | None = None
    ) -> str:
        try:
            digest, size = await threads.deferToThread(spool.finish)
            if size > self.max_file_bytes:
                raise too_large(self.max_file_bytes)
            if sha256_hex is not None and digest.hex() != sha256_hex:
                raise StorageError(
                    400,
                    "Sha256Mismatch",
                    f"The file's sha256 is {digest.hex()}, not the expected {sha256_hex}",
                )
            tx = self.database.begin(privileged=True)
            try:
                storage_id = tx.insert(STORAGE_TABLE, new_row(digest, size, content_type))
            except BaseException:
                tx.close()
                raise
            self.pinned.add(storage_id)
            try:
                try:
                    await threads.deferToThread(self.blobs.install, spool, storage_id)
                except BaseException:
                    tx.close()
                    raise
                try:
                    await self.database.commit(tx)
                except BaseException:
                    await threads.deferToThread(self.blobs.remove, storage_id)
                    raise
            finally:
                self.pinned.discard(storage_id)
        finally:
            spool.close()
        log.debug("Stored file {id} ({size} bytes)", id=storage_id, size=size)
        return storage_id

    # -- reading ---------------------------------------------------------------------

    def _snapshot(self):
        return self.database.begin(privileged=True)

    def lookup(self, storage_id: str) -> dict[str, Any] | None:
        """The row of ``storage_id`` at the latest snapshot (for the HTTP routes)."""
        check_storage_id(storage_id)
        tx = self._snapshot()
        try:
            return read_row(tx, storage_id)
        finally:
            tx.close()

    async def open(self, storage_id: str) -> BinaryIO | None:
        """The blob of a row just looked up, opened for reading (None if it is gone)."""
        return await threads.deferToThread(self.blobs.open, storage_id)

    async def read(
        self, storage_id: str, *, tx=None, limit: int | None = None
    ) -> tuple[bytes, str | None] | None:
        """``(bytes, content type)`` of a file, or None if there is none.

        With ``tx`` the row is read in that transaction (a mutation's, so the
        read is in its read set); else at the latest snapshot.
        """
        row = read_row(tx, storage_id) if tx is not None else self.lookup(storage_id)
        if row is None:
            return None
        if limit is not None and row["size"] > limit:
            raise StorageError(
                413,
                "FileTooLarge",
                f"The file is {int(row['size'])} bytes; ctx.storage.get() reads at most "
                f"{limit} bytes (serve larger files with ctx.storage.get_url())",
            )
        data = await threads.deferToThread(self.blobs.read, storage_id)
        if data is None:
            # Deleted since the row was read: a mutation will conflict and retry.
            return None
        return data, row.get("contentType")

    def list_page(self, num_items: int, cursor: str | None) -> dict[str, Any]:
        """A page of files, newest first: ``{page, isDone, continueCursor}``."""
        from convex_backend.storage.rows import sha256_hex

        query = {
            "source": {"type": "FullTableScan", "tableName": STORAGE_TABLE, "order": "desc"},
            "operators": [],
        }
        tx = self._snapshot()
        try:
            result = tx.query_page(query, cursor=cursor, page_size=num_items, system=True)
        finally:
            tx.close()
        page = [
            {
                "storageId": row["_id"],
                "sha256": sha256_hex(row),
                "size": row["size"],
                "contentType": row.get("contentType"),
                "_creationTime": row["_creationTime"],
                "url": self.file_url(row["_id"]),
            }
            for row in result["page"]
        ]
        return {
            "page": page,
            "isDone": result["isDone"],
            "continueCursor": result["continueCursor"],
        }

    # -- deleting --------------------------------------------------------------------

    async def delete(self, storage_id: str) -> None:
        """Delete a file in a transaction of its own, then its blob."""
        check_storage_id(storage_id)
        await self.database.run(lambda tx: delete_row(tx, storage_id), privileged=True)
        await self._remove_blobs([storage_id])

    async def _remove_blobs(self, storage_ids: list[str]) -> None:
        for storage_id in storage_ids:
            try:
                await threads.deferToThread(self.blobs.remove, storage_id)
            except OSError as e:
                log.error("Could not remove the blob of {id}: {e}", id=storage_id, e=e)

    # -- rows and blobs in step ------------------------------------------------------

    def _is_orphan(self, storage_id: str) -> bool:
        return storage_id not in self.pinned and self.database.store.latest(storage_id) is None

    async def sweep(self) -> int:
        """Remove every blob that has no row (and is not pinned); returns how many."""
        stored = await threads.deferToThread(self.blobs.stored_ids)
        orphans = [storage_id for storage_id in stored if self._is_orphan(storage_id)]
        await self._remove_blobs(orphans)
        if orphans:
            log.info("Removed {n} blobs without a _storage row", n=len(orphans))
        return len(orphans)

    def start_watching(self) -> None:
        """Remove the blob of every ``_storage`` row deleted from now on."""
        self._watcher = TableWatcher(self.database, STORAGE_TABLE, self._changed)
        self._watcher.start()

    def stop_watching(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None

    def _changed(self, storage_ids: list[str] | None) -> None:
        if storage_ids is None:
            # The write log no longer reaches back: look at every blob.
            work = self.sweep()
        else:
            work = self._remove_blobs([i for i in storage_ids if self._is_orphan(i)])
        defer.ensureDeferred(work).addErrback(
            lambda failure: log.failure("Removing deleted files failed", failure)
        )


__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "FileStorage",
    "check_content_type",
    "token_of",
]
