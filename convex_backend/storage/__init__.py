"""File storage: blobs under the data dir, the ``_storage`` table, upload tokens.

- ``blobs``: the files on disk (atomic writes, temporary spools, sweeps)
- ``tokens``: signed, expiring upload tokens
- ``rows``: the ``_storage`` rows, read and deleted inside transactions
- ``files``: :class:`FileStorage`, everything the HTTP routes and syscalls use
- ``service``: the daemon's storage service
- ``streaming``: a byte range of a blob written to an HTTP response from a thread
- ``errors``: :class:`StorageError`

See docs/storage.md.
"""

from convex_backend.storage.errors import StorageError
from convex_backend.storage.files import DEFAULT_MAX_FILE_BYTES, FileStorage

__all__ = ["DEFAULT_MAX_FILE_BYTES", "FileStorage", "StorageError"]
