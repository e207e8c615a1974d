"""Benchmark of the WebSocket sync protocol: fan-out latency and idle-session memory.

    python -m bench.sync [--subscribers 1,100,1000] [--rounds 20] [--idle 5000]
                         [--groups 1] [--workers 2] [--py-spy DIR]

Starts the real daemon (``twistd -n convex``) on a temporary data dir and deploys
``counter:get`` (a query reading the one document of ``counters``) and
``counter:put`` (a mutation setting its ``n``). Load comes from
:mod:`bench.sync_load`: protocol-faithful autobahn clients in separate processes
(Connect, ModifyQuerySet Add, then only consuming Transitions).

Fan-out, for each N: N subscribers of ``counter:get`` wait for their first value;
then, R times (after a few uncounted warm-up rounds), a writer connection (in
this process) sends ``Mutation counter:put`` with a new value and every
subscriber timestamps the Transition carrying it. Per subscriber and round, the
latency is measured

* from the mutation's **commit ts** (the ``ts`` of its MutationResponse: the
  daemon's ``time.time_ns()`` when it committed, just before the fsync; this
  machine's clocks are shared by every process, so it is comparable). This is
  the figure the target is about;
* from the writer **sending** the Mutation (an upper bound), and
* from the writer receiving its **MutationResponse** (durable by then). The
  daemon may write that response only after some of the fan-out work, so this
  can be much later than the commit; a subscriber may even be told first.

Also printed: when the first and the last subscriber of each round had the
value, and the CPU time the daemon and the load generator used per round.

Idle memory: on a fresh daemon, S sessions connect (Connect only), then each
adds one subscription to the same query; the daemon's RSS (VmRSS, its own
process; the function workers are listed apart, they do not grow with sessions)
is read before, after connecting and after subscribing, with the daemon's CPU use
while idle.

The load generator shares the machine's cores with the daemon, so the figures
include its time. Targets (issue 6, on 2 cores): p99 fan-out to 1,000 subscribers
within 250 ms; 5,000 idle sessions within 500 MiB RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.daemon import BenchError, Daemon, cpu_seconds, post, raise_fd_limit, rss_mib
from bench.sync_load import SyncClient, close_clients, connect_clients, decode_u64

REPO = Path(__file__).resolve().parent.parent

MODULE = """
from convex_backend.server import mutation, query, v

@query(args={})
def get(ctx, args):
    doc = ctx.db.query("counters").first()
    return None if doc is None else doc["n"]

@mutation(args={"n": v.number()})
def put(ctx, args):
    doc = ctx.db.query("counters").first()
    if doc is None:
        ctx.db.insert("counters", {"n": args["n"]})
    else:
        ctx.db.patch(doc["_id"], {"n": args["n"]})
    return args["n"]
