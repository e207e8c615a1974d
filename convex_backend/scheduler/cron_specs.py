"""Cron job specs: checking what ``crons.py`` exported, and when each job is due.

This module owns the rules of a job's definition and its run times, with no
I/O (``convex_backend.scheduler.crons`` runs the jobs):

* :func:`parse_cron_specs` checks a deployment analysis' ``crons`` (the JSON of
  Convex's ``cron.js`` export): identifiers, targets, arguments, schedules.
  With the deployment's functions it also checks that each target exists, is
  a mutation or an action, and accepts the arguments. Errors name the job.
* :class:`CronSpec` computes times in ms since the epoch, in UTC: an interval
  job first runs when it is first deployed, then every interval after its
  previous *scheduled* time (no drift); hourly, daily, weekly, monthly and
  cron-expression jobs run at the next matching time, computed by
  ``croniter``. An omitted ``minuteUTC`` is replaced by a minute derived from
  the job's name, so that jobs spread over the hour (as Convex does).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from croniter import croniter

from convex_backend.database.schema import ValidationError
from convex_backend.values import ConvexValueError, from_json

DAYS_OF_WEEK = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
#: Longest interval accepted: a century.
MAX_INTERVAL_SECONDS = 100 * 366 * 24 * 3600
#: Skipped cron-expression occurrences are counted one by one up to this many.
MAX_COUNTED_SKIPS = 1000
_IDENTIFIER_LIMIT = 256
_UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600}


class CronSpecError(ValueError):
    """A cron spec that cannot be deployed; the message names the job."""


@dataclass(frozen=True)
class CronSpec:
    """One job of ``crons.py``, checked."""

    identifier: str
    #: Canonical ``"module:function"``.
    function: str
    #: The Convex-JSON args list of one object, as exported.
    args: list
    #: The exported schedule JSON (``{"type": "interval", "seconds": 60}``...).
    schedule: dict
    interval_ms: float | None = None
    #: The effective five-field expression (UTC) of every other schedule type.
    cron_expr: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.function, "args": self.args, "schedule": self.schedule}

    def key(self) -> str:
        """The spec as stored: a canonical JSON string."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    def schedule_key(self) -> str:
        return json.dumps(self.schedule, sort_keys=True, separators=(",", ":"))

    @property
    def call_args(self) -> Any:
        return from_json(self.args[0])

    # -- times (ms since the epoch, UTC) ---------------------------------------------

    def first_run(self, now: float) -> float:
        """When a newly deployed job first runs: right away for an interval job,
        else the next matching time."""
        if self.interval_ms is not None:
            return now
        return self.next_after(now)

    def next_after(self, ts: float) -> float:
        """The occurrence following the one at ``ts`` (strictly after it)."""
        if self.interval_ms is not None:
            return ts + self.interval_ms
        return _cron_next(self.cron_expr, ts)

    def advance(self, scheduled: float, now: float) -> tuple[float, int, float | None]:
        """After the run scheduled at ``scheduled``: ``(next due time, occurrences
        skipped because they are already past, the first skipped one)``.

        A count of :data:`MAX_COUNTED_SKIPS` for a cron expression means "at least".
        """
        following = self.next_after(scheduled)
        if following >= now:
            return following, 0, None
        first = following
        if self.interval_ms is not None:
            missed = math.ceil((now - following) / self.interval_ms)
            return following + missed * self.interval_ms, missed, first
        skipped = 0
        while following < now and skipped < MAX_COUNTED_SKIPS:
            skipped += 1
            following = self.next_after(following)
        if following < now:
            # Jump straight to the first occurrence at or after now.
            following = _cron_next(self.cron_expr, now - 1)
        return following, skipped, first


def _utc(ms: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)


def _cron_next(expr: str | None, ts: float) -> float:
    assert expr is not None
    moment = croniter(expr, _utc(ts)).get_next(datetime.datetime)
    return moment.timestamp() * 1000


# -- checking specs ------------------------------------------------------------------


def _integer(schedule: Mapping, field: str, low: int, high: int, what: str) -> int:
    value = schedule.get(field)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not value.is_integer())
        or not low <= value <= high
    ):
        raise CronSpecError(f"{what} must be an integer from {low} to {high}, got {value!r}")
    return int(value)


def _spread_minute(identifier: str) -> int:
    """The minute an hourly/daily/weekly/monthly job without ``minuteUTC`` runs
    at: fixed per job name, spread over the hour (as Convex does)."""
    return int.from_bytes(hashlib.sha256(identifier.encode()).digest()[:4], "big") % 60


def _minute(schedule: Mapping, identifier: str) -> int:
    if schedule.get("minuteUTC") is None:
        return _spread_minute(identifier)
    return _integer(schedule, "minuteUTC", 0, 59, "minuteUTC")


