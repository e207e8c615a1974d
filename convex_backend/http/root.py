"""The daemon's basic routes: liveness, version, name, echo, admin key check, metrics.

Later layers mount their own Klein apps beside these (public function API,
admin API, storage, sync, dashboard).
"""

from __future__ import annotations

import json

from klein import Klein
from twisted.web.iweb import IRequest

from convex_backend.auth.header import (
    AdminCredentials,
    AuthorizationError,
    parse_authorization,
)
from convex_backend.deployment import Deployment
from convex_backend.http.errors import ApiError, install_error_handlers
from convex_backend.http.site import route
from convex_backend.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE

RUNNING_TEXT = b"This Convex deployment is running. See https://docs.convex.dev/.\n"


def _text(request: IRequest, body: str | bytes) -> bytes:
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return body.encode() if isinstance(body, str) else body


def json_response(request: IRequest, value: object, status: int = 200) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(value).encode()


def require_admin(
    deployment: Deployment, request: IRequest, body_key: str | None = None
) -> AdminCredentials:
    """Check the admin key of ``Authorization: Convex <key>`` or a body's ``adminKey``.

    401 when none is presented, 403 when it is wrong; the key itself never
    appears in the answer or in logs.
    """
    try:
        credentials = parse_authorization(request.getHeader(b"authorization"))
    except AuthorizationError as e:
        raise ApiError(401, "BadAdminKey", f"Invalid admin key: {e}")
    if credentials is None and body_key is not None:
        credentials = AdminCredentials(body_key)
    if credentials is None:
        raise ApiError(401, "MissingAdminKey", "An admin key is required for this route")
    if not isinstance(credentials, AdminCredentials):
        raise ApiError(401, "BadAdminKey", "This route needs an admin key, not a user token")
    if not deployment.admin_keys.is_valid(credentials.key):
        raise ApiError(401, "BadAdminKey", "The provided admin key was invalid for this instance")
    return credentials


class RootApp:
    app = Klein()
    install_error_handlers(app)

    def __init__(self, deployment: Deployment) -> None:
        from convex_backend.http.admin_api import AdminApi, FirstMatchResource
        from convex_backend.http.crons_api import CronsApi
        from convex_backend.http.dashboard_api import DashboardApi
        from convex_backend.http.functions_api import FunctionApi
        from convex_backend.http.logs_api import LogsApi
        from convex_backend.http.scheduler_api import SchedulerApi
        from convex_backend.http.storage_api import StorageApi

        self.deployment = deployment
        self.functions_api = FunctionApi(deployment)
        # The Klein apps under /api/, asked in this order; the function API
        # (which owns /api/<path> catch-alls) stays last.
        apps = [
            AdminApi(deployment),
            CronsApi(deployment),
            LogsApi(deployment),
            StorageApi(deployment),
            DashboardApi(deployment),
            SchedulerApi(deployment),
            self.functions_api,
        ]
        self._api = FirstMatchResource(*apps)

    def fast_routes(self) -> dict:
        """The hottest routes, dispatched without Klein's routing (see cors.py)."""
        api = self.functions_api
        return {
            (b"POST", b"/api/query"): api.query,
            (b"POST", b"/api/mutation"): api.mutation,
            (b"POST", b"/api/action"): api.action,
            (b"POST", b"/api/function"): api.function,
        }

    def resource(self):
        return self.app.resource()

    @app.route("/api/", branch=True)
    def api(self, request: IRequest):
        # Everything under /api/ that no route here claims: the admin and function APIs.
        return self._api

    @app.route("/dashboard", branch=True)
    @app.route("/dashboard/")
    def dashboard(self, request: IRequest):
        from convex_backend.http.dashboard import DashboardResource

        return DashboardResource()

    @app.route("/http/", branch=True)
    def http_actions(self, request: IRequest):
        from convex_backend.http.site_actions import HttpActionResource

        return HttpActionResource(self.deployment, strip_prefix=b"/http/")

    @app.route("/", methods=["GET"])
    @route("/")
    def running(self, request: IRequest) -> bytes:
        return _text(request, RUNNING_TEXT)

    @app.route("/version", methods=["GET"])
    @route("/version")
    def version(self, request: IRequest) -> bytes:
        return _text(request, self.deployment.version)

    @app.route("/instance_version", methods=["GET"])
    @route("/instance_version")
    def instance_version(self, request: IRequest) -> bytes:
        return _text(request, self.deployment.version)

    @app.route("/instance_name", methods=["GET"])
    @route("/instance_name")
    def instance_name(self, request: IRequest) -> bytes:
        return _text(request, self.deployment.instance_name)

    @app.route("/echo", methods=["GET", "POST"])
    @route("/echo")
    def echo(self, request: IRequest) -> bytes:
        content_type = request.getHeader(b"content-type") or b"application/octet-stream"
        request.setHeader(b"content-type", content_type)
        # A body reflected as a page of the dashboard's origin must not run script.
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"content-security-policy", b"sandbox")
        return request.content.read()

    @app.route("/api/check_admin_key", methods=["GET", "POST"])
    @route("/api/check_admin_key")
    def check_admin_key(self, request: IRequest) -> bytes:
        body_key = None
        if request.method == b"POST":
            body_key = _optional_admin_key_in_body(request)
        require_admin(self.deployment, request, body_key)
        return json_response(request, {"ok": True})

    @app.route("/metrics", methods=["GET"])
    @route("/metrics")
    def metrics(self, request: IRequest) -> bytes:
        request.setHeader(b"content-type", METRICS_CONTENT_TYPE.encode())
        return self.deployment.metrics.render()


def _optional_admin_key_in_body(request: IRequest) -> str | None:
    """The CLI also sends ``{"adminKey": ...}`` in JSON bodies."""
    raw = request.content.read()
    if not raw.strip():
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "BadJsonBody", "The request body is not valid JSON")
    if not isinstance(body, dict):
        raise ApiError(400, "BadJsonBody", "The request body must be a JSON object")
    key = body.get("adminKey")
    if key is not None and not isinstance(key, str):
        raise ApiError(400, "BadJsonBody", "adminKey must be a string")
    return key
