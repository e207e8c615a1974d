"""Cron jobs in the real daemon: deployed over HTTP, run on the real reactor's
clock, listed by ``/api/cron_jobs``, and kept across a restart."""

from __future__ import annotations

import json
import os
import time

import treq
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.daemon import Daemon

MESSAGES = """
from convex_backend.server import internal_mutation, query


@internal_mutation
def tick(ctx):
    ctx.db.insert("ticks", {"at": len(ctx.db.query("ticks").collect())})


@query
def count(ctx):
    return len(ctx.db.query("ticks").collect())
"""

CRONS = """
from convex_backend.server import Crons

crons = Crons()
crons.interval("tick", "messages:tick", seconds=1)
crons.daily("nightly", "messages:tick", hour_utc=3)
"""


class CronDaemonTests(TestCase):
    timeout = 120

    async def start(self, data_dir: str) -> Daemon:
        daemon = Daemon(data_dir, "--port", "0", "--site-port", "0", "--workers", "1")
        self.addCleanup(daemon.kill)
        await daemon.start(timeout=60)
        return daemon

    async def post(self, daemon: Daemon, path: str, body: dict, admin: bool = True) -> dict:
        headers = {"Content-Type": "application/json"}
        if admin:
            headers["Authorization"] = f"Convex {daemon.admin_key}"
        response = await treq.post(
            daemon.api_url + path,
            data=json.dumps(body).encode(),
            headers=headers,
            persistent=False,
        )
        return {**json.loads(await response.content()), "httpStatus": response.code}

    async def cron_jobs(self, daemon: Daemon, key: str | None = None) -> tuple[int, dict]:
        response = await treq.get(
            daemon.api_url + "/api/cron_jobs",
            headers={"Authorization": f"Convex {key or daemon.admin_key}"},
            persistent=False,
        )
        return response.code, json.loads(await response.content())

    async def ticks(self, daemon: Daemon) -> float:
        answer = await self.post(
            daemon, "/api/query", {"path": "messages:count", "args": {}, "format": "json"}
        )
        self.assertEqual((answer["httpStatus"], answer.get("status")), (200, "success"), answer)
        return answer["value"]

    async def wait_for_ticks(self, daemon: Daemon, at_least: float) -> float:
        for _ in range(300):
            count = await self.ticks(daemon)
            if count >= at_least:
                return count
            await deferLater(reactor, 0.05, lambda: None)
        self.fail(f"only {count} ticks after 15 s:\n{daemon.output[-3000:]}")

    async def test_crons_run_in_the_daemon_and_survive_a_restart(self) -> None:
        data_dir = os.path.abspath(self.mktemp())
        daemon = await self.start(data_dir)
        modules = [
            {"path": "messages.py", "source": MESSAGES},
            {"path": "crons.py", "source": CRONS},
        ]
        answer = await self.post(daemon, "/api/deploy", {"modules": modules})
        self.assertEqual(answer["httpStatus"], 200, answer)
        # The interval job runs at deploy, then every second.
        await self.wait_for_ticks(daemon, 3)
        code, body = await self.cron_jobs(daemon)
        self.assertEqual(code, 200, body)
        jobs = {job["name"]: job for job in body["cronJobs"]}
        self.assertEqual(sorted(jobs), ["nightly", "tick"])
        tick = jobs["tick"]
        self.assertEqual(tick["functionName"], "messages:tick")
        self.assertEqual(tick["schedule"], {"seconds": 1, "type": "interval"})
        self.assertEqual(tick["lastRun"]["status"], "success")
        self.assertGreater(tick["nextRun"], tick["lastRun"]["ts"])
        self.assertIsNone(jobs["nightly"]["lastRun"])
        self.assertEqual(time.gmtime(jobs["nightly"]["nextRun"] / 1000).tm_hour, 3)

        code, body = await self.cron_jobs(daemon, key="0" * 40)
        self.assertEqual((code, body["code"]), (401, "BadAdminKey"))

        # A bad crons.py is refused and the jobs keep running.
        bad_crons = CRONS.replace("hour_utc=3", "hour_utc=3, minute_utc=75")
        bad = [modules[0], {"path": "crons.py", "source": bad_crons}]
        answer = await self.post(daemon, "/api/deploy", {"modules": bad})
        self.assertEqual(answer["httpStatus"], 400, answer)
        self.assertIn("crons.py", answer["message"])

        daemon.signal()
        self.assertEqual(await daemon.wait(timeout=30), 0, daemon.output[-3000:])
        self.assertRegex(daemon.output, r"Cron jobs updated: (tick, nightly|nightly, tick) created")
        self.assertNotIn("Traceback", daemon.output)
        before = await self.ticks_after_restart(data_dir)
        self.assertGreaterEqual(before, 3)

    async def ticks_after_restart(self, data_dir: str) -> float:
        daemon = await self.start(data_dir)
        code, body = await self.cron_jobs(daemon)
        self.assertEqual(code, 200, body)
        jobs = {job["name"]: job for job in body["cronJobs"]}
        # The jobs and their last runs were kept; the interval job goes on.
        self.assertEqual(sorted(jobs), ["nightly", "tick"])
        self.assertEqual(jobs["tick"]["lastRun"]["status"], "success")
        count = await self.ticks(daemon)
        count = await self.wait_for_ticks(daemon, count + 2)
        self.assertIn("Cron jobs ready: 2", daemon.output)
        self.assertNotIn("Traceback", daemon.output)
        return count
