"""``GET /api/cron_jobs``: the deployment's cron jobs with their next and last runs."""

from __future__ import annotations

import calendar

from twisted.internet import task

from convex_backend.scheduler.crons import CronService
from tests.http.fixtures import ApiTestCase

JOBS = """
from convex_backend.server import Crons, internal_mutation, v


@internal_mutation(args={"tag": v.string()})
def tick(ctx, args):
    ctx.db.insert("ticks", {"tag": args["tag"]})


crons = Crons()
crons.interval("every minute", "crons:tick", {"tag": "i"}, seconds=60)
crons.cron("weekday mornings", "15 7 * * 1-5", tick, {"tag": "c"})
crons.monthly("billing", "crons:tick", {"tag": "m"}, day=31, hour_utc=0, minute_utc=0)
"""

#: Tuesday 28 February 2023, 08:35 UTC.
START = calendar.timegm((2023, 2, 28, 8, 35, 0))


class CronJobsApiTests(ApiTestCase):
    modules = [{"path": "crons.py", "source": JOBS}]

    async def setUp(self) -> None:
        await super().setUp()
        self.clock = task.Clock()
        self.clock.advance(START)
        self.crons = CronService(self.deployment, clock=self.clock)
        self.crons.startService()
        self.addCleanup(self.crons.stopService)
        await self.crons.start()

    async def test_lists_jobs_with_their_schedules_and_runs(self) -> None:
        code, body = await self.json("GET", "/api/cron_jobs", admin=True)
        self.assertEqual(code, 200, body)
        jobs = body["cronJobs"]
        self.assertEqual([j["name"] for j in jobs], ["billing", "every minute", "weekday mornings"])
        by_name = {j["name"]: j for j in jobs}
        minute = by_name["every minute"]
        self.assertEqual(minute["functionName"], "crons:tick")
        self.assertEqual(minute["args"], [{"tag": "i"}])
        self.assertEqual(minute["schedule"], {"seconds": 60, "type": "interval"})
        self.assertEqual(minute["nextRun"], START * 1000.0)
        self.assertIsNone(minute["lastRun"])
        self.assertEqual(
            by_name["weekday mornings"]["schedule"], {"cron": "15 7 * * 1-5", "type": "cron"}
        )
        self.assertEqual(
            by_name["weekday mornings"]["nextRun"],
            calendar.timegm((2023, 3, 1, 7, 15, 0)) * 1000.0,
        )
        self.assertEqual(
            by_name["billing"]["nextRun"], calendar.timegm((2023, 3, 31, 0, 0, 0)) * 1000.0
        )

        self.clock.advance(0)
        await self.crons.wait_idle()
        self.assertEqual([d["tag"] for d in self.documents("ticks")], ["i"])
        code, body = await self.json("GET", "/api/cron_jobs", admin=True)
        minute = {j["name"]: j for j in body["cronJobs"]}["every minute"]
        self.assertEqual(minute["lastRun"], {"ts": START * 1000.0, "status": "success"})
        self.assertEqual(minute["nextRun"], (START + 60) * 1000.0)

    async def test_needs_the_admin_key(self) -> None:
        response, content = await self.request("GET", "/api/cron_jobs")
        self.assertJsonError(response, content, 401, "MissingAdminKey")
        wrong = self.key[:-1] + ("0" if self.key[-1] != "0" else "1")
        response, content = await self.request(
            "GET", "/api/cron_jobs", headers={"Authorization": f"Convex {wrong}"}
        )
        error = self.assertJsonError(response, content, 401, "BadAdminKey")
        self.assertNotIn(wrong, error["message"])
        response, content = await self.request("POST", "/api/cron_jobs", {}, admin=True)
        self.assertJsonError(response, content, 405, "MethodNotAllowed")


class NoCronsTests(ApiTestCase):
    modules = None

    async def test_an_empty_list_without_crons(self) -> None:
        code, body = await self.json("GET", "/api/cron_jobs", admin=True)
        self.assertEqual((code, body), (200, {"cronJobs": []}))

    async def test_not_ready_before_the_database(self) -> None:
        self.deployment.database = None
        response, content = await self.request("GET", "/api/cron_jobs", admin=True)
        self.assertJsonError(response, content, 503, "NotReady")
