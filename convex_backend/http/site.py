"""The twisted.web ``Site`` of the daemon: body limits, request accounting, access log.

:class:`ConvexRequest` refuses bodies over the limit with a JSON 413 without
keeping them in memory, times every request into the metrics, logs one access
line (never the query string, which may carry tokens) and counts requests in
flight so that a graceful shutdown can wait for them.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.server import Request, Site

from convex_backend.metrics import Metrics

log = Logger(namespace="convex.http.access")

# Deploys and imports carry whole bundles and snapshots (the real backend's
# MAX_PUSH_BYTES is 200 MB); everything else gets the configured limit.
LARGE_BODY_PREFIXES = (
    b"/api/deploy2/",
    b"/api/push_config",
    b"/api/import/",
    b"/api/perform_import",
)
LARGE_BODY_LIMIT = 200_000_000
#: HTTP actions accept 20 MiB bodies, whatever --max-request-bytes says.
HTTP_ACTION_BODY_LIMIT = 20 * 1024 * 1024
#: File uploads may be as large as --max-file-bytes; their bodies go to disk
#: through the site's ``upload_body`` hook (file storage), never to memory.
UPLOAD_PATH = b"/api/storage/upload"


class ConvexRequest(Request):
    #: The route template a handler matched, for metrics labels (set by handlers).
    route: str | None = None
    _body_bytes = 0
    _body_too_large = False

    def gotLength(self, length: int | None) -> None:
        self._body_limit = self.site_body_limit()
        if length is not None and length > self._body_limit:
            self._body_too_large = True
            self.content = io.BytesIO()
            return
        if self._upload_body():
            return
        super().gotLength(length)

    def _upload_body(self) -> bool:
        channel = self.channel
        hook = getattr(getattr(channel, "site", None), "upload_body", None)
        uri = getattr(channel, "_path", b"") or b""
        if hook is None or getattr(channel, "_command", b"") != b"POST":
            return False
        if uri.split(b"?", 1)[0] != UPLOAD_PATH:
            return False
        content = hook(uri)
        if content is None:
            return False
        self.content = content
        # Never parsed as a form: that would read the whole file into memory.
        self._parsePOSTFormSubmission = False
        return True

    def site_body_limit(self) -> int:
        path = getattr(self.channel, "_path", b"") or b""
        site = getattr(self.channel, "site", None)
        limit = getattr(site, "max_request_bytes", 32 * 1024 * 1024)
        if path.startswith(LARGE_BODY_PREFIXES):
            return max(limit, LARGE_BODY_LIMIT)
        if path.startswith(b"/http/"):
            return HTTP_ACTION_BODY_LIMIT
        if path.split(b"?", 1)[0] == UPLOAD_PATH:
            return getattr(site, "max_upload_bytes", limit)
        return limit

    def handleContentChunk(self, data: bytes) -> None:
        if self._body_too_large:
            return
        self._body_bytes += len(data)
        if self._body_bytes > self._body_limit:
            # Drop what was buffered; the rest of the body is discarded as it comes.
            self._body_too_large = True
            self.content.close()
            self.content = io.BytesIO()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._body_too_large:
            # Skip form parsing of a body we did not keep.
            self.setHeader(b"connection", b"close")
        super().requestReceived(command, path, version)

    def process(self) -> None:
        self._started = time.monotonic()
        self._convex_site = self.channel.site
        self._convex_site.request_started()
        self.notifyFinish().addBoth(self._finished)
        if self._body_too_large:
            self.setResponseCode(413)
            self.setHeader(b"content-type", b"application/json")
            self.route = "(too large)"
            self.write(
                json.dumps(
                    {
                        "code": "PayloadTooLarge",
                        "message": f"The request body is larger than {self._body_limit} bytes",
                    }
                ).encode()
            )
            self.finish()
            return
        try:
            unquote_to_bytes(self.path).decode("utf-8")
        except UnicodeDecodeError:
            self.route = "(bad path)"
            self.setResponseCode(400)
            self.setHeader(b"content-type", b"application/json")
            self.write(b'{"code": "BadRequest", "message": "The URL path is not valid UTF-8"}')
            self.finish()
            return
        super().process()

    def detach(self) -> None:
        """This request became a WebSocket: stop counting it as a request in flight.

        It never "finishes" as an HTTP request, and a graceful shutdown must not
        wait for it.
        """
        if not getattr(self, "_detached", False) and hasattr(self, "_convex_site"):
            self._detached = True
            self._convex_site.request_finished()

    def _finished(self, result: object) -> None:
        if getattr(self, "_detached", False):
            return
        duration = time.monotonic() - self._started
        route = self.route or "(unmatched)"
        method = self.method.decode("ascii", "replace")
        site = self._convex_site
        metrics: Metrics | None = getattr(site, "metrics", None)
        if metrics is not None:
            metrics.http_requests.labels(route, method, str(self.code)).inc()
            metrics.http_latency.labels(route).observe(duration)
        log.debug(
            "{method} {path} {status} {ms:.1f}ms",
            method=method,
            path=self.path.decode("utf-8", "replace")[:200],
            status=self.code,
            ms=duration * 1000,
        )
        site.request_finished()


class ConvexSite(Site):
    requestFactory = ConvexRequest
    displayTracebacks = False
    noisy = False

    def __init__(
        self,
        resource,
        metrics: Metrics | None = None,
        max_request_bytes: int = 32 * 1024 * 1024,
        **kwargs,
    ) -> None:
        super().__init__(resource, **kwargs)
        self.metrics = metrics
        self.max_request_bytes = max_request_bytes
        self.in_flight = 0
        self._idle_waiters: list[defer.Deferred] = []

    def log(self, request: Request) -> None:
        # Replaced by ConvexRequest's access line, which leaves out query strings.
        pass

    def request_started(self) -> None:
        self.in_flight += 1

    def request_finished(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            waiters, self._idle_waiters = self._idle_waiters, []
            for d in waiters:
                d.callback(None)

    def wait_idle(self) -> defer.Deferred:
        """Fire once no request is in flight."""
        if self.in_flight == 0:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred(lambda d: self._idle_waiters.remove(d))
        self._idle_waiters.append(d)
        return d


def route(template: str) -> Callable:
    """Decorate a Klein handler so its metrics are labelled with ``template``."""

    def decorate(handler: Callable) -> Callable:
        def wrapper(self, request, *args, **kwargs):
            request.route = template
            return handler(self, request, *args, **kwargs)

        wrapper.__name__ = handler.__name__
        wrapper.__doc__ = handler.__doc__
        return wrapper

    return decorate
