"""The real daemon for benchmarks: ``twistd -n convex`` on a temporary data dir.

:class:`Daemon` starts it (PYTHONPATH on this checkout), finds its URL and admin
key in its log, deploys the benchmark's modules, reports its memory and CPU,
and stops it with its function workers, whatever happens to the benchmark.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from convex_backend.auth.admin_key import derive_admin_key, load_or_create_instance_secret
from convex_backend.config import DEFAULT_INSTANCE_NAME

REPO = Path(__file__).resolve().parent.parent


#: The app of the function and HTTP benchmarks: one insert, one get.
ITEMS_MODULE = """
from convex_backend.server import mutation, query, v

@mutation(args={"n": v.number()})
def add(ctx, args):
    return ctx.db.insert("items", {"n": args["n"]})

@query(args={"id": v.id("items")})
def get(ctx, args):
    return ctx.db.get(args["id"])
"""


class BenchError(Exception):
    """A step failed; the message says which."""


# -- the daemon ----------------------------------------------------------------------------


def raise_fd_limit(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def die_with_parent() -> None:
    """In the daemon's child: get SIGTERM if the bench dies without stopping it."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def post(url: str, body: dict, key: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Convex {key}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The ppid is the 2nd field after the parenthesised command name.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


def rss_mib(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else 0.0


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the ")".
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Daemon:
    """``twistd -n convex`` on a temporary data dir, with its URL and admin key."""

    def __init__(
        self, workers: int, modules: dict[str, str], extra_args: tuple[str, ...] = ()
    ) -> None:
        self.workers = workers
        self.modules = modules
        #: More ``twistd convex`` flags, e.g. ``("--scheduler-parallelism", "20")``.
        self.extra_args = tuple(extra_args)
        self.directory = tempfile.mkdtemp(prefix="bench-")
        self.log_path = Path(self.directory) / "daemon.log"
        self.process: subprocess.Popen | None = None
        self.url = self.key = ""
        self.worker_pids: list[int] = []

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1) + "/api/1.48.0/sync"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def start(self) -> None:
        log = open(self.log_path, "w")
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        # The raised RLIMIT_NOFILE of this process is inherited by the daemon.
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from twisted.scripts.twistd import run; run()",
                "-n",
                "--pidfile=",
                "convex",
                "--port",
                "0",
                "--site-port",
                "0",
                "--host",
                "127.0.0.1",
                "--data-dir",
                self.directory,
                "--workers",
                str(self.workers),
                "--log-level",
                "info",
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.directory,
            preexec_fn=die_with_parent,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.1)
            text = self.log_path.read_text()
            api = re.search(r"Serving api on (http://\S+?)/", text)
            if api:
                self.url = api.group(1)
                self.key = derive_admin_key(
                    DEFAULT_INSTANCE_NAME, load_or_create_instance_secret(Path(self.directory))
                )
                break
            if self.process.poll() is not None:
                break
        else:
            raise BenchError("the daemon did not start within 60 s:\n" + self.log_tail())
        if not self.url:
            raise BenchError("the daemon exited while starting:\n" + self.log_tail())
        modules = [{"path": path, "source": source} for path, source in self.modules.items()]
        post(self.url + "/api/deploy", {"modules": modules}, self.key)
        self.worker_pids = children_of(self.pid)

    def memory(self) -> tuple[float, list[float]]:
        """(daemon RSS, [RSS of each worker]) in MiB."""
        return rss_mib(self.pid), [rss_mib(pid) for pid in children_of(self.pid)]

    def stop(self) -> None:
        if self.process is None:
            return
        workers = set(self.worker_pids) | set(children_of(self.pid))
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print("the daemon did not stop within 30 s of SIGTERM: killing it", file=sys.stderr)
                self.process.kill()
                self.process.wait()
        deadline = time.monotonic() + 10
        for pid in workers:
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            if Path(f"/proc/{pid}").exists():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.process = None
        shutil.rmtree(self.directory, ignore_errors=True)


def in_parallel(
    url: str,
    connections: int,
    seconds: float,
    work: Callable[[int, http.client.HTTPConnection], int],
) -> tuple[int, int, float]:
    """Run ``work(thread index, connection)`` (which returns bytes moved) in a loop on
    ``connections`` threads for ``seconds``; returns (calls, bytes, elapsed seconds).
    A call started before the deadline is finished."""
    parts = urlsplit(url)
    calls = [0] * connections
    moved = [0] * connections
    errors: list[str] = []
    deadline = time.perf_counter() + seconds

    def loop(index: int) -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        try:
            while time.perf_counter() < deadline and not errors:
                moved[index] += work(index, connection)
                calls[index] += 1
        except (OSError, BenchError, http.client.HTTPException) as e:
            errors.append(str(e) or repr(e))
        finally:
            connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise BenchError(errors[0])
    return sum(calls), sum(moved), elapsed
