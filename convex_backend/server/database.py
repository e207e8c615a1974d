"""``ctx.db``: reading and writing documents.

This module owns :class:`DatabaseReader` (queries' ``ctx.db``) and
:class:`DatabaseWriter` (mutations' ``ctx.db``), and the syscalls they send
(``reference/server-syscalls.md`` §3.1–3.2). Every method is synchronous::

    doc = ctx.db.get(doc_id)                     # or ctx.db.get("messages", doc_id)
    new_id = ctx.db.insert("messages", {"body": "hi"})
    ctx.db.patch(new_id, {"body": "edited", "draft": UNDEFINED})   # removes "draft"
    ctx.db.replace(new_id, {"body": "all new"})
    ctx.db.delete(new_id)

Tables starting with ``_`` are system tables: they are read through
``ctx.db.system`` only, and other tables only through ``ctx.db`` (checked
here, as Convex's library does). Like Convex's newer API, every method that
takes an id also accepts the table name first; the host then checks that the
id belongs to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from convex_backend.server._syscalls import CONVEX_VERSION, Invocation
from convex_backend.server.queries import QueryInitializer
from convex_backend.values import UNDEFINED, from_json, from_python, to_json
from convex_backend.values.codec import check_field_name

__all__ = ["DatabaseReader", "DatabaseWriter", "TableReader", "TableWriter"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


def _id_arg(doc_id: Any, method: str) -> str:
    if not isinstance(doc_id, str):
        raise TypeError(
            f"Invalid argument `id` for `db.{method}`: expected a string, "
            f"got {type(doc_id).__name__}: {doc_id!r}"
        )
    return doc_id


def _table_arg(table: Any, method: str) -> str:
    if not isinstance(table, str):
        raise TypeError(
            f"Invalid argument `table` for `db.{method}`: expected a string, "
            f"got {type(table).__name__}: {table!r}"
        )
    return table


def _document_json(value: Any, method: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"db.{method} takes a dict of fields, got {type(value).__name__}")
    return to_json(from_python(value))


def _patch_json(value: Any) -> dict[str, Any]:
    """A patch's Convex-JSON: a top-level ``UNDEFINED`` becomes
    ``{"$undefined": null}`` (remove the field); keys sorted as convexToJson does."""
    if not isinstance(value, Mapping):
        raise TypeError(f"db.patch takes a dict of fields, got {type(value).__name__}")
    removed = [k for k, x in value.items() if x is UNDEFINED]
    encoded = to_json(from_python({k: x for k, x in value.items() if x is not UNDEFINED}))
    for key in removed:
        if not isinstance(key, str):
            raise TypeError(f"Field names must be strings, got {key!r}")
        check_field_name(key)
        encoded[key] = {"$undefined": None}
    return dict(sorted(encoded.items()))


class DatabaseReader:
    """Read access: ``get``, ``query``, ``normalize_id``, and ``system`` for system tables."""

    def __init__(self, invocation: Invocation, *, is_system: bool = False) -> None:
        self._invocation = invocation
        self._is_system = is_system

    @property
    def system(self) -> DatabaseReader:
        """The reader of system tables (``_storage``, ``_scheduled_functions``)."""
        if self._is_system:
            raise AttributeError("db.system has no .system")
        return DatabaseReader(self._invocation, is_system=True)

    def _check_table(self, table: str) -> None:
        # The library's own rule (the host checks it again).
        if self._is_system and not table.startswith("_"):
            raise ValueError(
                f"{table!r} is not a system table: use ctx.db (not ctx.db.system) for it"
            )
        if not self._is_system and table.startswith("_"):
            raise ValueError(
                f"System tables (prefixed with `_`) can only be accessed through "
                f"ctx.db.system; got {table!r}"
            )

    def get(self, table_or_id: str, doc_id: str = _MISSING) -> dict[str, Any] | None:
        """The document with this id, or ``None``: ``get(id)`` or ``get(table, id)``."""
        table = None
        if doc_id is _MISSING:
            doc_id = table_or_id
        else:
            table = _table_arg(table_or_id, "get")
            self._check_table(table)
        args: dict[str, Any] = {
            "id": _id_arg(doc_id, "get"),
            "isSystem": self._is_system,
            "version": CONVEX_VERSION,
        }
        if table is not None:
            args["table"] = table
        return from_json(self._invocation.async_syscall("1.0/get", args))

    def query(self, table: str) -> QueryInitializer:
        """Start a query over ``table``."""
        self._check_table(_table_arg(table, "query"))
        return QueryInitializer(self._invocation, table)

    def normalize_id(self, table: str, id_string: str) -> str | None:
        """``id_string`` in canonical form if it is an id of ``table``, else ``None``."""
        self._check_table(_table_arg(table, "normalize_id"))
        if not isinstance(id_string, str):
            raise TypeError(f"normalize_id takes an id string, got {id_string!r}")
        result = self._invocation.syscall(
            "1.0/db/normalizeId", {"table": table, "idString": id_string}
        )
        return result["id"]

    def table(self, table: str) -> TableReader:
        """Methods bound to one table: ``ctx.db.table("t").get(id)``."""
        self._check_table(_table_arg(table, "table"))
        return TableReader(self, table)


class DatabaseWriter(DatabaseReader):
    """Read and write access (mutations): adds ``insert``, ``patch``, ``replace``, ``delete``."""

    @property
    def system(self) -> DatabaseReader:
        # System tables are read-only, so mutations get the reader too.
        return DatabaseReader(self._invocation, is_system=True)

    def _target(self, method: str, first: Any, second: Any) -> tuple[str | None, str]:
        """``(table, id)`` from ``(id, _MISSING)`` or ``(table, id)``."""
        if second is _MISSING:
            return None, _id_arg(first, method)
        return _table_arg(first, method), _id_arg(second, method)

    @staticmethod
    def _with_table(args: dict[str, Any], table: str | None) -> dict[str, Any]:
        if table is not None:
            args["table"] = table
        return args

    def insert(self, table: str, value: Mapping[str, Any]) -> str:
        """Insert a document; returns its new id."""
        _table_arg(table, "insert")
        if table.startswith("_"):
            raise ValueError("System tables (prefixed with `_`) are read-only.")
        args = {"table": table, "value": _document_json(value, "insert")}
        result = from_json(self._invocation.async_syscall("1.0/insert", args))
        return result["_id"]

    def patch(self, table_or_id: str, id_or_value: Any, value: Any = _MISSING) -> None:
        """``patch(id, fields)`` or ``patch(table, id, fields)``: shallow-merge
        ``fields`` into the document; a field set to ``UNDEFINED`` is removed."""
        if value is _MISSING:
            table, doc_id = self._target("patch", table_or_id, _MISSING)
            value = id_or_value
        else:
            table, doc_id = self._target("patch", table_or_id, id_or_value)
        payload = {"id": doc_id, "value": _patch_json(value)}
        self._invocation.async_syscall("1.0/shallowMerge", self._with_table(payload, table))

    def replace(self, table_or_id: str, id_or_value: Any, value: Any = _MISSING) -> None:
        """``replace(id, document)`` or ``replace(table, id, document)``:
        replace the whole document (the host keeps ``_id`` and ``_creationTime``)."""
        if value is _MISSING:
            table, doc_id = self._target("replace", table_or_id, _MISSING)
            value = id_or_value
        else:
            table, doc_id = self._target("replace", table_or_id, id_or_value)
        payload = {"id": doc_id, "value": _document_json(value, "replace")}
        self._invocation.async_syscall("1.0/replace", self._with_table(payload, table))

    def delete(self, table_or_id: str, doc_id: str = _MISSING) -> None:
        """``delete(id)`` or ``delete(table, id)``: remove the document."""
        table, doc_id = self._target("delete", table_or_id, doc_id)
        self._invocation.async_syscall("1.0/remove", self._with_table({"id": doc_id}, table))

    def table(self, table: str) -> TableWriter:
        self._check_table(_table_arg(table, "table"))
        return TableWriter(self, table)


class TableReader:
    """``ctx.db.table(name)``: ``get(id)`` and ``query()`` bound to one table."""

    def __init__(self, db: DatabaseReader, table: str) -> None:
        self._db = db
        self._table = table

    def get(self, doc_id: str) -> dict[str, Any] | None:
        return self._db.get(self._table, doc_id)

    def query(self) -> QueryInitializer:
        return self._db.query(self._table)


class TableWriter(TableReader):
    """``ctx.db.table(name)`` in a mutation: adds the write methods."""

    _db: DatabaseWriter

    def insert(self, value: Mapping[str, Any]) -> str:
        return self._db.insert(self._table, value)

    def patch(self, doc_id: str, value: Mapping[str, Any]) -> None:
        self._db.patch(self._table, doc_id, value)

    def replace(self, doc_id: str, value: Mapping[str, Any]) -> None:
        self._db.replace(self._table, doc_id, value)

    def delete(self, doc_id: str) -> None:
        self._db.delete(self._table, doc_id)
