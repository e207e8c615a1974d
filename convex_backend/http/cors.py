"""CORS on ``/api/*`` as Convex answers it (reference/client-protocol.md §5).

Browsers preflight the JSON requests of ``ConvexHttpClient``; the answer mirrors
the request's ``Origin`` and requested headers and allows credentials.
"""

from __future__ import annotations

import re

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET

ALLOWED_METHODS = b"GET, POST, OPTIONS, PATCH, DELETE, PUT"
MAX_AGE = b"86400"


class CorsResource(Resource):
    """Wraps the whole tree: adds CORS headers on /api/* and answers preflights.

    ``fast`` maps (method, exact path) to a handler called directly, skipping
    Klein's routing for the few routes every client request hits; the handler
    behaves exactly as under Klein (errors become JSON ``{code, message}``).
    """

    isLeaf = True

    def __init__(
        self, wrapped: IResource, fast: dict | None = None, sync: IResource | None = None
    ) -> None:
        super().__init__()
        self._wrapped = wrapped
        self._fast = fast or {}
        self._sync = sync

    def render(self, request: IRequest):
        if self._sync is not None and _is_sync_path(request.path):
            # The WebSocket upgrade needs no CORS; any Origin is accepted.
            request.route = "/api/sync"
            result = self._sync.render(request)
            if hasattr(request, "detach"):
                request.detach()
            return result
        if request.path.startswith(b"/api/"):
            origin = request.getHeader(b"origin")
            if origin:
                request.setHeader(b"access-control-allow-origin", origin)
                request.setHeader(b"access-control-allow-credentials", b"true")
                request.setHeader(b"vary", b"Origin")
            if request.method == b"OPTIONS":
                request.route = "(preflight)"
                requested = request.getHeader(b"access-control-request-headers")
                if requested:
                    request.setHeader(b"access-control-allow-headers", requested)
                request.setHeader(b"access-control-allow-methods", ALLOWED_METHODS)
                request.setHeader(b"access-control-max-age", MAX_AGE)
                request.setResponseCode(204)
                return b""
            handler = self._fast.get((request.method, request.path))
            if handler is not None:
                return render_handler(request, handler)
        return self._wrapped.render(request)


_SYNC = re.compile(rb"^/api/(?:[0-9A-Za-z.+-]{1,40}/)?sync$")


def _is_sync_path(path: bytes) -> bool:
    """``/api/sync`` (Python and Rust clients) or ``/api/<client version>/sync`` (npm)."""
    return path.endswith(b"/sync") and _SYNC.match(path) is not None


def render_handler(request: IRequest, handler):
    """Run a Klein-style handler (bytes or a Deferred of bytes) as twisted.web does."""
    try:
        result = handler(request)
    except Exception:
        return _error_body(request, Failure())
    if isinstance(result, bytes):
        return result
    d = defer.maybeDeferred(lambda: result)
    d.addErrback(lambda failure: _error_body(request, failure))
    d.addCallback(_finish, request)
    return NOT_DONE_YET


def _finish(body: bytes, request: IRequest) -> None:
    if request._disconnected:
        return
    request.write(body)
    request.finish()


def _error_body(request: IRequest, failure: Failure) -> bytes:
    from convex_backend.http.errors import ApiError, log, write_json_error

    if failure.check(ApiError):
        e = failure.value
        return write_json_error(request, e.status, e.code, e.message)
    log.failure("Unhandled error answering {path}", failure, path=request.path)
    return write_json_error(
        request, 500, "InternalServerError", "Your request couldn't be completed. Try again later."
    )
