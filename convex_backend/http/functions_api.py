"""The public function API and the deploy endpoint (reference/client-protocol.md §2).

``POST /api/query|mutation|action`` (args as an object or a one-element
array) and ``POST /api/function`` answer ``{"status": "success", "value",
"logLines"}`` or, for a failed function, ``{"status": "error", "errorMessage",
"errorData"?, "logLines"}`` with HTTP 200; anything else wrong with the request
is a ``{"code", "message"}`` error with a 4xx/5xx status. Values are
Convex-JSON when ``format`` is ``convex_encoded_json``, Convex's clean JSON
export otherwise.

``POST /api/deploy`` (admin key) pushes a new set of modules.
"""

from __future__ import annotations

import json
from typing import Any

from klein import Klein
from twisted.internet import defer
from twisted.web.iweb import IRequest

from convex_backend.auth.header import (
    AdminCredentials,
    AuthorizationError,
    UserCredentials,
    parse_authorization,
)
from convex_backend.deployment import Deployment
from convex_backend.functions.modules import DeployError
from convex_backend.functions.runner import Caller, FunctionError
from convex_backend.http.errors import ApiError, install_error_handlers
from convex_backend.http.root import json_response, require_admin
from convex_backend.http.site import route
from convex_backend.values import ConvexValueError, from_json, to_clean_json, to_json

ENCODED = "convex_encoded_json"


def read_json_body(request: IRequest) -> dict:
    raw = request.content.read()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "BadJsonBody", "The request body is not valid JSON")
    if not isinstance(body, dict):
        raise ApiError(400, "BadJsonBody", "The request body must be a JSON object")
    return body


def caller_for(deployment: Deployment, request: IRequest) -> Caller:
    try:
        credentials = parse_authorization(request.getHeader(b"authorization"))
    except AuthorizationError as e:
        raise ApiError(401, "Unauthenticated", f"Invalid Authorization header: {e}")
    if credentials is None:
        return Caller("client")
    if isinstance(credentials, UserCredentials):
        raise ApiError(
            401, "Unauthenticated", "User authentication (Bearer tokens) is not configured"
        )
    assert isinstance(credentials, AdminCredentials)
    if not deployment.admin_keys.is_valid(credentials.key):
        raise ApiError(403, "BadAdminKey", "The provided admin key was invalid for this instance")
    return Caller("admin", credentials.acting_as)


class FunctionApi:
    app = Klein()
    install_error_handlers(app)

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    def resource(self):
        return self.app.resource()

    def _runner(self):
        runner = getattr(self.deployment, "runner", None)
        if runner is None:
            raise ApiError(503, "NotReady", "The deployment is starting; try again shortly")
        return runner

    async def _call(self, request: IRequest, expected: str | None, body: dict, args: Any):
        runner = self._runner()
        caller = caller_for(self.deployment, request)
        path = body.get("path")
        if not isinstance(path, str) or not path:
            raise ApiError(400, "BadRequest", "`path` must be a function path string")
        value_format = body.get("format")
        if value_format not in (None, ENCODED, "json"):
            raise ApiError(400, "BadRequest", f"Unknown format {value_format!r}")
        try:
            decoded = from_json(args if args is not None else {})
        except ConvexValueError as e:
            raise ApiError(400, "BadConvexValue", f"Invalid function arguments: {e}")
        encode = to_json if value_format == ENCODED else to_clean_json
        try:
            result = await runner.call(path, decoded, caller=caller, expected=expected)
        except FunctionError as e:
            answer = {
                "status": "error",
                "errorMessage": e.message,
                "logLines": e.log_lines,
            }
            if e.code == "ConvexError":
                answer["errorData"] = encode(e.data)
            return json_response(request, answer)
        return json_response(
            request,
            {"status": "success", "value": encode(result.value), "logLines": result.log_lines},
        )

    def _kind_route(self, request: IRequest, expected: str):
        body = read_json_body(request)
        args = body.get("args", {})
        if isinstance(args, list):
            if len(args) != 1:
                raise ApiError(400, "BadRequest", "`args` must be an object or [object]")
            args = args[0]
        return defer.ensureDeferred(self._call(request, expected, body, args))

    @app.route("/query", methods=["POST"])
    @route("/api/query")
    def query(self, request: IRequest):
        return self._kind_route(request, "query")

    @app.route("/mutation", methods=["POST"])
    @route("/api/mutation")
    def mutation(self, request: IRequest):
        return self._kind_route(request, "mutation")

    @app.route("/action", methods=["POST"])
    @route("/api/action")
    def action(self, request: IRequest):
        return self._kind_route(request, "action")

    @app.route("/function", methods=["POST"])
    @route("/api/function")
    def function(self, request: IRequest):
        body = read_json_body(request)
        return defer.ensureDeferred(self._call(request, None, body, body.get("args", {})))

    @app.route("/deploy", methods=["POST"])
    @route("/api/deploy")
    def deploy(self, request: IRequest):
        require_admin(self.deployment, request)
        body = read_json_body(request)
        deployer = getattr(self.deployment, "deployer", None)
        if deployer is None:
            raise ApiError(503, "NotReady", "The deployment is starting; try again shortly")

        async def push() -> bytes:
            try:
                summary = await deployer.deploy(
                    body.get("modules"), dry_run=bool(body.get("dryRun"))
                )
            except DeployError as e:
                raise ApiError(400, e.code, e.message)
            return json_response(request, {"ok": True, **summary})

        return defer.ensureDeferred(push())
