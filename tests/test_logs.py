"""The level-filtered log observer that the plugin gives twistd."""

from __future__ import annotations

import io

from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from convex_backend import logs


class ObserverTests(SynchronousTestCase):
    def observe(self, level: str) -> str:
        stream = io.StringIO()
        self.patch(logs.sys, "stdout", stream)
        observer = logs.make_observer(level, {"nodaemon": True, "logfile": None})
        log = Logger(namespace="convex.test", observer=observer)
        log.debug("a debug line")
        log.info("an info line")
        log.warn("a warning line")
        log.error("an error line")
        return stream.getvalue()

    def test_info_hides_debug(self) -> None:
        text = self.observe("info")
        self.assertNotIn("a debug line", text)
        self.assertIn("an info line", text)
        self.assertEqual(len(text.strip().splitlines()), 3)

    def test_error_keeps_only_errors(self) -> None:
        text = self.observe("error")
        self.assertEqual(text.count("\n"), 1)
        self.assertIn("an error line", text)

    def test_debug_keeps_everything(self) -> None:
        self.assertIn("a debug line", self.observe("debug"))

    def test_daemon_mode_writes_a_log_file(self) -> None:
        path = self.mktemp()
        observer = logs.make_observer("info", {"nodaemon": False, "logfile": path})
        Logger(namespace="convex.test", observer=observer).info("to the file")
        with open(path) as f:
            self.assertIn("to the file", f.read())
