"""The admin API under ``/api/``: tables, documents, environment variables, the deployment.

Every route needs the admin key (``Authorization: Convex <key>``, or
``{"adminKey": ...}`` in a POST's JSON body): 401 ``MissingAdminKey`` without
one, 401 ``BadAdminKey`` with a wrong one (or a user token).

* ``POST /api/clear_tables`` ``{"tableNames": [...]}``: deletes every document
  of those user tables, a batch per privileged transaction; answers
  ``{"deleted": {"<table>": <count>}}``.
* ``GET /api/tables``: ``{"tables": [{"name", "documentCount"}]}`` (user tables).
* ``GET /api/tables/<table>/documents?cursor=&numItems=&order=``: one page of a
  table, ``{"page": [<Convex-JSON documents>], "isDone", "continueCursor"}``.
* ``GET /api/environment_variables``: ``{"environmentVariables": [{"name", "value"}]}``
  and ``GET /api/list_environment_variables``: ``{"environmentVariables":
  {"NAME": "value"}}`` (the real backend's shape).
* ``POST /api/update_environment_variables`` ``{"changes": [{"name", "value"}]}``
  (as ``npx convex env set|remove`` sends it; a null or missing value removes
  the variable): applied in one transaction, seen by functions from their next
  run.
* ``GET /api/deployment``: the deployed functions, HTTP routes and schema.
* ``GET /api/v1/get_canonical_urls``: ``{"convexCloudUrl", "convexSiteUrl"}``.

:class:`FirstMatchResource` puts several Klein apps under one path: the first
whose routes know the request's path answers it.
"""

from __future__ import annotations

import re
from typing import Any

from klein import Klein
from twisted.internet import defer
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from convex_backend.database.errors import DatabaseError
from convex_backend.http.api_app import DeploymentApp, page_params, query_params
from convex_backend.http.errors import ApiError, install_error_handlers
from convex_backend.http.functions_api import read_json_body
from convex_backend.http.root import json_response, require_admin
from convex_backend.http.site import route
from convex_backend.values import ConvexValueError, to_json

