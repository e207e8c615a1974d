"""The service tree in process: start, serve, stop in order, fail fast on busy ports."""

from __future__ import annotations

import os
import socket
import sqlite3

import treq
from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from convex_backend.config import StartupError
from convex_backend.service import build
from tests.helpers import make_config


class ServiceTreeTests(TestCase):
    def test_children_in_start_order(self) -> None:
        service = build(make_config(self.mktemp()), reactor)
        self.assertEqual(
            [child.name for child in service],
            [
                "database",
                "functions",
                "scheduler",
                "storage",
                "crons",
                "http",
                # Last, so that it stops first (see convex_backend/service.py).
                "function logs",
            ],
        )

    async def test_start_serve_stop(self) -> None:
        config = make_config(self.mktemp())
        service = build(config, reactor)
        service.privilegedStartService()
        service.startService()
        http = service.getServiceNamed("http")
        persistence = service.getServiceNamed("database")
        port = http.ports["api"].getHost().port
        response = await treq.get(f"http://127.0.0.1:{port}/version", persistent=False)
        self.assertEqual(await response.text(), service.deployment.version)
        self.assertIsNotNone(persistence.pool)

        await service.stopService()
        self.assertEqual(http.ports, {})
        self.assertIsNone(persistence.pool)
        # The database file is a real, closed SQLite database in WAL mode.
        conn = sqlite3.connect(config.persistence.path)
        self.addCleanup(conn.close)
        self.assertEqual(conn.execute("PRAGMA journal_mode").fetchone()[0], "wal")

    def test_busy_port_fails_fast_with_one_line(self) -> None:
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        service = build(make_config(self.mktemp(), port=str(port)), reactor)
        with self.assertRaises(StartupError) as caught:
            service.privilegedStartService()
        message = str(caught.exception)
        self.assertIn(f"cannot listen on 127.0.0.1:{port}", message)
        self.assertNotIn("\n", message)
        self.assertEqual(service.getServiceNamed("http").ports, {})

    def test_how_to_print_a_derived_key_is_logged_never_the_key(self) -> None:
        data_dir = self.mktemp()
        derived = build(make_config(data_dir), reactor)
        self.assertEqual(
            derived._key_hint, f"convex-backend admin-key --data-dir {os.path.abspath(data_dir)}"
        )
        configured = build(make_config(self.mktemp(), admin_key="convex-self-hosted|abcd"), reactor)
        self.assertIsNone(configured._key_hint)
        self.assertTrue(configured.deployment.admin_keys.is_valid("convex-self-hosted|abcd"))
