"""Benchmark of the HTTP function API: queries and mutations per second.

    python -m bench.http [--seconds 5] [--connections 64] [--workers 2]

Starts the real daemon (``twistd -n convex``) on a temporary data dir, deploys a
tiny module, and drives ``POST /api/query`` and ``POST /api/mutation`` with
`wrk` (Debian's ``wrk`` package) over many keep-alive connections on loopback.
wrk shares the machine's cores with the daemon, so the figures are a floor.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from bench.daemon import ITEMS_MODULE, BenchError, Daemon, post


def wrk(url: str, body: dict, seconds: float, connections: int, directory: str) -> float:
    script = Path(directory) / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
    )
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"wrk saw {errors.group(1)} failed responses:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench.http needs wrk: apt-get install wrk")
    daemon = Daemon(args.workers, {"bench.py": ITEMS_MODULE})
    try:
        daemon.start()
        url = daemon.url
        doc = post(url + "/api/mutation", {"path": "bench:add", "args": {"n": 1}})["value"]
        mutations = wrk(
            url + "/api/mutation",
            {"path": "bench:add", "args": {"n": 1}, "format": "convex_encoded_json"},
            args.seconds,
            args.connections,
            daemon.directory,
        )
        queries = wrk(
            url + "/api/query",
            {"path": "bench:get", "args": {"id": doc}, "format": "convex_encoded_json"},
            args.seconds,
            args.connections,
            daemon.directory,
        )
    except BenchError as e:
        raise SystemExit(str(e))
    finally:
        daemon.stop()
    print(
        f"HTTP mutations/s ({args.connections} keep-alive connections, wrk -t2): {mutations:,.0f}"
    )
    print(f"HTTP queries/s ({args.connections} keep-alive connections, wrk -t2): {queries:,.0f}")
    print(f"(daemon with {args.workers} workers per pool; {os.cpu_count()} CPUs shared with wrk)")


if __name__ == "__main__":
    main()
