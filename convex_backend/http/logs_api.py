"""The function log stream: ``GET /api/stream_function_logs`` (admin key).

A long poll exactly as the ``npx convex logs`` CLI (and ``npx convex dev``'s log
tail) drives it: ``?cursor=<ms>`` (0 the first time, then the previous answer's
``newCursor``) answers ``{"entries": [...], "newCursor": <ms>}`` at once when
entries after the cursor exist, else as soon as one is recorded, else after
:attr:`LogsApi.poll_timeout` seconds with no entries and the same cursor. The
CLI re-polls immediately, so an empty answer never comes back early.

Optional filters, for the dashboard: ``functions=<identifier>,...``,
``status=success|failure``, ``level=LOG|INFO|WARN|ERROR|DEBUG`` (entries with a
line at that level) and ``limit=<n>``. The entries are built by
:mod:`convex_backend.functions.logs`. A client that disconnects while waiting
cancels its poll.
"""

from __future__ import annotations

import math

from klein import Klein
from twisted.web.iweb import IRequest

from convex_backend.deployment import Deployment
from convex_backend.functions.logs import LEVELS, make_filter
from convex_backend.http.api_app import DeploymentApp
from convex_backend.http.errors import bad_request, install_error_handlers
from convex_backend.http.root import json_response, require_admin
from convex_backend.http.site import route

#: The real backend answers an idle poll after a minute.
DEFAULT_POLL_TIMEOUT = 60.0
#: Entries per answer unless ``limit`` says otherwise (the buffer may hold 10,000).
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
MAX_FUNCTIONS = 100


class LogsApi(DeploymentApp):
    app = Klein()
    install_error_handlers(app)

    def __init__(self, deployment: Deployment, poll_timeout: float = DEFAULT_POLL_TIMEOUT) -> None:
        super().__init__(deployment)
        self.poll_timeout = poll_timeout

    @app.route("/stream_function_logs", methods=["GET"])
    @route("/api/stream_function_logs")
    def stream_function_logs(self, request: IRequest):
        require_admin(self.deployment, request)
        logs = self.part("function_logs")
        cursor = _cursor(_arg(request, "cursor"))
        limit = _limit(_arg(request, "limit"))
        match = make_filter(
            _functions(_arg(request, "functions")),
            _status(_arg(request, "status")),
            _level(_arg(request, "level")),
        )
        d = logs.wait_for(cursor, self.poll_timeout, match=match, limit=limit)
        d.addCallback(
            lambda batch: json_response(request, {"entries": batch[0], "newCursor": batch[1]})
        )
        return d


def _arg(request: IRequest, name: str) -> str | None:
    values = request.args.get(name.encode())
    if not values:
        return None
    try:
        return values[-1].decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("BadQueryParameter", f"{name} is not valid UTF-8")


def _cursor(text: str | None) -> float:
    if text is None or text == "":
        return 0.0
    try:
        cursor = float(text)
    except ValueError:
        raise bad_request("InvalidCursor", "cursor must be a number (ms since the epoch)")
    if not math.isfinite(cursor) or cursor < 0:
        raise bad_request("InvalidCursor", "cursor must be a finite number >= 0")
    return cursor


def _limit(text: str | None) -> int:
    if text is None or text == "":
        return DEFAULT_LIMIT
    try:
        limit = int(text)
    except ValueError:
        raise bad_request("InvalidLimit", "limit must be an integer")
    if not 1 <= limit <= MAX_LIMIT:
        raise bad_request("InvalidLimit", f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def _functions(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise bad_request("InvalidFunctions", "functions must list function identifiers")
    if len(names) > MAX_FUNCTIONS:
        raise bad_request("InvalidFunctions", f"functions lists at most {MAX_FUNCTIONS} names")
    return names


def _status(text: str | None) -> str | None:
    if text is None:
        return None
    if text not in ("success", "failure"):
        raise bad_request("InvalidStatus", "status must be success or failure")
    return text


def _level(text: str | None) -> str | None:
    if text is None:
        return None
    level = text.upper()
    if level not in LEVELS:
        raise bad_request("InvalidLevel", f"level must be one of {', '.join(LEVELS)}")
    return level
