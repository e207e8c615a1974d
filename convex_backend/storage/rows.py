"""The ``_storage`` system table: one row per stored file, the storage id is its ``_id``.

A row is ``{sha256, size, contentType?}`` plus the system fields, as in
Convex: ``sha256`` is the base64 of the digest in the table (what
``db.system.get`` shows), while ``storageGetMetadata`` and the admin API
show it as hex (reference/server-syscalls.md §3.3 and §9); ``size`` is a
float64 number of bytes. These helpers work inside a transaction and do no
I/O, so reads in queries and mutations land in the caller's read set.
"""

from __future__ import annotations

import base64
from typing import Any

from convex_backend.database.tables import SYSTEM_TABLES
from convex_backend.storage.errors import StorageError
from convex_backend.values import InvalidIdError, decode_id

STORAGE_TABLE = "_storage"
STORAGE_TABLE_NUMBER = SYSTEM_TABLES[STORAGE_TABLE]


def check_storage_id(storage_id: Any) -> str:
    """``storage_id`` if it is an ``Id<"_storage">``; else :class:`StorageError`."""
    if not isinstance(storage_id, str):
        raise StorageError(
            400,
            "InvalidStorageId",
            f"A storage id must be a string, got {type(storage_id).__name__}",
        )
    try:
        decoded = decode_id(storage_id)
    except InvalidIdError:
        decoded = None
    if decoded is None or decoded.table_number != STORAGE_TABLE_NUMBER:
        raise StorageError(400, "InvalidStorageId", f"Invalid storage id {storage_id[:64]!r}")
    return storage_id


def new_row(digest: bytes, size: int, content_type: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {"sha256": base64.b64encode(digest).decode("ascii"), "size": float(size)}
    if content_type:
        row["contentType"] = content_type
    return row


def sha256_hex(row: dict[str, Any]) -> str:
    return base64.b64decode(row["sha256"]).hex()


def metadata(row: dict[str, Any]) -> dict[str, Any]:
    """The ``storageGetMetadata`` answer for a row."""
    return {
        "storageId": row["_id"],
        "sha256": sha256_hex(row),
        "size": row["size"],
        "contentType": row.get("contentType"),
    }


def read_row(tx, storage_id: str) -> dict[str, Any] | None:
    """The row of ``storage_id`` at ``tx``'s snapshot (a read in its read set)."""
    return tx.get(check_storage_id(storage_id), table=STORAGE_TABLE, system=True)


def delete_row(tx, storage_id: str) -> dict[str, Any]:
    """Delete the row of ``storage_id`` in ``tx`` (even a user mutation's: only
    file storage itself writes ``_storage``); :class:`StorageError` if missing."""
    row = read_row(tx, storage_id)
    if row is None:
        raise not_found(storage_id)
    privileged = tx.privileged
    tx.privileged = True
    try:
        tx.delete(storage_id, table=STORAGE_TABLE)
    finally:
        tx.privileged = privileged
    return row


def not_found(storage_id: str) -> StorageError:
    return StorageError(404, "FileNotFound", f"File {storage_id[:64]} not found")


__all__ = [
    "STORAGE_TABLE",
    "check_storage_id",
    "delete_row",
    "metadata",
    "new_row",
    "not_found",
    "read_row",
    "sha256_hex",
]
