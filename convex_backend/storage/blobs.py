"""Blob files under ``<data dir>/storage/``: atomic writes, reads, removal, sweeps.

::

    storage/
      tmp/<boot>-<random>.part       bodies being received, blobs being written
      blobs/<last 2 chars>/<storage id>

A blob is written to a temporary file in ``tmp/`` (same file system), fsynced,
renamed to its final name and the directory fsynced: after a crash a blob is
either complete or absent. Temporary names start with a per-process "boot"
prefix, so that :meth:`BlobStore.clean_tmp` can remove what an earlier process
left behind without touching uploads in progress.

Every method here blocks; :class:`~convex_backend.storage.files.FileStorage`
runs them with ``deferToThread``. The one exception is
:meth:`UploadSpool.write`, which twisted.web calls on the reactor as a request
body arrives, exactly like its own spooling of large bodies to a temporary file.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import BinaryIO

from convex_backend.storage.errors import StorageError

_CHUNK = 1024 * 1024
#: Storage ids are lowercase base32 (see values/ids.py); anything else never
#: reaches the file system, so no path can be smuggled in.
_ID_TEXT = re.compile(r"[0-9a-z]{16,64}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class UploadSpool:
    """A temporary file in ``storage/tmp/`` receiving one blob.

    File-like enough for twisted.web's ``request.content`` (``write``,
    ``seek``, ``tell``, ``read``, ``close``). :meth:`close` deletes the file
    unless it was installed as a blob, so a request that is cut off or refused
    leaves nothing behind.
    """

    def __init__(self, path: Path, file: BinaryIO) -> None:
        self.path = path
        self._file: BinaryIO | None = file
        self.size = 0
        self.installed = False
        self.discarded = False
        #: When the token of the upload was checked (seconds; set by the caller).
        self.started: float | None = None

    def write(self, data: bytes) -> None:
        if self._file is None:
            raise ValueError("write to a finished upload spool")
        self._file.write(data)
        self.size += len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence) if self._file is not None else 0

    def tell(self) -> int:
        return self._file.tell() if self._file is not None else self.size

    def read(self, size: int = -1) -> bytes:
        # twisted.web may read a form body; uploads are never parsed as forms.
        return b""

    def finish(self) -> tuple[bytes, int]:
        """Make the content durable and hash it (blocking): ``(sha256 digest, size)``."""
        file = self._file
        if file is None:
            raise ValueError("the upload spool is already finished")
        file.flush()
        os.fsync(file.fileno())
        file.seek(0)
        digest = hashlib.sha256()
        size = 0
        while True:
            chunk = file.read(_CHUNK)
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
        file.close()
        self._file = None
        self.size = size
        return digest.digest(), size

    def close(self) -> None:
        """Drop the spool: close it and delete its file, unless it became a blob."""
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None
        if not self.installed and not self.discarded:
            self.discarded = True
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    discard = close


class DiscardedBody:
    """``request.content`` of an upload refused before its body arrived (a bad
    token): the body is read from the socket and thrown away, never stored."""

    size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def tell(self) -> int:
        return 0

    def read(self, size: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        pass


def check_storage_id_text(storage_id: str) -> str:
    if not isinstance(storage_id, str) or not _ID_TEXT.fullmatch(storage_id):
        raise StorageError(400, "InvalidStorageId", "Invalid storage id")
    return storage_id


class BlobStore:
    """The files of one deployment's blobs (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.blobs = self.root / "blobs"
        self.boot = secrets.token_hex(6)

    def prepare(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.blobs.mkdir(parents=True, exist_ok=True)

    # -- writing -------------------------------------------------------------------

    def new_spool(self) -> UploadSpool:
        fd, name = tempfile.mkstemp(prefix=f"{self.boot}-", suffix=".part", dir=self.tmp)
        return UploadSpool(Path(name), os.fdopen(fd, "w+b"))

    def spool_bytes(self, data: bytes) -> UploadSpool:
        spool = self.new_spool()
        try:
            spool.write(data)
        except BaseException:
            spool.close()
            raise
        return spool

    def spool_from(self, source: BinaryIO, limit: int) -> UploadSpool:
        """Copy a file-like body into a new spool; :class:`StorageError` over ``limit``."""
        spool = self.new_spool()
        try:
            while True:
                chunk = source.read(_CHUNK)
                if not chunk:
                    break
                if spool.size + len(chunk) > limit:
                    raise too_large(limit)
                spool.write(chunk)
        except BaseException:
            spool.close()
            raise
        return spool

    def path_for(self, storage_id: str) -> Path:
        check_storage_id_text(storage_id)
        return self.blobs / storage_id[-2:] / storage_id

    def install(self, spool: UploadSpool, storage_id: str) -> None:
        """Move a finished spool to its final name, durably."""
        final = self.path_for(storage_id)
        directory = final.parent
        if not directory.is_dir():
            directory.mkdir(exist_ok=True)
            _fsync_dir(self.blobs)
        os.replace(spool.path, final)
        spool.installed = True
        _fsync_dir(directory)

    # -- reading and removing ------------------------------------------------------

    def open(self, storage_id: str) -> BinaryIO | None:
        try:
            return open(self.path_for(storage_id), "rb")
        except FileNotFoundError:
            return None

    def read(self, storage_id: str) -> bytes | None:
        file = self.open(storage_id)
        if file is None:
            return None
        with file:
            return file.read()

    def exists(self, storage_id: str) -> bool:
        return self.path_for(storage_id).is_file()

    def remove(self, storage_id: str) -> bool:
        path = self.path_for(storage_id)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        _fsync_dir(path.parent)
        return True

    def stored_ids(self) -> list[str]:
        ids = []
        for directory in self.blobs.iterdir():
            if directory.is_dir():
                ids.extend(p.name for p in directory.iterdir() if _ID_TEXT.fullmatch(p.name))
        return ids

    def clean_tmp(self) -> int:
        """Delete temporary files of earlier processes; returns how many."""
        removed = 0
        for path in self.tmp.iterdir():
            if path.name.startswith(f"{self.boot}-"):
                continue
            try:
                path.unlink()
                removed += 1
            except (FileNotFoundError, IsADirectoryError, PermissionError):
                pass
        return removed


def too_large(limit: int) -> StorageError:
    return StorageError(413, "FileTooLarge", f"The file is larger than the limit of {limit} bytes")


__all__ = [
    "BlobStore",
    "DiscardedBody",
    "UploadSpool",
    "check_storage_id_text",
    "too_large",
]
