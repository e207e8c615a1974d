"""HTTP actions: the routes of a deployment's ``http.py``.

Served on the site port (``--site-port``) at their own paths, and on the main
port under ``/http/`` as Convex's local backend does. The request goes to the
worker as JSON (method, URL, header pairs, body bytes); the worker routes it
and answers with status, header pairs and body.
"""

from __future__ import annotations

import base64

from twisted.internet import defer
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from convex_backend.deployment import Deployment
from convex_backend.http.errors import write_json_error

# Hop-by-hop headers are the server's business, not the handler's.
_SKIPPED_RESPONSE_HEADERS = {b"content-length", b"transfer-encoding", b"connection"}


class HttpActionResource(Resource):
    """Hands every request under it to the deployment's HTTP router."""

    isLeaf = True

    def __init__(self, deployment: Deployment, strip_prefix: bytes = b"") -> None:
        super().__init__()
        self.deployment = deployment
        self.strip_prefix = strip_prefix

    def render(self, request: IRequest):
        request.route = "(http action)"
        runner = self.deployment.runner
        if runner is None:
            return write_json_error(request, 503, "NotReady", "The deployment is starting")
        path = request.path
        if self.strip_prefix and path.startswith(self.strip_prefix):
            path = path[len(self.strip_prefix) - 1 :]
        query = request.uri.partition(b"?")[2]
        origin = self.deployment.config.site_origin
        url = origin + path.decode("utf-8", "replace") + ("?" + query.decode() if query else "")
        body = request.content.read()
        request_json = {
            "method": request.method.decode("ascii", "replace"),
            "url": url,
            "headers": [
                [name.decode("latin-1").lower(), value.decode("latin-1")]
                for name, values in request.requestHeaders.getAllRawHeaders()
                for value in values
                if name.lower() != b"authorization"
            ],
            "body": {"$bytes": base64.b64encode(body).decode()} if body else None,
        }
        d = defer.ensureDeferred(runner.call_http(request_json))
        d.addCallback(self._respond, request)
        d.addErrback(self._failed, request)
        return NOT_DONE_YET

    def _respond(self, response: dict, request: IRequest) -> None:
        if request._disconnected:
            return
        request.setResponseCode(response["status"])
        for name, value in response.get("headers") or []:
            if name.encode("latin-1", "replace").lower() in _SKIPPED_RESPONSE_HEADERS:
                continue
            request.responseHeaders.addRawHeader(name, value)
        body = response.get("body")
        if isinstance(body, dict) and "$bytes" in body:
            request.write(base64.b64decode(body["$bytes"]))
        request.finish()

    def _failed(self, failure, request: IRequest) -> None:
        from twisted.logger import Logger

        Logger(namespace="convex.http").failure("HTTP action failed", failure)
        if not request._disconnected:
            request.write(
                write_json_error(
                    request, 500, "InternalServerError", "The HTTP action could not be run"
                )
            )
            request.finish()


class SiteApp:
    """The site port's root: every path is an HTTP action route."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    def resource(self) -> Resource:
        return HttpActionResource(self.deployment)
