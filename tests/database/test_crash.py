"""Crash safety: SIGKILL a committing process, restart, check every acknowledged commit."""

from __future__ import annotations

import os
import random
import sys
from collections import Counter
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.database.fixtures import open_database, scan
from tests.processes import OutputCollector

REPO = Path(__file__).resolve().parents[2]


class _Writer(OutputCollector):
    def acks(self) -> set[int]:
        # A line cut off by the kill has no newline yet: only whole lines count.
        lines = self.out.decode().split("\n")[:-1]
        return {int(line[4:]) for line in lines if line.startswith("ACK ")}


class CrashSafetyTests(TestCase):
    timeout = 120

    async def run_and_kill(self, path: Path, start: int, kill_after: float) -> set[int]:
        writer = _Writer()
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        argv = [
            sys.executable,
            "-m",
            "tests.database.crash_writer",
            str(path),
            str(start),
        ]
        process = reactor.spawnProcess(writer, sys.executable, argv, env=env, path=str(REPO))
        while b"READY" not in writer.out:
            if writer.ended.called:
                self.fail(f"writer died: {writer.err.decode()}")
            await deferLater(reactor, 0.02, lambda: None)
        await deferLater(reactor, kill_after, lambda: None)
        process.signalProcess("KILL")
        await writer.ended
        return writer.acks()

    async def test_acknowledged_commits_survive_sigkill(self) -> None:
        directory = Path(self.mktemp()).absolute()
        directory.mkdir()
        path = directory / "crash.sqlite3"
        rng = random.Random(1234)
        acknowledged: set[int] = set()
        start = 0
        for round_ in range(4):
            acks = await self.run_and_kill(path, start, kill_after=0.3 + rng.random() * 0.7)
            self.assertTrue(acks, f"round {round_}: nothing was acknowledged")
            acknowledged |= acks
            start = max(acknowledged) + 1000

            db = await open_database(self, path)
            tx = db.begin()
            halves = Counter(doc["n"] for doc in tx.query(scan("pairs")))
            tx.close()
            await db.wait_for_idle()
            db.persistence.close()
            missing = [n for n in acknowledged if halves[float(n)] != 2]
            self.assertEqual(missing, [], f"round {round_}: acknowledged commits lost")
            partial = {n: c for n, c in halves.items() if c != 2}
            self.assertEqual(partial, {}, f"round {round_}: partial transactions visible")
