"""A deployment with a real database (and, if asked, real workers) behind StubTreq."""

from __future__ import annotations

import json
from pathlib import Path

from treq.testing import StubTreq
from twisted.internet import reactor, task
from twisted.trial.unittest import TestCase

from convex_backend.functions.modules import Deployer
from convex_backend.functions.pool import WorkerPool
from convex_backend.functions.runner import FunctionRunner
from convex_backend.functions.service import load_environment
from convex_backend.http.cors import CorsResource
from convex_backend.http.root import RootApp
from tests.database.fixtures import open_database, scan
from tests.helpers import admin_key_for, make_deployment
from tests.http.app import MODULES

BASE = "http://convex.test"


class ApiTestCase(TestCase):
    timeout = 90
    #: Modules to deploy (with worker pools); None runs no workers.
    modules: list[dict] | None = MODULES
    #: Extra configuration options (``site_proxy=...``).
    options: dict = {}

    async def setUp(self) -> None:
        tmp = Path(self.mktemp()).absolute()
        tmp.mkdir(parents=True)
        self.deployment = make_deployment(tmp / "data", **self.config_options())
        self.key = admin_key_for(self.deployment)
        self.db = await open_database(self)
        self.pools: dict = {}
        self.runner = FunctionRunner(self.db, self.pools, reactor)
        self.deployer = Deployer(self.db, self.runner, self.pools, tmp / "modules")
        empty = self.deployer.load_current()
        if self.modules is not None:
            for name in ("udf", "action"):
                pool = WorkerPool(reactor, str(empty), size=1)
                pool.startService()
                self.addCleanup(pool.stopService)
                self.pools[name] = pool
            await self.deployer.deploy(self.modules)
        self.runner.set_environment(load_environment(self.db))
        self.deployment.database = self.db
        self.deployment.runner = self.runner
        self.deployment.deployer = self.deployer
        self.treq = StubTreq(self.root_resource())

    def config_options(self) -> dict:
        return dict(self.options)

    def root_resource(self):
        return CorsResource(RootApp(self.deployment).resource())

    # -- requests ------------------------------------------------------------------

    def encode(
        self, body: object, data: bytes | None, headers: dict | None, admin: bool
    ) -> tuple[bytes | None, dict]:
        """The request's body bytes and headers: ``body`` as JSON, the admin key."""
        headers = dict(headers or {})
        if admin:
            headers["Authorization"] = f"Convex {self.key}"
        if body is not None:
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        return data, headers

    async def request(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        data: bytes | None = None,
        headers: dict | None = None,
        admin: bool = False,
    ):
        """(response, body bytes); pumps StubTreq while the server answers asynchronously."""
        data, headers = self.encode(body, data, headers, admin)
        d = self.treq.request(method, BASE + path, data=data, headers=headers)
        pump = task.LoopingCall(self.treq.flush)
        pump.start(0.002)
        try:
            response = await d
            content = await response.content()
        finally:
            pump.stop()
        return response, content

    async def json(self, method: str, path: str, body: object = None, **kwargs) -> tuple[int, dict]:
        response, content = await self.request(method, path, body, **kwargs)
        return response.code, json.loads(content)

    def assertJsonError(self, response, content: bytes, status: int, code: str) -> dict:
        self.assertEqual(response.code, status, content)
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"application/json"])
        error = json.loads(content)
        self.assertEqual(set(error), {"code", "message"})
        self.assertEqual(error["code"], code, error)
        self.assertTrue(error["message"])
        self.assertNotIn("Traceback", error["message"])
        return error

    # -- data ----------------------------------------------------------------------

    async def insert(self, table: str, docs: list[dict]) -> list[str]:
        ids, _ts = await self.db.run(lambda tx: [tx.insert(table, doc) for doc in docs])
        return ids

    def documents(self, table: str) -> list[dict]:
        tx = self.db.begin(privileged=True)
        try:
            return tx.query(scan(table), system=table.startswith("_")).collect()
        finally:
            tx.close()
