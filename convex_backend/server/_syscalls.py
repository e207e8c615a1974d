"""The SDK's side of the syscall layer: the host interface and per-call state.

This module owns

* :class:`Syscalls`, the protocol the worker implements (both methods are
  synchronous; arguments and results are plain JSON-able objects in
  Convex-JSON form);
* :class:`SyscallError`, what ``async_syscall`` raises for a host error;
* :class:`Invocation`, the state of one function call that every ``ctx``
  object holds: the ``Syscalls`` it talks through, the request id, the open
  query streams (so they are cleaned up when the call ends) and whether the
  call is over. Holding it in the ``ctx`` (rather than in a global) is what
  lets ctx objects find their invocation.

``_runtime`` re-exports the first two; they live here so the context modules
can use them without importing ``_runtime``.
"""

from __future__ import annotations

from typing import Any, Protocol

from convex_backend.server.errors import ConvexError, ConvexFunctionError
from convex_backend.values import ConvexValueError, from_json

__all__ = ["CONVEX_VERSION", "Invocation", "SyscallError", "Syscalls"]

#: The ``version`` sent with syscalls: the Convex JS library release whose
#: syscall shapes this SDK reproduces (the host may gate behaviour on it).
CONVEX_VERSION = "1.48.0"

#: Rows asked for per ``1.0/queryStreamNext`` (the ABI's batching extension).
STREAM_BATCH_ROWS = 100


class SyscallError(Exception):
    """A host error for a syscall: ``message``, and ``data`` (Convex-JSON) when
    the failure was a ``ConvexError`` (for example in a nested function).

    ``has_data`` says whether ``data`` was present; it defaults to
    ``data is not None`` and exists so a worker can pass on a ``ConvexError``
    whose data is ``null``.
    """

    message: str
    data: Any
    has_data: bool

    def __init__(self, message: str, data: Any = None, *, has_data: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
        self.has_data = data is not None if has_data is None else has_data


class Syscalls(Protocol):
    """How the SDK reaches the host during one invocation (implemented by the worker)."""

    def syscall(self, op: str, args: dict[str, Any]) -> Any:
        """A synchronous op (``1.0/queryStream``, ``1.0/queryCleanup``,
        ``1.0/db/normalizeId``, ``1.0/getSnapshotTs``)."""
        ...

    def async_syscall(self, op: str, args: dict[str, Any]) -> Any:
        """An asynchronous op, performed as a blocking round trip to the host.
        Raises :class:`SyscallError` when the host answers with an error."""
        ...


def user_error(error: SyscallError) -> Exception:
    """The exception user code sees for a failed async op: a ``ConvexError``
    with the decoded ``data`` if there is some, else a ``ConvexFunctionError``."""
    if not error.has_data:
        return ConvexFunctionError(error.message)
    try:
        data = from_json(error.data)
    except ConvexValueError:
        data = error.data
    converted = ConvexError(data)
    converted._set_message(error.message)
    return converted


class Invocation:
    """The state of one running function call (see the module docstring)."""

    syscalls: Syscalls
    request_id: str
    finished: bool

    def __init__(self, syscalls: Syscalls, request_id: str = "") -> None:
        self.syscalls = syscalls
        self.request_id = request_id
        self.finished = False
        self._open_streams: set[Any] = set()

    def _check_active(self) -> None:
        if self.finished:
            raise RuntimeError(
                "This ctx belongs to a function call that has already returned; "
                "ctx objects cannot be kept and used later"
            )

    def syscall(self, op: str, args: dict[str, Any]) -> Any:
        """Perform a sync op; its errors reach user code unchanged (as in Convex)."""
        self._check_active()
        return self.syscalls.syscall(op, args)

    def async_syscall(self, op: str, args: dict[str, Any]) -> Any:
        """Perform an async op, turning a host error into the user-facing one."""
        self._check_active()
        try:
            return self.syscalls.async_syscall(op, args)
        except SyscallError as e:
            raise user_error(e) from None

    # -- query streams ---------------------------------------------------

    def open_stream(self, query: dict[str, Any]) -> Any:
        """Start a query stream (sync ``1.0/queryStream``); returns its id."""
        result = self.syscall("1.0/queryStream", {"query": query, "version": CONVEX_VERSION})
        query_id = result["queryId"]
        self._open_streams.add(query_id)
        return query_id

    def next_batch(self, query_id: Any) -> tuple[list[Any], bool]:
        """The next rows (still Convex-JSON) of a stream, and whether it is done."""
        result = self.async_syscall(
            "1.0/queryStreamNext", {"queryId": query_id, "maxRows": STREAM_BATCH_ROWS}
        )
        if "values" in result:
            values = list(result["values"])
        else:
            # A host without the batching extension answers one row at a time.
            value = result.get("value")
            values = [] if value is None else [value]
        return values, bool(result.get("done"))

    def close_stream(self, query_id: Any) -> None:
        """Release a stream (sync ``1.0/queryCleanup``); idempotent, and a
        no-op once the call has finished (``finish`` released it already)."""
        if self.finished or query_id not in self._open_streams:
            return
        self._open_streams.discard(query_id)
        self.syscall("1.0/queryCleanup", {"queryId": query_id})

    def finish(self) -> None:
        """End the call: release streams user code abandoned, then refuse
        further syscalls from ctx objects that outlived it."""
        if self.finished:
            return
        try:
            for query_id in sorted(self._open_streams, key=repr):
                self.close_stream(query_id)
        finally:
            self.finished = True
