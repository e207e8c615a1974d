"""Schemas: ``define_schema`` and ``define_table``.

This module owns the schema definition a deployment's ``schema.py`` exports
as ``schema`` and its export JSON (``reference/server-syscalls.md`` §8), the
form the host reads to create indexes and validate documents::

    schema = define_schema({
        "messages": define_table({"channel": v.string(), "body": v.string()})
            .index("by_channel", ["channel"])
            .search_index("search_body", search_field="body", filter_fields=["channel"]),
    })

Like Convex, only light checks happen here (names, duplicates); the host
validates the rest when the schema is pushed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from convex_backend.server.validators import ObjectValidator, Validator

__all__ = ["SchemaDefinition", "TableDefinition", "define_schema", "define_table"]


def _fields(fields: object, what: str) -> list[str]:
    if isinstance(fields, str) or not isinstance(fields, Sequence):
        raise TypeError(f"{what} must be a list of field paths, got {fields!r}")
    out = list(fields)
    for f in out:
        if not isinstance(f, str) or not f:
            raise TypeError(f"{what} must be a list of field paths, got {fields!r}")
    return out


class TableDefinition:
    """One table of a schema; the ``index`` methods return the table so calls chain."""

    document_type: Validator

    def __init__(self, document_type: Validator | Mapping[str, Validator]) -> None:
        if isinstance(document_type, Mapping):
            document_type = ObjectValidator(document_type)
        if not isinstance(document_type, Validator):
            raise TypeError(
                "define_table() takes a dict of field validators or a validator, "
                f"got {document_type!r}"
            )
        if document_type.is_optional:
            raise TypeError("define_table() cannot take an optional validator")
        self.document_type = document_type
        self._indexes: list[dict[str, Any]] = []
        self._staged_indexes: list[dict[str, Any]] = []
        self._search_indexes: list[dict[str, Any]] = []
        self._staged_search_indexes: list[dict[str, Any]] = []
        self._vector_indexes: list[dict[str, Any]] = []
        self._staged_vector_indexes: list[dict[str, Any]] = []

    def _check_name(self, name: object) -> str:
        if not isinstance(name, str) or not name:
            raise TypeError(f"An index name must be a non-empty string, got {name!r}")
        if name in ("by_id", "by_creation_time") or name.startswith("_"):
            raise ValueError(f"Index name {name!r} is reserved")
        every = (
            self._indexes
            + self._staged_indexes
            + self._search_indexes
            + self._staged_search_indexes
            + self._vector_indexes
            + self._staged_vector_indexes
        )
        if any(index["indexDescriptor"] == name for index in every):
            raise ValueError(f"Duplicate index name {name!r}")
        return name

    def index(self, name: str, fields: Sequence[str], *, staged: bool = False) -> TableDefinition:
        """Add a database index over ``fields`` (dotted paths), in order.

        The host appends ``_creationTime`` (and ``_id``) itself. A ``staged``
        index is backfilled but not yet usable.
        """
        name = self._check_name(name)
        paths = _fields(fields, f"The fields of index {name!r}")
        if not paths:
            raise ValueError(f"Index {name!r} must have at least one field")
        entry = {"indexDescriptor": name, "fields": paths}
        (self._staged_indexes if staged else self._indexes).append(entry)
        return self

    def search_index(
        self,
        name: str,
        *,
        search_field: str,
        filter_fields: Sequence[str] = (),
        staged: bool = False,
    ) -> TableDefinition:
        """Add a full-text search index on ``search_field``."""
        name = self._check_name(name)
        if not isinstance(search_field, str) or not search_field:
            raise TypeError(f"search_field of {name!r} must be a field path")
        entry = {
            "indexDescriptor": name,
            "searchField": search_field,
            "filterFields": _fields(filter_fields, f"filter_fields of {name!r}"),
        }
        (self._staged_search_indexes if staged else self._search_indexes).append(entry)
        return self

    def vector_index(
        self,
        name: str,
        *,
        vector_field: str,
        dimensions: int,
        filter_fields: Sequence[str] = (),
        staged: bool = False,
    ) -> TableDefinition:
        """Add a vector index on ``vector_field`` (arrays of ``dimensions`` floats)."""
        name = self._check_name(name)
        if not isinstance(vector_field, str) or not vector_field:
            raise TypeError(f"vector_field of {name!r} must be a field path")
        if isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions <= 0:
            raise ValueError(f"dimensions of {name!r} must be a positive int, got {dimensions!r}")
        entry = {
            "indexDescriptor": name,
            "vectorField": vector_field,
            "dimensions": dimensions,
            "filterFields": _fields(filter_fields, f"filter_fields of {name!r}"),
        }
        (self._staged_vector_indexes if staged else self._vector_indexes).append(entry)
        return self

    def export(self, table_name: str) -> dict[str, Any]:
        """This table's entry of the schema export JSON."""
        return {
            "tableName": table_name,
            "indexes": [dict(i) for i in self._indexes],
            "stagedDbIndexes": [dict(i) for i in self._staged_indexes],
            "searchIndexes": [dict(i) for i in self._search_indexes],
            "stagedSearchIndexes": [dict(i) for i in self._staged_search_indexes],
            "vectorIndexes": [dict(i) for i in self._vector_indexes],
            "stagedVectorIndexes": [dict(i) for i in self._staged_vector_indexes],
            "documentType": self.document_type.json,
        }


class SchemaDefinition:
    """A whole schema: ``tables`` by name, and whether the host validates documents."""

    tables: dict[str, TableDefinition]
    schema_validation: bool

    def __init__(
        self, tables: Mapping[str, TableDefinition], *, schema_validation: bool = True
    ) -> None:
        if not isinstance(tables, Mapping):
            raise TypeError(f"define_schema() takes a dict of tables, got {tables!r}")
        checked: dict[str, TableDefinition] = {}
        for name, table in tables.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"Table names must be non-empty strings, got {name!r}")
            if name.startswith("_"):
                raise ValueError(
                    f"Table name {name!r}: names starting with '_' are reserved for system tables"
                )
            if not isinstance(table, TableDefinition):
                raise TypeError(f"Table {name!r} must be a define_table(...), got {table!r}")
            checked[name] = table
        self.tables = checked
        self.schema_validation = bool(schema_validation)

    def export(self) -> dict[str, Any]:
        """The schema export JSON (``reference/server-syscalls.md`` §8)."""
        return {
            "tables": [table.export(name) for name, table in self.tables.items()],
            "schemaValidation": self.schema_validation,
        }


def define_table(document_type: Validator | Mapping[str, Validator]) -> TableDefinition:
    """Define a table whose documents match ``document_type`` (a dict means ``v.object``)."""
    return TableDefinition(document_type)


def define_schema(
    tables: Mapping[str, TableDefinition],
    *,
    schema_validation: bool = True,
    strict_table_name_types: bool = True,
) -> SchemaDefinition:
    """Define the deployment's schema.

    ``strict_table_name_types`` is accepted for parity with Convex, where it
    only affects TypeScript types; it is not exported.
    """
    del strict_table_name_types
    return SchemaDefinition(tables, schema_validation=schema_validation)
