"""Value sizes and the documented Convex limits on values, documents and names.

This module owns:

* :func:`value_size`, Convex's size formula (the one ``getConvexSize`` and
  the backend use), which the limits below are measured in;
* the limit constants (function arguments and return values, documents,
  identifiers);
* the checks that enforce them: :func:`check_value` for function arguments
  and return values, :func:`check_document` for documents being written, and
  :func:`validate_identifier` / :func:`validate_user_table_name` for table
  (and similar) names.

All rejections raise :class:`ConvexValueError` naming the limit and, where it
applies, the path of the offending part.
"""

from __future__ import annotations

import re
from typing import Any

from convex_backend.values.codec import (
    MAX_FIELD_NAME_LENGTH,
    MAX_NESTING_DEPTH_VALUE,
    _field_name_problem,
    _good_key,
    _key_error,
    _PathError,
    _short,
)
from convex_backend.values.errors import ConvexValueError
from convex_backend.values.types import UNDEFINED, Int64, Value

__all__ = [
    "MAX_ARRAY_LENGTH",
    "MAX_DOCUMENT_NESTING",
    "MAX_DOCUMENT_SIZE",
    "MAX_FIELD_NAME_LENGTH",
    "MAX_IDENTIFIER_LENGTH",
    "MAX_NESTING_DEPTH_VALUE",
    "MAX_OBJECT_FIELDS",
    "MAX_TOP_LEVEL_FIELD_NAME_LENGTH",
    "MAX_VALUE_SIZE",
    "check_document",
    "check_value",
    "validate_identifier",
    "validate_user_table_name",
    "value_size",
]

#: Largest function argument or return value, in value_size bytes.
MAX_VALUE_SIZE = 16 * 1024 * 1024
#: Largest document, in value_size bytes.
MAX_DOCUMENT_SIZE = 1024 * 1024
#: Deepest nesting of arrays/objects inside a document (the document is 1).
MAX_DOCUMENT_NESTING = 16
#: Most fields in any one object of a document.
MAX_OBJECT_FIELDS = 1024
#: Most elements in any one array of a document.
MAX_ARRAY_LENGTH = 8192
#: Longest top-level field name of a document.
MAX_TOP_LEVEL_FIELD_NAME_LENGTH = 64
#: Longest identifier (table name, top-level field name, index name...).
MAX_IDENTIFIER_LENGTH = 64

# MAX_FIELD_NAME_LENGTH (1024) and MAX_NESTING_DEPTH_VALUE (64) live in codec,
# which applies them too, and are re-exported from here.

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SYSTEM_FIELDS = frozenset(("_id", "_creationTime"))


class _DepthError(_PathError):
    """Internal: too deep; the entry point words the message for its limit."""


def _str_size(s: str) -> int:
    if s.isascii():
        return len(s)
    try:
        return len(s.encode("utf-8"))
    except UnicodeEncodeError as e:
        raise _PathError(
            f"String is not valid Unicode (lone surrogate at index {e.start})"
        ) from None


def _unsupported(v: object) -> _PathError:
    if v is UNDEFINED:
        return _PathError(
            "undefined is not a Convex value; only an object field may be "
            "undefined (it is then left out)"
        )
    if isinstance(v, int) and not isinstance(v, bool):
        return _PathError(
            f"Python int {v} is not a canonical Convex value: use "
            "convex_backend.values.python.from_python or Int64"
        )
    return _PathError(f"{type(v).__name__} is not a supported Convex value type")


