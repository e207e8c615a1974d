"""HTTP errors as Convex answers them: a JSON ``{"code", "message"}`` body.

Handlers raise :class:`ApiError`; :func:`install_error_handlers` turns it, an
unknown route, a wrong method and any unexpected exception into that shape.
Unexpected exceptions are logged with their traceback server-side and reach
the client only as a generic 500.
"""

from __future__ import annotations

import json

from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from werkzeug.exceptions import MethodNotAllowed, NotFound

log = Logger(namespace="convex.http")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def bad_request(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def write_json_error(request: IRequest, status: int, code: str, message: str) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps({"code": code, "message": message}).encode()


def install_error_handlers(app) -> None:
    """Register the JSON error handlers on a Klein app (class-level routes)."""

    @app.handle_errors(ApiError)
    def api_error(self, request: IRequest, failure: Failure) -> bytes:
        e = failure.value
        return write_json_error(request, e.status, e.code, e.message)

    @app.handle_errors(NotFound)
    def not_found(self, request: IRequest, failure: Failure) -> bytes:
        method = request.method.decode("ascii", "replace")
        path = request.path.decode("utf-8", "replace")[:200]
        return write_json_error(request, 404, "NotFound", f"No route for {method} {path}")

    @app.handle_errors(MethodNotAllowed)
    def not_allowed(self, request: IRequest, failure: Failure) -> bytes:
        allowed = failure.value.valid_methods or []
        if allowed:
            request.setHeader(b"allow", ", ".join(allowed).encode())
        method = request.method.decode("ascii", "replace")
        return write_json_error(
            request, 405, "MethodNotAllowed", f"{method} is not allowed on this route"
        )

    @app.handle_errors(Exception)
    def internal(self, request: IRequest, failure: Failure) -> bytes:
        log.failure(
            "Unhandled error answering {method} {path}",
            failure,
            method=request.method,
            path=request.path,
        )
        return write_json_error(
            request,
            500,
            "InternalServerError",
            "Your request couldn't be completed. Try again later.",
        )
