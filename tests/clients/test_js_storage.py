"""File storage end to end: the real ``convex`` npm client (1.48.0) and Node's fetch
against the real daemon.

A mutation called with ``ConvexHttpClient`` generates an upload URL, Node's
``fetch`` POSTs a binary file to it (every byte value), another mutation saves
the storage id, a query returns ``ctx.storage.get_url()``, and Node downloads
the file: the bytes must come back identical, with the recorded sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.clients._support import (
    JS,
    FixtureError,
    Once,
    ensure_js_client,
    node_env,
    node_paths,
    run_process,
    with_daemon,
)

PREFIX = "@@storage "
#: A few hundred KB: larger than one read chunk, every byte value many times.
DATA = bytes(range(256)) * 1200 + os.urandom(4321)


async def run_scenario() -> dict:
    await ensure_js_client()
    node, _ = node_paths()
    work = Path(tempfile.mkdtemp(prefix="convex-storage-js-"))
    upload, download = work / "in.bin", work / "out.bin"
    upload.write_bytes(DATA)

    async def body(daemon) -> dict:
        env = node_env(
            CONVEX_URL=daemon.api_url, UPLOAD_FILE=str(upload), DOWNLOAD_FILE=str(download)
        )
        argv = [str(node), str(JS / "storage_scenario.mjs")]
        code, out, err = await run_process(argv, env=env, cwd=JS, timeout=300)
        lines = [line for line in out.splitlines() if line.startswith(PREFIX)]
        if code != 0 or not lines:
            raise FixtureError(
                f"node storage_scenario.mjs failed (exit {code}):\n--- stdout\n{out}\n"
                f"--- stderr\n{err}\n--- daemon\n{daemon.output}"
            )
        report = json.loads(lines[-1][len(PREFIX) :])
        report["_downloaded"] = download.read_bytes()
        report["_api_url"] = daemon.api_url
        blobs = Path(daemon.data_dir) / "storage" / "blobs"
        # The deleted file's blob goes once the deleting mutation is durable.
        for _ in range(500):
            if len(list(blobs.glob("*/*"))) <= 1:
                break
            await deferLater(reactor, 0.01, lambda: None)
        report["_blobs_left"] = sorted(p.name for p in blobs.glob("*/*"))
        report["_tmp_left"] = sorted(p.name for p in (blobs.parent / "tmp").iterdir())
        return report

    try:
        return await with_daemon(body)
    finally:
        for path in (upload, download):
            path.unlink(missing_ok=True)
        work.rmdir()


class JsStorageTests(TestCase):
    timeout = 900
    shared = Once(run_scenario)

    async def report(self) -> tuple[dict, str]:
        report = await self.shared.get()
        shown = {k: v for k, v in report.items() if not k.startswith("_")}
        return report, json.dumps(shown, indent=1)

    async def test_upload_round_trip_is_byte_exact(self) -> None:
        report, context = await self.report()
        self.assertEqual(report["upload"]["status"], 200, context)
        storage_id = report["upload"]["body"]["storageId"]
        self.assertTrue(
            report["uploadUrl"].startswith(f"{report['_api_url']}/api/storage/upload?token="),
            context,
        )
        self.assertEqual(report["fileUrl"], f"{report['_api_url']}/api/storage/{storage_id}")
        self.assertEqual(report["download"]["status"], 200, context)
        self.assertEqual(report["download"]["length"], len(DATA), context)
        self.assertEqual(report["_downloaded"], DATA)
        headers = report["download"]["headers"]
        self.assertEqual(headers["content-type"], "application/x-test-binary", context)
        self.assertEqual(headers["content-length"], str(len(DATA)), context)

    async def test_sha256_is_recorded_and_checked(self) -> None:
        report, context = await self.report()
        digest = hashlib.sha256(DATA).hexdigest()
        self.assertEqual(report["sentSha256"], digest)
        self.assertEqual(
            report["metadata"],
            {
                "storageId": report["upload"]["body"]["storageId"],
                "sha256": digest,
                "size": len(DATA),
                "contentType": "application/x-test-binary",
            },
            context,
        )
        self.assertEqual(report["download"]["headers"]["etag"], f'"{digest}"', context)

    async def test_ranges(self) -> None:
        report, context = await self.report()
        self.assertEqual(report["range"]["status"], 206, context)
        self.assertEqual(report["range"]["contentRange"], f"bytes 1000-1999/{len(DATA)}")
        self.assertTrue(report["range"]["matches"], context)
        self.assertEqual(report["beyond"]["status"], 416, context)
        self.assertEqual(report["beyond"]["body"]["code"], "RangeNotSatisfiable", context)

    async def test_forged_upload_url_is_refused(self) -> None:
        report, context = await self.report()
        self.assertEqual(report["forged"]["status"], 401, context)
        self.assertEqual(report["forged"]["body"]["code"], "InvalidUploadToken", context)

    async def test_store_and_get_in_an_action(self) -> None:
        report, context = await self.report()
        self.assertEqual(report["actionText"], "héllo, storage", context)

    async def test_delete_removes_the_file(self) -> None:
        report, context = await self.report()
        self.assertEqual(report["afterDelete"]["status"], 404, context)
        self.assertEqual(report["afterDelete"]["body"]["code"], "FileNotFound", context)
        self.assertIsNone(report["urlAfterDelete"], context)
        # Only the action's text file is left on disk; no temporary files.
        self.assertEqual(len(report["_blobs_left"]), 1, report["_blobs_left"])
        self.assertNotIn(report["upload"]["body"]["storageId"], report["_blobs_left"])
        self.assertEqual(report["_tmp_left"], [])
