"""The public function API and the deploy endpoint (reference/client-protocol.md §2).

``POST /api/query|mutation|action`` (args as an object or a one-element
array), ``POST /api/function`` and ``POST /api/run/<module path>/<function>``
answer ``{"status": "success", "value", "logLines"}`` or, for a failed
function, ``{"status": "error", "errorMessage", "errorData"?, "logLines"}``
with HTTP 200; anything else wrong with the request is a ``{"code",
"message"}`` error with a 4xx/5xx status. Values are Convex-JSON when
``format`` is ``convex_encoded_json``, Convex's clean JSON export otherwise.

Queries can also be run with ``GET /api/query?path=&args=<json>&format=``,
several at one snapshot with ``POST /api/query_batch``, and at an earlier
snapshot with ``POST /api/query_ts`` + ``POST /api/query_at_ts`` (timestamps
are u64s as the sync protocol writes them: 8 little-endian bytes in base64).

JSON bodies must be ``application/json`` (or carry no Content-Type) and may be
``gzip`` or ``br`` compressed (``Content-Encoding``), as the Convex CLI sends
pushes; decompressed, they are held to the same size limit as plain bodies.

``POST /api/deploy`` (admin key) pushes a new set of modules.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import zlib
from typing import Any

from klein import Klein
from twisted.internet import defer
from twisted.web.iweb import IRequest

from convex_backend.auth.header import (
    AdminCredentials,
    AuthorizationError,
    UserCredentials,
    parse_authorization,
)
from convex_backend.auth.jwt import AuthenticationError
from convex_backend.auth.users import user_authenticator
from convex_backend.database.errors import DatabaseError, DatabaseUnavailable
from convex_backend.deployment import Deployment
from convex_backend.functions.modules import DeployError
from convex_backend.functions.runner import Caller, FunctionError
from convex_backend.http.api_app import DeploymentApp, query_params
from convex_backend.http.errors import ApiError, install_error_handlers
from convex_backend.http.root import json_response, require_admin
from convex_backend.http.site import route
from convex_backend.values import ConvexValueError, from_json, to_clean_json, to_json

ENCODED = "convex_encoded_json"
#: The most queries one ``/api/query_batch`` may carry.
MAX_QUERY_BATCH = 256
#: Used when the request does not come through a :class:`ConvexSite` (tests).
DEFAULT_BODY_LIMIT = 32 * 1024 * 1024
_DECOMPRESS_CHUNK = 64 * 1024

# -- request bodies -----------------------------------------------------------------


def body_limit(request: IRequest) -> int:
    """The largest body this request may have once decompressed (the site's limit)."""
    site_limit = getattr(request, "site_body_limit", None)
    if callable(site_limit):
        try:
            return int(site_limit())
        except Exception:  # a channel already gone, an odd site: fall back
            pass
    site = getattr(getattr(request, "channel", None), "site", None)
    return int(getattr(site, "max_request_bytes", DEFAULT_BODY_LIMIT))


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413, "PayloadTooLarge", f"The decompressed request body is larger than {limit} bytes"
    )


def _gunzip(raw: bytes, limit: int) -> bytes:
    out = bytearray()
    data = raw
    while data:
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        pending = data
        while True:
            chunk = inflater.decompress(pending, limit - len(out) + 1)
            out += chunk
            if len(out) > limit:
                raise _too_large(limit)
            pending = inflater.unconsumed_tail
            if inflater.eof or (not pending and not chunk):
                break
        if not inflater.eof:
            raise zlib.error("truncated gzip stream")
        # Concatenated gzip members are one body (RFC 1952 §2.2).
        data = inflater.unused_data
    return bytes(out)


