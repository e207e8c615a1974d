"""The scheduled-function admin routes, through StubTreq on the real resource tree."""

from __future__ import annotations

from twisted.internet import reactor, task
from twisted.internet.task import deferLater

from convex_backend.scheduler import jobs
from convex_backend.scheduler.service import SchedulerService
from convex_backend.values import Int64, encode_id
from convex_backend.values.ids import new_internal_id
from tests.http.fixtures import ApiTestCase

ROUTES = [
    ("GET", "/api/scheduled_functions", None),
    ("POST", "/api/cancel_scheduled_function", {"id": "x"}),
]


class SchedulerApiTests(ApiTestCase):
    modules = None

    async def setUp(self) -> None:
        await super().setUp()
        # A stopped clock: nothing is due, so the listed jobs stay as written.
        self.clock = task.Clock()
        self.scheduler = SchedulerService(self.deployment, clock=self.clock)
        self.deployment.scheduler = self.scheduler
        self.scheduler.startService()
        await self.scheduler.start()
        self.addCleanup(self.scheduler.stopService)

    async def job(self, name: str, args: dict, at: float, **change) -> str:
        def write(tx) -> str:
            job_id = jobs.insert_job(tx, name, args, at)
            if change:
                with tx.system_writes():
                    tx.patch(job_id, change)
            return job_id

        job_id, _ts = await self.db.run(write, privileged=True)
        return job_id

    async def indexed(self, count: int) -> None:
        for _ in range(500):
            if len(self.scheduler.list_jobs(1000)) == count:
                return
            await deferLater(reactor, 0.01, lambda: None)
        self.fail("the jobs were not indexed")

    async def test_routes_need_the_admin_key(self) -> None:
        wrong = self.key[:-1] + ("0" if self.key[-1] != "0" else "1")
        for method, path, body in ROUTES:
            response, content = await self.request(method, path, body)
            self.assertJsonError(response, content, 401, "MissingAdminKey")
            response, content = await self.request(
                method, path, body, headers={"Authorization": f"Convex {wrong}"}
            )
            error = self.assertJsonError(response, content, 401, "BadAdminKey")
            self.assertNotIn(wrong, error["message"])
        response, content = await self.request("GET", "/api/cancel_scheduled_function", admin=True)
        self.assertJsonError(response, content, 405, "MethodNotAllowed")

    async def test_listing(self) -> None:
        later = await self.job("m:f", {"n": Int64(1)}, 2e13)
        sooner = await self.job("m:g", {}, 1e13)
        failed = await self.job(
            "m:h", {}, 5.0, state={"kind": "failed", "error": "boom"}, completedTime=9.0
        )
        await self.indexed(3)
        code, body = await self.json("GET", "/api/scheduled_functions", admin=True)
        self.assertEqual(code, 200, body)
        self.assertEqual([j["id"] for j in body["jobs"]], [later, sooner, failed])
        first, _second, last = body["jobs"]
        self.assertEqual(
            first,
            {
                "id": later,
                "name": "m:f",
                "args": [{"n": {"$integer": "AQAAAAAAAAA="}}],
                "scheduledTime": 2e13,
                "completedTime": None,
                "state": {"kind": "pending"},
            },
        )
        self.assertEqual(last["state"], {"kind": "failed", "error": "boom"})
        self.assertEqual(last["completedTime"], 9.0)
        code, body = await self.json("GET", "/api/scheduled_functions?limit=1", admin=True)
        self.assertEqual([j["id"] for j in body["jobs"]], [later])
        for bad in ("0", "1001", "ten", "-1"):
            response, content = await self.request(
                "GET", f"/api/scheduled_functions?limit={bad}", admin=True
            )
            self.assertJsonError(response, content, 400, "BadRequest")

    async def test_cancel(self) -> None:
        pending = await self.job("m:f", {}, 1e13)
        done = await self.job("m:g", {}, 1.0, state={"kind": "success"}, completedTime=2.0)
        await self.indexed(2)
        for job_id in (pending, pending, done):
            code, body = await self.json(
                "POST", "/api/cancel_scheduled_function", {"id": job_id}, admin=True
            )
            self.assertEqual((code, body), (200, {}))
        by_id = {doc["_id"]: doc for doc in self.documents(jobs.TABLE)}
        self.assertEqual(by_id[pending]["state"], {"kind": "canceled"})
        self.assertIsInstance(by_id[pending]["completedTime"], float)
        # A finished job is left as it was.
        self.assertEqual(
            (by_id[done]["state"], by_id[done]["completedTime"]), ({"kind": "success"}, 2.0)
        )

        [note] = await self.insert("notes", [{"n": 1.0}])
        for bad in ("nope", note, 5, None):
            response, content = await self.request(
                "POST", "/api/cancel_scheduled_function", {"id": bad}, admin=True
            )
            self.assertJsonError(response, content, 400, "InvalidScheduledFunctionId")
        missing = encode_id(jobs.TABLE_NUMBER, new_internal_id())
        response, content = await self.request(
            "POST", "/api/cancel_scheduled_function", {"id": missing}, admin=True
        )
        self.assertJsonError(response, content, 404, "ScheduledFunctionNotFound")
        for data in (b"{bad", b"[1]"):
            response, content = await self.request(
                "POST",
                "/api/cancel_scheduled_function",
                data=data,
                headers={"Content-Type": "application/json"},
                admin=True,
            )
            self.assertJsonError(response, content, 400, "BadJsonBody")

    async def test_not_ready(self) -> None:
        self.deployment.scheduler = None
        response, content = await self.request("GET", "/api/scheduled_functions", admin=True)
        self.assertJsonError(response, content, 503, "NotReady")
