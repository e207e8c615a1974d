"""The file storage syscalls, host side (reference/server-syscalls.md §3.3, §3.5).

==============================  ==========  ===============================================
op                              ctx         answer
==============================  ==========  ===============================================
``1.0/storageGetUrl``           Q, M, A     the file's URL, or null
``1.0/storageGetMetadata``      Q, M, A     ``{storageId, sha256 (hex), size, contentType}``
                                            or null
``1.0/storageGenerateUploadUrl``  M, A      a signed upload URL (valid one hour)
``1.0/storageDelete``           M, A        null; in a mutation the row goes with its commit
``1.0/storageGet``              M, A        ``{blob: base64, contentType}`` or null
``1.0/storageStore``            A           the new storage id
==============================  ==========  ===============================================

Every op takes ``{requestId, version, storageId?}`` as Convex's library sends
them; ``storageStore`` takes ``{blob: base64, contentType, sha256?}``. In
queries and mutations the ``_storage`` row is read through the transaction,
so ``get_url``/``get_metadata`` are reactive and a mutation that deletes a
file conflicts like any other write. In actions each op reads the latest
snapshot or commits on its own. ``storageGet``/``storageStore`` carry the bytes
through the worker pipe, so they are limited to :data:`MAX_SYSCALL_BLOB_BYTES`.

:data:`TX_OPS` and :data:`ACTION_OPS` are merged into the runner's op tables;
the :class:`~convex_backend.storage.files.FileStorage` is ``runner.storage``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Callable
from typing import Any

from convex_backend.database.errors import DatabaseError
from convex_backend.functions.pool import HostSyscallError
from convex_backend.storage.errors import StorageError
from convex_backend.storage.rows import check_storage_id, delete_row, metadata, read_row

#: The largest file ``ctx.storage.get``/``store`` move through the worker pipe
#: (base64 in one frame, whose limit is 64 MiB).
MAX_SYSCALL_BLOB_BYTES = 32 * 1024 * 1024
_HEX = re.compile(r"[0-9a-fA-F]{64}")


def _converting(fn: Callable) -> Callable:
    """Storage and database errors reach the function as the op's error message."""

    @functools.wraps(fn)
    def wrapper(handler: Any, args: dict) -> Any:
        try:
            return fn(handler, args)
        except StorageError as e:
            raise HostSyscallError(e.message)

    return wrapper


def _converting_async(fn: Callable) -> Callable:
    @functools.wraps(fn)
    async def wrapper(handler: Any, args: dict) -> Any:
        try:
            return await fn(handler, args)
        except StorageError as e:
            raise HostSyscallError(e.message)
        except DatabaseError as e:
            raise HostSyscallError(e.message)

    return wrapper


def _storage(handler: Any):
    storage = getattr(handler.runner, "storage", None)
    if storage is None:
        raise HostSyscallError("File storage is not available in this deployment")
    return storage


def _storage_id(args: dict) -> str:
    return check_storage_id(args.get("storageId"))


def _blob_json(found: tuple[bytes, str | None] | None) -> Any:
    if found is None:
        return None
    data, content_type = found
    return {"blob": base64.b64encode(data).decode("ascii"), "contentType": content_type}


def _sha256_hex(value: Any) -> str | None:
    """An expected sha256, as hex or base64 (both are seen in Convex code)."""
    if value is None:
        return None
    if isinstance(value, str) and _HEX.fullmatch(value):
        return value.lower()
    try:
        digest = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 32:
        raise StorageError(400, "InvalidSha256", "sha256 must be 64 hex digits (or base64)")
    return digest.hex()


def _not_in_query(handler: Any, what: str) -> None:
    if handler.read_only or (handler.nesting and handler.nesting[-1][1]):
        raise HostSyscallError(f"{what} is not available in a query")


# -- queries and mutations (one transaction) ---------------------------------------------


@_converting
def tx_get_url(handler: Any, args: dict) -> Any:
    storage = _storage(handler)
    row = read_row(handler.tx, _storage_id(args))
    return storage.file_url(row["_id"]) if row is not None else None


