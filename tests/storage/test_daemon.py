"""File storage in the real daemon (``twistd -n convex``): the upload limit instead of
the request limit, uploads cut off by the client or by a crash, and startup cleaning."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from urllib.parse import urlsplit

import treq
from twisted.internet import reactor
from twisted.internet.protocol import ClientFactory
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.daemon import Daemon
from tests.storage.fixtures import RawClient

FILE_LIMIT = 300_000


async def wait_for(condition, timeout: float = 20.0) -> bool:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return True
        await deferLater(reactor, 0.02, lambda: None)
    return condition()


class StorageDaemonTests(TestCase):
    timeout = 120

    def daemon(self, data_dir: str) -> Daemon:
        daemon = Daemon(
            data_dir,
            "--port",
            "0",
            "--site-port",
            "0",
            "--workers",
            "1",
            "--max-request-bytes",
            "65536",
            "--max-file-bytes",
            str(FILE_LIMIT),
        )
        self.addCleanup(daemon.kill)
        return daemon

    async def admin(self, daemon: Daemon, path: str, body: object = None) -> dict:
        response = await treq.post(
            daemon.api_url + path,
            data=json.dumps(body or {}).encode(),
            headers={
                "Authorization": f"Convex {self.admin_key}",
                "Content-Type": "application/json",
            },
            persistent=False,
        )
        content = await response.content()
        self.assertEqual(response.code, 200, content)
        return json.loads(content)

    async def upload_url(self, daemon: Daemon) -> str:
        url = (await self.admin(daemon, "/api/storage/generate_upload_url"))["uploadUrl"]
        # The URL names the port the daemon really listens on (it was given --port 0).
        self.assertTrue(url.startswith(daemon.api_url + "/api/storage/upload?token="), url)
        return url

    async def half_upload(self, daemon: Daemon, fill: bytes) -> bytes:
        """The head of an upload request and a third of its body."""
        url = urlsplit(await self.upload_url(daemon))
        head = (
            f"POST {url.path}?{url.query} HTTP/1.1\r\nHost: t\r\n"
            f"Content-Length: {FILE_LIMIT}\r\n\r\n"
        ).encode()
        return head + fill * (FILE_LIMIT // 3)

    def start_raw(self, daemon: Daemon, payload: bytes) -> RawClient:
        factory = ClientFactory()
        client = RawClient(payload)
        factory.protocol = lambda: client
        port = urlsplit(daemon.api_url).port
        reactor.connectTCP("127.0.0.1", port, factory)
        return client

    async def files(self, daemon: Daemon) -> list[dict]:
        response = await treq.get(
            daemon.api_url + "/api/storage_files",
            headers={"Authorization": f"Convex {self.admin_key}"},
            persistent=False,
        )
        return json.loads(await response.content())["page"]

    async def test_limits_cut_offs_and_crashes(self) -> None:
        data_dir = Path(self.mktemp()).absolute()
        tmp = data_dir / "storage" / "tmp"
        daemon = self.daemon(str(data_dir))
        await daemon.start(timeout=60)
        self.admin_key = daemon.admin_key

        # Larger than --max-request-bytes, within --max-file-bytes.
        data = bytes(range(256)) * 700
        response = await treq.post(await self.upload_url(daemon), data=data, persistent=False)
        body = await response.content()
        self.assertEqual(response.code, 200, body)
        storage_id = json.loads(body)["storageId"]
        response = await treq.get(f"{daemon.api_url}/api/storage/{storage_id}", persistent=False)
        self.assertEqual(await response.content(), data)

        # Over --max-file-bytes: refused, nothing kept.
        response = await treq.post(
            await self.upload_url(daemon), data=b"x" * (FILE_LIMIT + 1), persistent=False
        )
        error = json.loads(await response.content())
        self.assertEqual((response.code, error["code"]), (413, "PayloadTooLarge"))
        self.assertEqual(list(tmp.iterdir()), [])

        # The client goes away halfway: its spool file goes too.
        client = self.start_raw(daemon, await self.half_upload(daemon, b"h"))
        self.assertTrue(await wait_for(lambda: any(p.stat().st_size for p in tmp.iterdir())))
        client.transport.loseConnection()
        await client.done
        self.assertTrue(await wait_for(lambda: not list(tmp.iterdir())))

        # The daemon dies halfway through an upload: the next start removes the spool.
        client = self.start_raw(daemon, await self.half_upload(daemon, b"c"))
        self.assertTrue(await wait_for(lambda: any(p.stat().st_size for p in tmp.iterdir())))
        daemon.signal(signal.SIGKILL)
        await daemon.wait()
        await client.done
        leftovers = list(tmp.iterdir())
        self.assertEqual(len(leftovers), 1)

        daemon = self.daemon(str(data_dir))
        await daemon.start(timeout=60)
        self.assertTrue(await wait_for(lambda: not list(tmp.iterdir())))
        self.assertEqual([f["storageId"] for f in await self.files(daemon)], [storage_id])
        response = await treq.get(f"{daemon.api_url}/api/storage/{storage_id}", persistent=False)
        self.assertEqual(await response.content(), data)
        daemon.signal()
        self.assertEqual(await daemon.wait(), 0)