"""

QUERY = "counter:get"
MUTATION = "counter:put"
PAGE = 4096
TARGET_P99_MS = 250.0
TARGET_IDLE_MIB = 500.0


# -- subscriber groups (bench.sync_load processes) --------------------------------------


class GroupProcess:
    """One ``python -m bench.sync_load`` process and its JSON-lines events."""

    def __init__(self, process: asyncio.subprocess.Process, count: int) -> None:
        self.process = process
        self.count = count
        self.events: asyncio.Queue = asyncio.Queue()
        self.stderr = Path(os.devnull)
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(
        cls, url: str, count: int, subscribe: bool, timeout: float, stderr: Path
    ) -> GroupProcess:
        command = [sys.executable, "-m", "bench.sync_load", "--url", url, "--count", str(count)]
        command += ["--path", QUERY, "--timeout", str(timeout)]
        if not subscribe:
            command.append("--no-subscribe")
        with open(stderr, "w") as errors:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=errors,
                cwd=str(REPO),
                env={**os.environ, "PYTHONPATH": str(REPO)},
                limit=64 * 1024 * 1024,
            )
        group = cls(process, count)
        group.stderr = stderr
        return group

    def stderr_tail(self) -> str:
        try:
            return "\n".join(self.stderr.read_text().splitlines()[-20:])
        except OSError:
            return ""

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while True:
            line = await self.process.stdout.readline()
            if not line:
                await self.events.put({"event": "exit", "code": await self.process.wait()})
                return
            await self.events.put(json.loads(line))

    async def expect(self, kind: str, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                event = await asyncio.wait_for(self.events.get(), max(left, 0.001))
            except asyncio.TimeoutError:
                raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
            if event["event"] == kind:
                return event
            if event["event"] in ("error", "exit"):
                raise BenchError(
                    f"a load generator failed while waiting for {what}: {event}\n"
                    + self.stderr_tail()
                )

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")

    async def stop(self) -> None:
        if self.process.returncode is None:
            try:
                self.send("quit")
                await asyncio.wait_for(self.process.wait(), 10)
            except (asyncio.TimeoutError, BrokenPipeError, ConnectionResetError):
                self.process.kill()
                await self.process.wait()
        self.reader.cancel()


def split(total: int, parts: int) -> list[int]:
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def start_groups(
    daemon: Daemon, total: int, groups: int, subscribe: bool, timeout: float
) -> tuple[list[GroupProcess], float]:
    started = time.monotonic()
    procs = []
    for i, n in enumerate(split(total, groups)):
        stderr = Path(daemon.directory) / f"load-{total}-{i}.log"
        procs.append(await GroupProcess.start(daemon.ws_url, n, subscribe, timeout, stderr))
    try:
        what = f"{total} sessions to connect" + (" and get their first value" if subscribe else "")
        for group in procs:
            await group.expect("ready", timeout, what)
    except BaseException:
        await asyncio.gather(*(group.stop() for group in procs))
        raise
    return procs, time.monotonic() - started


# -- figures --------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (
        f"p50 {percentile(ms, 0.5):6.1f} ms  p99 {percentile(ms, 0.99):6.1f} ms  "
        f"(min {min(ms):6.1f}, max {max(ms):6.1f})"
    )


def profile_summary(path: Path, n: int, top: int = 25) -> str:
    """The top functions (self and inclusive) of a py-spy ``raw`` (collapsed stacks) file."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        return f"  (no py-spy profile: {e})"
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [re.sub(r"^process \d+:\"[^\"]*\";?", "", f) for f in stack.split(";")]
        # Per function, not per line: "name (file:line)" -> "name (file)".
        frames = [re.sub(r":\d+\)$", ")", f) for f in frames if f and not f.startswith("thread ")]
        if not frames:
            continue
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    if not total:
        return "  (empty py-spy profile)"
    out = [f"  py-spy profile of the daemon during fan-out to {n} ({total} samples), {path}"]
    # Inclusive figures only for the project's and autobahn's frames (the rest is
    # the reactor's own call chain, which includes everything).
    ours = {f: c for f, c in inclusive.items() if "convex_backend/" in f or "autobahn/" in f}
    for title, table in (("self", own), ("inclusive (convex_backend, autobahn)", ours)):
        out.append(f"    top {title}:")
        for frame, count in sorted(table.items(), key=lambda item: -item[1])[:top]:
            out.append(f"      {count * 100 / total:5.1f}%  {frame}")
    return "\n".join(out)


# -- the benchmarks ---------------------------------------------------------------------


