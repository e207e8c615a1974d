"""HTTP actions: the routes of a deployment's ``http.py``.

Served on the site port (``--site-port``) at their own paths, and on the main
port under ``/http/`` as Convex's local backend does. The request goes to the
worker as JSON (method, URL, header pairs, body bytes); the worker routes it
and answers with status, header pairs and body.

* ``HEAD`` is routed as ``GET``; the answer keeps the headers (and the
  ``Content-Length``) of the GET response, without its body.
* Request bodies may be up to :data:`HTTP_ACTION_MAX_REQUEST_BYTES` (20 MiB,
  Convex's limit); larger ones get a JSON 413. (The site in front must let them
  through: the site port's :class:`~convex_backend.http.site.ConvexSite` should
  be built with ``max_request_bytes`` at least this.)
* With ``--site-proxy <origin>``, a request no route of ``http.py`` matches is
  forwarded to that origin (a frontend dev server, say): same method, path,
  query, end-to-end headers and body; its status, headers and body are streamed
  back. If the origin cannot be reached the answer is a JSON 502.
* Under ``/http/`` on the main port (the dashboard's origin) an action's
  response also carries ``Content-Security-Policy: sandbox allow-scripts ...``
  (no ``allow-same-origin``): a page served there cannot read the dashboard's
  admin key. The site port's responses are left as the handler made them.
"""

from __future__ import annotations

import base64
import json

import treq
from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import GzipDecoder
from twisted.web.http import NO_BODY_CODES
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from convex_backend.auth.jwt import AuthenticationError
from convex_backend.auth.users import user_authenticator
from convex_backend.deployment import Deployment
from convex_backend.functions.runner import Caller
from convex_backend.http.errors import write_json_error

log = Logger(namespace="convex.http")

#: The largest request body an HTTP action accepts (Convex's limit).
HTTP_ACTION_MAX_REQUEST_BYTES = 20 * 1024 * 1024
#: How long the site proxy waits for the origin's response headers.
PROXY_TIMEOUT = 60.0
#: HTTP action responses under /http/ on the main port: scripts run, but not as
#: the daemon's origin (no ``allow-same-origin``).
MAIN_PORT_CSP = b"sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads"

# Hop-by-hop headers are the server's business, not the handler's.
_SKIPPED_RESPONSE_HEADERS = {b"content-length", b"transfer-encoding", b"connection"}
# RFC 9110 §7.6.1: never forwarded by a proxy.
_HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"trailers",
    b"transfer-encoding",
    b"upgrade",
}


def route_matches(routes: list | None, path: str, method: str) -> bool:
    """Whether ``http.py``'s routes (as the analysis lists them) serve ``method path``.

    The same rule as the worker's router: an exact path, or a path prefix;
    ``HEAD`` is looked up as ``GET``.
    """
    method = method.upper()
    if method == "HEAD":
        method = "GET"
    for entry in routes or []:
        if not isinstance(entry, dict) or entry.get("method") != method:
            continue
        if entry.get("path") == path:
            return True
        prefix = entry.get("pathPrefix")
        if isinstance(prefix, str) and path.startswith(prefix):
            return True
    return False


