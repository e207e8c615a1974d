"""``Crons``: argument checks and exported JSON, compared with the real ``cron.js``."""

from __future__ import annotations

import json
import types

from twisted.trial.unittest import SynchronousTestCase, TestCase

from convex_backend.server import (
    Crons,
    Int64,
    action,
    api,
    cron_jobs,
    internal,
    internal_mutation,
    mutation,
    query,
)
from convex_backend.server import _runtime as rt
from tests.clients._support import JS, ensure_js_client, node_env, node_paths, run_process


@mutation
def _send(ctx, args):
    return None


class _Reference:
    """A function reference in the style of ``api.messages.send``."""

    def __init__(self, path: str) -> None:
        self.__convex_path__ = path

    def __getattr__(self, name: str):
        # Like a magic ``api`` object: every other attribute is a sub-reference.
        return _Reference(f"{self.__convex_path__}.{name}")


def _define(crons: Crons) -> None:
    """The same jobs as ``_JS_DEFINE`` below."""
    crons.interval("every 30s", "messages:send", {"n": 1.5}, seconds=30)
    crons.interval("every 5m", _Reference("messages:send"), minutes=5)
    crons.interval("every 2h", "messages:send", {"big": Int64(1)}, hours=2)
    crons.hourly("hourly", "messages:send", minute_utc=5)
    crons.hourly("hourly any minute", "messages:send")
    crons.daily("daily", "messages:send", hour_utc=17, minute_utc=30)
    crons.daily("daily any minute", "messages:send", hour_utc=17)
    crons.weekly("weekly", "messages:send", day_of_week="tuesday", hour_utc=1)
    crons.monthly("monthly", "messages:send", day=1, hour_utc=2, minute_utc=3)
    crons.cron("cron", "15 7 * * *", "messages:send", {"tags": ["a", "b"], "b": b"\x00\xff"})


_JS_DEFINE = """
import { cronJobs, anyApi } from "convex/server";
const crons = cronJobs();
const ref = "messages:send";
crons.interval("every 30s", { seconds: 30 }, ref, { n: 1.5 });
crons.interval("every 5m", { minutes: 5 }, anyApi.messages.send);
crons.interval("every 2h", { hours: 2 }, ref, { big: 1n });
crons.hourly("hourly", { minuteUTC: 5 }, ref);
crons.hourly("hourly any minute", ref);
crons.daily("daily", { hourUTC: 17, minuteUTC: 30 }, ref);
crons.daily("daily any minute", { hourUTC: 17 }, ref);
crons.weekly("weekly", { dayOfWeek: "tuesday", hourUTC: 1 }, ref);
crons.monthly("monthly", { day: 1, hourUTC: 2, minuteUTC: 3 }, ref);
crons.cron("cron", "15 7 * * *", ref, { tags: ["a", "b"], b: new Uint8Array([0, 255]).buffer });
console.log(crons.export());
"""


