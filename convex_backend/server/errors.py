"""The errors user function code sees and raises.

This module owns :class:`ConvexError` (the application error whose ``data``
travels to the caller, like Convex's ``ConvexError``) and
:class:`ConvexFunctionError` (a plain failure reported by the host for a
syscall, such as a failed nested ``ctx.run_query``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ConvexError", "ConvexFunctionError"]


class ConvexError(Exception):
    """An error meant for the caller, carrying a Convex value in ``data``.

    Raise it from a function to send structured data to the client::

        raise ConvexError({"code": "NotFound", "id": args["id"]})

    The message is ``data`` when it is a string and its JSON text otherwise, as
    Convex's JavaScript ``ConvexError`` does.
    When a nested call fails with a ``ConvexError`` it is re-raised in the
    caller with the same ``data`` (and the host's message).
    """

    data: Any
    message: str

    def __init__(self, data: Any) -> None:
        message = data if isinstance(data, str) else _describe(data)
        super().__init__(message)
        self.data = data
        self.message = message

    def _set_message(self, message: str) -> None:
        # Errors re-raised from a syscall keep the host's message, which can
        # differ from what the constructor derives from ``data``.
        self.message = message
        self.args = (message,)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"ConvexError({self.data!r})"


class ConvexFunctionError(Exception):
    """A syscall failed without ``ConvexError`` data; the message says why.

    This is what ``ctx.run_query``/``ctx.run_mutation``/``ctx.run_action``
    and database calls raise for a host-reported failure (JavaScript's plain
    ``Error`` in the same place).
    """

    message: str

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _describe(data: Any) -> str:
    """The JSON text of ``data`` for messages; int64 values show as ``5n``."""
    import json

    from convex_backend.values import Int64, from_python

    def plain(value: Any) -> Any:
        if isinstance(value, Int64):
            return f"{value.value}n"
        if isinstance(value, bytes):
            return "<bytes>"
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return int(value)  # as JSON.stringify writes it
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    try:
        return json.dumps(plain(from_python(data)), separators=(",", ":"), allow_nan=True)
    except Exception:
        return "ConvexError"
