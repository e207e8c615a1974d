"""Run the real daemon (``twistd -n convex``) as a subprocess for end-to-end tests.

The checkout is put first on ``PYTHONPATH`` so that the code under test and its
twistd plugin are the checkout's, however the package was installed.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater

from tests.processes import OutputCollector

REPO = Path(__file__).resolve().parent.parent


def twistd_command() -> list[str]:
    script = Path(sys.executable).parent / "twistd"
    if script.exists():
        return [sys.executable, str(script)]
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


class Daemon:
    """One ``twistd -n convex`` process; ``api_url``/``site_url`` once started."""

    def __init__(self, data_dir: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = os.path.abspath(data_dir)
        self.args = list(args)
        self.env = env or {}
        self.protocol = OutputCollector()
        self.exit_code: int | None = None
        self.api_url = ""
        self.site_url = ""
        self.admin_key = ""

    def spawn(self) -> None:
        argv = twistd_command() + [
            "-n",
            "--pidfile=",
            "convex",
            "--data-dir",
            self.data_dir,
            "--host",
            "127.0.0.1",
            *self.args,
        ]
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "HOME": os.environ.get("HOME", "/tmp"),
            **self.env,
        }
        self.process = reactor.spawnProcess(self.protocol, argv[0], argv, env=env, path=str(REPO))
        self.protocol.ended.addCallback(self._ended)

    def _ended(self, code: int | None) -> int | None:
        self.exit_code = code
        return code

    @property
    def output(self) -> str:
        return (self.protocol.out + self.protocol.err).decode("utf-8", "replace")

    async def start(self, timeout: float = 20.0) -> Daemon:
        """Spawn and wait until both ports are listening (ports may be 0)."""
        self.spawn()
        waited = 0.0
        while waited < timeout:
            api = re.search(r"Serving api on (http://[^/\s]+)/", self.output)
            site = re.search(r"Serving http actions on (http://[^/\s]+)/", self.output)
            if api and site:
                self.api_url, self.site_url = api.group(1), site.group(1)
                self.admin_key = self._admin_key()
                return self
            if self.exit_code is not None or self.protocol.ended.called:
                raise RuntimeError(f"daemon exited early:\n{self.output}")
            await deferLater(reactor, 0.05, lambda: None)
            waited += 0.05
        self.kill()
        raise RuntimeError(f"daemon did not start in {timeout}s:\n{self.output}")

    def _admin_key(self) -> str:
        """The key the daemon checks (never in its log): as `convex-backend admin-key`."""
        from convex_backend.cli import AdminKeyOptions, admin_key

        flags = dict(zip(self.args, self.args[1:], strict=False))
        if "--admin-key" in flags:
            return flags["--admin-key"]
        environ = dict(self.env)
        if "--instance-secret" in flags:
            environ["INSTANCE_SECRET"] = flags["--instance-secret"]
        argv = ["--data-dir", self.data_dir]
        if "--instance-name" in flags:
            argv += ["--instance-name", flags["--instance-name"]]
        options = AdminKeyOptions()
        options.parseOptions(argv)
        return admin_key(options, environ)

    async def wait(self, timeout: float = 20.0) -> int | None:
        """Wait for the process to exit; SIGKILL it after ``timeout``."""
        timer = reactor.callLater(timeout, self.kill)
        code = await self.protocol.ended
        if timer.active():
            timer.cancel()
        return code

    def signal(self, signum: int = signal.SIGTERM) -> None:
        if self.exit_code is None and not self.protocol.ended.called:
            self.process.signalProcess(signum)

    def kill(self) -> defer.Deferred:
        """SIGKILL the process (if still running); fires once it has exited."""
        try:
            self.signal(signal.SIGKILL)
        except Exception:
            pass
        return defer.ensureDeferred(self._exited())

    async def _exited(self) -> None:
        while hasattr(self, "process") and not self.protocol.ended.called:
            await deferLater(reactor, 0.02, lambda: None)