def _unbrotli(raw: bytes, limit: int) -> bytes:
    import brotli

    decompressor = brotli.Decompressor()
    out = bytearray()
    if not hasattr(decompressor, "can_accept_more_data"):
        # brotli < 1.2 cannot cap its output: feed it small pieces instead.
        for start in range(0, len(raw), 256):
            out += decompressor.process(raw[start : start + 256])
            if len(out) > limit:
                raise _too_large(limit)
    else:
        position = 0
        while True:
            if decompressor.can_accept_more_data():
                if position >= len(raw):
                    break
                piece = raw[position : position + _DECOMPRESS_CHUNK]
                position += len(piece)
            else:
                piece = b""
            chunk = decompressor.process(piece, output_buffer_limit=limit - len(out) + 1)
            out += chunk
            if len(out) > limit:
                raise _too_large(limit)
            if not piece and not chunk:
                break
    if not decompressor.is_finished():
        raise ValueError("truncated brotli stream")
    return bytes(out)


_DECODERS = {"gzip": _gunzip, "x-gzip": _gunzip, "br": _unbrotli}


def read_body(request: IRequest) -> bytes:
    """The request body, decompressed per ``Content-Encoding`` (gzip, br).

    415 for an encoding we cannot decode, 400 for a corrupt stream, 413 when the
    decompressed body is over the site's limit (a compression bomb never gets
    decompressed past it).
    """
    raw = request.content.read()
    header = request.getHeader(b"content-encoding")
    if not header:
        return raw
    encodings = [e.strip().lower() for e in header.decode("latin-1").split(",") if e.strip()]
    limit = body_limit(request)
    # Encodings are listed in the order they were applied: undo them backwards.
    for encoding in reversed(encodings):
        if encoding == "identity":
            continue
        decoder = _DECODERS.get(encoding)
        if decoder is None:
            raise ApiError(
                415,
                "UnsupportedContentEncoding",
                f"Content-Encoding {encoding[:40]!r} is not supported (use gzip or br)",
            )
        try:
            raw = decoder(raw, limit)
        except ApiError:
            raise
        except Exception:
            raise ApiError(
                400,
                "BadContentEncoding",
                f"The request body is not valid {encoding} data",
            )
    return raw


def check_json_content_type(request: IRequest) -> None:
    """JSON routes take ``application/json`` (``+json`` types too) or no Content-Type."""
    header = request.getHeader(b"content-type")
    if header is None:
        return
    media = header.decode("latin-1").split(";", 1)[0].strip().lower()
    if media in ("application/json", "text/json") or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return
    raise ApiError(
        415,
        "BadContentType",
        f"Expected a JSON request body (Content-Type: application/json), got {media[:60]!r}",
    )


def read_json_body(request: IRequest) -> dict:
    check_json_content_type(request)
    raw = read_body(request)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "BadJsonBody", "The request body is not valid JSON")
    if not isinstance(body, dict):
        raise ApiError(400, "BadJsonBody", "The request body must be a JSON object")
    return body


# -- timestamps -----------------------------------------------------------------------

_U64 = struct.Struct("<Q")


def encode_ts(ts: int) -> str:
    """A u64 as the sync protocol writes it: 8 little-endian bytes, base64 with padding."""
    return base64.b64encode(_U64.pack(ts)).decode("ascii")


