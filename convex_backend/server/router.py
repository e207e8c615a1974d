"""The HTTP router a deployment's ``http.py`` exports as ``http``.

This module owns :class:`HttpRouter`: registering routes with Convex's rules
(``reference/server-syscalls.md`` §6), looking a request up, and the route
list the worker reports to the host::

    http = HttpRouter()
    http.route(path="/postMessage", method="POST", handler=post_message)
    http.route(path_prefix="/files/", method="GET", handler=get_file)

Lookup: an exact path wins, else the longest matching prefix; ``HEAD`` is
looked up as ``GET``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from convex_backend.server.registration import RegisteredFunction, http_action

__all__ = ["ROUTABLE_HTTP_METHODS", "HttpRouter", "Route", "http_router"]

ROUTABLE_HTTP_METHODS = ("GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")


@dataclass(frozen=True)
class Route:
    """One route: exactly one of ``path`` and ``path_prefix`` is set."""

    method: str
    handler: RegisteredFunction
    path: str | None = None
    path_prefix: str | None = None

    @property
    def pattern(self) -> str:
        """The routed path as Convex reports it: ``/x`` or ``/x/*``."""
        return self.path if self.path is not None else f"{self.path_prefix}*"

    def to_json(self) -> dict[str, str]:
        """``{"path": ..., "method": ...}`` or ``{"pathPrefix": ..., "method": ...}``."""
        if self.path is not None:
            return {"path": self.path, "method": self.method}
        assert self.path_prefix is not None
        return {"pathPrefix": self.path_prefix, "method": self.method}


def _reserved(path: str) -> bool:
    return path == "/.files" or path.startswith("/.files/")


class HttpRouter:
    """Routes HTTP requests to HTTP actions."""

    def __init__(self) -> None:
        # path -> method -> Route, and method -> prefix -> Route, as Convex keeps them.
        self._exact: dict[str, dict[str, Route]] = {}
        self._prefix: dict[str, dict[str, Route]] = {}

    def route(
        self,
        *,
        method: str,
        handler: RegisteredFunction | Callable[..., Any],
        path: str | None = None,
        path_prefix: str | None = None,
    ) -> None:
        """Add a route for ``path`` (exact) or ``path_prefix`` (ends with ``/``).

        ``handler`` should be an :func:`http_action`; a plain function is
        wrapped in one.
        """
        if not isinstance(method, str) or method not in ROUTABLE_HTTP_METHODS:
            raise ValueError(
                f"{method!r} is not an allowed HTTP method (one of "
                f"{', '.join(ROUTABLE_HTTP_METHODS)})"
            )
        if isinstance(handler, RegisteredFunction):
            if handler.udf_type != "httpAction":
                raise TypeError(
                    f"The handler of a route must be an http_action, got a {handler.udf_type}"
                )
        elif callable(handler):
            handler = http_action(handler)
        else:
            raise TypeError(f"The handler of a route must be an http_action, got {handler!r}")
        if (path is None) == (path_prefix is None):
            raise ValueError("A route needs exactly one of path= and path_prefix=")
        if path is not None:
            if not isinstance(path, str) or not path.startswith("/"):
                raise ValueError(f"path {path!r} does not start with a /")
            if _reserved(path):
                raise ValueError(f"path {path!r} is reserved")
            methods = self._exact.setdefault(path, {})
            if method in methods:
                raise ValueError(f"Path {path!r} for method {method} is already in use")
            methods[method] = Route(method, handler, path=path)
        else:
            assert path_prefix is not None
            if not isinstance(path_prefix, str) or not path_prefix.startswith("/"):
                raise ValueError(f"path_prefix {path_prefix!r} does not start with a /")
            if not path_prefix.endswith("/"):
                raise ValueError(f"path_prefix {path_prefix!r} must end with a /")
            if _reserved(path_prefix):
                raise ValueError(f"path_prefix {path_prefix!r} is reserved")
            prefixes = self._prefix.setdefault(method, {})
            if path_prefix in prefixes:
                raise ValueError(
                    f"Path prefix {path_prefix!r} for method {method} is already in use"
                )
            prefixes[path_prefix] = Route(method, handler, path_prefix=path_prefix)

    def routes(self) -> list[Route]:
        """Every route in Convex's ``getRoutes`` order: exact routes by path
        then method, then prefix routes by method then prefix."""
        out = [
            self._exact[path][method]
            for path in sorted(self._exact)
            for method in sorted(self._exact[path])
        ]
        out += [
            self._prefix[method][prefix]
            for method in sorted(self._prefix)
            for prefix in sorted(self._prefix[method])
        ]
        return out

    def get_routes(self) -> list[tuple[str, str, RegisteredFunction]]:
        """Convex's ``getRoutes()``: ``(pattern, method, handler)`` triples."""
        return [(r.pattern, r.method, r.handler) for r in self.routes()]

    def export_routes(self) -> list[dict[str, str]]:
        """The route list the worker reports to the host (``httpRoutes``)."""
        return [r.to_json() for r in self.routes()]

    def lookup(self, path: str, method: str) -> tuple[RegisteredFunction, Route] | None:
        """The handler and route serving ``method path``, or ``None``."""
        method = method.upper()
        if method == "HEAD":
            method = "GET"
        exact = self._exact.get(path, {}).get(method)
        if exact is not None:
            return exact.handler, exact
        best: Route | None = None
        for prefix, route in self._prefix.get(method, {}).items():
            if path.startswith(prefix) and (
                best is None or len(prefix) > len(best.path_prefix or "")
            ):
                best = route
        if best is None:
            return None
        return best.handler, best


def http_router() -> HttpRouter:
    """A new, empty router (Convex's ``httpRouter()``)."""
    return HttpRouter()
