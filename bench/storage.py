"""Benchmark of file storage over HTTP: uploads and downloads through the real daemon.

    python -m bench.storage [--seconds 5] [--connections 16] [--large-files 3]

Starts ``twistd -n convex`` (bench/daemon.py), gets an upload URL from the
admin ``POST /api/storage/generate_upload_url`` and prints:

* the daemon's resident memory during each 50 MiB ``POST /api/storage/upload``
  (the body is spooled to disk as it arrives, so it should grow by much less
  than the file), and the large files' upload rate over one connection;
* 10 KiB uploads/s over ``--connections`` keep-alive connections;
* ``GET /api/storage/<id>`` downloads/s and MiB/s of the 10 KiB files and of
  the 50 MiB ones, over ``--connections`` keep-alive connections (every body
  read to its end and its length checked).

The clients are threads of this process using ``http.client``; they share the
machine's cores with the daemon, so the figures are a floor.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from bench.daemon import BenchError, Daemon, in_parallel, post, rss_mib

MODULE = """
from convex_backend.server import query


@query
def ping(ctx):
    return "pong"
"""

KIB = 1024
MIB = 1024 * 1024
SMALL = 10 * KIB
LARGE = 50 * MIB
CHUNK = MIB


def upload_token(url: str, key: str) -> str:
    upload_url = post(url + "/api/storage/generate_upload_url", {}, key)["uploadUrl"]
    return parse_qs(urlsplit(upload_url).query)["token"][0]


def upload(connection: http.client.HTTPConnection, token: str, body: bytes) -> str:
    connection.request(
        "POST",
        f"/api/storage/upload?token={token}",
        body,
        {"Content-Type": "application/octet-stream"},
    )
    response = connection.getresponse()
    answer = response.read()
    if response.status != 200:
        raise BenchError(f"upload failed: {response.status} {answer[:200]!r}")
    return json.loads(answer)["storageId"]


def download(connection: http.client.HTTPConnection, storage_id: str, buffer: bytearray) -> int:
    """GET one file, reading its body to the end; returns its length."""
    connection.request("GET", f"/api/storage/{storage_id}")
    response = connection.getresponse()
    if response.status != 200:
        raise BenchError(f"download failed: {response.status} {response.read()[:200]!r}")
    total = 0
    view = memoryview(buffer)
    while True:
        n = response.readinto(view)
        if not n:
            return total
        total += n


class PeakRss:
    """The highest RSS of ``pid`` while in the ``with`` block: sampled every
    2 ms, and the kernel's own high-water mark (VmHWM) where it can be reset."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._hwm = False

    def __enter__(self) -> PeakRss:
        try:
            # "5" resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0).
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self._hwm = True
        except OSError:
            pass
        self.peak = rss_mib(self.pid)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._done.wait(0.002):
            self.peak = max(self.peak, rss_mib(self.pid))

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        if self._hwm:
            try:
                status = Path(f"/proc/{self.pid}/status").read_text()
            except OSError:
                return
            match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
            if match:
                self.peak = max(self.peak, int(match.group(1)) / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="of each timed phase")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--large-files", type=int, default=3, help="50 MiB uploads")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.connections < 1 or args.large_files < 1:
        raise SystemExit("--connections and --large-files must be at least 1")
    daemon = Daemon(args.workers, {"bench.py": MODULE})
    lines: list[str] = []
    try:
        daemon.start()
        url = daemon.url
        parts = urlsplit(url)
        token = upload_token(url, daemon.key)
        idle_rss = rss_mib(daemon.pid)

        # 50 MiB uploads first, on a daemon that has not served any file yet.
        large_ids: list[str] = []
        peaks: list[float] = []
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        elapsed = 0.0
        try:
            for _ in range(args.large_files):
                body = os.urandom(LARGE)
                with PeakRss(daemon.pid) as peak:
                    started = time.perf_counter()
                    large_ids.append(upload(connection, token, body))
                    elapsed += time.perf_counter() - started
                peaks.append(peak.peak)
                del body
        finally:
            connection.close()
        worst = max(peaks)
        lines.append(
            f"50 MiB uploads (1 connection, {args.large_files} in a row): "
            f"{args.large_files / elapsed:.2f}/s, {args.large_files * LARGE / MIB / elapsed:,.0f} "
            f"MiB/s"
        )
        verdict = "below" if worst - idle_rss < LARGE / MIB else "NOT below"
        lines.append(
            f"daemon peak RSS during a 50 MiB upload: {worst:.0f} MiB ({worst - idle_rss:+.0f} MiB "
            f"over {idle_rss:.0f} MiB idle): {verdict} the file size (the body is spooled to disk)"
        )

        # 10 KiB uploads; each thread's bodies differ (a counter in a random prefix).
        small_ids: list[list[str]] = [[] for _ in range(args.connections)]
        bodies = [bytearray(os.urandom(SMALL)) for _ in range(args.connections)]

        def small_upload(index: int, connection: http.client.HTTPConnection) -> int:
            body = bodies[index]
            body[:8] = len(small_ids[index]).to_bytes(8, "big")
            small_ids[index].append(upload(connection, token, bytes(body)))
            return SMALL

        calls, moved, elapsed = in_parallel(url, args.connections, args.seconds, small_upload)
        lines.append(
            f"10 KiB uploads ({args.connections} connections): {calls / elapsed:,.0f}/s, "
            f"{moved / MIB / elapsed:,.1f} MiB/s"
        )

        ids = [storage_id for group in small_ids for storage_id in group]
        buffers = [bytearray(CHUNK) for _ in range(args.connections)]
        picks = [0] * args.connections

        def small_download(index: int, connection: http.client.HTTPConnection) -> int:
            picks[index] += 1
            storage_id = ids[(index * 7919 + picks[index]) % len(ids)]
            size = download(connection, storage_id, buffers[index])
            if size != SMALL:
                raise BenchError(f"{storage_id} came back with {size} bytes, not {SMALL}")
            return size

        calls, moved, elapsed = in_parallel(url, args.connections, args.seconds, small_download)
        lines.append(
            f"10 KiB downloads ({args.connections} connections, {len(ids):,} files): "
            f"{calls / elapsed:,.0f}/s, {moved / MIB / elapsed:,.1f} MiB/s"
        )

        def large_download(index: int, connection: http.client.HTTPConnection) -> int:
            picks[index] += 1
            storage_id = large_ids[(index + picks[index]) % len(large_ids)]
            size = download(connection, storage_id, buffers[index])
            if size != LARGE:
                raise BenchError(f"{storage_id} came back with {size} bytes, not {LARGE}")
            return size

        with PeakRss(daemon.pid) as peak:
            calls, moved, elapsed = in_parallel(url, args.connections, args.seconds, large_download)
        lines.append(
            f"50 MiB downloads ({args.connections} connections): {calls / elapsed:,.1f}/s, "
            f"{moved / MIB / elapsed:,.0f} MiB/s  (daemon peak RSS {peak.peak:.0f} MiB)"
        )
    except BenchError as e:
        raise SystemExit(str(e))
    finally:
        daemon.stop()
    for line in lines:
        print(line)
    print(f"(daemon and {args.connections} client threads share {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