def _size(v: Any, depth: int, max_depth: int) -> int:
    """Size of ``v``, which sits inside ``depth`` arrays/objects."""
    t = type(v)
    if t is str:
        return 2 + (len(v) if v.isascii() else _str_size(v))
    if t is float or t is Int64:
        return 9
    if v is None or t is bool:
        return 1
    if t is bytes:
        return 2 + len(v)
    if isinstance(v, dict):
        if depth >= max_depth:
            raise _DepthError("")
        depth += 1
        total = 2
        k = None
        try:
            for k, x in v.items():
                if x is UNDEFINED:
                    continue
                if not isinstance(k, str):
                    raise _PathError(_field_name_problem(k) or "Invalid field name")
                total += (len(k) if k.isascii() else _str_size(k)) + 1
                total += _size(x, depth, max_depth)
        except _PathError as e:
            e.key(k)
            raise
        return total
    if isinstance(v, list):
        if depth >= max_depth:
            raise _DepthError("")
        depth += 1
        total = 2
        i = 0
        try:
            for i, x in enumerate(v):  # noqa: B007 - i is read on error
                total += _size(x, depth, max_depth)
        except _PathError as e:
            e.index(i)
            raise
        return total
    if isinstance(v, str):
        return 2 + _str_size(v)
    if isinstance(v, (float, Int64)):
        return 9
    if isinstance(v, bytes):
        return 2 + len(v)
    raise _unsupported(v)


def value_size(value: Value) -> int:
    """The size of a value by Convex's formula, in bytes.

    null and booleans 1; int64 and float64 9; a string 2 + its UTF-8 length;
    bytes 2 + their length; an array 2 + the sizes of its elements; an object
    2 + for each field (UTF-8 length of the name + 1 + size of the value).
    Fields whose value is ``UNDEFINED`` do not count (they are not stored or
    sent). Raises :class:`ConvexValueError` for something that is not a
    value, including one nested deeper than 64.
    """
    try:
        return _size(value, 0, MAX_NESTING_DEPTH_VALUE)
    except _DepthError as e:
        e.message = (
            f"Value is nested too deeply (more than {MAX_NESTING_DEPTH_VALUE} "
            "levels of arrays and objects)"
        )
        raise e.public() from None
    except _PathError as e:
        raise e.public() from None


def check_value(
    value: Value,
    *,
    max_size: int = MAX_VALUE_SIZE,
    max_depth: int = MAX_NESTING_DEPTH_VALUE,
    what: str = "value",
) -> int:
    """Check a function argument or return value against the value limits.

    Raises :class:`ConvexValueError` when ``value`` is larger than
    ``max_size`` (by :func:`value_size`) or nests arrays/objects deeper than
    ``max_depth``; ``what`` names the value in the message ("arguments",
    "return value"). Returns the size.
    """
    label = what[:1].upper() + what[1:]
    # "Arguments are", "Return value is".
    verb = "are" if what.endswith("s") and not what.endswith("ss") else "is"
    try:
        size = _size(value, 0, max_depth)
    except _DepthError as e:
        e.message = (
            f"{label} {verb} nested too deeply (more than {max_depth} levels of arrays and objects)"
        )
        raise e.public() from None
    except _PathError as e:
        raise e.public() from None
    if size > max_size:
        raise ConvexValueError(f"{label} {verb} too large ({size} bytes, limit {max_size})")
    return size


# -- documents --------------------------------------------------------------


def _doc_size(v: Any, depth: int) -> int:
    """Size of ``v`` inside a document, checking the per-document limits."""
    t = type(v)
    if t is str:
        return 2 + (len(v) if v.isascii() else _str_size(v))
    if t is float or t is Int64:
        return 9
    if v is None or t is bool:
        return 1
    if t is bytes:
        return 2 + len(v)
    if isinstance(v, dict):
        if depth >= MAX_DOCUMENT_NESTING:
            raise _DepthError("")
        if len(v) > MAX_OBJECT_FIELDS:
            raise _PathError(f"Object has too many fields ({len(v)}, limit {MAX_OBJECT_FIELDS})")
        depth += 1
        total = 2
        k = None
        try:
            for k, x in v.items():
                if not _good_key(k):
                    _key_error(k)
                if x is UNDEFINED:
                    continue
                total += len(k) + 1 + _doc_size(x, depth)
        except _PathError as e:
            e.key(k)
            raise
        return total
    if isinstance(v, list):
        if depth >= MAX_DOCUMENT_NESTING:
            raise _DepthError("")
        if len(v) > MAX_ARRAY_LENGTH:
            raise _PathError(f"Array is too long ({len(v)} elements, limit {MAX_ARRAY_LENGTH})")
        depth += 1
        total = 2
        i = 0
        try:
            for i, x in enumerate(v):  # noqa: B007 - i is read on error
                total += _doc_size(x, depth)
        except _PathError as e:
            e.index(i)
            raise
        return total
    if isinstance(v, str):
        return 2 + _str_size(v)
    if isinstance(v, (float, Int64)):
        return 9
    if isinstance(v, bytes):
        return 2 + len(v)
    raise _unsupported(v)