async def fan_out(
    daemon: Daemon,
    writer: SyncClient,
    n: int,
    rounds: int,
    warmup: int,
    groups: int,
    timeout: float,
    next_value: list[int],
    py_spy: str | None,
) -> dict[str, Any]:
    procs, connect_seconds = await start_groups(daemon, n, groups, True, timeout)
    spy = profile = None
    try:
        if py_spy:
            Path(py_spy).mkdir(parents=True, exist_ok=True)
            profile = Path(py_spy) / f"fanout-{n}.txt"
            spy = subprocess.Popen(
                ["py-spy", "record", "--pid", str(daemon.pid), "--rate", "250", "--nonblocking"]
                + ["--format", "raw", "-o", str(profile)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            await asyncio.sleep(1.0)
        cpu_before = cpu_seconds(daemon.pid)
        load_before = sum(cpu_seconds(group.process.pid) for group in procs)
        # Commit timestamps are the daemon's time.time_ns() at commit (before the
        # fsync); this converts them to this machine's monotonic clock.
        offset = time.time() - time.monotonic()
        marks: dict[float, tuple[float, float, float]] = {}
        for r in range(warmup + rounds):
            value = next_value[0]
            next_value[0] += 1
            sent, response = writer.mutation(MUTATION, {"n": value})
            try:
                message, received = await asyncio.wait_for(response, timeout)
            except asyncio.TimeoutError:
                raise BenchError(f"no MutationResponse within {timeout:.0f} s (N={n})")
            if not message["success"]:
                raise BenchError(f"the mutation failed: {message}")
            for group in procs:
                event = await group.expect("got", timeout, f"all {n} subscribers to get {value}")
                if event["value"] != value:
                    raise BenchError(f"expected value {value}, subscribers got {event['value']}")
            if r >= warmup:
                committed = decode_u64(message["ts"]) / 1e9 - offset
                marks[float(value)] = (sent, received, committed)
            # Let the writer's own Transition and the sockets settle between rounds.
            await asyncio.sleep(0.05)
        cpu = cpu_seconds(daemon.pid) - cpu_before
        load_cpu = sum(cpu_seconds(group.process.pid) for group in procs) - load_before
        for group in procs:
            group.send("report")
        reports = [await group.expect("report", timeout, "the latency report") for group in procs]
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(timeout=60)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
        await asyncio.gather(*(group.stop() for group in procs))
    from_send: list[float] = []
    from_commit: list[float] = []
    # Per round: when its first and its last subscriber had the value (from commit ts).
    first: dict[float, float] = {}
    last: dict[float, float] = {}
    from_response: list[float] = []
    for report in reports:
        for key, times in report["times"].items():
            value = json.loads(key)
            if isinstance(value, (int, float)) and float(value) in marks:
                sent, received, committed = marks[float(value)]
                from_send += [t - sent for t in times]
                from_commit += [t - committed for t in times]
                first[float(value)] = min(first.get(float(value), 1e9), min(times) - committed)
                last[float(value)] = max(last.get(float(value), -1e9), max(times) - committed)
                from_response += [t - received for t in times]
    expected = n * rounds
    if len(from_send) != expected:
        raise BenchError(f"expected {expected} samples for N={n}, got {len(from_send)}")
    return {
        "profile": profile_summary(profile, n) if spy is not None else "",
        "n": n,
        "connect_seconds": connect_seconds,
        "from_send": from_send,
        "from_commit": from_commit,
        "first": list(first.values()),
        "last": list(last.values()),
        "from_response": from_response,
        "send_to_commit": [c - s for s, _, c in marks.values()],
        "commit_to_response": [r - c for _, r, c in marks.values()],
        "cpu_per_round": cpu / (warmup + rounds),
        "load_cpu_per_round": load_cpu / (warmup + rounds),
    }


async def settle(daemon: Daemon, seconds: float) -> tuple[float, float]:
    """Wait, then (daemon RSS in MiB, daemon CPU share while waiting)."""
    cpu = cpu_seconds(daemon.pid)
    await asyncio.sleep(seconds)
    return rss_mib(daemon.pid), (cpu_seconds(daemon.pid) - cpu) / seconds


async def idle_memory(daemon: Daemon, sessions: int, groups: int, timeout: float) -> list[str]:
    lines = []
    await asyncio.sleep(2.0)
    rss, workers = daemon.memory()
    workers_text = ", ".join(f"{w:.0f}" for w in workers)
    lines.append(f"  daemon RSS before any session:          {rss:7.1f} MiB")
    lines.append(f"  function workers (each, not counted):   {workers_text} MiB")
    procs, seconds = await start_groups(daemon, sessions, groups, False, timeout)
    try:
        lines.append(f"  {sessions} sessions connected (Connect sent) in {seconds:.1f} s")
        rss_connected, cpu = await settle(daemon, 10.0)
        lines.append(
            f"  daemon RSS, {sessions} sessions, no subscriptions: {rss_connected:7.1f} MiB"
            f"  (+{(rss_connected - rss) * 1024 / sessions:.1f} KiB/session;"
            f" idle CPU {cpu * 100:.0f}%)"
        )
        started = time.monotonic()
        for group in procs:
            group.send("subscribe")
        for group in procs:
            await group.expect("ready", timeout, f"{sessions} sessions to get their first value")
        lines.append(
            f"  {sessions} sessions subscribed to {QUERY} in {time.monotonic() - started:.1f} s"
        )
        rss_subscribed, cpu = await settle(daemon, 10.0)
        lines.append(
            f"  daemon RSS, {sessions} sessions, 1 subscription each: {rss_subscribed:7.1f} MiB"
            f"  (+{(rss_subscribed - rss) * 1024 / sessions:.1f} KiB/session;"
            f" idle CPU {cpu * 100:.0f}%)"
        )
        verdict = "met" if rss_subscribed <= TARGET_IDLE_MIB else "MISSED"
        lines.append(f"  target {TARGET_IDLE_MIB:.0f} MiB for {sessions} idle sessions: {verdict}")
    finally:
        await asyncio.gather(*(group.stop() for group in procs))
    return lines


async def run(args: argparse.Namespace) -> None:
    # SIGTERM stops the bench like ^C: the finally blocks stop the daemon and generators.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    counts = [int(n) for n in args.subscribers.split(",") if n.strip()]
    limit = raise_fd_limit(max(counts + [args.idle]) * 2 + 1024)
    print(
        f"sync bench: {os.cpu_count()} CPUs shared by the daemon ({args.workers} function workers),"
        f" {args.groups} load generator process(es) and the writer; RLIMIT_NOFILE {limit}",
        flush=True,
    )
    if counts:
        print(
            f"\nFan-out: one mutation ({MUTATION}) per round, {args.rounds} rounds after"
            f" {args.warmup} warm-up. Latency per subscriber and round: until it has received"
            f" the Transition with the new value of {QUERY}, measured from the mutation's"
            " commit ts (the daemon's wall clock when it committed, before the fsync), from"
            " the writer sending the Mutation (upper bound), and from the writer receiving"
            " its MutationResponse (the daemon may send that after fan-out work).",
            flush=True,
        )
        daemon = Daemon(args.workers, {"counter.py": MODULE})
        try:
            daemon.start()
            post(daemon.url + "/api/mutation", {"path": MUTATION, "args": {"n": 0}})
            writer = (await connect_clients(daemon.ws_url, 1, timeout=args.timeout))[0]
            next_value = [1]
            results = []
            for n in counts:
                result = await fan_out(
                    daemon,
                    writer,
                    n,
                    args.rounds,
                    args.warmup,
                    args.groups,
                    args.timeout,
                    next_value,
                    args.py_spy,
                )
                results.append(result)
                print(
                    f"  N={n:<5} from commit ts:        {summary(result['from_commit'])}\n"
                    f"  {'':7} from send:             {summary(result['from_send'])}\n"
                    f"  {'':7} from MutationResponse: {summary(result['from_response'])}\n"
                    f"  {'':7} per round, first subscriber: p50"
                    f" {percentile(result['first'], 0.5) * 1000:.1f} ms, last subscriber: p50"
                    f" {percentile(result['last'], 0.5) * 1000:.1f} ms,"
                    f" max {max(result['last']) * 1000:.1f} ms (from commit ts)\n"
                    f"  {'':7} writer: send -> commit ts"
                    f" p50 {percentile(result['send_to_commit'], 0.5) * 1000:.1f} ms,"
                    f" commit ts -> MutationResponse"
                    f" p50 {percentile(result['commit_to_response'], 0.5) * 1000:.1f} ms;"
                    f" CPU per round: daemon {result['cpu_per_round'] * 1000:.0f} ms,"
                    f" load generator {result['load_cpu_per_round'] * 1000:.0f} ms;"
                    f" {n} subscribed in {result['connect_seconds']:.1f} s",
                    flush=True,
                )
                if result["profile"]:
                    print(result["profile"], flush=True)
            close_clients([writer])
            try:
                await asyncio.wait_for(asyncio.shield(writer.closed), 5)
            except asyncio.TimeoutError:
                pass
            for result in results:
                if result["n"] == 1000:
                    p99 = percentile(result["from_commit"], 0.99) * 1000
                    verdict = "met" if p99 <= TARGET_P99_MS else "MISSED"
                    print(
                        f"  target p99 {TARGET_P99_MS:.0f} ms from commit to 1,000 subscribers:"
                        f" {verdict} ({p99:.1f} ms from commit ts,"
                        f" {percentile(result['from_send'], 0.99) * 1000:.1f} ms from send)"
                    )
        finally:
            daemon.stop()
    if args.idle:
        print(f"\nIdle memory ({args.idle} sessions, fresh daemon):", flush=True)
        daemon = Daemon(args.workers, {"counter.py": MODULE})
        try:
            daemon.start()
            post(daemon.url + "/api/mutation", {"path": MUTATION, "args": {"n": 0}})
            for line in await idle_memory(daemon, args.idle, args.groups, args.timeout):
                print(line, flush=True)
        finally:
            daemon.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", default="1,100,1000", help="comma-separated N")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2, help="rounds not counted")
    parser.add_argument("--idle", type=int, default=5000, help="idle sessions (0: skip)")
    parser.add_argument("--groups", type=int, default=1, help="load generator processes")
    parser.add_argument("--workers", type=int, default=2, help="daemon function workers")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds for any one step")
    parser.add_argument("--py-spy", metavar="DIR", help="record the daemon with py-spy per N")
    args = parser.parse_args()
    if args.py_spy and shutil.which("py-spy") is None:
        raise SystemExit("--py-spy needs py-spy: pip install py-spy")
    try:
        asyncio.run(run(args))
    except BenchError as e:
        raise SystemExit(f"bench.sync failed: {e}")
    except (KeyboardInterrupt, asyncio.CancelledError):
        raise SystemExit("bench.sync interrupted; the daemon and the load generators were stopped")


if __name__ == "__main__":
    main()
