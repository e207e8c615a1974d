"""Benchmark of scheduled functions: throughput and lag through the real daemon.

    python -m bench.scheduler [--seconds 5] [--jobs 2000] [--spread-jobs 500]
        [--spread 5] [--parallelism 10] [--workers 2]

Starts ``twistd -n convex`` (bench/daemon.py) with a small app and prints:

* **burst**: a public mutation schedules ``--jobs`` jobs with
  ``ctx.scheduler.run_after(0, internal.sched.job, ...)`` (at most 1000 per
  mutation, so several mutations); the jobs completed per second, from the
  first scheduling call to the last completion (``/metrics``), and their lag
  (mostly the queue here: the k-th job waits for the k-1 before it);
* **spread**: ``--spread-jobs`` jobs scheduled with ``run_at``, due evenly over
  ``--spread`` seconds (from 0.5 s on), so that the scheduler is not
  saturated: the lag of its timer and a lone run;
* **direct**: the same mutation body called through ``POST /api/mutation``
  by ``--parallelism`` keep-alive connections for ``--seconds`` (the scheduler
  runs ``--scheduler-parallelism`` jobs at once), to compare jobs/s with
  mutations/s.

The lag is *start minus scheduledTime*: each job mutation records
``time.time()`` (a mutation's clock, frozen at its start) minus the due time
its scheduling mutation computed with the same clock. The mean of the
daemon's ``convex_scheduler_lag_seconds`` histogram is printed next to it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import time
import urllib.request

from bench.daemon import BenchError, Daemon, in_parallel, post

MODULE = """
import time

from convex_backend.server import internal, internal_mutation, mutation, query, v

JOB_ARGS = {"table": v.string(), "due": v.number()}


@mutation(args={"table": v.string(), "n": v.number()})
def schedule(ctx, args):
    due = time.time() * 1000
    for _ in range(int(args["n"])):
        ctx.scheduler.run_after(0, internal.sched.job, {"table": args["table"], "due": due})


@mutation(args={"table": v.string(), "due": v.array(v.number())})
def schedule_at(ctx, args):
    for due in args["due"]:
        ctx.scheduler.run_at(due, internal.sched.job, {"table": args["table"], "due": due})


def record(ctx, args):
    ctx.db.insert(args["table"], {"lag": time.time() * 1000 - args["due"]})


@internal_mutation(args=JOB_ARGS)
def job(ctx, args):
    record(ctx, args)


@mutation(args=JOB_ARGS)
def direct(ctx, args):
    record(ctx, args)


@query(args={"table": v.string()})
def lags(ctx, args):
    return [doc["lag"] for doc in ctx.db.query(args["table"]).collect()]
