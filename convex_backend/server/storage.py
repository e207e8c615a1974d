"""``ctx.storage``: files stored by the deployment.

This module owns the three storage objects, one per kind of function, and
the syscalls they send (``reference/server-syscalls.md`` §3.3, §3.5)::

    url = ctx.storage.get_url(storage_id)            # a URL, or None
    meta = ctx.storage.get_metadata(storage_id)      # {storageId, sha256, size, contentType}
    upload = ctx.storage.generate_upload_url()       # mutations and actions
    ctx.storage.delete(storage_id)                   # mutations and actions
    data = ctx.storage.get(storage_id)               # bytes or None: mutations and actions
    storage_id = ctx.storage.store(b"...", content_type="text/plain")   # actions

=================  ==================================  ===================================
ctx                object                              methods
=================  ==================================  ===================================
query              :class:`StorageReader`              ``get_url``, ``get_metadata``
mutation           :class:`StorageWriter`              + ``generate_upload_url``,
                                                       ``delete``, ``get``
action, HTTP       :class:`StorageActionWriter`        + ``store``
=================  ==================================  ===================================

A storage id is the ``_id`` of the file's row in the ``_storage`` system
table (``ctx.db.system.get(storage_id)``).
"""

from __future__ import annotations

import base64
from typing import Any

from convex_backend.server._syscalls import CONVEX_VERSION, Invocation

__all__ = ["StorageActionWriter", "StorageReader", "StorageWriter"]


def _storage_id(storage_id: Any, method: str) -> str:
    if not isinstance(storage_id, str):
        raise TypeError(
            f"ctx.storage.{method}() takes a storage id string, got {type(storage_id).__name__}"
        )
    return storage_id


class StorageReader:
    """``ctx.storage`` of a query."""

    def __init__(self, invocation: Invocation) -> None:
        self._invocation = invocation

    def _call(self, op: str, **args: Any) -> Any:
        payload = {"requestId": self._invocation.request_id, "version": CONVEX_VERSION, **args}
        return self._invocation.async_syscall(op, payload)

    def get_url(self, storage_id: str) -> str | None:
        """The URL serving the file (``GET /api/storage/<id>``), or None if there is
        no such file. Anyone holding the URL can read the file."""
        return self._call("1.0/storageGetUrl", storageId=_storage_id(storage_id, "get_url"))

    def get_metadata(self, storage_id: str) -> dict[str, Any] | None:
        """``{"storageId", "sha256" (hex), "size", "contentType"}``, or None."""
        return self._call(
            "1.0/storageGetMetadata", storageId=_storage_id(storage_id, "get_metadata")
        )


class StorageWriter(StorageReader):
    """``ctx.storage`` of a mutation: also upload URLs, deleting and reading bytes."""

    def generate_upload_url(self) -> str:
        """A URL to ``POST`` one file's bytes to, valid for one hour; the answer is
        ``{"storageId": ...}``."""
        return self._call("1.0/storageGenerateUploadUrl")

    def delete(self, storage_id: str) -> None:
        """Delete the file (in a mutation: when, and only if, the mutation commits)."""
        self._call("1.0/storageDelete", storageId=_storage_id(storage_id, "delete"))

    def get(self, storage_id: str) -> bytes | None:
        """The file's bytes, or None if there is no such file (at most 32 MiB)."""
        found = self._call("1.0/storageGet", storageId=_storage_id(storage_id, "get"))
        if found is None:
            return None
        return base64.b64decode(found["blob"])


class StorageActionWriter(StorageWriter):
    """``ctx.storage`` of an action or HTTP action: also storing bytes."""

    def store(
        self, data: bytes, content_type: str | None = None, *, sha256: str | None = None
    ) -> str:
        """Store ``data`` as a new file and return its storage id (at most 32 MiB;
        upload larger files to an upload URL). ``sha256`` (hex), if given, must be
        the digest of ``data``."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"ctx.storage.store() takes bytes, got {type(data).__name__}")
        if content_type is not None and not isinstance(content_type, str):
            raise TypeError("content_type must be a string")
        args: dict[str, Any] = {
            "blob": base64.b64encode(bytes(data)).decode("ascii"),
            "contentType": content_type,
        }
        if sha256 is not None:
            args["sha256"] = sha256
        return self._call("1.0/storageStore", **args)
