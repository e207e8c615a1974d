"""The real daemon as a subprocess: ``twistd -n convex`` on free ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import treq
from twisted.trial.unittest import TestCase

from tests.daemon import Daemon


class DaemonEndToEndTests(TestCase):
    timeout = 60

    async def test_serves_checks_keys_and_stops_cleanly_on_sigterm(self) -> None:
        daemon = Daemon(self.mktemp(), "--port", "0", "--site-port", "0")
        self.addCleanup(daemon.kill)
        await daemon.start()
        api = daemon.api_url

        response = await treq.get(api + "/version", persistent=False)
        self.assertEqual(response.code, 200)
        self.assertRegex(await response.text(), r"^\d+\.\d+\.\d+")

        self.assertRegex(daemon.admin_key, r"^convex-self-hosted\|01[0-9a-f]{64}$")
        good = await treq.post(
            api + "/api/check_admin_key",
            headers={"Authorization": f"Convex {daemon.admin_key}"},
            persistent=False,
        )
        self.assertEqual(good.code, 200)
        await good.content()
        bad = await treq.post(
            api + "/api/check_admin_key",
            headers={"Authorization": "Convex convex-self-hosted|0123"},
            persistent=False,
        )
        self.assertEqual(bad.code, 401)
        self.assertEqual(json.loads(await bad.content())["code"], "BadAdminKey")

        # Bad input gets clear JSON errors, and the daemon keeps serving.
        for method, path, body in (
            ("POST", "/api/check_admin_key", b"{not json"),
            ("GET", "/no/such/route", None),
            ("POST", "/echo", b"x" * (33 * 1024 * 1024)),
        ):
            response = await treq.request(method, api + path, data=body, persistent=False)
            self.assertGreaterEqual(response.code, 400)
            error = json.loads(await response.content())
            self.assertEqual(set(error), {"code", "message"})

        metrics = await treq.get(api + "/metrics", persistent=False)
        text = await metrics.text()
        self.assertIn("process_resident_memory_bytes", text)
        self.assertIn('route="/api/check_admin_key",status="401"', text)

        site = await treq.get(daemon.site_url + "/anything", persistent=False)
        self.assertEqual(site.code, 404)
        await site.content()

        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        code = await daemon.wait()
        self.assertEqual(code, 0, daemon.output)
        self.assertLess(time.monotonic() - started, 5)
        self.assertIn("Database closed", daemon.output)
        # The key is never logged; how to print it is.
        self.assertNotIn(daemon.admin_key, daemon.output)
        self.assertIn("print it with `convex-backend admin-key --data-dir", daemon.output)
        self.assertNotIn("Traceback", daemon.output)

    async def test_same_key_after_restart_and_from_the_cli(self) -> None:
        data_dir = self.mktemp()
        first = Daemon(data_dir, "--port", "0", "--site-port", "0")
        self.addCleanup(first.kill)
        await first.start()
        first.signal()
        self.assertEqual(await first.wait(), 0)

        second = Daemon(data_dir, "--port", "0", "--site-port", "0")
        self.addCleanup(second.kill)
        await second.start()
        self.assertEqual(second.admin_key, first.admin_key)
        second.signal(signal.SIGINT)
        self.assertEqual(await second.wait(), 0)

        from convex_backend.cli import AdminKeyOptions, admin_key

        options = AdminKeyOptions()
        options.parseOptions(["--data-dir", data_dir])
        self.assertEqual(admin_key(options, environ={}), first.admin_key)

    async def assertFailsFast(self, *args: str, fragment: str, env=None) -> str:
        daemon = Daemon(self.mktemp(), *args, env=env)
        self.addCleanup(daemon.kill)
        daemon.spawn()
        code = await daemon.wait(timeout=20)
        self.assertNotEqual(code, 0)
        lines = [line for line in daemon.output.splitlines() if "convex:" in line]
        self.assertEqual(len(lines), 1, daemon.output)
        self.assertIn(fragment, lines[0])
        self.assertNotIn("Traceback", daemon.output)
        return daemon.output

    async def test_port_in_use(self) -> None:
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        await self.assertFailsFast(
            "--port",
            str(port),
            "--site-port",
            "0",
            fragment=f"cannot listen on 127.0.0.1:{port}",
        )

    async def test_unknown_persistence_scheme(self) -> None:
        output = await self.assertFailsFast(
            "--persistence",
            "mysql://root:hunter2@db/convex",
            fragment="unknown scheme 'mysql'",
        )
        self.assertNotIn("hunter2", output)

    async def test_malformed_admin_key_from_environment(self) -> None:
        await self.assertFailsFast(
            fragment="--admin-key is malformed", env={"CONVEX_ADMIN_KEY": "not-a-key"}
        )

    async def test_unwritable_data_dir(self) -> None:
        blocker = os.path.abspath(self.mktemp())
        with open(blocker, "w") as f:
            f.write("a file, not a directory")
        await self.assertFailsFast("--data-dir", blocker, fragment="is not a directory")
