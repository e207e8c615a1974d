"""CORS on ``/api/*`` as Convex answers it (reference/client-protocol.md §5).

Browsers preflight the JSON requests of ``ConvexHttpClient``; the answer mirrors
the request's ``Origin`` and requested headers and allows credentials.
"""

from __future__ import annotations

from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

ALLOWED_METHODS = b"GET, POST, OPTIONS, PATCH, DELETE, PUT"
MAX_AGE = b"86400"


class CorsResource(Resource):
    """Wraps the whole tree: adds CORS headers on /api/* and answers preflights."""

    isLeaf = True

    def __init__(self, wrapped: IResource) -> None:
        super().__init__()
        self._wrapped = wrapped

    def render(self, request: IRequest):
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
        return self._wrapped.render(request)
