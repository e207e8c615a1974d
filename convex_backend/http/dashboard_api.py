"""The dashboard's own admin endpoints under ``/api/dashboard/``: browsing and editing documents.

Every route needs the admin key (``Authorization: Convex <key>``): 401 without
one or with a wrong one. Values are Convex-JSON both ways (``values/codec.py``).

* ``GET /api/dashboard/documents?table=&cursor=&numItems=&order=&filters=``:
  one page of a user table, as ``GET /api/tables/<t>/documents`` answers it,
  with an optional server-side filter: ``filters`` is a JSON list of
  ``{"field": "a.b", "op": "eq"|"neq"|"lt"|"lte"|"gt"|"gte", "value": <Convex-JSON>}``,
  all of which must hold. A filtered page scans at most :data:`FILTER_SCAN_ROWS`
  documents, so a rare match may give a short (even empty) page that is not
  done: ask for the next one with ``continueCursor``.
* ``POST /api/dashboard/documents/insert`` ``{"table", "document"}`` → ``{"id"}``.
  A missing table is created, as a mutation's insert would.
* ``POST /api/dashboard/documents/update`` ``{"id", "document", "table"?}`` →
  ``{"document"}``: replaces the document's fields; ``_id`` and
  ``_creationTime`` are kept (and, if the document carries them, must match).
* ``POST /api/dashboard/documents/delete`` ``{"ids": [...]}`` → ``{"deleted": n}``.

Writes run as ordinary (unprivileged) transactions, so they get exactly the
checks of a user mutation: the schema, document size and nesting limits, and
system tables (``_``-prefixed) are refused. Each request is one transaction:
a delete of several ids removes all or none.
"""

from __future__ import annotations

import json
from typing import Any

from klein import Klein
from twisted.internet import defer
from twisted.web.iweb import IRequest

from convex_backend.database.errors import DatabaseError, DatabaseUnavailable, OccConflict
from convex_backend.database.tables import is_system_table
from convex_backend.http.api_app import DeploymentApp, not_ready, page_params, query_params
from convex_backend.http.errors import ApiError, install_error_handlers
from convex_backend.http.functions_api import read_json_body
from convex_backend.http.root import json_response, require_admin
from convex_backend.http.site import route
from convex_backend.values import ConvexValueError, from_json, to_json

#: How many documents one filtered page may look at before it answers.
FILTER_SCAN_ROWS = 5000
#: The most filter conditions and ids one request may carry.
MAX_FILTERS = 32
MAX_DELETE_IDS = 1000
_OPS = ("eq", "neq", "lt", "lte", "gt", "gte")


class DashboardApi(DeploymentApp):
    app = Klein()
    install_error_handlers(app)

    def _body(self, request: IRequest) -> dict:
        require_admin(self.deployment, request)
        return read_json_body(request)

    async def _write(self, fn) -> Any:
        """``fn(tx)`` in a user-level transaction, committed; database errors become 400s."""
        database = self.part("database")
        try:
            result, _ts = await database.run(fn)
        except DatabaseUnavailable as e:
            raise not_ready(e.message)
        except OccConflict as e:
            raise ApiError(409, e.code, "The documents changed too often to write; try again")
        except DatabaseError as e:
            raise ApiError(404 if e.code == "NotFound" else 400, e.code, e.message)
        except ConvexValueError as e:
            raise ApiError(400, "BadConvexValue", str(e))
        return result

    # -- reading -------------------------------------------------------------------

    @app.route("/dashboard/documents", methods=["GET"])
    @route("/api/dashboard/documents")
    def documents(self, request: IRequest):
        require_admin(self.deployment, request)
        database = self.part("database")
        params = query_params(request)
        table = _table_name(params.get("table"))
        if table not in database.store.tables_by_name:
            raise ApiError(404, "TableNotFound", f"Table {table[:64]!r} does not exist")
        order, num_items, cursor = page_params(params)
        filters = _parse_filters(params.get("filters"))
        operators = [{"filter": filters}] if filters is not None else []
        query = {
            "source": {"type": "FullTableScan", "tableName": table, "order": order},
            "operators": operators,
        }

        def page(tx) -> dict:
            result = tx.query_page(
                query,
                cursor=cursor,
                page_size=num_items,
                maximum_rows_read=FILTER_SCAN_ROWS if filters is not None else None,
            )
            return {
                "page": [to_json(doc) for doc in result["page"]],
                "isDone": result["isDone"],
                "continueCursor": result["continueCursor"],
            }

        try:
            tx = database.begin()
        except DatabaseUnavailable as e:
            raise not_ready(e.message)
        try:
            answer = page(tx)
        except (DatabaseError, ConvexValueError) as e:
            # A cursor of another query, a filter that fails on a document, ...
            raise ApiError(400, getattr(e, "code", None) or "BadRequest", _message(e))
        finally:
            tx.close()
        return json_response(request, answer)

    # -- writing -------------------------------------------------------------------

    @app.route("/dashboard/documents/insert", methods=["POST"])
    @route("/api/dashboard/documents/insert")
    def insert(self, request: IRequest):
        body = self._body(request)
        self.part("database")
        table = _table_name(body.get("table"))
        document = _document(body.get("document"))

        async def run() -> bytes:
            doc_id = await self._write(lambda tx: tx.insert(table, document))
            return json_response(request, {"id": doc_id})

        return defer.ensureDeferred(run())

    @app.route("/dashboard/documents/update", methods=["POST"])
    @route("/api/dashboard/documents/update")
    def update(self, request: IRequest):
        body = self._body(request)
        self.part("database")
        doc_id = _id(body.get("id"))
        document = _document(body.get("document"))
        table = body.get("table")
        if table is not None:
            table = _table_name(table)

        def replace(tx) -> dict:
            _check_user_document(tx, doc_id)
            return tx.replace(doc_id, document, table=table)

        async def run() -> bytes:
            doc = await self._write(replace)
            return json_response(request, {"document": to_json(doc)})

        return defer.ensureDeferred(run())

    @app.route("/dashboard/documents/delete", methods=["POST"])
    @route("/api/dashboard/documents/delete")
    def delete(self, request: IRequest):
        body = self._body(request)
        self.part("database")
        ids = body.get("ids")
        if not isinstance(ids, list) or not ids:
            raise ApiError(400, "BadRequest", "`ids` must be a non-empty list of document ids")
        if len(ids) > MAX_DELETE_IDS:
            raise ApiError(400, "BadRequest", f"At most {MAX_DELETE_IDS} ids per request")
        ids = list(dict.fromkeys(_id(i) for i in ids))

        def delete_all(tx) -> int:
            for doc_id in ids:
                _check_user_document(tx, doc_id)
                tx.delete(doc_id)
            return len(ids)

        async def run() -> bytes:
            deleted = await self._write(delete_all)
            return json_response(request, {"deleted": deleted})

        return defer.ensureDeferred(run())


