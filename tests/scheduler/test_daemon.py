"""Scheduled functions in the real daemon, across a SIGKILL and a restart.

Mutations due just before, at and just after the moment the daemon is killed
each run exactly once in the end; an action that was running when it died is
recorded as failed and never run again; a cancelled job stays cancelled; the
admin routes and the lag metric work over real HTTP.
"""

from __future__ import annotations

import json
import os
import time

import treq
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.daemon import Daemon
from tests.scheduler.scheduler_app import TASKS

#: Mutations due every 150 ms around the kill, which comes 2 s after scheduling.
SPREAD = [f"m{i}" for i in range(10)]
SPREAD_DELAY_MS = 1300.0
SPREAD_STEP_MS = 150.0
KILL_AFTER_S = 2.0


class SchedulerDaemonTests(TestCase):
    timeout = 240

    async def start(self, data_dir: str) -> Daemon:
        daemon = Daemon(data_dir, "--port", "0", "--site-port", "0", "--workers", "2")
        self.addCleanup(daemon.kill)
        await daemon.start(timeout=60)
        return daemon

    async def post(self, daemon: Daemon, path: str, body: dict) -> dict:
        response = await treq.post(
            daemon.api_url + path,
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Convex {daemon.admin_key}",
            },
            persistent=False,
        )
        return {"httpStatus": response.code, **json.loads(await response.content())}

    async def call(self, daemon: Daemon, kind: str, path: str, args: dict):
        answer = await self.post(
            daemon, f"/api/{kind}", {"path": path, "args": args, "format": "json"}
        )
        self.assertEqual((answer["httpStatus"], answer.get("status")), (200, "success"), answer)
        return answer["value"]

    async def jobs(self, daemon: Daemon) -> dict[str, dict] | None:
        """The listing, or None while the scheduler is still starting (503)."""
        response = await treq.get(
            daemon.api_url + "/api/scheduled_functions?limit=1000",
            headers={"Authorization": f"Convex {daemon.admin_key}"},
            persistent=False,
        )
        body = json.loads(await response.content())
        if response.code == 503 and body.get("code") == "NotReady":
            return None
        self.assertEqual(response.code, 200, body)
        return {job["id"]: job for job in body["jobs"]}

    async def wait_for(self, daemon: Daemon, predicate, what: str, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            listing = await self.jobs(daemon)
            if listing is not None and predicate(listing):
                return listing
            await deferLater(reactor, 0.05, lambda: None)
        self.fail(f"timed out waiting for {what}:\n{daemon.output[-3000:]}")

    async def test_jobs_survive_a_kill_exactly_once(self) -> None:
        data_dir = os.path.abspath(self.mktemp())
        daemon = await self.start(data_dir)
        answer = await self.post(
            daemon, "/api/deploy", {"modules": [{"path": "tasks.py", "source": TASKS}]}
        )
        self.assertEqual(answer["httpStatus"], 200, answer)

        # An action that will still be running when the daemon dies.
        long_id = await self.call(
            daemon,
            "mutation",
            "tasks:schedule_slow_act",
            {"delay": 0.0, "name": "long", "seconds": 120.0},
        )
        # A job scheduled from an action, and one cancelled before it is due.
        from_action = await self.call(
            daemon, "action", "tasks:schedule_from_action", {"delay": 0.0, "name": "acted"}
        )
        cancelled = await self.call(
            daemon, "mutation", "tasks:schedule_bump", {"delay": 1000.0, "name": "cancelled"}
        )
        answer = await self.post(daemon, "/api/cancel_scheduled_function", {"id": cancelled})
        self.assertEqual(answer, {"httpStatus": 200})
        await self.wait_for(
            daemon,
            lambda jobs: (
                jobs[long_id]["state"]["kind"] == "inProgress"
                and jobs[from_action]["state"]["kind"] == "success"
            ),
            "the action to start",
        )
        self.assertEqual(await self.call(daemon, "query", "tasks:count", {"name": "acted"}), 1)

        spread = await self.call(
            daemon,
            "mutation",
            "tasks:schedule_spread",
            {"names": SPREAD, "delay": SPREAD_DELAY_MS, "step": SPREAD_STEP_MS},
        )
        scheduled_at = time.monotonic()
        await deferLater(reactor, KILL_AFTER_S - 0.1, lambda: None)
        seen = await self.jobs(daemon)
        await daemon.kill()
        # The kill came while some of them were still waiting (so the restart has work).
        states = [seen[i]["state"]["kind"] for i in spread]
        self.assertIn("pending", states)
        killed_after = time.monotonic() - scheduled_at
        before = daemon.output

        daemon = await self.start(data_dir)
        listing = await self.wait_for(
            daemon,
            lambda jobs: all(jobs[i]["state"]["kind"] == "success" for i in spread),
            "every spread job to succeed",
        )
        for name in SPREAD:
            count = await self.call(daemon, "query", "tasks:count", {"name": name})
            self.assertEqual(
                count, 1, f"{name} ran {count} times (killed after {killed_after:.2f}s, {states})"
            )
        for job_id in spread:
            self.assertGreaterEqual(
                listing[job_id]["completedTime"], listing[job_id]["scheduledTime"]
            )

        # The interrupted action: failed, and never run again (at most once).
        long_job = listing[long_id]
        self.assertEqual(
            long_job["state"], {"kind": "failed", "error": "Transient error while executing action"}
        )
        self.assertEqual(
            await self.call(daemon, "query", "tasks:count", {"name": "long:started"}), 1
        )
        self.assertEqual(await self.call(daemon, "query", "tasks:count", {"name": "long"}), 0)
        self.assertEqual(listing[cancelled]["state"], {"kind": "canceled"})
        self.assertEqual(await self.call(daemon, "query", "tasks:count", {"name": "cancelled"}), 0)
        self.assertEqual(await self.call(daemon, "query", "tasks:count", {"name": "acted"}), 1)
        self.assertIn("scheduled actions were interrupted by a restart", daemon.output)

        metrics = await treq.get(daemon.api_url + "/metrics", persistent=False)
        text = (await metrics.content()).decode()
        self.assertIn("convex_scheduler_lag_seconds_count", text)
        self.assertIn('convex_scheduler_jobs_completed_total{outcome="failed"} 1.0', text)

        daemon.signal()
        self.assertEqual(await daemon.wait(timeout=30), 0, daemon.output[-3000:])
        for output in (before, daemon.output):
            self.assertNotIn("Traceback", output)
            self.assertNotIn("Unhandled", output)