def _top_level_field_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return f"Field names must be strings, got {type(name).__name__}"
    if len(name) > MAX_TOP_LEVEL_FIELD_NAME_LENGTH:
        return (
            f"Top-level field name {_short(name)} is too long ({len(name)} "
            f"characters, limit {MAX_TOP_LEVEL_FIELD_NAME_LENGTH})"
        )
    if not _IDENTIFIER.fullmatch(name):
        return (
            f"Top-level field name {_short(name)} is invalid: it must be "
            "non-empty, use only ASCII letters, digits and '_', and not start "
            "with a digit"
        )
    if name.startswith("_") and name not in _SYSTEM_FIELDS:
        return (
            f"Top-level field name {_short(name)} starts with '_', which is "
            "reserved for system fields (only _id and _creationTime are allowed)"
        )
    return None


def check_document(doc: dict) -> int:
    """Check a document against the document limits; return its size.

    The limits: at most 1 MiB by :func:`value_size`, arrays/objects nested at
    most 16 deep (the document itself is level 1), at most 1024 fields in any
    object and 8192 elements in any array, strings valid Unicode. Top-level
    field names are identifiers of at most 64 characters, and the only ones
    starting with ``_`` are ``_id`` and ``_creationTime``; nested field names
    follow :func:`~convex_backend.values.codec.validate_field_name`.

    The size counts what is given: pass the document with its system fields
    to measure what will be stored. ``UNDEFINED`` fields are ignored.
    """
    if not isinstance(doc, dict):
        raise ConvexValueError(f"A document must be an object, got {type(doc).__name__}")
    if len(doc) > MAX_OBJECT_FIELDS:
        raise ConvexValueError(
            f"Document has too many fields ({len(doc)}, limit {MAX_OBJECT_FIELDS})"
        )
    total = 2
    k = None
    try:
        for k, x in doc.items():
            problem = _top_level_field_problem(k)
            if problem is not None:
                raise _PathError(problem)
            if x is UNDEFINED:
                continue
            total += len(k) + 1 + _doc_size(x, 1)
    except _DepthError as e:
        e.key(k)
        e.message = (
            f"Document is nested too deeply (more than {MAX_DOCUMENT_NESTING} "
            "levels of arrays and objects)"
        )
        raise e.public() from None
    except _PathError as e:
        e.key(k)
        raise e.public() from None
    if total > MAX_DOCUMENT_SIZE:
        raise ConvexValueError(f"Document is too large ({total} bytes, limit {MAX_DOCUMENT_SIZE})")
    return total


# -- identifiers -----------------------------------------------------------


def validate_identifier(name: str, what: str = "table name") -> None:
    """Check an identifier such as a table name: ``[A-Za-z_][A-Za-z0-9_]*``.

    At most 64 characters. Raises :class:`ConvexValueError` otherwise.
    """
    if not isinstance(name, str):
        raise ConvexValueError(f"Invalid {what}: expected a string, got {type(name).__name__}")
    if len(name) > MAX_IDENTIFIER_LENGTH:
        raise ConvexValueError(
            f"Invalid {what} {_short(name)}: too long ({len(name)} characters, "
            f"limit {MAX_IDENTIFIER_LENGTH})"
        )
    if not _IDENTIFIER.fullmatch(name):
        raise ConvexValueError(
            f"Invalid {what} {_short(name)}: it must be non-empty, use only "
            "ASCII letters, digits and '_', and not start with a digit"
        )


def validate_user_table_name(name: str) -> None:
    """Check a table name user code may create or use: an identifier not
    starting with ``_`` (those names are reserved for system tables)."""
    validate_identifier(name, "table name")
    if name.startswith("_"):
        raise ConvexValueError(
            f"Invalid table name {_short(name)}: names starting with '_' are "
            "reserved for system tables"
        )
