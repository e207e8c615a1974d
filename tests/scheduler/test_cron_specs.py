"""Cron job specs: checks of the exported JSON, and run times (UTC)."""

from __future__ import annotations

import calendar
import json
import os
import time

from twisted.trial.unittest import SynchronousTestCase

from convex_backend.scheduler.cron_specs import (
    MAX_COUNTED_SKIPS,
    CronSpecError,
    _spread_minute,
    parse_cron_spec,
    parse_cron_specs,
)


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    """A UTC date as ms since the epoch."""
    return calendar.timegm((year, month, day, hour, minute, 0)) * 1000.0


def spec(schedule: dict, identifier: str = "job"):
    return parse_cron_spec(identifier, {"name": "m:f", "args": [{}], "schedule": schedule})


#: Tuesday 28 February 2023, 08:35 UTC (the real backend's next_ts tests use it too).
FEB_28 = ms(2023, 2, 28, 8, 35)


class SpecTests(SynchronousTestCase):
    def test_a_valid_export(self) -> None:
        raw = {
            "a": {"name": "messages:send", "args": [{"n": 1}], "schedule": {"type": "hourly"}},
            "b": {
                "name": "dir/m.py",
                "args": [{}],
                "schedule": {"type": "cron", "cron": "0 1 * * *"},
            },
        }
        specs = parse_cron_specs(raw)
        self.assertEqual(specs["a"].function, "messages:send")
        self.assertEqual(specs["b"].function, "dir/m:default")
        self.assertEqual(specs["a"].call_args, {"n": 1.0})
        # cron.js exports a JSON string; that is accepted too.
        self.assertEqual(parse_cron_specs(json.dumps(raw)), specs)
        self.assertEqual(parse_cron_specs(None), {})

    def test_bad_specs_name_the_job(self) -> None:
        good = {"name": "m:f", "args": [{}], "schedule": {"type": "interval", "seconds": 5}}
        cases = [
            ({"type": "cron", "cron": "61 * * * *"}, "invalid cron expression"),
            ({"type": "cron", "cron": "0 0 30 2 *"}, "never matches"),
            ({"type": "cron", "cron": "* * * * * *"}, "five fields"),
            ({"type": "cron", "cron": 5}, "five fields"),
            ({"type": "interval", "seconds": 0}, "greater than 0"),
            ({"type": "interval", "minutes": 2.5}, "greater than 0"),
            ({"type": "interval", "seconds": 1, "hours": 1}, "exactly one"),
            ({"type": "interval", "hours": 10**9}, "century"),
            ({"type": "daily", "hourUTC": 24}, "hourUTC"),
            ({"type": "daily", "hourUTC": 1, "minuteUTC": 60}, "minuteUTC"),
            ({"type": "weekly", "hourUTC": 1, "dayOfWeek": "Tuesday"}, "dayOfWeek"),
            ({"type": "monthly", "hourUTC": 1, "day": 32}, "day"),
            ({"type": "yearly"}, "unknown schedule type"),
            ("daily", "schedule must be an object"),
        ]
        for schedule, message in cases:
            with self.assertRaises(CronSpecError, msg=repr(schedule)) as e:
                parse_cron_specs({"the job": {**good, "schedule": schedule}})
            self.assertIn("cron job 'the job'", str(e.exception))
            self.assertIn(message, str(e.exception))
        for entry, message in [
            ({**good, "args": {}}, "list of one object"),
            ({**good, "args": [1.0]}, "must be an object"),
            ({**good, "args": [{"$bad": 1}]}, "invalid arguments"),
            ({**good, "name": "function://x"}, "'module:function'"),
            ({**good, "name": 3}, "'module:function'"),
            ([], "expected {name, args, schedule}"),
        ]:
            with self.assertRaises(CronSpecError, msg=repr(entry)) as e:
                parse_cron_specs({"j": entry})
            self.assertIn(message, str(e.exception))
        for bad_identifier in ["", "caf\u00e9", "x" * 300]:
            with self.assertRaises(CronSpecError):
                parse_cron_specs({bad_identifier: good})
        for raw in ["{not json", [good], 5]:
            with self.assertRaises(CronSpecError):
                parse_cron_specs(raw)