"""

#: ``ctx.scheduler`` refuses more than this many jobs from one mutation.
MAX_PER_MUTATION = 1000
#: Spread jobs are due from this long after they are scheduled (once committed).
LEAD_MS = 500.0


def completed_jobs(url: str) -> float:
    """``convex_scheduler_jobs_completed{outcome="success"}`` from ``/metrics``."""
    with urllib.request.urlopen(url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    match = re.search(
        r'^convex_scheduler_jobs_completed(?:_total)?\{outcome="success"\} (\S+)$',
        text,
        re.MULTILINE,
    )
    return float(match.group(1)) if match else 0.0


def lag_histogram_mean(url: str) -> tuple[float, float]:
    """(count, mean seconds) of ``convex_scheduler_lag_seconds``."""
    with urllib.request.urlopen(url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    count = re.search(r"^convex_scheduler_lag_seconds_count (\S+)$", text, re.MULTILINE)
    total = re.search(r"^convex_scheduler_lag_seconds_sum (\S+)$", text, re.MULTILINE)
    if not count or not total or float(count.group(1)) == 0:
        return 0.0, 0.0
    return float(count.group(1)), float(total.group(1)) / float(count.group(1))


def call(url: str, kind: str, path: str, args: dict) -> object:
    answer = post(f"{url}/api/{kind}", {"path": path, "args": args, "format": "json"})
    if answer.get("status") != "success":
        raise BenchError(f"{path} failed: {answer}")
    return answer["value"]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def lag_line(label: str, lags_ms: list[float]) -> str:
    return (
        f"{label} lag (start - scheduledTime, {len(lags_ms):,} jobs): "
        f"p50 {percentile(lags_ms, 0.5):,.1f} ms, p99 {percentile(lags_ms, 0.99):,.1f} ms, "
        f"max {max(lags_ms):,.1f} ms"
    )


def run_jobs(url: str, table: str, jobs: int, spread_ms: float, timeout: float) -> float:
    """Schedule ``jobs`` jobs (due at once, or evenly over ``spread_ms`` from
    :data:`LEAD_MS` on) and wait for them; returns the seconds from the first
    scheduling call to the last completion."""
    before = completed_jobs(url)
    started = time.perf_counter()
    if spread_ms:
        # The daemon runs on this machine: its clock is this one.
        base = time.time() * 1000 + LEAD_MS
        due = [base + spread_ms * i / jobs for i in range(jobs)]
        for first in range(0, jobs, MAX_PER_MUTATION):
            batch = due[first : first + MAX_PER_MUTATION]
            call(url, "mutation", "sched:schedule_at", {"table": table, "due": batch})
    else:
        for first in range(0, jobs, MAX_PER_MUTATION):
            n = min(MAX_PER_MUTATION, jobs - first)
            call(url, "mutation", "sched:schedule", {"table": table, "n": n})
    deadline = started + timeout
    while completed_jobs(url) - before < jobs:
        if time.perf_counter() > deadline:
            raise BenchError(f"the {jobs} jobs of {table} did not complete within {timeout:.0f} s")
        time.sleep(0.02)
    return time.perf_counter() - started


def direct_mutations(url: str, seconds: float, connections: int) -> float:
    """Mutations/s of ``sched:direct`` through ``POST /api/mutation``."""
    body = json.dumps(
        {"path": "sched:direct", "args": {"table": "direct", "due": 0}, "format": "json"}
    ).encode()

    def mutate(_index: int, connection: http.client.HTTPConnection) -> int:
        connection.request("POST", "/api/mutation", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = response.read()
        if response.status != 200:
            raise BenchError(f"direct mutations failed: {response.status} {answer[:200]!r}")
        return len(answer)

    calls, _moved, elapsed = in_parallel(url, connections, seconds, mutate)
    return calls / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="of direct mutations")
    parser.add_argument("--jobs", type=int, default=2000, help="jobs due at once")
    parser.add_argument("--spread-jobs", type=int, default=500, help="jobs due over --spread")
    parser.add_argument("--spread", type=float, default=5.0, help="seconds")
    parser.add_argument("--parallelism", type=int, default=10, help="--scheduler-parallelism")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.jobs < 1 or args.spread_jobs < 1 or args.parallelism < 1:
        raise SystemExit("--jobs, --spread-jobs and --parallelism must be at least 1")
    daemon = Daemon(
        args.workers,
        {"sched.py": MODULE},
        ("--scheduler-parallelism", str(args.parallelism)),
    )
    try:
        daemon.start()
        url = daemon.url
        # Warm up: the workers import the module, the tables exist.
        run_jobs(url, "warmup", 20, 0, 60)
        call(url, "mutation", "sched:direct", {"table": "direct", "due": 0})
        burst_seconds = run_jobs(url, "burst", args.jobs, 0, 60 + args.jobs / 10)
        burst = call(url, "query", "sched:lags", {"table": "burst"})
        spread_seconds = run_jobs(
            url, "spread", args.spread_jobs, args.spread * 1000, 60 + args.spread * 2
        )
        spread = call(url, "query", "sched:lags", {"table": "spread"})
        observed, mean_lag = lag_histogram_mean(url)
        direct = direct_mutations(url, args.seconds, args.parallelism)
        daemon_rss, workers_rss = daemon.memory()
    except BenchError as e:
        raise SystemExit(str(e))
    finally:
        daemon.stop()
    jobs_per_second = args.jobs / burst_seconds
    print(
        f"scheduled mutations/s ({args.jobs:,} jobs due at once via run_after(0), "
        f"scheduler parallelism {args.parallelism}): {jobs_per_second:,.0f}  "
        f"(all done {burst_seconds:.2f} s after the first scheduling call)"
    )
    print(lag_line("burst", burst))
    print(
        f"spread: {args.spread_jobs:,} jobs due evenly over {args.spread:g} s, "
        f"all done after {spread_seconds:.2f} s"
    )
    print(lag_line("spread", spread))
    print(
        f"convex_scheduler_lag_seconds: {observed:,.0f} observations, "
        f"mean {mean_lag * 1000:,.1f} ms (warm-up, burst and spread)"
    )
    print(
        f"direct mutations/s (same body, POST /api/mutation, {args.parallelism} keep-alive "
        f"connections): {direct:,.0f}  -> a scheduled mutation runs at "
        f"{jobs_per_second / direct:.2f}x the direct rate"
    )
    print(
        f"(daemon with {args.workers} workers per pool: RSS {daemon_rss:.0f} MiB, workers "
        f"{', '.join(f'{w:.0f}' for w in workers_rss)} MiB; {os.cpu_count()} CPUs shared "
        f"with this client)"
    )


if __name__ == "__main__":
    main()
