"""The example chat app, deployed to the real daemon and used over HTTP."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import treq
from twisted.trial.unittest import TestCase

from tests.daemon import REPO, Daemon
from tests.processes import run_process

CHAT = REPO / "examples" / "chat" / "convex"


async def cli(daemon: Daemon, *argv: str) -> tuple[int, str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "CONVEX_SELF_HOSTED_URL": daemon.api_url,
        "CONVEX_SELF_HOSTED_ADMIN_KEY": daemon.admin_key,
    }
    args = [sys.executable, "-m", "convex_backend.cli", *argv]
    return await run_process(args, env=env, cwd=REPO)


class ChatAppTests(TestCase):
    timeout = 120

    async def start(self, data_dir: str | None = None) -> Daemon:
        data_dir = data_dir or os.path.abspath(self.mktemp())
        daemon = Daemon(data_dir, "--port", "0", "--site-port", "0", "--workers", "2")
        self.addCleanup(daemon.kill)
        await daemon.start()
        return daemon

    async def call(self, daemon: Daemon, kind: str, path: str, args: dict, admin=False) -> dict:
        headers = {"Content-Type": "application/json"}
        if admin:
            headers["Authorization"] = f"Convex {daemon.admin_key}"
        response = await treq.post(
            f"{daemon.api_url}/api/{kind}",
            data=json.dumps({"path": path, "args": args, "format": "convex_encoded_json"}).encode(),
            headers=headers,
            persistent=False,
        )
        body = json.loads(await response.content())
        body["httpStatus"] = response.code
        return body

    async def test_chat_app_end_to_end(self) -> None:
        daemon = await self.start()
        code, out, err = await cli(daemon, "deploy", str(CHAT))
        self.assertEqual(code, 0, out + err)
        self.assertIn("Deployed", out)

        sent = await self.call(
            daemon,
            "mutation",
            "messages:send",
            {"channel": "general", "author": "ada", "body": " hi "},
        )
        self.assertEqual(sent["status"], "success", sent)
        listed = await self.call(daemon, "query", "messages:list", {"channel": "general"})
        self.assertEqual([m["body"] for m in listed["value"]], ["hi"])
        self.assertEqual(listed["value"][0]["_id"], sent["value"])

        # A ConvexError reaches the caller with its data.
        empty = await self.call(
            daemon, "mutation", "messages:send", {"channel": "general", "author": "ada", "body": ""}
        )
        self.assertEqual(empty["status"], "error")
        self.assertEqual(empty["errorData"]["code"], "EmptyMessage")
        self.assertEqual(empty["httpStatus"], 200)

        # Arguments are validated before the handler runs.
        bad = await self.call(daemon, "mutation", "messages:send", {"channel": "general"})
        self.assertEqual(bad["status"], "error")
        self.assertIn("ArgumentValidationError", bad["errorMessage"])

        # Pagination.
        for i in range(5):
            await self.call(
                daemon, "mutation", "messages:send", {"channel": "p", "author": "b", "body": str(i)}
            )
        first = await self.call(
            daemon,
            "query",
            "messages:page",
            {"channel": "p", "paginationOpts": {"numItems": 3.0, "cursor": None}},
        )
        self.assertEqual([m["body"] for m in first["value"]["page"]], ["4", "3", "2"])
        self.assertFalse(first["value"]["isDone"])
        second = await self.call(
            daemon,
            "query",
            "messages:page",
            {
                "channel": "p",
                "paginationOpts": {"numItems": 3.0, "cursor": first["value"]["continueCursor"]},
            },
        )
        self.assertEqual([m["body"] for m in second["value"]["page"]], ["1", "0"])
        self.assertTrue(second["value"]["isDone"])

        # The action reads through a query and writes through a mutation.
        summary = await self.call(daemon, "action", "messages:summarize", {"channel": "general"})
        self.assertEqual(summary["value"], "1 messages from ada", summary)

        # Internal functions: invisible to clients, callable by admins.
        hidden = await self.call(daemon, "mutation", "messages:clear_channel", {"channel": "p"})
        self.assertEqual(hidden["status"], "error")
        self.assertIn("Could not find public function", hidden["errorMessage"])
        cleared = await self.call(
            daemon, "function", "messages:clear_channel", {"channel": "p"}, admin=True
        )
        self.assertEqual(cleared["value"], 5.0)

        # The HTTP route, on the site port and under /http/ on the main port.
        response = await treq.post(
            daemon.site_url + "/post",
            data=json.dumps({"channel": "web", "author": "hook", "body": "from http"}).encode(),
            persistent=False,
        )
        self.assertEqual(response.code, 201, await response.text())
        self.assertIn("id", json.loads(await response.content()))
        response = await treq.get(daemon.api_url + "/http/post", persistent=False)
        self.assertEqual(response.code, 404)
        await response.content()

        # Executions, outcomes and the worker pools are on /metrics.
        metrics = await (await treq.get(daemon.api_url + "/metrics", persistent=False)).text()
        self.assertIn(
            'convex_function_executions_total{function="messages:send",status="success",'
            'udf_type="mutation"} 8.0',
            metrics,
        )
        self.assertIn('convex_worker_workers{pool="udf"} 2.0', metrics)
        self.assertIn("convex_function_duration_seconds_bucket", metrics)

        # `convex-backend run` calls as admin and prints the result.
        code, out, err = await cli(daemon, "run", "messages:list", '{"channel": "web"}')
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)[0]["body"], "from http")

        # A broken push is refused with file and line; the old code keeps serving.
        broken = Path(self.mktemp()).absolute()
        broken.mkdir()
        (broken / "messages.py").write_text("from convex_backend.server import query\n\ndef f(:\n")
        code, out, err = await cli(daemon, "deploy", str(broken))
        self.assertEqual(code, 1)
        self.assertIn("messages.py:3", err)
        still = await self.call(daemon, "query", "messages:list", {"channel": "general"})
        self.assertEqual(still["status"], "success")

        # Code and data survive a restart.
        daemon.signal()
        self.assertEqual(await daemon.wait(), 0)
        again = await self.start(daemon.data_dir)
        after = await self.call(again, "query", "messages:list", {"channel": "general"})
        self.assertEqual(after["status"], "success", after)
        self.assertEqual(len(after["value"]), 2)