class RunTimeTests(SynchronousTestCase):
    def test_interval(self) -> None:
        every_minute = spec({"type": "interval", "minutes": 1})
        self.assertEqual(every_minute.interval_ms, 60_000)
        self.assertEqual(every_minute.first_run(FEB_28), FEB_28)
        self.assertEqual(every_minute.next_after(FEB_28), FEB_28 + 60_000)
        # On time: no skip. Ten and a half minutes late: ten occurrences went by.
        self.assertEqual(every_minute.advance(FEB_28, FEB_28 + 1000), (FEB_28 + 60_000, 0, None))
        self.assertEqual(
            every_minute.advance(FEB_28, FEB_28 + 630_000),
            (FEB_28 + 660_000, 10, FEB_28 + 60_000),
        )
        # An occurrence exactly at "now" is still due, not skipped.
        self.assertEqual(every_minute.advance(FEB_28, FEB_28 + 120_000)[:2], (FEB_28 + 120_000, 1))

    def test_hourly_daily_weekly_monthly(self) -> None:
        hourly = spec({"type": "hourly", "minuteUTC": 5})
        self.assertEqual(hourly.first_run(FEB_28), ms(2023, 2, 28, 9, 5))
        self.assertEqual(hourly.next_after(ms(2023, 2, 28, 9, 5)), ms(2023, 2, 28, 10, 5))
        # Across the end of the month (and of February).
        daily = spec({"type": "daily", "hourUTC": 8, "minuteUTC": 30})
        self.assertEqual(daily.first_run(FEB_28), ms(2023, 3, 1, 8, 30))
        self.assertEqual(daily.next_after(ms(2023, 3, 1, 8, 30)), ms(2023, 3, 2, 8, 30))
        late_night = spec({"type": "daily", "hourUTC": 23, "minuteUTC": 59})
        self.assertEqual(late_night.next_after(ms(2023, 12, 31, 23, 59)), ms(2024, 1, 1, 23, 59))
        weekly = spec({"type": "weekly", "dayOfWeek": "tuesday", "hourUTC": 12, "minuteUTC": 30})
        self.assertEqual(weekly.first_run(FEB_28), ms(2023, 2, 28, 12, 30))
        self.assertEqual(weekly.next_after(ms(2023, 2, 28, 12, 30)), ms(2023, 3, 7, 12, 30))
        monthly = spec({"type": "monthly", "day": 1, "hourUTC": 12, "minuteUTC": 30})
        self.assertEqual(monthly.first_run(FEB_28), ms(2023, 3, 1, 12, 30))
        self.assertEqual(monthly.next_after(ms(2023, 3, 1, 12, 30)), ms(2023, 4, 1, 12, 30))
        # Months without the day are skipped; leap years have a 29th of February.
        the_31st = spec({"type": "monthly", "day": 31, "hourUTC": 0, "minuteUTC": 0})
        self.assertEqual(the_31st.next_after(ms(2023, 1, 31)), ms(2023, 3, 31))
        self.assertEqual(the_31st.next_after(ms(2023, 3, 31)), ms(2023, 5, 31))
        the_29th = spec({"type": "monthly", "day": 29, "hourUTC": 6, "minuteUTC": 0})
        self.assertEqual(the_29th.next_after(ms(2023, 1, 29, 6)), ms(2023, 3, 29, 6))
        self.assertEqual(the_29th.next_after(ms(2024, 1, 29, 6)), ms(2024, 2, 29, 6))

    def test_cron_expressions(self) -> None:
        mondays_and_fridays = spec({"type": "cron", "cron": "0 12 * * 1,5"})
        self.assertEqual(mondays_and_fridays.first_run(FEB_28), ms(2023, 3, 3, 12))
        self.assertEqual(mondays_and_fridays.next_after(ms(2023, 3, 3, 12)), ms(2023, 3, 6, 12))
        quarter_hours = spec({"type": "cron", "cron": "*/15  *  * * *"})
        self.assertEqual(quarter_hours.cron_expr, "*/15 * * * *")
        self.assertEqual(quarter_hours.first_run(FEB_28), ms(2023, 2, 28, 8, 45))
        # Skipped occurrences are counted; past MAX_COUNTED_SKIPS the count is a floor
        # and the next run is still the first one at or after now.
        late = ms(2023, 2, 28, 10, 50)
        self.assertEqual(
            quarter_hours.advance(ms(2023, 2, 28, 8, 45), late),
            (ms(2023, 2, 28, 11), 8, ms(2023, 2, 28, 9)),
        )
        every_minute = spec({"type": "cron", "cron": "* * * * *"})
        years_later = ms(2025, 6, 1, 12, 0) + 30_000
        next_ts, skipped, first = every_minute.advance(FEB_28, years_later)
        self.assertEqual(
            (next_ts, skipped, first), (ms(2025, 6, 1, 12, 1), MAX_COUNTED_SKIPS, FEB_28 + 60_000)
        )

    def test_times_are_utc_whatever_the_local_zone(self) -> None:
        # The night US clocks go forward (2023-03-12); UTC does not care.
        original = os.environ.get("TZ")

        def restore() -> None:
            if original is None:
                os.environ.pop("TZ", None)
            else:
                os.environ["TZ"] = original
            time.tzset()

        self.addCleanup(restore)
        os.environ["TZ"] = "America/New_York"
        time.tzset()
        daily = spec({"type": "daily", "hourUTC": 7, "minuteUTC": 0})
        self.assertEqual(daily.next_after(ms(2023, 3, 11, 7)), ms(2023, 3, 12, 7))
        self.assertEqual(daily.next_after(ms(2023, 3, 12, 7)), ms(2023, 3, 13, 7))
        cron = spec({"type": "cron", "cron": "30 2 * * *"})
        self.assertEqual(cron.next_after(ms(2023, 3, 12)), ms(2023, 3, 12, 2, 30))

    def test_an_omitted_minute_is_spread_by_name(self) -> None:
        minutes = {_spread_minute(f"job {i}") for i in range(100)}
        self.assertTrue(minutes <= set(range(60)))
        self.assertGreater(len(minutes), 20)
        hourly = spec({"type": "hourly"}, "cleanup")
        self.assertEqual(hourly.cron_expr, f"{_spread_minute('cleanup')} * * * *")
        daily = spec({"type": "daily", "hourUTC": 3}, "cleanup")
        self.assertEqual(daily.cron_expr, f"{_spread_minute('cleanup')} 3 * * *")
