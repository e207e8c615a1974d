"""Errors of the database layer, each with a short code for the client."""

from __future__ import annotations


class DatabaseError(Exception):
    """A user-visible database error; ``code`` names its kind."""

    code = "DatabaseError"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class OccConflict(DatabaseError):
    """Another commit wrote something this transaction read: retry it."""

    code = "OptimisticConcurrencyControlFailure"


class LimitExceeded(DatabaseError):
    """A per-transaction limit (documents, bytes, ranges) was exceeded."""

    code = "TooManyReads"


class DatabaseUnavailable(DatabaseError):
    """The database is not loaded yet, or could not persist a commit."""

    code = "DatabaseUnavailable"
