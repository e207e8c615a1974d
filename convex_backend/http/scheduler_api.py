"""The admin routes of scheduled functions.

Both need the admin key (``Authorization: Convex <key>``) and answer JSON;
errors are ``{"code", "message"}``.

* ``GET /api/scheduled_functions?limit=N`` (default 100, at most 1000):
  ``{"jobs": [{"id", "name", "args", "scheduledTime", "completedTime",
  "state": {"kind", "error"?}}]}``, latest scheduled time first: pending
  jobs and finished ones still within the retention period. ``args`` is the
  Convex-JSON list of one object, times are ms since the epoch
  (``completedTime`` null until the job finishes).
* ``POST /api/cancel_scheduled_function`` ``{"id"}``: cancels the job as
  ``ctx.scheduler.cancel`` does (a finished job is left as it is) and
  answers ``{}``; 400 ``InvalidScheduledFunctionId`` for something that is
  not a job id, 404 ``ScheduledFunctionNotFound`` for a job that does not
  exist (any more).
"""

from __future__ import annotations

from klein import Klein
from twisted.internet import defer
from twisted.web.iweb import IRequest

from convex_backend.database.errors import DatabaseError
from convex_backend.http.api_app import DeploymentApp
from convex_backend.http.errors import ApiError, install_error_handlers
from convex_backend.http.functions_api import read_json_body
from convex_backend.http.root import json_response, require_admin
from convex_backend.http.site import route
from convex_backend.scheduler import jobs

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _limit(request: IRequest) -> int:
    values = request.args.get(b"limit")
    if not values:
        return DEFAULT_LIMIT
    text = values[-1].decode("ascii", "replace")
    try:
        limit = int(text)
    except ValueError:
        raise ApiError(400, "BadRequest", f"`limit` must be a whole number, got {text[:32]!r}")
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(400, "BadRequest", f"`limit` must be between 1 and {MAX_LIMIT}")
    return limit


class SchedulerApi(DeploymentApp):
    app = Klein()
    install_error_handlers(app)

    def _scheduler(self):
        return self.part("scheduler")

    @app.route("/scheduled_functions", methods=["GET"])
    @route("/api/scheduled_functions")
    def scheduled_functions(self, request: IRequest) -> bytes:
        require_admin(self.deployment, request)
        limit = _limit(request)
        listing = self._scheduler().list_jobs(limit)
        return json_response(request, {"jobs": [job.to_api() for job in listing]})

    @app.route("/cancel_scheduled_function", methods=["POST"])
    @route("/api/cancel_scheduled_function")
    def cancel_scheduled_function(self, request: IRequest):
        require_admin(self.deployment, request)
        body = read_json_body(request)
        try:
            job_id = jobs.check_job_id(body.get("id"))
        except jobs.JobError as e:
            raise ApiError(400, e.code, e.message)
        scheduler = self._scheduler()

        async def cancel() -> bytes:
            try:
                job = await scheduler.cancel(job_id)
            except DatabaseError as e:
                raise ApiError(503, e.code, e.message)
            if job is None:
                raise ApiError(
                    404, "ScheduledFunctionNotFound", f"No scheduled function with id {job_id}"
                )
            return json_response(request, {})

        return defer.ensureDeferred(cancel())
