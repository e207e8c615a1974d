"""The storage service: startup cleaning, wiring into the deployment, public URLs;
and the --max-file-bytes option."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from twisted.application.service import MultiService, Service
from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from convex_backend.config import DEFAULT_MAX_FILE_BYTES, ConfigError
from convex_backend.storage.service import StorageService, with_port
from tests.database.fixtures import open_database
from tests.helpers import TEST_SECRET, make_config, make_deployment


class StorageServiceTests(TestCase):
    timeout = 30

    async def start(self, parent: MultiService):
        tmp = Path(self.mktemp()).absolute()
        self.deployment = make_deployment(tmp / "data")
        self.deployment.database = await open_database(self)
        self.deployment.runner = SimpleNamespace()
        functions = Service()
        functions.started = defer.Deferred()
        service = StorageService(self.deployment, functions, TEST_SECRET)
        service.setServiceParent(parent)
        self.addCleanup(parent.stopService)
        return service, functions, tmp / "data" / "storage"

    async def test_startup_cleans_up_and_wires_in(self) -> None:
        parent = MultiService()
        service, functions, root = await self.start(parent)
        # What a crashed process left: a half upload and a blob without a row.
        (root / "tmp").mkdir(parents=True)
        (root / "tmp" / "0000aaaa0000-x.part").write_bytes(b"half")
        orphan = "k" * 32
        (root / "blobs" / "kk").mkdir(parents=True)
        (root / "blobs" / "kk" / orphan).write_bytes(b"no row")
        parent.startService()
        functions.started.callback(None)
        storage = service.storage
        self.assertIsNotNone(storage)
        self.assertIs(self.deployment.storage, storage)
        self.assertIs(self.deployment.runner.storage, storage)
        for _ in range(500):
            if not list((root / "tmp").iterdir()) and not (root / "blobs" / "kk" / orphan).exists():
                break
            await deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(list((root / "tmp").iterdir()), [])
        self.assertFalse((root / "blobs" / "kk" / orphan).exists())
        kept = await storage.store_bytes(b"kept")
        self.assertEqual(storage.blobs.stored_ids(), [kept])
        # The site's hook: a spool for a good token, nothing for a bad one.
        uri = storage.upload_url().split("/api/", 1)[1]
        spool = service.upload_body(b"/api/" + uri.encode())
        self.assertEqual(spool.path.parent, root / "tmp")
        spool.close()

    async def test_urls_use_the_listening_port_when_configured_as_0(self) -> None:
        parent = MultiService()
        service, functions, _root = await self.start(parent)
        self.assertEqual(self.deployment.config.cloud_origin, "http://127.0.0.1:0")
        http = Service()
        http.setName("http")
        port = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        http.ports = {"api": port}
        http.setServiceParent(parent)
        parent.startService()
        functions.started.callback(None)
        number = port.getHost().port
        self.assertEqual(service.origin(), f"http://127.0.0.1:{number}")
        self.assertTrue(
            service.storage.upload_url().startswith(
                f"http://127.0.0.1:{number}/api/storage/upload?token="
            )
        )

    def test_with_port(self) -> None:
        self.assertEqual(with_port("http://127.0.0.1:0", 4321), "http://127.0.0.1:4321")
        self.assertEqual(with_port("http://[::1]:0", 80), "http://[::1]:80")
        self.assertEqual(with_port("https://files.example.com", 4321), "https://files.example.com")
        self.assertEqual(with_port("http://h:8000", 4321), "http://h:8000")
        self.assertEqual(with_port("http://h:0", None), "http://h:0")


class MaxFileBytesOptionTests(TestCase):
    def test_default_flag_and_environment(self) -> None:
        tmp = self.mktemp()
        self.assertEqual(make_config(tmp).max_file_bytes, DEFAULT_MAX_FILE_BYTES)
        self.assertEqual(DEFAULT_MAX_FILE_BYTES, 1024**3)
        self.assertEqual(make_config(tmp, max_file_bytes="1000").max_file_bytes, 1000)

    def test_environment(self) -> None:
        from convex_backend.config import load_config

        config = load_config(
            {"data-dir": self.mktemp(), "instance-secret": TEST_SECRET},
            environ={"CONVEX_MAX_FILE_BYTES": "2048"},
        )
        self.assertEqual(config.max_file_bytes, 2048)

    def test_invalid_values(self) -> None:
        for bad in ("0", "-1", "lots", "1.5"):
            with self.assertRaises(ConfigError) as caught:
                make_config(self.mktemp(), max_file_bytes=bad)
            self.assertIn("--max-file-bytes", str(caught.exception))
