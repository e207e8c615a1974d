"""File storage over HTTP: uploads, downloads and the admin routes under ``/api/``.

Public (the upload token or the storage id is the capability):

* ``POST /api/storage/upload?token=...`` with the raw file as the body (its
  ``Content-Type`` is recorded) → ``{"storageId"}``. The site streams the body
  into a temporary file as it arrives (see ``http/site.py``), up to
  ``--max-file-bytes``; a bad or expired token is a 400/401
  ``{"code","message"}``, a body over the limit a 413.
* ``GET /api/storage/<storageId>`` (and ``HEAD``): the bytes with the stored
  ``Content-Type``, ``Content-Length``, ``ETag`` (the sha256) and
  ``Accept-Ranges: bytes``; one ``Range`` gives a 206, an unsatisfiable one a
  416; ``If-None-Match`` with the ETag a 304. Streamed from disk on a thread.
  Always with ``X-Content-Type-Options: nosniff`` and (but for PDFs)
  ``Content-Security-Policy: sandbox``: this origin is the dashboard's.

Admin (``Authorization: Convex <admin key>``):

* ``GET /api/storage_files?numItems=&cursor=`` → ``{"page": [{"storageId",
  "sha256", "size", "contentType", "_creationTime", "url"}], "isDone",
  "continueCursor"}``, newest first.
* ``POST /api/storage/generate_upload_url`` → ``{"uploadUrl"}``.
* ``POST /api/storage/delete`` ``{"storageId"}`` → ``{}``.
"""

from __future__ import annotations

import io
import re
from typing import Any

from klein import Klein
from twisted.internet import defer
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from convex_backend.database.errors import DatabaseError, DatabaseUnavailable
from convex_backend.http.api_app import DeploymentApp, not_ready, page_size, query_params
from convex_backend.http.errors import ApiError, install_error_handlers
from convex_backend.http.functions_api import read_json_body
from convex_backend.http.root import json_response, require_admin
from convex_backend.http.site import route
from convex_backend.storage.errors import StorageError
from convex_backend.storage.rows import check_storage_id, sha256_hex
from convex_backend.storage.streaming import RangeProducer
from convex_backend.values import ConvexValueError

_RANGE = re.compile(rb"bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")
UNSATISFIABLE = "unsatisfiable"


def parse_range(header: bytes | None, size: int) -> tuple[int, int] | str | None:
    """``(start, length)`` of a single-range ``Range`` header, :data:`UNSATISFIABLE`,
    or None to serve the whole file (no header, several ranges, bad syntax)."""
    if not header:
        return None
    match = _RANGE.fullmatch(header)
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        start = max(0, size - suffix)
        return start, size - start
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return UNSATISFIABLE
    end = min(int(last), size - 1) if last else size - 1
    return start, end - start + 1


def _api_error(e: StorageError) -> ApiError:
    return ApiError(e.status, e.code, e.message)


def _shielded(d: defer.Deferred) -> defer.Deferred:
    """A Deferred for Klein, which cancels it when the client goes away: the
    work behind ``d`` (a commit in flight) must finish regardless."""
    outer: defer.Deferred = defer.Deferred()

    def forward(result: Any) -> None:
        if not outer.called:
            outer.callback(result)
        return None

    d.addBoth(forward)
    return outer


class _RangeResource(Resource):
    isLeaf = True

    def __init__(self, file, start: int, length: int) -> None:
        super().__init__()
        self._file, self._start, self._length = file, start, length

    def render(self, request: IRequest):
        RangeProducer(request, self._file, self._start, self._length).start()
        return NOT_DONE_YET


