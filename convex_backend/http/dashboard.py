"""Serving the dashboard's static files (``static/``) at ``/dashboard/``.

The files need no admin key (the API calls they make do). Only regular files
with a known type inside the static directory are served: no directory
listings, no dot files, and no way out of the directory (``..``, encoded
slashes, symlinks pointing elsewhere). ``/dashboard`` redirects to
``/dashboard/``, which serves ``index.html``. Files are read in a thread, so a
slow disk never stalls the reactor.

Every answer carries a strict Content-Security-Policy (everything comes from
this origin, no inline script or style) and ``Cache-Control: no-cache`` with an
``ETag``: file names carry no version, so browsers revalidate (a cheap 304)
instead of running a stale page after an upgrade.

Where the files are: a checkout (or an editable install) keeps them in
``static/`` next to the ``convex_backend`` package; ``pip install .`` copies
them to ``<prefix>/share/convex-backend/static`` (``[options.data_files]`` in
setup.cfg). :func:`static_dir` looks in that order.
"""

from __future__ import annotations

import functools
import hashlib
import site
import sys
import sysconfig
from pathlib import Path
from urllib.parse import unquote_to_bytes

from twisted.internet import threads
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from convex_backend.http.errors import log, write_json_error

CONTENT_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
    ".ico": b"image/x-icon",
    ".json": b"application/json",
}
#: Everything the dashboard loads comes from the daemon itself.
CONTENT_SECURITY_POLICY = (
    b"default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
    b"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    b"content-security-policy": CONTENT_SECURITY_POLICY,
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"x-frame-options": b"DENY",
}
#: The files whose presence says "this is the dashboard's directory".
_MARKERS = ("index.html", "app.js")
_SHARE = Path("share") / "convex-backend" / "static"


def _checkout_static() -> Path:
    """``static/`` beside the package: a checkout or an editable install."""
    return Path(__file__).resolve().parent.parent.parent / "static"


def find_static_dir() -> Path | None:
    """The directory of the dashboard's files, or None if it cannot be found."""
    candidates = [_checkout_static()]
    prefixes = [sys.prefix, sys.exec_prefix, sysconfig.get_path("data")]
    user_base = getattr(site, "USER_BASE", None)
    if user_base:
        prefixes.append(user_base)
    candidates += [Path(prefix) / _SHARE for prefix in prefixes if prefix]
    for candidate in candidates:
        if all((candidate / name).is_file() for name in _MARKERS):
            return candidate.resolve()
    return None


#: Looked up once: the answer does not change while the daemon runs.
static_dir = functools.cache(find_static_dir)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


class DashboardResource(Resource):
    """A leaf resource: ``request.postpath`` is the file's path under the static directory."""

    isLeaf = True

    def __init__(self, root: Path | None = None) -> None:
        super().__init__()
        self.root = (root or static_dir() or Path("/nonexistent")).resolve()

    def _headers(self, request: IRequest) -> None:
        for name, value in SECURITY_HEADERS.items():
            request.setHeader(name, value)

    def _error(self, request: IRequest, status: int, code: str, message: str) -> bytes:
        self._headers(request)
        return write_json_error(request, status, code, message)

    def _resolve(self, segments: list[bytes]) -> Path | None:
        """The file for these path segments, or None if it may not be served."""
        if not segments or segments == [b""]:
            segments = [b"index.html"]
        names = []
        for segment in segments:
            try:
                name = segment.decode("utf-8")
            except UnicodeDecodeError:
                return None
            # Segments are split before %xx escapes are decoded: one holding
            # a separator or NUL had it smuggled in encoded.
            if not name or name.startswith(".") or "/" in name or "\\" in name or "\x00" in name:
                return None
            names.append(name)
        path = self.root.joinpath(*names)
        if path.suffix not in CONTENT_TYPES:
            return None
        try:
            resolved = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not resolved.is_relative_to(self.root) or not resolved.is_file():
            return None
        return resolved

    def render(self, request: IRequest):
        request.route = "/dashboard/{path}"
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return self._error(
                request, 405, "MethodNotAllowed", "The dashboard's files are read-only"
            )
        prefix, _, rest = request.path.partition(b"/dashboard")
        if not prefix and not rest:
            # "/dashboard": relative URLs in index.html need the trailing slash.
            return self._redirect(request)
        if prefix or not rest.startswith(b"/"):
            return self._error(request, 404, "NotFound", "No such dashboard file")
        if not self.root.is_dir():
            return self._error(
                request,
                404,
                "NotFound",
                "The dashboard's files are not installed (no static/ directory was found)",
            )
        # The path itself, not Klein's postpath (which differs between the
        # "/dashboard/" and "/dashboard/<rest>" routes); %xx escapes decoded
        # per segment, after the split, so an encoded "/" stays inside one.
        segments = [unquote_to_bytes(s) for s in rest.split(b"/")[1:]]
        path = self._resolve(segments)
        if path is None:
            return self._error(request, 404, "NotFound", "No such dashboard file")
        d = threads.deferToThread(_read, path)
        d.addCallback(self._send, request, path)
        d.addErrback(self._failed, request)
        return NOT_DONE_YET

    def _redirect(self, request: IRequest) -> bytes:
        self._headers(request)
        request.setResponseCode(301)
        request.setHeader(b"location", b"/dashboard/")
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"The dashboard is at /dashboard/\n"

    def _send(self, content: bytes | None, request: IRequest, path: Path) -> None:
        if request._disconnected:
            return
        if content is None:
            body = self._error(request, 404, "NotFound", "No such dashboard file")
        else:
            self._headers(request)
            etag = b'"' + hashlib.sha256(content).hexdigest()[:32].encode() + b'"'
            request.setHeader(b"content-type", CONTENT_TYPES[path.suffix])
            request.setHeader(b"cache-control", b"no-cache")
            request.setHeader(b"etag", etag)
            if _matches(request.getHeader(b"if-none-match"), etag):
                request.setResponseCode(304)
                body = b""
            else:
                request.setHeader(b"content-length", str(len(content)).encode())
                body = b"" if request.method == b"HEAD" else content
        if body:
            request.write(body)
        request.finish()

    def _failed(self, failure, request: IRequest) -> None:
        log.failure("Serving a dashboard file", failure)
        if not request._disconnected:
            request.write(
                self._error(request, 500, "InternalServerError", "Could not read the file")
            )
            request.finish()


def _matches(header: bytes | None, etag: bytes) -> bool:
    if not header:
        return False
    tags = [t.strip() for t in header.split(b",")]
    return b"*" in tags or etag in tags or b"W/" + etag in tags


__all__ = ["DashboardResource", "static_dir"]
