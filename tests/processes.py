"""Subprocesses for tests, run on the reactor so it keeps serving meanwhile."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import defer, reactor
from twisted.internet.protocol import ProcessProtocol


class OutputCollector(ProcessProtocol):
    """Keeps a process's stdout and stderr; ``ended`` fires with its exit code."""

    def __init__(self) -> None:
        self.out = b""
        self.err = b""
        self.ended: defer.Deferred = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason) -> None:
        self.ended.callback(reason.value.exitCode)


def spawn(argv: list[str], *, env: dict[str, str], cwd: Path | str, protocol=None):
    """Start ``argv``; returns (process transport, protocol)."""
    protocol = protocol or OutputCollector()
    process = reactor.spawnProcess(protocol, argv[0], argv, env=env, path=str(cwd))
    return process, protocol


async def run_process(
    argv: list[str], *, env: dict[str, str], cwd: Path | str, timeout: float = 120
) -> tuple[int | None, str, str]:
    """Run a subprocess to its end; SIGKILL it after ``timeout``."""
    process, protocol = spawn(argv, env=env, cwd=cwd)
    timed_out = []

    def kill() -> None:
        timed_out.append(True)
        try:
            process.signalProcess("KILL")
        except Exception:
            pass

    timer = reactor.callLater(timeout, kill)
    code = await protocol.ended
    if timer.active():
        timer.cancel()
    out, err = protocol.out.decode("utf-8", "replace"), protocol.err.decode("utf-8", "replace")
    if timed_out:
        err += f"\n[killed after {timeout} s]"
    return code, out, err