def _schedule_times(identifier: str, schedule: Any) -> tuple[float | None, str | None]:
    """``(interval in ms, None)`` or ``(None, cron expression)`` for a schedule JSON."""
    if not isinstance(schedule, Mapping):
        raise CronSpecError("the schedule must be an object with a `type`")
    kind = schedule.get("type")
    if kind == "interval":
        units = [u for u in _UNIT_SECONDS if schedule.get(u) is not None]
        if len(units) != 1:
            raise CronSpecError("an interval needs exactly one of seconds, minutes or hours")
        unit = units[0]
        value = schedule[unit]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (isinstance(value, float) and not value.is_integer())
            or value <= 0
        ):
            raise CronSpecError(f"the interval must be an integer greater than 0, got {value!r}")
        seconds = int(value) * _UNIT_SECONDS[unit]
        if seconds > MAX_INTERVAL_SECONDS:
            raise CronSpecError("the interval is longer than a century")
        return seconds * 1000.0, None
    if kind == "hourly":
        return None, f"{_minute(schedule, identifier)} * * * *"
    if kind in ("daily", "weekly", "monthly"):
        minute = _minute(schedule, identifier)
        hour = _integer(schedule, "hourUTC", 0, 23, "hourUTC")
        if kind == "daily":
            return None, f"{minute} {hour} * * *"
        if kind == "weekly":
            day = schedule.get("dayOfWeek")
            if day not in DAYS_OF_WEEK:
                raise CronSpecError(f'dayOfWeek must be a weekday like "monday", got {day!r}')
            return None, f"{minute} {hour} * * {DAYS_OF_WEEK.index(day)}"
        day_of_month = _integer(schedule, "day", 1, 31, "day")
        return None, f"{minute} {hour} {day_of_month} * *"
    if kind == "cron":
        expr = schedule.get("cron")
        if not isinstance(expr, str) or len(expr.split()) != 5:
            raise CronSpecError(
                f"invalid cron expression {str(expr)[:100]!r}: expected five fields "
                '"minute hour day-of-month month day-of-week", like "15 7 * * *"'
            )
        expr = " ".join(expr.split())
        if not croniter.is_valid(expr):
            raise CronSpecError(f"invalid cron expression {expr!r}")
        try:
            _cron_next(expr, time.time() * 1000)
        except Exception:
            raise CronSpecError(f"the cron expression {expr!r} never matches a date") from None
        return None, expr
    raise CronSpecError(f"unknown schedule type {str(kind)[:40]!r}")


def parse_cron_spec(
    identifier: Any, entry: Any, functions: Mapping | None = None, ctx: Any = None
) -> CronSpec:
    """Check one exported job. With ``functions`` (path -> ``FunctionInfo``), the
    target must exist and be a mutation or an action taking these arguments."""
    from convex_backend.functions.runner import FunctionError, canonicalize_path

    if (
        not isinstance(identifier, str)
        or not identifier
        or len(identifier) > _IDENTIFIER_LIMIT
        or not all(" " <= c <= "~" for c in identifier)
    ):
        raise CronSpecError(
            f"invalid cron identifier {str(identifier)[:100]!r}: use 1 to "
            f"{_IDENTIFIER_LIMIT} printable ASCII characters"
        )
    try:
        if not isinstance(entry, Mapping):
            raise CronSpecError("expected {name, args, schedule}")
        name = entry.get("name")
        if not isinstance(name, str) or not name or name.startswith("function://"):
            raise CronSpecError("the target must be a 'module:function' name")
        try:
            function = canonicalize_path(name)
        except FunctionError as e:
            raise CronSpecError(e.message) from None
        args = entry.get("args", [{}])
        if not isinstance(args, list) or len(args) != 1:
            raise CronSpecError("args must be a list of one object")
        try:
            call_args = from_json(args[0])
        except ConvexValueError as e:
            raise CronSpecError(f"invalid arguments: {e}") from None
        if not isinstance(call_args, dict):
            raise CronSpecError("the arguments must be an object")
        interval_ms, cron_expr = _schedule_times(identifier, entry.get("schedule"))
        if functions is not None:
            info = functions.get(function)
            if info is None:
                raise CronSpecError(f"{function} is not a function of this deployment")
            if info.udf_type not in ("mutation", "action"):
                raise CronSpecError(
                    f"{function} is a {info.udf_type}: cron jobs run mutations and actions only"
                )
            try:
                info.args_validator.check(call_args, ctx)
            except ValidationError as e:
                raise CronSpecError(f"invalid arguments for {function}: {e}") from None
    except CronSpecError as e:
        raise CronSpecError(f"cron job {identifier!r}: {e}") from None
    return CronSpec(
        identifier=identifier,
        function=function,
        args=list(args),
        schedule=dict(entry["schedule"]),
        interval_ms=interval_ms,
        cron_expr=cron_expr,
    )


def parse_cron_specs(
    raw: Any, functions: Mapping | None = None, ctx: Any = None
) -> dict[str, CronSpec]:
    """The jobs of a deployment analysis' ``crons`` (``None``, an export object, or
    its JSON string as ``cron.js`` makes it); raises :class:`CronSpecError`."""
    if raw is None:
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise CronSpecError("the crons export is not valid JSON") from None
    if not isinstance(raw, Mapping):
        raise CronSpecError("the crons export must be an object of {identifier: job}")
    return {
        identifier: parse_cron_spec(identifier, entry, functions, ctx)
        for identifier, entry in raw.items()
    }
