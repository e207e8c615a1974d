"""Table and index numbering, system tables, and the naming rules around them.

User tables get numbers from :data:`FIRST_USER_TABLE` up, so their ids are 32
characters like Convex's; system tables have small fixed numbers. Every table
has two built-in indexes, ``by_id`` and ``by_creation_time``; user indexes
implicitly end with ``_creationTime`` and ``_id`` so that every key is unique.

Index id 0 is not an index: it is the table *namespace*, a pseudo-index whose
key for a table name is written when the table is created. A read of a table
that does not exist yet records that key, so creating the table conflicts with
(and invalidates) queries that saw it missing.
"""

from __future__ import annotations

from convex_backend.values.keys import encode_index_key

FIRST_USER_TABLE = 10001
NAMESPACE_INDEX = 0

#: name -> number; user code reads only the first two, through ``db.system``.
SYSTEM_TABLES: dict[str, int] = {
    "_scheduled_functions": 1,
    "_storage": 2,
    "_modules": 3,
    "_environment_variables": 4,
    "_deployment": 5,
    "_cron_jobs": 6,
    "_session_requests": 7,
}
USER_VISIBLE_SYSTEM_TABLES = frozenset({"_scheduled_functions", "_storage"})

BY_ID = "by_id"
BY_CREATION_TIME = "by_creation_time"
BUILTIN_INDEX_FIELDS = {
    BY_ID: ("_id",),
    BY_CREATION_TIME: ("_creationTime", "_id"),
}
IMPLICIT_INDEX_SUFFIX = ("_creationTime", "_id")


def full_index_fields(declared: tuple[str, ...]) -> tuple[str, ...]:
    """The key fields of a user index: its own, then ``_creationTime``, ``_id``."""
    return tuple(declared) + IMPLICIT_INDEX_SUFFIX


def namespace_key(table_name: str) -> bytes:
    return encode_index_key([table_name])


def is_system_table(name: str) -> bool:
    return name.startswith("_")