class StorageApi(DeploymentApp):
    app = Klein()
    install_error_handlers(app)

    def _storage(self):
        return self.part("storage")

    # -- public ----------------------------------------------------------------------

    @app.route("/storage/upload", methods=["POST"])
    @route("/api/storage/upload")
    def upload(self, request: IRequest):
        storage = self._storage()
        token = query_params(request).get("token")
        content_type = request.getHeader(b"content-type")
        content = request.content
        # The body is ours now: twisted.web closes (deletes) request.content
        # when the request ends, and the blob must outlive it.
        request.content = io.BytesIO()

        async def store() -> bytes:
            try:
                storage_id = await storage.store_upload(content, token, content_type)
            except StorageError as e:
                raise _api_error(e)
            except DatabaseError as e:
                raise ApiError(503, "StorageUnavailable", f"The file could not be saved: {e}")
            return json_response(request, {"storageId": storage_id})

        return _shielded(defer.ensureDeferred(store()))

    @app.route("/storage/<storage_id>", methods=["GET"])
    @route("/api/storage/{storageId}")
    def download(self, request: IRequest, storage_id: str):
        storage = self._storage()
        try:
            row = storage.lookup(storage_id)
        except StorageError as e:
            raise _api_error(e)
        except DatabaseUnavailable as e:
            raise not_ready(e.message)
        if row is None:
            raise ApiError(404, "FileNotFound", f"File {storage_id[:64]} not found")

        async def serve():
            file = await storage.open(storage_id)
            if file is None:
                raise ApiError(404, "FileNotFound", f"File {storage_id[:64]} not found")
            return self._respond(request, row, file)

        return defer.ensureDeferred(serve())

    def _respond(self, request: IRequest, row: dict, file) -> Any:
        size = int(row["size"])
        etag = f'"{sha256_hex(row)}"'.encode()
        request.setHeader(b"etag", etag)
        request.setHeader(b"accept-ranges", b"bytes")
        # The bytes of a storage id never change.
        request.setHeader(b"cache-control", b"private, max-age=2592000, immutable")
        _user_content_headers(request, row.get("contentType"))
        match = request.getHeader(b"if-none-match")
        if match is not None and (match.strip() == b"*" or etag in _etags(match)):
            file.close()
            request.setResponseCode(304)
            return b""
        wanted = parse_range(request.getHeader(b"range"), size)
        if wanted == UNSATISFIABLE:
            file.close()
            request.setHeader(b"content-range", f"bytes */{size}".encode())
            raise ApiError(
                416,
                "RangeNotSatisfiable",
                f"The requested range is outside the file ({size} bytes)",
            )
        content_type = row.get("contentType") or "application/octet-stream"
        request.setHeader(b"content-type", content_type.encode("ascii", "replace"))
        if wanted is None:
            start, length = 0, size
        else:
            start, length = wanted  # type: ignore[misc]
            request.setResponseCode(206)
            end = start + length - 1
            request.setHeader(b"content-range", f"bytes {start}-{end}/{size}".encode())
        request.setHeader(b"content-length", str(length).encode())
        if request.method == b"HEAD":
            file.close()
            return b""
        return _RangeResource(file, start, length)

    # -- admin -----------------------------------------------------------------------

    @app.route("/storage/generate_upload_url", methods=["POST"])
    @route("/api/storage/generate_upload_url")
    def generate_upload_url(self, request: IRequest):
        require_admin(self.deployment, request)
        return json_response(request, {"uploadUrl": self._storage().upload_url()})

    @app.route("/storage/delete", methods=["POST"])
    @route("/api/storage/delete")
    def delete(self, request: IRequest):
        require_admin(self.deployment, request)
        storage = self._storage()
        body = read_json_body(request)
        storage_id = body.get("storageId")
        try:
            check_storage_id(storage_id)
        except StorageError as e:
            raise _api_error(e)

        async def delete() -> bytes:
            try:
                await storage.delete(storage_id)
            except StorageError as e:
                raise _api_error(e)
            except DatabaseError as e:
                raise ApiError(503, "StorageUnavailable", f"The file could not be deleted: {e}")
            return json_response(request, {})

        return _shielded(defer.ensureDeferred(delete()))

    @app.route("/storage_files", methods=["GET"])
    @route("/api/storage_files")
    def files(self, request: IRequest):
        require_admin(self.deployment, request)
        storage = self._storage()
        num_items = page_size(query_params(request).get("numItems"))
        cursor = query_params(request).get("cursor") or None
        try:
            page = storage.list_page(num_items, cursor)
        except DatabaseUnavailable as e:
            raise not_ready(e.message)
        except (DatabaseError, ConvexValueError) as e:
            raise ApiError(400, getattr(e, "code", None) or "InvalidCursor", str(e))
        return json_response(request, page)


#: Uploaded files are served from the dashboard's origin, whose tabs keep the
#: admin key in sessionStorage: an HTML or SVG file opened from its URL must
#: not run script as that origin. ``sandbox`` gives the page an opaque origin
#: of its own and no script at all.
USER_CONTENT_CSP = b"sandbox"


def _user_content_headers(request: IRequest, content_type: str | None) -> None:
    # Never sniffed: a file is only ever what its stored type says.
    request.setHeader(b"x-content-type-options", b"nosniff")
    text = (content_type or "").lower()
    # PDFs are left out: browsers' viewers refuse sandboxed documents, and they
    # run no script with the page's origin. Not with a comma: browsers take the
    # last of several types ("application/pdf;a=,text/html" is HTML to them).
    if text.split(";", 1)[0].strip() != "application/pdf" or "," in text:
        request.setHeader(b"content-security-policy", USER_CONTENT_CSP)


def _etags(header: bytes) -> list[bytes]:
    return [tag.strip().removeprefix(b"W/") for tag in header.split(b",")]


__all__ = ["StorageApi", "parse_range"]
