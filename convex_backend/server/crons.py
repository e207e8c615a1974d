"""Cron jobs: the ``Crons`` object a deployment's ``crons.py`` defines.

This module owns the user-facing side of cron jobs, the Python spelling of
Convex's ``cronJobs()`` (``convex/server`` ``cron.js``)::

    # crons.py
    from convex_backend.server import Crons

    crons = Crons()
    crons.interval("clear presence", "presence:clear", seconds=30)
    crons.daily("reset scores", "scores:reset", hour_utc=17, minute_utc=30)
    crons.cron("digest", "15 7 * * 1-5", "emails:digest", {"kind": "weekday"})

Every method checks its arguments as ``cron.js`` does (identifiers are
printable ASCII and unique, intervals are whole numbers above zero, hours
0-23, minutes 0-59, days 1-31, lowercase English weekdays) and records the
same JSON Convex exports, so the host treats both runtimes alike. Times are
UTC. The host owns the scheduling (``convex_backend.scheduler.crons``); this
object only describes what to run and when.

A target is a ``"module:function"`` string, a registered function, or a
function reference (anything with a ``__convex_path__`` or ``path`` string).
It must be a mutation or an action.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from convex_backend.server.context import canonical_function_name
from convex_backend.server.registration import RegisteredFunction
from convex_backend.values import ConvexValueError, from_python, to_json

__all__ = ["DAYS_OF_WEEK", "Crons", "cron_jobs"]

DAYS_OF_WEEK = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_IDENTIFIER = re.compile(r"^[ -~]+$")


def _whole(value: Any, low: int, high: int | None, message: str) -> int:
    # Convex accepts any JS integer, so 5.0 is as good as 5; booleans are not numbers.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(message)
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(message)
    n = int(value)
    if n < low or (high is not None and n > high):
        raise ValueError(message)
    return n


def _hour(value: Any) -> int:
    return _whole(value, 0, 23, "Hour of day must be an integer from 0 to 23")


def _minute(value: Any) -> int | None:
    if value is None:
        return None
    return _whole(value, 0, 59, "Minute of hour must be an integer from 0 to 59")


def _with_minute(schedule: dict[str, Any], minute: int | None) -> dict[str, Any]:
    # An omitted minute stays omitted: the host then picks one per job.
    if minute is not None:
        schedule["minuteUTC"] = minute
    return schedule


def _reference_path(fn: Any) -> str | None:
    """The "module:function" of a function reference object, if ``fn`` is one.

    A reference that cannot name a function (``api.messages``) raises its own,
    clearer error from ``__convex_path__``.
    """
    for attribute in ("__convex_path__", "path"):
        value = getattr(fn, attribute, None)
        if isinstance(value, str) and value:
            return value
    return None


class Crons:
    """The cron jobs of a deployment: define ``crons = Crons()`` in ``crons.py``."""

    #: What the host checks for, like ``isCrons`` in ``cron.js``.
    is_crons = True

    def __init__(self) -> None:
        #: identifier -> (target, args JSON list, schedule JSON).
        self.crons: dict[str, tuple[Any, list[Any], dict[str, Any]]] = {}

    # -- the schedules -------------------------------------------------------------

    def interval(
        self,
        name: str,
        fn: Any,
        args: Mapping[str, Any] | None = None,
        *,
        seconds: int | None = None,
        minutes: int | None = None,
        hours: int | None = None,
    ) -> None:
        """Run ``fn`` every so many seconds, minutes or hours (exactly one of them),
        starting when the job is first deployed."""
        given = {
            unit: value
            for unit, value in (("seconds", seconds), ("minutes", minutes), ("hours", hours))
            if value is not None
        }
        if len(given) != 1:
            raise ValueError("Must specify one of seconds, minutes, or hours")
        ((unit, value),) = given.items()
        n = _whole(value, 1, None, "Interval must be an integer greater than 0")
        self._schedule(name, {unit: n, "type": "interval"}, fn, args)

    def hourly(
        self,
        name: str,
        fn: Any,
        args: Mapping[str, Any] | None = None,
        *,
        minute_utc: int | None = None,
    ) -> None:
        """Run ``fn`` every hour at ``minute_utc`` (picked by the host if omitted)."""
        self._schedule(name, _with_minute({"type": "hourly"}, _minute(minute_utc)), fn, args)

    def daily(
        self,
        name: str,
        fn: Any,
        args: Mapping[str, Any] | None = None,
        *,
        hour_utc: int,
        minute_utc: int | None = None,
    ) -> None:
        """Run ``fn`` every day at ``hour_utc``:``minute_utc`` UTC."""
        schedule = {"hourUTC": _hour(hour_utc), "type": "daily"}
        self._schedule(name, _with_minute(schedule, _minute(minute_utc)), fn, args)

    def weekly(
        self,
        name: str,
        fn: Any,
        args: Mapping[str, Any] | None = None,
        *,
        day_of_week: str,
        hour_utc: int,
        minute_utc: int | None = None,
    ) -> None:
        """Run ``fn`` every week on ``day_of_week`` (``"monday"``...) at the given UTC time."""
        day = day_of_week.lower() if isinstance(day_of_week, str) else day_of_week
        if day not in DAYS_OF_WEEK:
            raise ValueError('Day of week must be a string like "monday".')
        schedule = {"dayOfWeek": day, "hourUTC": _hour(hour_utc), "type": "weekly"}
        self._schedule(name, _with_minute(schedule, _minute(minute_utc)), fn, args)

    def monthly(
        self,
        name: str,
        fn: Any,
        args: Mapping[str, Any] | None = None,
        *,
        day: int,
        hour_utc: int,
        minute_utc: int | None = None,
    ) -> None:
        """Run ``fn`` every month on ``day`` (1-31; months without that day are
        skipped) at the given UTC time."""
        n = _whole(day, 1, 31, "Day of month must be an integer from 1 to 31")
        schedule = {"day": n, "hourUTC": _hour(hour_utc), "type": "monthly"}
        self._schedule(name, _with_minute(schedule, _minute(minute_utc)), fn, args)

    def cron(self, name: str, cron: str, fn: Any, args: Mapping[str, Any] | None = None) -> None:
        """Run ``fn`` on a cron schedule ``"minute hour day-of-month month day-of-week"``
        (UTC, Sunday is 0). The host checks the expression when it is deployed."""
        if not isinstance(cron, str) or len(cron.split()) != 5:
            raise ValueError(
                f"Invalid cron string {cron!r}: expected five fields "
                '"minute hour day-of-month month day-of-week", like "15 7 * * *"'
            )
        self._schedule(name, {"cron": cron, "type": "cron"}, fn, args)

    # -- common ----------------------------------------------------------------------

    def _schedule(
        self, name: str, schedule: dict[str, Any], fn: Any, args: Mapping[str, Any] | None
    ) -> None:
        if not isinstance(name, str) or not _IDENTIFIER.match(name):
            raise ValueError(
                f"Invalid cron identifier {name!r}: use ASCII letters that are not control "
                "characters"
            )
        if name in self.crons:
            raise ValueError(f"Cron identifier registered twice: {name}")
        target = self._target(fn)
        if args is None:
            args = {}
        if not isinstance(args, Mapping):
            raise TypeError(f"Cron job arguments must be a dict, got {type(args).__name__}")
        try:
            args_json = to_json(from_python(args))
        except ConvexValueError as e:
            raise ValueError(f"Invalid arguments for cron job {name!r}: {e}") from None
        self.crons[name] = (target, [args_json], schedule)

    @staticmethod
    def _target(fn: Any) -> Any:
        """A canonical name now, or the registered function (whose path the
        worker assigns once every module is loaded)."""
        if isinstance(fn, RegisteredFunction):
            if fn.udf_type not in ("mutation", "action"):
                raise TypeError(
                    f"{fn!r} is a {fn.udf_type}: cron jobs run mutations and actions only"
                )
            return fn
        if isinstance(fn, str):
            if fn.startswith("function://"):
                raise TypeError("Function handles cannot be scheduled as cron jobs")
            return canonical_function_name(fn)
        path = _reference_path(fn)
        if path is None:
            raise TypeError(
                f"Expected a function reference or 'module:function' for a cron job, got {fn!r}"
            )
        return canonical_function_name(path)

    def export(self) -> dict[str, dict[str, Any]]:
        """``{identifier: {"name", "args", "schedule"}}``, as ``cron.js`` exports it."""
        exported = {}
        for name, (target, args_json, schedule) in self.crons.items():
            if isinstance(target, RegisteredFunction):
                if target.path is None:
                    raise ValueError(
                        f"Cron job {name!r} targets {target!r}, which no module exports"
                    )
                target = target.path
            exported[name] = {"name": target, "args": list(args_json), "schedule": dict(schedule)}
        return exported

    def __repr__(self) -> str:
        return f"<Crons {sorted(self.crons)}>"


def cron_jobs() -> Crons:
    """Convex's ``cronJobs()``: a new, empty :class:`Crons`."""
    return Crons()
