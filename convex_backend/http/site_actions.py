"""The HTTP actions port (``--site-port``).

It serves the routes of a deployment's ``http.py`` router once functions can
be deployed; until then every path answers a JSON 404.
"""

from __future__ import annotations

from klein import Klein
from twisted.web.iweb import IRequest

from convex_backend.deployment import Deployment
from convex_backend.http.errors import ApiError, install_error_handlers
from convex_backend.http.site import route


class SiteApp:
    app = Klein()
    install_error_handlers(app)

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    def resource(self):
        return self.app.resource()

    @app.route("/", branch=True)
    @route("(http action)")
    def http_action(self, request: IRequest) -> bytes:
        method = request.method.decode("ascii", "replace")
        path = request.path.decode("utf-8", "replace")[:200]
        raise ApiError(404, "NotFound", f"No HTTP action is routed at {method} {path}")
