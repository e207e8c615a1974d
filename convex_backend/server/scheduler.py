"""``ctx.scheduler``: run a mutation or an action later.

:class:`Scheduler` is the scheduler of mutations and actions (queries have
none: they are read-only). It sends the syscalls of Convex's
``scheduler_impl`` (``reference/server-syscalls.md`` §3.3):

=========  =====================================  =========================
ctx        ``run_after``/``run_at``               ``cancel``
=========  =====================================  =========================
mutation   ``1.0/schedule``                       ``1.0/cancel_job``
action     ``1.0/actions/schedule``               ``1.0/actions/cancel_job``
=========  =====================================  =========================

From a mutation the job is written in the mutation's own transaction, so it
exists if and only if the mutation commits; from an action it is committed
at once. Both return the job's id, an ``Id`` of ``_scheduled_functions``,
whose row user code can read with ``ctx.db.system.get(job_id)``.

Times: ``run_after(delay_ms, ...)`` counts from the function's clock (frozen
for the whole execution in a mutation, as in Convex); ``run_at(ts, ...)``
takes milliseconds since the epoch or a :class:`datetime.datetime` (naive
ones are local time, as ``datetime.timestamp()`` reads them).
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Mapping
from typing import Any

from convex_backend.server._syscalls import CONVEX_VERSION, Invocation

__all__ = ["Scheduler"]


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{what}` must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"`{what}` must be a finite number")
    return value


class Scheduler:
    """``ctx.scheduler`` of a mutation (``action=False``) or an action."""

    def __init__(self, invocation: Invocation, *, action: bool) -> None:
        self._invocation = invocation
        self._action = action

    def run_after(self, delay_ms: float, fn: Any, args: Mapping[str, Any] | None = None) -> str:
        """Schedule ``fn(args)`` to run ``delay_ms`` milliseconds from now; returns
        the job id. ``fn`` is a reference (``internal.messages.send``), a
        registered function or a ``"module:function"`` string."""
        delay = _number(delay_ms, "delayMs")
        if delay < 0:
            raise ValueError("`delayMs` must be non-negative")
        return self._schedule((time.time() * 1000 + delay) / 1000, fn, args)

    def run_at(
        self,
        timestamp: float | datetime.datetime,
        fn: Any,
        args: Mapping[str, Any] | None = None,
    ) -> str:
        """Schedule ``fn(args)`` to run at ``timestamp`` (ms since the epoch, or
        a ``datetime``); a time in the past runs as soon as possible."""
        if isinstance(timestamp, datetime.datetime):
            seconds = timestamp.timestamp()
        elif isinstance(timestamp, datetime.date):
            raise TypeError("run_at takes a datetime or milliseconds since the epoch, not a date")
        else:
            seconds = _number(timestamp, "timestamp") / 1000
        return self._schedule(seconds, fn, args)

    def cancel(self, job_id: str) -> None:
        """Cancel a scheduled job: a pending one never runs, a running action
        finishes but is recorded as canceled; a finished job is left as it is."""
        if not isinstance(job_id, str):
            raise TypeError(f"cancel() takes a job id string, got {type(job_id).__name__}")
        if self._action:
            self._invocation.async_syscall(
                "1.0/actions/cancel_job",
                {"requestId": self._invocation.request_id, "id": job_id},
            )
        else:
            self._invocation.async_syscall("1.0/cancel_job", {"id": job_id})

    def _schedule(self, ts: float, fn: Any, args: Mapping[str, Any] | None) -> str:
        from convex_backend.server.context import _args_json, function_address
        from convex_backend.server.registration import RegisteredFunction

        if isinstance(fn, RegisteredFunction) and fn.udf_type not in ("mutation", "action"):
            raise TypeError(
                f"{fn!r} is a {fn.udf_type}: only mutations and actions can be scheduled"
            )
        payload: dict[str, Any] = dict(function_address(fn, None))
        payload["ts"] = ts
        payload["args"] = _args_json(args)
        payload["version"] = CONVEX_VERSION
        if self._action:
            payload["requestId"] = self._invocation.request_id
            return self._invocation.async_syscall("1.0/actions/schedule", payload)
        return self._invocation.async_syscall("1.0/schedule", payload)

    def __repr__(self) -> str:
        return f"<Scheduler of {'an action' if self._action else 'a mutation'}>"
