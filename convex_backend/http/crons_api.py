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

from convex_backend.http.api_app import DeploymentApp
from convex_backend.http.errors import install_error_handlers
from convex_backend.http.root import json_response, require_admin
from convex_backend.http.site import route
from convex_backend.scheduler.crons import load_jobs


class CronsApi(DeploymentApp):
    app = Klein()
    install_error_handlers(app)

    @app.route("/cron_jobs", methods=["GET"])
    @route("/api/cron_jobs")
    def cron_jobs(self, request: IRequest) -> bytes:
        require_admin(self.deployment, request)
        jobs = self.read(load_jobs)
        listing = [jobs[name].to_api() for name in sorted(jobs)]
        return json_response(request, {"cronJobs": listing})