def decode_ts(value: Any) -> int:
    """A timestamp from a request: that base64 form, or a plain JSON integer."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < 2**64:
            return value
    elif isinstance(value, str) and len(value) <= 16:
        try:
            raw = base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) == 8:
            return _U64.unpack(raw)[0]
    raise ApiError(
        400,
        "InvalidTimestamp",
        "`ts` must be a timestamp from /api/query_ts (a u64 as 8 little-endian bytes in base64)",
    )


# -- callers --------------------------------------------------------------------------


async def caller_for(deployment: Deployment, request: IRequest) -> Caller:
    """Who calls: anyone, an admin (maybe acting as a user), or a user with a verified JWT."""
    try:
        credentials = parse_authorization(request.getHeader(b"authorization"))
    except AuthorizationError as e:
        raise ApiError(401, "Unauthenticated", f"Invalid Authorization header: {e}")
    if credentials is None:
        return Caller("client")
    if isinstance(credentials, UserCredentials):
        try:
            verified = await user_authenticator(deployment).authenticate(credentials.token)
        except AuthenticationError as e:
            raise ApiError(401, e.code, e.message)
        return Caller("client", verified.identity)
    assert isinstance(credentials, AdminCredentials)
    if not deployment.admin_keys.is_valid(credentials.key):
        raise ApiError(401, "BadAdminKey", "The provided admin key was invalid for this instance")
    return Caller("admin", credentials.acting_as)


def _encoder(value_format: Any, where: str = ""):
    if value_format not in (None, ENCODED, "json"):
        raise ApiError(400, "BadRequest", f"{where}Unknown format {str(value_format)[:40]!r}")
    return to_json if value_format == ENCODED else to_clean_json


def _function_path(path: Any, where: str = "") -> str:
    if not isinstance(path, str) or not path:
        raise ApiError(400, "BadRequest", f"{where}`path` must be a function path string")
    return path


def _decode_args(args: Any, where: str = "") -> Any:
    """Arguments as clients send them: an object, or (legacy) ``[object]``."""
    if args is None:
        args = {}
    if isinstance(args, list):
        if len(args) != 1:
            raise ApiError(400, "BadRequest", f"{where}`args` must be an object or [object]")
        args = args[0]
    if not isinstance(args, dict):
        raise ApiError(
            400,
            "BadRequest",
            f"{where}`args` must be an object of named arguments, got {type(args).__name__}",
        )
    try:
        return from_json(args)
    except ConvexValueError as e:
        raise ApiError(400, "BadConvexValue", f"{where}Invalid function arguments: {e}")


def _result_json(result, encode) -> dict:
    return {"status": "success", "value": encode(result.value), "logLines": result.log_lines}


def _error_json(error: FunctionError, encode) -> dict:
    answer = {"status": "error", "errorMessage": error.message, "logLines": error.log_lines}
    if error.code == "ConvexError":
        answer["errorData"] = encode(error.data)
    return answer


def _database_error(e: DatabaseError) -> ApiError:
    if isinstance(e, DatabaseUnavailable):
        return ApiError(503, "NotReady", e.message)
    return ApiError(400, e.code, e.message)


class FunctionApi(DeploymentApp):
    app = Klein()
    install_error_handlers(app)

    def _runner(self):
        return self.part("runner")

    async def _run(
        self, request: IRequest, expected: str | None, path: Any, args: Any, value_format: Any
    ) -> bytes:
        runner = self._runner()
        caller = await caller_for(self.deployment, request)
        path = _function_path(path)
        encode = _encoder(value_format)
        decoded = _decode_args(args)
        try:
            result = await runner.call(path, decoded, caller=caller, expected=expected)
        except FunctionError as e:
            return json_response(request, _error_json(e, encode))
        return json_response(request, _result_json(result, encode))

    def _body_route(self, request: IRequest, expected: str | None):
        body = read_json_body(request)
        return defer.ensureDeferred(
            self._run(request, expected, body.get("path"), body.get("args"), body.get("format"))
        )

    @app.route("/query", methods=["POST"])
    @route("/api/query")
    def query(self, request: IRequest):
        return self._body_route(request, "query")

    @app.route("/query", methods=["GET"])
    @route("/api/query")
    def query_get(self, request: IRequest):
        params = query_params(request)
        raw_args = params.get("args")
        args: Any = {}
        if raw_args is not None:
            try:
                args = json.loads(raw_args)
            except ValueError:
                raise ApiError(400, "BadRequest", "The `args` parameter is not valid JSON")
        return defer.ensureDeferred(
            self._run(request, "query", params.get("path"), args, params.get("format"))
        )

    @app.route("/mutation", methods=["POST"])
    @route("/api/mutation")
    def mutation(self, request: IRequest):
        return self._body_route(request, "mutation")

    @app.route("/action", methods=["POST"])
    @route("/api/action")
    def action(self, request: IRequest):
        return self._body_route(request, "action")

    @app.route("/function", methods=["POST"])
    @route("/api/function")
    def function(self, request: IRequest):
        return self._body_route(request, None)

    @app.route("/run/<path:function_path>", methods=["POST"])
    @route("/api/run/{path}")
    def run(self, request: IRequest, function_path: str):
        segments = function_path.split("/")
        if len(segments) < 2 or not all(segments):
            raise ApiError(
                400,
                "BadRequest",
                "Use /api/run/<module path>/<function name>, e.g. /api/run/messages/list",
            )
        path = "/".join(segments[:-1]) + ":" + segments[-1]
        body = read_json_body(request)
        return defer.ensureDeferred(
            self._run(request, None, path, body.get("args"), body.get("format"))
        )

    # -- snapshots ---------------------------------------------------------------------

    @app.route("/query_ts", methods=["POST"])
    @route("/api/query_ts")
    def query_ts(self, request: IRequest):
        runner = self._runner()
        return json_response(request, {"ts": encode_ts(runner.db.published_ts)})

    @app.route("/query_at_ts", methods=["POST"])
    @route("/api/query_at_ts")
    def query_at_ts(self, request: IRequest):
        body = read_json_body(request)
        if "ts" not in body:
            raise ApiError(400, "InvalidTimestamp", "`ts` is required (see /api/query_ts)")
        ts = decode_ts(body["ts"])
        runner = self._runner()
        path = _function_path(body.get("path"))
        encode = _encoder(body.get("format"))
        args = _decode_args(body.get("args"))

        async def run() -> bytes:
            caller = await caller_for(self.deployment, request)
            try:
                result = await runner.call_query_at(path, args, ts, caller=caller)
            except FunctionError as e:
                return json_response(request, _error_json(e, encode))
            except DatabaseError as e:
                raise _database_error(e)
            return json_response(request, _result_json(result, encode))

        return defer.ensureDeferred(run())

    @app.route("/query_batch", methods=["POST"])
    @route("/api/query_batch")
    def query_batch(self, request: IRequest):
        body = read_json_body(request)
        runner = self._runner()
        queries = body.get("queries")
        if not isinstance(queries, list):
            raise ApiError(400, "BadRequest", "`queries` must be a list of {path, args, format}")
        if len(queries) > MAX_QUERY_BATCH:
            raise ApiError(
                400, "BadRequest", f"Too many queries in one batch (limit {MAX_QUERY_BATCH})"
            )
        prepared = []
        for i, entry in enumerate(queries):
            where = f"queries[{i}]: "
            if not isinstance(entry, dict):
                raise ApiError(400, "BadRequest", f"{where}each query must be an object")
            prepared.append(
                (
                    _function_path(entry.get("path"), where),
                    _decode_args(entry.get("args"), where),
                    _encoder(entry.get("format"), where),
                )
            )

        async def one(path: str, args: Any, encode, ts: int, caller: Caller) -> dict:
            try:
                result = await runner.call_query_at(path, args, ts, caller=caller)
            except FunctionError as e:
                return _error_json(e, encode)
            except DatabaseError as e:
                raise _database_error(e)
            return _result_json(result, encode)

        async def run() -> bytes:
            caller = await caller_for(self.deployment, request)
            # Every query reads the same snapshot, held until the last one is done.
            try:
                pin = runner.db.begin()
            except DatabaseError as e:
                raise _database_error(e)
            try:
                results = await defer.gatherResults(
                    [
                        defer.ensureDeferred(one(path, args, encode, pin.begin_ts, caller))
                        for path, args, encode in prepared
                    ],
                    consumeErrors=True,
                )
            except defer.FirstError as e:
                e.subFailure.raiseException()
            finally:
                pin.close()
            return json_response(request, {"results": results})

        return defer.ensureDeferred(run())

    # -- deploys -------------------------------------------------------------------------

    @app.route("/deploy", methods=["POST"])
    @route("/api/deploy")
    def deploy(self, request: IRequest):
        require_admin(self.deployment, request)
        body = read_json_body(request)
        deployer = self.part("deployer")

        async def push() -> bytes:
            try:
                summary = await deployer.deploy(
                    body.get("modules"), dry_run=bool(body.get("dryRun"))
                )
            except DeployError as e:
                raise ApiError(400, e.code, e.message)
            return json_response(request, {"ok": True, **summary})

        return defer.ensureDeferred(push())


__all__ = [
    "ENCODED",
    "FunctionApi",
    "body_limit",
    "caller_for",
    "check_json_content_type",
    "decode_ts",
    "encode_ts",
    "read_body",
    "read_json_body",
]
