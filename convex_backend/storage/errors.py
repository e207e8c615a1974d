"""The one error type of file storage, with the HTTP status and code it maps to.

Every refusal (a malformed or unknown storage id, a bad upload token, a file
over the size limit, a blob missing on disk) is a :class:`StorageError` whose
``code`` and ``message`` go to clients as they are: ``{"code", "message"}``
on HTTP, the message of the error a function sees for a syscall.
"""

from __future__ import annotations


class StorageError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


__all__ = ["StorageError"]