@_converting
def tx_get_metadata(handler: Any, args: dict) -> Any:
    row = read_row(handler.tx, _storage_id(args))
    return metadata(row) if row is not None else None


@_converting
def tx_generate_upload_url(handler: Any, args: dict) -> Any:
    _not_in_query(handler, "ctx.storage.generate_upload_url()")
    return _storage(handler).upload_url()


@_converting
def tx_delete(handler: Any, args: dict) -> Any:
    _not_in_query(handler, "ctx.storage.delete()")
    _storage(handler)
    delete_row(handler.tx, _storage_id(args))
    return None


@_converting
def tx_get(handler: Any, args: dict) -> Any:
    _not_in_query(handler, "ctx.storage.get()")
    storage = _storage(handler)
    storage_id = _storage_id(args)

    async def read() -> Any:
        # The row is read (into the read set) before the first await.
        try:
            found = await storage.read(storage_id, tx=handler.tx, limit=MAX_SYSCALL_BLOB_BYTES)
        except (StorageError, DatabaseError) as e:
            raise HostSyscallError(e.message)
        return _blob_json(found)

    return read()


def tx_store(handler: Any, args: dict) -> Any:
    raise HostSyscallError(
        "ctx.storage.store() is available in actions only; in a mutation, "
        "use ctx.storage.generate_upload_url() and upload the file to it"
    )


TX_OPS: dict[str, Callable[[Any, dict], Any]] = {
    "1.0/storageGetUrl": tx_get_url,
    "1.0/storageGetMetadata": tx_get_metadata,
    "1.0/storageGenerateUploadUrl": tx_generate_upload_url,
    "1.0/storageDelete": tx_delete,
    "1.0/storageGet": tx_get,
    "1.0/storageStore": tx_store,
}


# -- actions (each op on its own) --------------------------------------------------------


@_converting
def action_get_url(handler: Any, args: dict) -> Any:
    storage = _storage(handler)
    storage_id = _storage_id(args)
    return storage.file_url(storage_id) if storage.lookup(storage_id) is not None else None


@_converting
def action_get_metadata(handler: Any, args: dict) -> Any:
    row = _storage(handler).lookup(_storage_id(args))
    return metadata(row) if row is not None else None


@_converting
def action_generate_upload_url(handler: Any, args: dict) -> Any:
    return _storage(handler).upload_url()


@_converting_async
async def action_delete(handler: Any, args: dict) -> Any:
    await _storage(handler).delete(_storage_id(args))
    return None


@_converting_async
async def action_get(handler: Any, args: dict) -> Any:
    storage = _storage(handler)
    found = await storage.read(_storage_id(args), limit=MAX_SYSCALL_BLOB_BYTES)
    return _blob_json(found)


@_converting_async
async def action_store(handler: Any, args: dict) -> Any:
    storage = _storage(handler)
    blob = args.get("blob")
    if not isinstance(blob, str):
        raise HostSyscallError("storageStore: `blob` must be a base64 string")
    if len(blob) > (MAX_SYSCALL_BLOB_BYTES + 2) // 3 * 4:
        raise HostSyscallError(
            f"ctx.storage.store() takes at most {MAX_SYSCALL_BLOB_BYTES} bytes; upload "
            "larger files with an upload URL"
        )
    try:
        data = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        raise HostSyscallError("storageStore: `blob` is not valid base64")
    content_type = args.get("contentType") or None
    return await storage.store_bytes(data, content_type, _sha256_hex(args.get("sha256")))


ACTION_OPS: dict[str, Callable[[Any, dict], Any]] = {
    "1.0/storageGetUrl": action_get_url,
    "1.0/storageGetMetadata": action_get_metadata,
    "1.0/storageGenerateUploadUrl": action_generate_upload_url,
    "1.0/storageDelete": action_delete,
    "1.0/storageGet": action_get,
    "1.0/storageStore": action_store,
}

__all__ = ["ACTION_OPS", "MAX_SYSCALL_BLOB_BYTES", "TX_OPS"]
