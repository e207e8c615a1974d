"""The admin route listing the deployment's cron jobs.

``GET /api/cron_jobs`` (admin key) answers ``{"cronJobs": [{"name",
"functionName", "args", "schedule", "nextRun", "lastRun", "recentRuns",
"state"}]}``, by name: ``args`` is the Convex-JSON list of one object and
``schedule`` the object ``crons.py`` exported (``{"type": "interval",
"seconds": 60}``, ``{"type": "cron", "cron": "15 7 * * *"}``...); ``nextRun``
is in ms since the epoch; ``lastRun`` is ``null`` or ``{"ts", "status":
"success"|"failed"|"skipped", "error"?}``, the newest of ``recentRuns``.
"""

from __future__ import annotations

from klein import Klein
from twisted.web.iweb import IRequest

from convex_backend.database.errors import DatabaseUnavailable
from convex_backend.deployment import Deployment
from convex_backend.http.errors import ApiError, install_error_handlers
from convex_backend.http.root import json_response, require_admin
from convex_backend.http.site import route
from convex_backend.scheduler.crons import load_jobs


class CronsApi:
    app = Klein()
    install_error_handlers(app)

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    def resource(self):
        return self.app.resource()

    @app.route("/cron_jobs", methods=["GET"])
    @route("/api/cron_jobs")
    def cron_jobs(self, request: IRequest) -> bytes:
        require_admin(self.deployment, request)
        database = getattr(self.deployment, "database", None)
        if database is None:
            raise ApiError(503, "NotReady", "The deployment is starting; try again shortly")
        try:
            tx = database.begin(privileged=True)
        except DatabaseUnavailable as e:
            raise ApiError(503, "NotReady", e.message)
        try:
            jobs = load_jobs(tx)
        finally:
            tx.close()
        listing = [jobs[name].to_api() for name in sorted(jobs)]
        return json_response(request, {"cronJobs": listing})
