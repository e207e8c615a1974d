"""File storage as a service of the daemon.

On start it creates ``<data dir>/storage/`` and removes temporary files an
earlier process left behind (interrupted uploads). Once the database and the
function runtime have started (before the HTTP ports serve) it builds the
:class:`~convex_backend.storage.files.FileStorage`, attaches it to the
deployment (``deployment.storage``) and to the function runner
(``runner.storage``, for the syscalls), removes blobs without a row and
starts following deletions in the write log.

The public origin in file and upload URLs is ``--cloud-origin``; when that
names port 0 (the default with ``--port 0``), the port the API actually
listens on is used instead.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from twisted.application.service import Service
from twisted.internet import defer, threads
from twisted.logger import Logger

from convex_backend.storage.blobs import BlobStore
from convex_backend.storage.files import FileStorage
from convex_backend.storage.tokens import UploadTokens

log = Logger(namespace="convex.storage")


def with_port(origin: str, port: int | None) -> str:
    """``origin`` with its port replaced by ``port`` when it names port 0."""
    parts = urlsplit(origin)
    if port is None or parts.port != 0:
        return origin
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return urlunsplit((parts.scheme, f"{host}:{port}", parts.path, "", ""))


class StorageService(Service):
    name = "storage"

    def __init__(self, deployment, functions_service, secret: str) -> None:
        config = deployment.config
        self.deployment = deployment
        self.functions_service = functions_service
        self.blobs = BlobStore(config.data_dir / "storage")
        self.tokens = UploadTokens(secret, config.instance_name)
        self.storage: FileStorage | None = None

    def origin(self) -> str:
        configured = self.deployment.config.cloud_origin
        port = None
        parent = self.parent
        http = parent.namedServices.get("http") if parent is not None else None
        listening = getattr(http, "ports", {}).get("api") if http is not None else None
        if listening is not None:
            port = listening.getHost().port
        return with_port(configured, port)

    def upload_body(self, uri: bytes):
        """The site's hook for upload bodies (see convex_backend.http.site)."""
        if self.storage is None:
            return None
        return self.storage.upload_body(uri)

    def startService(self) -> None:
        super().startService()
        self.blobs.prepare()
        d = threads.deferToThread(self.blobs.clean_tmp)
        d.addCallback(self._cleaned)
        d.addErrback(lambda f: log.failure("Cleaning storage/tmp failed", f))
        # Before the HTTP service's own callback: ready before the first request.
        self.functions_service.started.addCallback(self._ready)

    def _cleaned(self, count: int) -> None:
        if count:
            log.info("Removed {n} unfinished uploads from an earlier run", n=count)

    def _ready(self, result):
        database, runner = self.deployment.database, self.deployment.runner
        if not self.running or database is None:
            return result
        storage = FileStorage(
            database,
            self.blobs,
            self.tokens,
            origin=self.origin,
            max_file_bytes=self.deployment.config.max_file_bytes,
        )
        self.storage = storage
        self.deployment.storage = storage
        if runner is not None:
            runner.storage = storage
        storage.start_watching()
        defer.ensureDeferred(storage.sweep()).addErrback(
            lambda f: log.failure("Sweeping orphan blobs failed", f)
        )
        return result

    def stopService(self):
        if self.storage is not None:
            self.storage.stop_watching()
        return super().stopService()


__all__ = ["StorageService", "with_port"]
