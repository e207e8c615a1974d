"""The real ``npx convex logs`` (convex@1.48.0) tailing the daemon's function logs.

The CLI long-polls ``GET /api/stream_function_logs``: its first answer is history
(printed with ``--history``), later answers are printed as they come. The test
reads what the CLI prints: the function identifier, the level and the logged
message, the error of a failed function and, with ``--success``, the execution
line of a successful one.
"""

from __future__ import annotations

import json
import re

import treq
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.clients._support import JS, ensure_js_client, node_env, node_paths, with_daemon
from tests.daemon import Daemon
from tests.processes import spawn


async def call(daemon: Daemon, kind: str, path: str, args: dict) -> dict:
    response = await treq.post(
        f"{daemon.api_url}/api/{kind}",
        data=json.dumps({"path": path, "args": args}).encode(),
        headers={"Content-Type": "application/json"},
        persistent=False,
    )
    return json.loads(await response.content())


class CliLogsTests(TestCase):
    timeout = 240

    async def test_cli_logs_prints_history_and_live_entries(self) -> None:
        await ensure_js_client()
        await with_daemon(self.tail)

    async def tail(self, daemon: Daemon) -> None:
        self.assertEqual(
            (await call(daemon, "mutation", "logged:shout", {"message": "history"}))["status"],
            "success",
        )
        self.assertEqual((await call(daemon, "query", "logged:broken", {}))["status"], "error")
        node, _npm = node_paths()
        main = JS / "node_modules" / "convex" / "bin" / "main.js"
        env = node_env(
            CONVEX_SELF_HOSTED_URL=daemon.api_url,
            CONVEX_SELF_HOSTED_ADMIN_KEY=daemon.admin_key,
            CI="1",
        )
        argv = [str(node), str(main), "logs", "--history", "10", "--success"]
        process, output = spawn(argv, env=env, cwd=JS)
        self.addCleanup(self.stop, process, output)

        def text() -> str:
            return (output.out + output.err).decode("utf-8", "replace")

        async def printed(pattern: str) -> None:
            for _ in range(1500):
                if re.search(pattern, text()):
                    return
                if output.ended.called:
                    break
                await deferLater(reactor, 0.02, lambda: None)
            self.fail(f"the CLI never printed {pattern!r}; it printed:\n{text()}\n{daemon.output}")

        # History: the first answer, printed because of --history. Like Convex's
        # console.log, a string is shown quoted.
        await printed(r"\[CONVEX M\(logged:shout\)\] \[LOG\] 'cli says history'")
        await printed(r"\[CONVEX M\(logged:shout\)\] \[WARN\] 'careful with history'")
        await printed(r"\[CONVEX M\(logged:shout\)\] Function executed in \d+ ms")
        await printed(r"\[CONVEX Q\(logged:broken\)\] Uncaught ValueError: broken for the cli")
        # Live: the CLI is waiting in a long poll, which this execution wakes.
        await call(daemon, "mutation", "logged:shout", {"message": "live"})
        await printed(r"\[CONVEX M\(logged:shout\)\] \[LOG\] 'cli says live'")
        self.assertNotIn("Failed to fetch logs", text())
        self.assertNotIn("Traceback", text())

    async def stop(self, process, output) -> None:
        if not output.ended.called:
            process.signalProcess("KILL")
        await output.ended