def _hop_by_hop(headers) -> set[bytes]:
    """The hop-by-hop header names, with those a ``Connection`` header lists."""
    names = set(_HOP_BY_HOP)
    for value in headers.getRawHeaders(b"connection", []):
        names.update(token.strip().lower() for token in value.split(b",") if token.strip())
    return names


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
        body = request.content.read(HTTP_ACTION_MAX_REQUEST_BYTES + 1)
        if len(body) > HTTP_ACTION_MAX_REQUEST_BYTES:
            return write_json_error(
                request,
                413,
                "PayloadTooLarge",
                f"HTTP action request bodies are limited to {HTTP_ACTION_MAX_REQUEST_BYTES} bytes",
            )
        text_path = path.decode("utf-8", "replace")
        method = request.method.decode("ascii", "replace")
        proxy = getattr(self.deployment.config, "site_proxy", None)
        if proxy and not route_matches(runner.http_routes, text_path, method):
            request.route = "(site proxy)"
            return self._proxy(request, proxy, path + (b"?" + query if query else b""), body)
        origin = self.deployment.config.site_origin
        url = origin + text_path + ("?" + query.decode() if query else "")
        request_json = {
            "method": method,
            "url": url,
            "headers": [
                [name.decode("latin-1").lower(), value.decode("latin-1")]
                for name, values in request.requestHeaders.getAllRawHeaders()
                for value in values
            ],
            "body": {"$bytes": base64.b64encode(body).decode()} if body else None,
        }
        d = defer.ensureDeferred(self._call(runner, request, request_json))
        d.addCallback(self._respond, request)
        d.addErrback(self._failed, request)
        return NOT_DONE_YET

    async def _call(self, runner, request: IRequest, request_json: dict) -> dict:
        """Run the action as the user of a ``Bearer`` JWT; a refused one is a 401.

        The handler sees the ``Authorization`` header whatever it holds: other
        schemes, and Bearer secrets that are not JWTs (webhooks), are its business.
        """
        header = request.getHeader(b"authorization") or b""
        scheme, _, token = header.strip().partition(b" ")
        caller = None
        if scheme.lower() == b"bearer" and token.strip().count(b".") == 2:
            try:
                verified = await user_authenticator(self.deployment).authenticate(
                    token.strip().decode("ascii")
                )
            except (AuthenticationError, UnicodeDecodeError) as e:
                message = getattr(e, "message", "The Bearer token is not ASCII")
                code = getattr(e, "code", "InvalidAuthHeader")
                body = json.dumps({"code": code, "message": message}).encode()
                return {
                    "status": 401,
                    "headers": [["content-type", "application/json"]],
                    "body": {"$bytes": base64.b64encode(body).decode()},
                }
            caller = Caller("client", verified.identity)
        return await runner.call_http(request_json, caller=caller)

    def _respond(self, response: dict, request: IRequest) -> None:
        if request._disconnected:
            return
        status = response["status"]
        request.setResponseCode(status)
        for name, value in response.get("headers") or []:
            if name.encode("latin-1", "replace").lower() in _SKIPPED_RESPONSE_HEADERS:
                continue
            request.responseHeaders.addRawHeader(name, value)
        if self.strip_prefix:
            # Under /http/ on the main port a page shares the dashboard's origin,
            # whose tabs hold the admin key: it gets an opaque origin of its own
            # (added to any policy of the handler's). Pages belong on the site port.
            request.responseHeaders.addRawHeader(b"content-security-policy", MAIN_PORT_CSP)
        body = response.get("body")
        data = b""
        if isinstance(body, dict) and "$bytes" in body:
            data = base64.b64decode(body["$bytes"])
        if status not in NO_BODY_CODES:
            # Also for HEAD, whose body Twisted leaves out: the GET's length.
            request.setHeader(b"content-length", b"%d" % len(data))
        if data:
            request.write(data)
        request.finish()

    def _failed(self, failure, request: IRequest) -> None:
        log.failure("HTTP action failed", failure)
        if not request._disconnected:
            request.write(
                write_json_error(
                    request, 500, "InternalServerError", "The HTTP action could not be run"
                )
            )
            request.finish()

    # -- the site proxy ------------------------------------------------------------

    def _proxy(self, request: IRequest, origin: str, path_and_query: bytes, body: bytes):
        try:
            url = origin.rstrip("/") + path_and_query.decode("ascii")
        except UnicodeDecodeError:
            return write_json_error(request, 400, "BadRequest", "The URL is not ASCII")
        skipped = _hop_by_hop(request.requestHeaders) | {b"host", b"content-length"}
        headers = Headers()
        for name, values in request.requestHeaders.getAllRawHeaders():
            if name.lower() not in skipped:
                headers.setRawHeaders(name, values)
        host = request.getHeader(b"host")
        if host:
            headers.setRawHeaders(b"x-forwarded-host", [host])
        peer = getattr(request.getClientAddress(), "host", None)
        if peer:
            forwarded = request.getHeader(b"x-forwarded-for")
            value = peer.encode() if not forwarded else forwarded + b", " + peer.encode()
            headers.setRawHeaders(b"x-forwarded-for", [value])
        d = treq.request(
            request.method.decode("ascii"),
            url,
            headers=headers,
            data=body or None,
            allow_redirects=False,
            unbuffered=True,
            timeout=PROXY_TIMEOUT,
            persistent=False,
        )
        # A client that goes away cancels the proxied request.
        request.notifyFinish().addErrback(lambda _: d.cancel())
        d.addCallback(self._proxied, request, origin)
        d.addErrback(self._proxy_failed, request, origin)
        return NOT_DONE_YET

    def _proxied(self, response, request: IRequest, origin: str):
        def write(data: bytes) -> None:
            if request._disconnected:
                # Raising makes treq drop the origin's connection: stop streaming.
                raise ConnectionDone("the client went away")
            request.write(data)

        if not request._disconnected:
            request.setResponseCode(response.code, response.phrase)
            skipped = _hop_by_hop(response.headers)
            if isinstance(getattr(response, "original", response), GzipDecoder):
                skipped.add(b"content-length")  # the length of the compressed body
            for name, values in response.headers.getAllRawHeaders():
                if name.lower() == b"content-encoding":
                    # treq's decoder leaves an empty one behind on plain responses.
                    values = [v for v in values if v.strip()]
                if name.lower() not in skipped and values:
                    request.responseHeaders.setRawHeaders(name, values)

        def done(result) -> None:
            if request._disconnected:
                return
            if isinstance(result, Failure):
                # Cut off mid-body: the client must not take it as complete.
                log.warn("The site proxy's response from {origin} broke off", origin=origin)
                request.channel.loseConnection()
                return
            request.finish()

        return treq.collect(response, write).addBoth(done)

    def _proxy_failed(self, failure, request: IRequest, origin: str) -> None:
        if request._disconnected:
            return
        if getattr(request, "startedWriting", False):
            request.channel.loseConnection()
            return
        if failure.check(defer.CancelledError):
            reason = "it did not answer in time"
        else:
            reason = failure.getErrorMessage() or failure.type.__name__
        log.warn("Site proxy to {origin} failed: {reason}", origin=origin, reason=reason)
        request.write(
            write_json_error(
                request,
                502,
                "SiteProxyError",
                f"The site proxy could not reach {origin}: {reason}",
            )
        )
        request.finish()


class SiteApp:
    """The site port's root: every path is an HTTP action route."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    def resource(self) -> Resource:
        return HttpActionResource(self.deployment)