# -- validation ------------------------------------------------------------------------


def _message(e: Exception) -> str:
    return getattr(e, "message", None) or str(e)


def _table_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise ApiError(400, "BadRequest", "`table` must be a table name")
    if is_system_table(name):
        raise ApiError(
            400, "SystemTableWrite", f"System table {name[:64]!r} cannot be edited or browsed here"
        )
    return name


def _id(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ApiError(400, "InvalidId", "A document id must be a non-empty id string")
    return value


def _document(value: Any) -> dict:
    """A Convex-JSON object decoded to a document value."""
    if not isinstance(value, dict):
        raise ApiError(400, "BadRequest", "`document` must be a JSON object (Convex-JSON)")
    try:
        return from_json(value)
    except ConvexValueError as e:
        raise ApiError(400, "BadConvexValue", f"Invalid document: {e}")


def _check_user_document(tx, doc_id: str) -> None:
    """Refuse ids of system tables with a clear error before the write sees them."""
    name = tx.table_name_of(doc_id)
    if name is not None and is_system_table(name):
        raise DatabaseError(
            f"Documents of the system table {name!r} are read-only", "SystemTableWrite"
        )


def _parse_filters(raw: str | None) -> dict | None:
    """The ``filters`` parameter as one Convex filter expression (None when absent)."""
    if raw is None or raw == "":
        return None
    try:
        conditions = json.loads(raw)
    except ValueError:
        raise ApiError(400, "BadRequest", "`filters` is not valid JSON")
    if not isinstance(conditions, list) or len(conditions) > MAX_FILTERS:
        raise ApiError(
            400, "BadRequest", f"`filters` must be a list of at most {MAX_FILTERS} conditions"
        )
    if not conditions:
        return None
    terms = []
    for i, condition in enumerate(conditions):
        where = f"filters[{i}]"
        if not isinstance(condition, dict):
            raise ApiError(400, "BadRequest", f"{where} must be an object {{field, op, value}}")
        field, op = condition.get("field"), condition.get("op", "eq")
        if not isinstance(field, str) or not field or len(field) > 1024:
            raise ApiError(400, "BadRequest", f"{where}.field must be a field path like a.b")
        if op not in _OPS:
            raise ApiError(400, "BadRequest", f"{where}.op must be one of {', '.join(_OPS)}")
        if "value" not in condition:
            raise ApiError(400, "BadRequest", f"{where}.value is missing")
        try:
            # Checked here so a bad value is a 400 that names the condition.
            from_json(condition["value"], allow_undefined=True)
        except ConvexValueError as e:
            raise ApiError(400, "BadConvexValue", f"{where}.value: {e}")
        terms.append({f"${op}": [{"$field": field}, {"$literal": condition["value"]}]})
    return terms[0] if len(terms) == 1 else {"$and": terms}
