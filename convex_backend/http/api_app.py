"""The common part of the Klein apps under ``/api/``.

Each app serves one :class:`~convex_backend.deployment.Deployment`, whose
parts (database, runner, deployer, storage, scheduler, logs) attach as the
daemon starts: until a part is there, a route needing it answers 503
``NotReady`` rather than failing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from klein import Klein

from convex_backend.database.errors import DatabaseUnavailable
from convex_backend.deployment import Deployment
from convex_backend.http.errors import ApiError

NOT_READY_MESSAGE = "The deployment is starting; try again shortly"

T = TypeVar("T")


def not_ready(message: str = NOT_READY_MESSAGE) -> ApiError:
    return ApiError(503, "NotReady", message)


class DeploymentApp:
    """Base of the ``/api/`` apps; each subclass has its own ``app = Klein()``."""

    app: Klein

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    def resource(self):
        return self.app.resource()

    def part(self, name: str) -> Any:
        """``deployment.<name>``, or a 503 while it is missing or still loading."""
        part = getattr(self.deployment, name, None)
        if part is None or not getattr(part, "loaded", True) or not getattr(part, "is_ready", True):
            raise not_ready()
        return part

    def read(self, fn: Callable[[Any], T], *, privileged: bool = True) -> T:
        """``fn(tx)`` in a read-only transaction at the latest snapshot."""
        database = self.part("database")
        try:
            tx = database.begin(privileged=privileged)
        except DatabaseUnavailable as e:
            raise not_ready(e.message)
        try:
            return fn(tx)
        finally:
            tx.close()


DEFAULT_PAGE_ITEMS = 100
MAX_PAGE_ITEMS = 1000


def query_params(request) -> dict[str, str]:
    """The first value of each query-string parameter, as text (400 if not UTF-8)."""
    params = {}
    for key, values in (request.args or {}).items():
        if not values:
            continue
        try:
            params[key.decode("utf-8")] = values[0].decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "BadRequest", "The query string is not valid UTF-8")
    return params


def page_size(raw: str | None) -> int:
    """A ``numItems`` parameter: 1 to :data:`MAX_PAGE_ITEMS`, 100 when absent."""
    if not raw:
        return DEFAULT_PAGE_ITEMS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_PAGE_ITEMS:
        raise ApiError(
            400, "BadRequest", f"`numItems` must be a whole number from 1 to {MAX_PAGE_ITEMS}"
        )
    return value


def page_params(params: dict[str, str]) -> tuple[str, int, str | None]:
    """``order`` (asc/desc), ``numItems`` and ``cursor`` of a paginated listing."""
    order = params.get("order") or "asc"
    if order not in ("asc", "desc"):
        raise ApiError(400, "BadRequest", "`order` must be asc or desc")
    return order, page_size(params.get("numItems")), params.get("cursor") or None
