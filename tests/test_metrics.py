"""/metrics of the whole service tree: each operational metric, scraped and parsed.

The daemon's services run in process (real SQLite file, real worker pools, real
HTTP port); functions are called over HTTP and the text /metrics answers is
parsed with prometheus_client's own parser.
"""

from __future__ import annotations

import json

import treq
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from convex_backend.service import build
from tests.helpers import admin_key_for, make_config

APP = """
from convex_backend.server import mutation, query, v


@mutation(args={})
def bump(ctx, args):
    counter = ctx.db.query("counters").first()
    if counter is None:
        return ctx.db.insert("counters", {"n": 1})
    ctx.db.patch(counter["_id"], {"n": counter["n"] + 1})


@query(args={})
def fails(ctx, args):
    raise ValueError("on purpose")


@query(args={})
def spins(ctx, args):
    while True:
        pass
"""


class MetricsTests(TestCase):
    timeout = 120

    async def setUp(self) -> None:
        self.service = build(
            make_config(self.mktemp(), workers="1", function_timeout="0.3"), reactor
        )
        self.service.privilegedStartService()
        self.service.startService()
        self.addCleanup(self.service.stopService)
        await self.service.getServiceNamed("functions").started
        deployment = self.service.deployment
        await deployment.deployer.deploy([{"path": "app.py", "source": APP}])
        port = self.service.getServiceNamed("http").ports["api"].getHost().port
        self.url = f"http://127.0.0.1:{port}"
        self.key = admin_key_for(deployment)

    async def call(self, kind: str, path: str) -> dict:
        response = await treq.post(
            f"{self.url}/api/{kind}",
            data=json.dumps({"path": path, "args": {}}).encode(),
            headers={"Content-Type": "application/json"},
            persistent=False,
        )
        return json.loads(await response.content())

    async def scrape(self) -> dict[str, dict]:
        """name -> {"type", "samples": {(sample name, labels tuple): value}}."""
        response = await treq.get(f"{self.url}/metrics", persistent=False)
        self.assertEqual(response.code, 200)
        families = {}
        for family in text_string_to_metric_families(await response.text()):
            families[family.name] = {
                "type": family.type,
                "samples": {
                    (s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples
                },
            }
        return families

    async def test_operational_metrics(self) -> None:
        self.assertEqual((await self.call("mutation", "app:bump"))["status"], "success")
        # Contending read-modify-writes: conflicts, then retries.
        results = await defer.gatherResults(
            [defer.ensureDeferred(self.call("mutation", "app:bump")) for _ in range(6)]
        )
        self.assertEqual({r["status"] for r in results}, {"success"})
        self.assertEqual((await self.call("query", "app:fails"))["status"], "error")
        # A timeout kills the worker, which the pool replaces.
        self.assertEqual((await self.call("query", "app:spins"))["status"], "error")
        udf_pool = self.service.deployment.runner.pools["udf"]
        for _ in range(500):  # the killed worker's exit is reported asynchronously
            if udf_pool.stats["restarts"]:
                break
            await deferLater(reactor, 0.01, lambda: None)
        families = await self.scrape()

        def value(family: str, sample: str | None = None, **labels) -> float:
            self.assertIn(family, families)
            key = (sample or family, tuple(sorted(labels.items())))
            self.assertIn(key, families[family]["samples"], families[family]["samples"])
            return families[family]["samples"][key]

        # Function errors by function, kind and error code.
        self.assertEqual(families["convex_function_errors"]["type"], "counter")
        failed = value(
            "convex_function_errors",
            "convex_function_errors_total",
            function="app:fails",
            udf_type="query",
            code="UserError",
        )
        self.assertEqual(failed, 1.0)
        timed_out = value(
            "convex_function_errors",
            "convex_function_errors_total",
            function="app:spins",
            udf_type="query",
            code="FunctionTimeout",
        )
        self.assertEqual(timed_out, 1.0)
        # Conflicts (engine) and the retries they caused (runner).
        conflicts = value("convex_occ_conflicts", "convex_occ_conflicts_total")
        retries = value("convex_mutation_retries", "convex_mutation_retries_total")
        self.assertGreaterEqual(conflicts, 5)
        self.assertEqual(retries, conflicts)
        self.assertEqual(families["convex_occ_conflicts"]["type"], "counter")
        commits = value("convex_database_commits", "convex_database_commits_total")
        self.assertGreaterEqual(commits, 7)
        batches = value("convex_database_write_batches", "convex_database_write_batches_total")
        self.assertGreaterEqual(batches, 1)
        self.assertIn("convex_database_retries", families)
        # Commit latency: one observation per commit with writes.
        latency = "convex_commit_latency_seconds"
        self.assertEqual(families[latency]["type"], "histogram")
        self.assertEqual(value(latency, latency + "_count"), commits)
        self.assertEqual(value(latency, latency + "_bucket", le="+Inf"), commits)
        self.assertGreater(value(latency, latency + "_sum"), 0)
        # Sizes read at scrape time.
        self.assertEqual(families["convex_write_log_entries"]["type"], "gauge")
        self.assertGreaterEqual(value("convex_write_log_entries"), 1)
        self.assertEqual(families["convex_function_log_entries"]["type"], "gauge")
        self.assertEqual(value("convex_function_log_entries"), 9)
        # Worker restarts (crash and timeout replacements) by pool.
        self.assertEqual(families["convex_worker_restarts"]["type"], "counter")
        restarts = "convex_worker_restarts"
        self.assertEqual(value(restarts, restarts + "_total", pool="udf"), 1)
        self.assertEqual(value(restarts, restarts + "_total", pool="action"), 0)
