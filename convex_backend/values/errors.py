"""The one error type of the value layer.

Everything in ``convex_backend.values`` that rejects an input (a malformed
Convex-JSON payload, an out-of-range integer, a corrupted id, a value over a
limit) raises :class:`ConvexValueError`, so that callers at the edges (HTTP,
WebSocket, syscalls) can turn it into a clear client error with one ``except``.
"""


class ConvexValueError(ValueError):
    """A value, its encoding or an id is invalid; the message says why."""


class InvalidIdError(ConvexValueError):
    """A string is not a well-formed document id."""