class ExportTests(SynchronousTestCase):
    def test_schedule_shapes(self) -> None:
        crons = Crons()
        _define(crons)
        exported = crons.export()
        schedules = {name: job["schedule"] for name, job in exported.items()}
        self.assertEqual(
            schedules,
            {
                "every 30s": {"seconds": 30, "type": "interval"},
                "every 5m": {"minutes": 5, "type": "interval"},
                "every 2h": {"hours": 2, "type": "interval"},
                "hourly": {"minuteUTC": 5, "type": "hourly"},
                "hourly any minute": {"type": "hourly"},
                "daily": {"hourUTC": 17, "minuteUTC": 30, "type": "daily"},
                "daily any minute": {"hourUTC": 17, "type": "daily"},
                "weekly": {"dayOfWeek": "tuesday", "hourUTC": 1, "type": "weekly"},
                "monthly": {"day": 1, "hourUTC": 2, "minuteUTC": 3, "type": "monthly"},
                "cron": {"cron": "15 7 * * *", "type": "cron"},
            },
        )
        self.assertEqual({job["name"] for job in exported.values()}, {"messages:send"})
        self.assertEqual(exported["every 5m"]["args"], [{}])
        self.assertEqual(exported["every 2h"]["args"], [{"big": {"$integer": "AQAAAAAAAAA="}}])
        # The export is plain JSON.
        self.assertEqual(json.loads(json.dumps(exported)), exported)

    def test_targets(self) -> None:
        crons = cron_jobs()
        self.assertIsInstance(crons, Crons)
        crons.interval("module only", "messages", seconds=1)
        crons.interval("py suffix", "dir/messages.py:send", seconds=1)
        crons.interval("registered", _send, seconds=1)
        crons.interval("path attribute", types.SimpleNamespace(path="a/b:c"), seconds=1)
        crons.interval("reference", _Reference("x:y"), seconds=1)
        _send.path = "messages:send"
        self.addCleanup(setattr, _send, "path", None)
        names = {name: job["name"] for name, job in crons.export().items()}
        self.assertEqual(
            names,
            {
                "module only": "messages:default",
                "py suffix": "dir/messages:send",
                "registered": "messages:send",
                "path attribute": "a/b:c",
                "reference": "x:y",
            },
        )

    def test_api_and_internal_references(self) -> None:
        crons = Crons()
        crons.interval("internal", internal.messages.tick, seconds=1)
        crons.daily("nested", api.folder.file.cleanup, {"all": True}, hour_utc=1)
        crons.hourly("odd name", api["my-module"].run)
        names = {name: job["name"] for name, job in crons.export().items()}
        self.assertEqual(
            names,
            {
                "internal": "messages:tick",
                "nested": "folder/file:cleanup",
                "odd name": "my-module:run",
            },
        )
        with self.assertRaises(ValueError) as e:
            crons.hourly("module only", api.messages)
        self.assertIn("api.messages is not a function reference", str(e.exception))

    def test_a_registered_function_must_be_exported_by_a_module(self) -> None:
        crons = Crons()
        crons.daily("d", internal_mutation(lambda ctx: None), hour_utc=1)
        with self.assertRaises(ValueError) as e:
            crons.export()
        self.assertIn("no module exports", str(e.exception))

    def test_bad_targets(self) -> None:
        crons = Crons()
        q = query(lambda ctx: None)
        for target, error in [
            (q, "mutations and actions only"),
            ("function://abc", "Function handles"),
            (42, "Expected a function reference"),
            (types.SimpleNamespace(path=3), "Expected a function reference"),
        ]:
            with self.assertRaises(TypeError) as e:
                crons.interval("x", target, seconds=1)
            self.assertIn(error, str(e.exception))
        with self.assertRaises(ValueError):
            crons.interval("x", ":", seconds=1)
        crons.interval("an action", action(lambda ctx: None), seconds=1)
        self.assertEqual(list(crons.crons), ["an action"])

    def test_identifiers(self) -> None:
        crons = Crons()
        crons.hourly("ok ~!", "m:f")
        with self.assertRaises(ValueError) as e:
            crons.hourly("ok ~!", "m:f")
        self.assertIn("registered twice", str(e.exception))
        for bad in ["", "tab\there", "caf\u00e9", 7, None]:
            with self.assertRaises(ValueError, msg=repr(bad)):
                crons.hourly(bad, "m:f")
        self.assertEqual(list(crons.crons), ["ok ~!"])

    def test_interval_checks(self) -> None:
        crons = Crons()
        bad = [
            {},
            {"seconds": 1, "minutes": 1},
            {"seconds": 0},
            {"minutes": -5},
            {"hours": 1.5},
            {"seconds": True},
            {"seconds": "10"},
        ]
        for units in bad:
            with self.assertRaises(ValueError, msg=repr(units)):
                crons.interval("x", "m:f", **units)
        crons.interval("x", "m:f", seconds=5.0)
        self.assertEqual(crons.export()["x"]["schedule"], {"seconds": 5, "type": "interval"})

    def test_time_checks(self) -> None:
        crons = Crons()
        cases = [
            (crons.hourly, {"minute_utc": 60}, "Minute of hour"),
            (crons.hourly, {"minute_utc": -1}, "Minute of hour"),
            (crons.daily, {"hour_utc": 24}, "Hour of day"),
            (crons.daily, {"hour_utc": 1, "minute_utc": 0.5}, "Minute of hour"),
            (crons.weekly, {"day_of_week": "funday", "hour_utc": 1}, "Day of week"),
            (crons.weekly, {"day_of_week": 1, "hour_utc": 1}, "Day of week"),
            (crons.monthly, {"day": 0, "hour_utc": 1}, "Day of month"),
            (crons.monthly, {"day": 32, "hour_utc": 1}, "Day of month"),
        ]
        for method, kwargs, message in cases:
            with self.assertRaises(ValueError, msg=repr(kwargs)) as e:
                method("x", "m:f", **kwargs)
            self.assertIn(message, str(e.exception))
        # Weekday names are case-insensitive and exported in lowercase.
        crons.weekly("w", "m:f", day_of_week="Friday", hour_utc=0, minute_utc=0)
        self.assertEqual(crons.export()["w"]["schedule"]["dayOfWeek"], "friday")

    def test_cron_strings_need_five_fields(self) -> None:
        crons = Crons()
        for bad in ["* * * *", "0 * * * * *", "", None]:
            with self.assertRaises(ValueError, msg=repr(bad)) as e:
                crons.cron("x", bad, "m:f")
            self.assertIn("five fields", str(e.exception))
        # Anything else about the expression is checked by the host at deploy time.
        crons.cron("x", "61 * * * *", "m:f")

    def test_args(self) -> None:
        crons = Crons()
        with self.assertRaises(TypeError):
            crons.hourly("x", "m:f", [1, 2])
        with self.assertRaises(ValueError) as e:
            crons.hourly("x", "m:f", {"$bad": 1})
        self.assertIn("Invalid arguments for cron job 'x'", str(e.exception))
        with self.assertRaises(ValueError):
            crons.hourly("x", "m:f", {"value": object()})
        self.assertEqual(crons.crons, {})


class RuntimeExportTests(SynchronousTestCase):
    def test_crons_export(self) -> None:
        crons = Crons()
        crons.hourly("h", "m:f", minute_utc=1)
        module = types.ModuleType("crons")
        self.assertIsNone(rt.crons_export(module))
        module.crons = crons
        self.assertEqual(
            rt.crons_export(module),
            {"h": {"name": "m:f", "args": [{}], "schedule": {"minuteUTC": 1, "type": "hourly"}}},
        )
        module.crons = {"h": {}}
        with self.assertRaises(TypeError) as e:
            rt.crons_export(module)
        self.assertIn("crons = Crons()", str(e.exception))


class ConvexCronJsTests(TestCase):
    """The same jobs defined with ``cronJobs()`` of ``convex@1.48.0`` export the same JSON."""

    timeout = 600

    async def test_same_export_as_cron_js(self) -> None:
        await ensure_js_client()
        node, _ = node_paths()
        argv = [str(node), "--input-type=module", "-e", _JS_DEFINE]
        code, out, err = await run_process(argv, env=node_env(), cwd=JS, timeout=60)
        self.assertEqual(code, 0, out + err)
        expected = json.loads(out)
        crons = Crons()
        _define(crons)
        self.assertEqual(crons.export(), expected)