ENVIRONMENT_TABLE = "_environment_variables"
MAX_ENV_VARS = 1000
MAX_ENV_NAME_LENGTH = 40
MAX_ENV_VALUE_BYTES = 8 * 1024
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: A clear_tables batch stops reading once it has read this much (the
#: per-transaction limit is 16 MiB and a delete reads its document again).
_CLEAR_BATCH_BYTES = 6 * 1024 * 1024
_CLEAR_BATCH_DOCUMENTS = 1000


def _scan(table: str, order: str = "asc") -> dict:
    return {
        "source": {"type": "FullTableScan", "tableName": table, "order": order},
        "operators": [],
    }


def _user_tables(database) -> list[str]:
    return sorted(name for name in database.store.tables_by_name if not name.startswith("_"))


def _environment_rows(tx) -> list[dict]:
    return tx.query(_scan(ENVIRONMENT_TABLE), system=True).collect()


class AdminApi(DeploymentApp):
    app = Klein()
    install_error_handlers(app)

    # -- helpers -------------------------------------------------------------------

    def _admin_json(self, request: IRequest) -> dict:
        """The JSON body of an admin POST, after the admin check (header or ``adminKey``)."""
        if request.getHeader(b"authorization") is not None:
            require_admin(self.deployment, request)
            return read_json_body(request)
        try:
            body = read_json_body(request)
        except ApiError:
            require_admin(self.deployment, request)  # no key anywhere: 401 first
            raise
        key = body.get("adminKey")
        require_admin(self.deployment, request, key if isinstance(key, str) else None)
        return body

    # -- tables --------------------------------------------------------------------

    @app.route("/clear_tables", methods=["POST"])
    @route("/api/clear_tables")
    def clear_tables(self, request: IRequest):
        body = self._admin_json(request)
        database = self.part("database")
        names = body.get("tableNames")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ApiError(400, "BadRequest", "`tableNames` must be a list of table names")
        names = list(dict.fromkeys(names))
        for name in names:
            if name.startswith("_"):
                raise ApiError(400, "BadRequest", f"System table {name[:64]!r} cannot be cleared")
            if name not in database.store.tables_by_name:
                raise ApiError(400, "TableNotFound", f"Table {name[:64]!r} does not exist")

        def delete_batch(table: str):
            def fn(tx) -> int:
                stream = tx.query(_scan(table))
                deleted = 0
                while deleted < _CLEAR_BATCH_DOCUMENTS and tx.bytes_read < _CLEAR_BATCH_BYTES:
                    doc = stream.next()
                    if doc is None:
                        break
                    tx.delete(doc["_id"])
                    deleted += 1
                stream.close()
                return deleted

            return fn

        async def clear() -> bytes:
            counts: dict[str, int] = {}
            for table in names:
                total = 0
                while True:
                    try:
                        deleted, _ts = await database.run(delete_batch(table), privileged=True)
                    except DatabaseError as e:
                        raise ApiError(500, "InternalServerError", f"Clearing {table}: {e}")
                    total += deleted
                    if deleted == 0:
                        break
                counts[table] = total
            return json_response(request, {"deleted": counts})

        return defer.ensureDeferred(clear())

    @app.route("/tables", methods=["GET"])
    @route("/api/tables")
    def tables(self, request: IRequest):
        require_admin(self.deployment, request)
        database = self.part("database")

        def list_tables(tx) -> list[dict]:
            return [
                {"name": name, "documentCount": tx.count(name)} for name in _user_tables(database)
            ]

        return json_response(request, {"tables": self.read(list_tables)})

    @app.route("/tables/<table>/documents", methods=["GET"])
    @route("/api/tables/{table}/documents")
    def documents(self, request: IRequest, table: str):
        require_admin(self.deployment, request)
        database = self.part("database")
        params = query_params(request)
        if table.startswith("_") or table not in database.store.tables_by_name:
            raise ApiError(404, "TableNotFound", f"Table {table[:64]!r} does not exist")
        order, num_items, cursor = page_params(params)

        def page(tx) -> dict:
            try:
                result = tx.query_page(_scan(table, order), cursor=cursor, page_size=num_items)
            except (DatabaseError, ConvexValueError) as e:
                code = getattr(e, "code", None) or "InvalidCursor"
                raise ApiError(400, code, str(e))
            return {
                "page": [to_json(doc) for doc in result["page"]],
                "isDone": result["isDone"],
                "continueCursor": result["continueCursor"],
            }

        return json_response(request, self.read(page))

    # -- environment variables -----------------------------------------------------

    def _environment(self) -> dict[str, str]:
        rows = self.read(_environment_rows)
        return {row["name"]: row["value"] for row in sorted(rows, key=lambda r: r["name"])}

    @app.route("/environment_variables", methods=["GET"])
    @route("/api/environment_variables")
    def environment_variables(self, request: IRequest):
        require_admin(self.deployment, request)
        variables = [{"name": k, "value": v} for k, v in self._environment().items()]
        return json_response(request, {"environmentVariables": variables})

    @app.route("/list_environment_variables", methods=["GET"])
    @route("/api/list_environment_variables")
    def list_environment_variables(self, request: IRequest):
        require_admin(self.deployment, request)
        return json_response(request, {"environmentVariables": self._environment()})

    @app.route("/update_environment_variables", methods=["POST"])
    @route("/api/update_environment_variables")
    def update_environment_variables(self, request: IRequest):
        body = self._admin_json(request)
        database = self.part("database")
        changes = _validate_changes(body.get("changes"))

        def apply(tx) -> None:
            rows = {row["name"]: row for row in _environment_rows(tx)}
            for name, value in changes.items():
                row = rows.get(name)
                if value is None:
                    if row is not None:
                        tx.delete(row["_id"])
                        del rows[name]
                elif row is None:
                    tx.insert(ENVIRONMENT_TABLE, {"name": name, "value": value})
                    rows[name] = {"name": name, "value": value}
                elif row["value"] != value:
                    tx.patch(row["_id"], {"value": value})
            if len(rows) > MAX_ENV_VARS:
                raise ApiError(
                    400,
                    "TooManyEnvironmentVariables",
                    f"A deployment may have at most {MAX_ENV_VARS} environment variables",
                )

        async def update() -> bytes:
            try:
                await database.run(apply, privileged=True)
            except DatabaseError as e:
                raise ApiError(500, "InternalServerError", f"Could not save the changes: {e}")
            runner = getattr(self.deployment, "runner", None)
            if runner is not None:
                from convex_backend.functions.service import load_environment

                # Read back the committed state: concurrent updates end up in order.
                runner.set_environment(load_environment(database))
            return json_response(request, {})

        return defer.ensureDeferred(update())

    # -- the deployment ------------------------------------------------------------

    @app.route("/deployment", methods=["GET"])
    @route("/api/deployment")
    def deployment_info(self, request: IRequest):
        require_admin(self.deployment, request)
        deployer = self.part("deployer")
        analysis = deployer.analysis or {}
        functions = [
            {
                "path": entry.get("path"),
                "udfType": entry.get("udfType"),
                "visibility": entry.get("visibility") or "public",
                "args": entry.get("args"),
                "returns": entry.get("returns"),
                "line": entry.get("line"),
            }
            for entry in analysis.get("functions") or []
            if entry.get("udfType") != "httpAction"
        ]
        functions.sort(key=lambda f: str(f["path"]))
        return json_response(
            request,
            {
                "deploymentId": deployer.current_id,
                "deployedAt": deployer.deployed_at,
                "functions": functions,
                "httpRoutes": analysis.get("httpRoutes") or [],
                "schema": analysis.get("schema"),
            },
        )

    @app.route("/v1/get_canonical_urls", methods=["GET"])
    @route("/api/v1/get_canonical_urls")
    def canonical_urls(self, request: IRequest):
        require_admin(self.deployment, request)
        config = self.deployment.config
        return json_response(
            request,
            {"convexCloudUrl": config.cloud_origin, "convexSiteUrl": config.site_origin},
        )


def _validate_changes(changes: Any) -> dict[str, str | None]:
    """``[{"name", "value"}]`` → name → value (None removes); 400 for anything invalid."""
    if not isinstance(changes, list):
        raise ApiError(400, "BadRequest", "`changes` must be a list of {name, value}")
    if len(changes) > MAX_ENV_VARS:
        raise ApiError(
            400, "TooManyEnvironmentVariables", f"At most {MAX_ENV_VARS} changes at once"
        )
    result: dict[str, str | None] = {}
    for change in changes:
        if not isinstance(change, dict):
            raise ApiError(400, "BadRequest", "Each change must be an object {name, value}")
        name, value = change.get("name"), change.get("value")
        if (
            not isinstance(name, str)
            or len(name) > MAX_ENV_NAME_LENGTH
            or not _ENV_NAME.fullmatch(name)
        ):
            raise ApiError(
                400,
                "InvalidEnvironmentVariableName",
                f"Invalid environment variable name {str(name)[:64]!r}: names start with a "
                "letter or _, contain only letters, digits and _, and are at most "
                f"{MAX_ENV_NAME_LENGTH} characters long",
            )
        if name in result:
            raise ApiError(
                400, "DuplicateEnvironmentVariable", f"{name} appears more than once in `changes`"
            )
        if value is not None:
            if not isinstance(value, str):
                raise ApiError(
                    400, "InvalidEnvironmentVariableValue", f"The value of {name} must be a string"
                )
            if len(value.encode("utf-8", "surrogatepass")) > MAX_ENV_VALUE_BYTES:
                raise ApiError(
                    400,
                    "InvalidEnvironmentVariableValue",
                    f"The value of {name} is longer than {MAX_ENV_VALUE_BYTES} bytes",
                )
            if "\x00" in value:
                raise ApiError(
                    400,
                    "InvalidEnvironmentVariableValue",
                    f"The value of {name} contains a NUL character",
                )
        result[name] = value
    return result


class FirstMatchResource(Resource):
    """Serves each request with the first of several Klein apps that routes its path.

    An app "routes" a path when one of its rules matches it with any method,
    so a wrong method still gets that app's 405. A path no app knows goes to
    the last app (for its 404).
    """

    isLeaf = True

    def __init__(self, *apps) -> None:
        super().__init__()
        self._apps = [(app.app, app.resource()) for app in apps]

    def _pick(self, request: IRequest):
        try:
            path_info = "/" + "/".join(s.decode("utf-8") for s in request.postpath)
        except UnicodeDecodeError:
            return self._apps[-1][1]
        method = request.method.decode("ascii", "replace")
        for klein_app, resource in self._apps[:-1]:
            adapter = klein_app.url_map.bind("localhost", path_info=path_info)
            try:
                adapter.match(method=method)
            except NotFound:
                continue
            except (MethodNotAllowed, RequestRedirect):
                return resource
            return resource
        return self._apps[-1][1]

    def render(self, request: IRequest):
        return self._pick(request).render(request)
