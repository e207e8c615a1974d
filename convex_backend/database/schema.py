"""Validators and schemas: parsing the pushed JSON once, checking values fast.

This module owns:

* the **validator** tree: :func:`parse_validator` turns Convex validator JSON
  (``{"type": "object", "value": {...}}``, see the reference's syscalls §5)
  into an immutable :class:`Validator`, rejecting malformed JSON with
  :class:`SchemaError`; :meth:`Validator.check` raises
  :class:`ValidationError` with a Convex-style message naming the path;
  :meth:`Validator.to_json` gives the JSON back and ``str()`` renders it as
  ``v.object({author: v.string()})``;
* :class:`ValidationContext`, what a check needs from the database (the
  number of a table, for ``v.id(table)``);
* the **schema**: :func:`parse_schema` reads the JSON that
  ``schema.export()`` produces (syscalls §8) into a :class:`Schema` of
  :class:`TableSchema`, enforcing the naming rules and the documented limits
  (32 indexes per table, 16 fields per index, 64-character names);
  :meth:`Schema.validate_document` checks a write and
  :meth:`Schema.check_existing` checks stored documents before a new schema
  is accepted.

Decisions worth knowing:

* ``v.number()`` accepts float64 only; an ``Int64`` or a ``bool`` is not a
  number. ``v.commitTs()`` is accepted and checks for an ``Int64``: the commit
  timestamp placeholder is resolved to an int64 (nanoseconds) before a
  document is validated, so that is all a stored document can hold.
* ``v.literal`` takes a string, float64, int64 or boolean, as in Convex, and
  matches by exact Convex equality (``Int64(1)`` is not ``1.0``, ``-0.0`` is
  not ``0.0``).
* An object field whose value is ``UNDEFINED`` counts as absent.
* Record keys follow the documented rule (non-empty ASCII, not starting with
  ``$`` or ``_``) as well as the key validator.
* Tables that are not in the schema are not validated: the Convex docs say a
  schema "will only validate documents in the tables listed in the schema".
* ``documentType`` of ``any`` (or missing/null) is stored as ``None``, so
  there is nothing to check on writes; ``to_json`` writes it as ``any``.
* Unknown keys in the schema JSON are ignored (newer CLIs add keys), but an
  unknown validator type is an error.
* Search and vector indexes, staged indexes and ``stagedDocumentType`` are
  parsed, checked for shape and kept as data; nothing here enforces them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from convex_backend.values import (
    UNDEFINED,
    ConvexValueError,
    Int64,
    compare_values,
    decode_id,
    from_json,
    to_json,
)
from convex_backend.values.codec import check_field_name
from convex_backend.values.codec import json_type as _json_type
from convex_backend.values.errors import InvalidIdError

__all__ = [
    "MAX_FIELDS_PER_INDEX",
    "MAX_INDEXES_PER_TABLE",
    "MAX_NAME_LENGTH",
    "MAX_SEARCH_INDEXES_PER_TABLE",
    "MAX_VECTOR_INDEXES_PER_TABLE",
    "RESERVED_INDEX_NAMES",
    "SYSTEM_FIELDS",
    "AnyValidator",
    "ArrayValidator",
    "BigintValidator",
    "BooleanValidator",
    "BytesValidator",
    "CommitTsValidator",
    "IdValidator",
    "LiteralValidator",
    "MappingValidationContext",
    "NullValidator",
    "NumberValidator",
    "ObjectField",
    "ObjectValidator",
    "RecordValidator",
    "Schema",
    "SchemaError",
    "SearchIndex",
    "StringValidator",
    "TableSchema",
    "UnionValidator",
    "ValidationContext",
    "ValidationError",
    "Validator",
    "VectorIndex",
    "parse_schema",
    "parse_validator",
]

#: Most database indexes (enabled plus staged) on one table.
MAX_INDEXES_PER_TABLE = 32
#: Most fields in one index (``_creationTime`` is appended implicitly).
MAX_FIELDS_PER_INDEX = 16
#: Longest table or index name.
MAX_NAME_LENGTH = 64
#: Most search indexes, and vector indexes, on one table (enabled plus staged).
MAX_SEARCH_INDEXES_PER_TABLE = 4
MAX_VECTOR_INDEXES_PER_TABLE = 4
#: Most filter fields of one search or vector index.
MAX_FILTER_FIELDS = 16
MIN_VECTOR_DIMENSIONS = 2
MAX_VECTOR_DIMENSIONS = 4096
#: Index names every table has already.
RESERVED_INDEX_NAMES = frozenset(("by_id", "by_creation_time"))
#: Fields the host adds to every document; never part of a documentType.
SYSTEM_FIELDS = frozenset(("_id", "_creationTime"))

# Validator JSON deeper than this is refused before Python's recursion limit
# could be reached; no value may nest deeper than 64 anyway.
_MAX_VALIDATOR_DEPTH = 64

# Table, index and top-level field names: an identifier not starting with "_".
_USER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# Id table names may name a system table ("_storage").
_TABLE_REF = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PATH_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SIMPLE_KEY = _PATH_SEGMENT


class SchemaError(ConvexValueError):
    """Validator or schema JSON is malformed or breaks a rule; says which."""


class ValidationError(ConvexValueError):
    """A value does not match a validator.

    ``path`` is where in the value the mismatch is (``".tags[2]"``, ``""``
    for the value itself).
    """

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path = path


# -- the context ------------------------------------------------------------


@runtime_checkable
class ValidationContext(Protocol):
    """What a check needs to know about the database."""

    def table_number(self, table_name: str) -> int | None:
        """The number of table ``table_name``, or None if there is none."""
        ...


class MappingValidationContext:
    """A :class:`ValidationContext` over a fixed name -> number mapping."""

    __slots__ = ("_numbers",)

    def __init__(self, numbers: Mapping[str, int] | None = None) -> None:
        self._numbers = dict(numbers or {})

    def table_number(self, table_name: str) -> int | None:
        return self._numbers.get(table_name)


# -- problems: how a failed check reports without building strings --------

_NO_MATCH = 0
_EXTRA_FIELD = 1
_MISSING_FIELD = 2
_BAD_RECORD_KEY = 3


class _Problem:
    """A failed check, with the path gathered (reversed) while unwinding.

    Checks return None on success and one of these on failure; the message
    is only written when someone asks, so the valid case allocates nothing
    and a union can try its members cheaply.
    """

    __slots__ = ("field", "kind", "rpath", "validator", "value")

    def __init__(self, kind: int, value: Any, validator: Validator, field: Any = None) -> None:
        self.kind = kind
        self.value = value
        self.validator = validator
        self.field = field
        self.rpath: list[Any] = []

    def path(self) -> str:
        return "".join(map(_path_segment, reversed(self.rpath)))

    def message(self) -> str:
        path = self.path()
        where = f"Path: {path}\n" if path else ""
        if self.kind == _NO_MATCH:
            return (
                f"Value does not match validator.\n{where}"
                f"Value: {render_value(self.value)}\n"
                f"Validator: {self.validator}"
            )
        if self.kind == _EXTRA_FIELD:
            return (
                f"Object contains extra field `{_field_text(self.field)}` that is "
                f"not in the validator.\n{where}"
                f"Object: {render_value(self.value)}\n"
                f"Validator: {self.validator}"
            )
        if self.kind == _MISSING_FIELD:
            return (
                f"Object is missing the required field `{_field_text(self.field)}`. "
                "Consider wrapping the field validator in `v.optional(...)` if "
                f"this is expected.\n{where}"
                f"Object: {render_value(self.value)}\n"
                f"Validator: {self.validator}"
            )
        assert isinstance(self.validator, RecordValidator)
        key = self.field
        if isinstance(key, str) and _record_key_ok(key):
            why = f"does not match the key validator {self.validator.keys}"
        else:
            why = (
                "is not allowed: record keys must be non-empty ASCII and must "
                "not start with '$' or '_'"
            )
        return (
            f"Record key {render_value(key)} {why}.\n{where}"
            f"Object: {render_value(self.value)}\n"
            f"Validator: {self.validator}"
        )

    def error(self) -> ValidationError:
        return ValidationError(self.message(), self.path())


def _path_segment(seg: Any) -> str:
    if type(seg) is int:
        return f"[{seg}]"
    if isinstance(seg, str) and _SIMPLE_KEY.fullmatch(seg):
        return "." + seg
    if isinstance(seg, str):
        return "[" + json.dumps(seg) + "]"
    return f"[{seg!r}]"


def _field_text(name: Any) -> str:
    return name if isinstance(name, str) else repr(name)


# -- rendering values and validators for messages ---------------------------

_MAX_RENDER_ITEMS = 10
_MAX_RENDER_STRING = 100
_MAX_RENDER_DEPTH = 4
_MAX_RENDER_LENGTH = 500


def _render_float(f: float) -> str:
    # As JavaScript prints numbers: 5 not 5.0; Infinity, NaN, -0.
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    if f == 0.0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    if f.is_integer() and abs(f) < 1e21:
        return str(int(f))
    return repr(f)


def _render_key(k: Any) -> str:
    if isinstance(k, str) and _SIMPLE_KEY.fullmatch(k):
        return k
    if isinstance(k, str):
        return json.dumps(k)
    return repr(k)


def _render(v: Any, depth: int, out: list[str]) -> None:
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif v is UNDEFINED:
        out.append("undefined")
    elif isinstance(v, str):
        if len(v) > _MAX_RENDER_STRING:
            out.append(json.dumps(v[:_MAX_RENDER_STRING])[:-1] + '..."')
        else:
            out.append(json.dumps(v))
    elif isinstance(v, float):
        out.append(_render_float(v))
    elif isinstance(v, Int64):
        out.append(f"{v.value}n")
    elif isinstance(v, bytes):
        out.append(f"ArrayBuffer({len(v)} bytes)")
    elif isinstance(v, list):
        if depth >= _MAX_RENDER_DEPTH:
            out.append("[...]")
            return
        out.append("[")
        for i, x in enumerate(v):
            if i:
                out.append(", ")
            if i == _MAX_RENDER_ITEMS:
                out.append("...")
                break
            _render(x, depth + 1, out)
        out.append("]")
    elif isinstance(v, dict):
        if depth >= _MAX_RENDER_DEPTH:
            out.append("{...}")
            return
        out.append("{")
        for i, (k, x) in enumerate(v.items()):
            if i:
                out.append(", ")
            if i == _MAX_RENDER_ITEMS:
                out.append("...")
                break
            out.append(_render_key(k))
            out.append(": ")
            _render(x, depth + 1, out)
        out.append("}")
    else:
        out.append(f"<{type(v).__name__} {v!r:.80}>")


def render_value(value: Any) -> str:
    """A short, JavaScript-like rendering of a value for error messages
    (``{author: "bob", n: 5n}``), cut down when the value is large."""
    out: list[str] = []
    _render(value, 0, out)
    text = "".join(out)
    if len(text) > _MAX_RENDER_LENGTH:
        text = text[:_MAX_RENDER_LENGTH] + "..."
    return text


# -- validators -------------------------------------------------------------


class Validator:
    """An immutable, parsed validator. Build one with :func:`parse_validator`.

    Subclasses are frozen dataclasses, so validators compare by structure.
    """

    __slots__ = ()

    def check(self, value: Any, ctx: ValidationContext | None = None) -> None:
        """Raise :class:`ValidationError` unless ``value`` matches.

        ``ctx`` resolves table names for ``v.id``; without one no id matches.
        """
        problem = self._check(value, ctx)
        if problem is not None:
            raise problem.error()

    def matches(self, value: Any, ctx: ValidationContext | None = None) -> bool:
        """Whether ``value`` matches (no message is built)."""
        return self._check(value, ctx) is None

    def _check(self, value: Any, ctx: ValidationContext | None) -> _Problem | None:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        """The validator JSON this was parsed from, in canonical form."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class AnyValidator(Validator):
    """``v.any()``: every value."""

    def _check(self, value: Any, ctx: ValidationContext | None) -> _Problem | None:
        return None

    def to_json(self) -> dict[str, Any]:
        return {"type": "any"}

    def __str__(self) -> str:
        return "v.any()"


@dataclass(frozen=True, slots=True)
class NullValidator(Validator):
    """``v.null()``."""

    def _check(self, value: Any, ctx: ValidationContext | None) -> _Problem | None:
        if value is None:
            return None
        return _Problem(_NO_MATCH, value, self)

    def to_json(self) -> dict[str, Any]:
        return {"type": "null"}

    def __str__(self) -> str:
        return "v.null()"


@dataclass(frozen=True, slots=True)
class NumberValidator(Validator):
    """``v.number()`` / ``v.float64()``: a float64 only."""

    def _check(self, value: Any, ctx: ValidationContext | None) -> _Problem | None:
        if type(value) is float or isinstance(value, float):
            return None
        return _Problem(_NO_MATCH, value, self)

    def to_json(self) -> dict[str, Any]:
        return {"type": "number"}

    def __str__(self) -> str:
        return "v.float64()"


@dataclass(frozen=True, slots=True)
class BigintValidator(Validator):
    """``v.int64()`` / ``v.bigint()``: an Int64."""

    def _check(self, value: Any, ctx: ValidationContext | None) -> _Problem | None:
        if isinstance(value, Int64):
            return None
        return _Problem(_NO_MATCH, value, self)

    def to_json(self) -> dict[str, Any]:
        return {"type": "bigint"}

    def __str__(self) -> str:
        return "v.int64()"


@dataclass(frozen=True, slots=True)
class CommitTsValidator(Validator):
    """``v.commitTs()``: the resolved commit timestamp, an Int64 (see the
    module docstring)."""

    def _check(self, value: Any, ctx: ValidationContext | None) -> _Problem | None:
        if isinstance(value, Int64):
            return None
        return _Problem(_NO_MATCH, value, self)

    def to_json(self) -> dict[str, Any]:
        return {"type": "commitTs"}

    def __str__(self) -> str:
        return "v.commitTs()"


@dataclass(frozen=True, slots=True)
class BooleanValidator(Validator):
    """``v.boolean()``."""

    def _check(self, value: Any, ctx: ValidationContext | None) -> _Problem | None:
        if value is True or value is False:
            return None
        return _Problem(_NO_MATCH, value, self)

    def to_json(self) -> dict[str, Any]:
        return {"type": "boolean"}

    def __str__(self) -> str:
        return "v.boolean()"


@dataclass(frozen=True, slots=True)
class StringValidator(Validator):
    """``v.string()``."""

    def _check(self, value: Any, ctx: ValidationContext | None) -> _Problem | None:
        if type(value) is str or isinstance(value, str):
            return None
        return _Problem(_NO_MATCH, value, self)

    def to_json(self) -> dict[str, Any]:
        return {"type": "string"}

    def __str__(self) -> str:
        return "v.string()"


@dataclass(frozen=True, slots=True)
class BytesValidator(Validator):
    """``v.bytes()``."""

    def _check(self, value: Any, ctx: ValidationContext | None) -> _Problem | None:
        if type(value) is bytes or isinstance(value, bytes):
            return None
        return _Problem(_NO_MATCH, value, self)

    def to_json(self) -> dict[str, Any]:
        return {"type": "bytes"}

    def __str__(self) -> str:
        return "v.bytes()"


@lru_cache(maxsize=8192)
def _id_table_number(s: str) -> int | None:
    # Decoding an id costs several microseconds, more than the rest of a
    # typical document check, and the same ids (foreign keys) recur.
    try:
        return decode_id(s).table_number
    except InvalidIdError:
        return None


@dataclass(frozen=True, slots=True)
class IdValidator(Validator):
    """``v.id(table)``: an id string whose table number is ``table``'s."""

    table_name: str

    def _check(self, value: Any, ctx: ValidationContext | None) -> _Problem | None:
        if isinstance(value, str) and ctx is not None:
            number = ctx.table_number(self.table_name)
            # An unknown table has no ids, so nothing can match it.
            if number is not None and _id_table_number(value) == number:
                return None
        return _Problem(_NO_MATCH, value, self)

    def to_json(self) -> dict[str, Any]:
        return {"type": "id", "tableName": self.table_name}

    def __str__(self) -> str:
        return f"v.id({json.dumps(self.table_name)})"


_LIT_STR, _LIT_FLOAT, _LIT_INT64, _LIT_BOOL = range(4)


@dataclass(frozen=True, slots=True)
class LiteralValidator(Validator):
    """``v.literal(x)`` for a string, float64, int64 or boolean ``x``."""

    # Compared by its canonical Convex-JSON text (``json_key``): Python's ==
    # says True == 1.0 and NaN != NaN, neither of which is Convex equality.
    value: Any = field(compare=False)
    json_key: str = field(init=False, repr=False)
    _kind: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        v = self.value
        if v is True or v is False:
            kind = _LIT_BOOL
        elif isinstance(v, str):
            kind = _LIT_STR
        elif isinstance(v, float):
            kind = _LIT_FLOAT
        elif isinstance(v, Int64):
            kind = _LIT_INT64
        else:
            raise SchemaError(
                f"A literal must be a string, number, bigint or boolean, got {render_value(v)}"
            )
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(
            self, "json_key", json.dumps(to_json(v), sort_keys=True, allow_nan=False)
        )

    def _check(self, value: Any, ctx: ValidationContext | None) -> _Problem | None:
        kind = self._kind
        lit = self.value
        if kind == _LIT_STR:
            if isinstance(value, str) and value == lit:
                return None
        elif kind == _LIT_BOOL:
            if value is lit:
                return None
        elif kind == _LIT_INT64:
            if isinstance(value, Int64) and value.value == lit.value:
                return None
        elif isinstance(value, float) and compare_values(value, lit) == 0:
            # compare_values is the total order: -0.0 != 0.0, NaN by bits.
            return None
        return _Problem(_NO_MATCH, value, self)

    def to_json(self) -> dict[str, Any]:
        return {"type": "literal", "value": to_json(self.value)}

    def __str__(self) -> str:
        return f"v.literal({render_value(self.value)})"


@dataclass(frozen=True, slots=True)
class ArrayValidator(Validator):
    """``v.array(element)``."""

    element: Validator

    def _check(self, value: Any, ctx: ValidationContext | None) -> _Problem | None:
        if not isinstance(value, list):
            return _Problem(_NO_MATCH, value, self)
        element = self.element
        if type(element) is AnyValidator:
            return None
        check = element._check
        for i, x in enumerate(value):
            problem = check(x, ctx)
            if problem is not None:
                problem.rpath.append(i)
                return problem
        return None

    def to_json(self) -> dict[str, Any]:
        return {"type": "array", "value": self.element.to_json()}

    def __str__(self) -> str:
        return f"v.array({self.element})"


@dataclass(frozen=True, slots=True)
class ObjectField:
    """One field of an object validator."""

    name: str
    validator: Validator
    optional: bool = False

    def __str__(self) -> str:
        if self.optional:
            return f"{_render_key(self.name)}: v.optional({self.validator})"
        return f"{_render_key(self.name)}: {self.validator}"


@dataclass(frozen=True, slots=True)
class ObjectValidator(Validator):
    """``v.object({...})``: exactly these fields; optional ones may be absent."""

    fields: tuple[ObjectField, ...]
    # Precomputed for the check: name -> (check or None for v.any(), 1 if
    # required else 0), and the required names in order.
    _lookup: dict[str, tuple[Any, int]] = field(init=False, repr=False, compare=False)
    _required: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lookup: dict[str, tuple[Any, int]] = {}
        required = []
        for f in self.fields:
            check = None if type(f.validator) is AnyValidator else f.validator._check
            lookup[f.name] = (check, 0 if f.optional else 1)
            if not f.optional:
                required.append(f.name)
        object.__setattr__(self, "_lookup", lookup)
        object.__setattr__(self, "_required", tuple(required))

    def get_field(self, name: str) -> ObjectField | None:
        """The declaration of field ``name``, if any."""
        for f in self.fields:
            if f.name == name:
                return f
        return None

    def _check(self, value: Any, ctx: ValidationContext | None) -> _Problem | None:
        if not isinstance(value, dict):
            return _Problem(_NO_MATCH, value, self)
        lookup = self._lookup
        # Counting the required fields seen saves a second pass over the
        # required names in the (common) valid case.
        seen_required = 0
        for k, x in value.items():
            spec = lookup.get(k)
            if x is UNDEFINED:
                continue
            if spec is None:
                return _Problem(_EXTRA_FIELD, value, self, k)
            check, required = spec
            if check is not None:
                problem = check(x, ctx)
                if problem is not None:
                    problem.rpath.append(k)
                    return problem
            seen_required += required
        if seen_required != len(self._required):
            for name in self._required:
                if value.get(name, UNDEFINED) is UNDEFINED:
                    return _Problem(_MISSING_FIELD, value, self, name)
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "object",
            "value": {
                f.name: {"fieldType": f.validator.to_json(), "optional": f.optional}
                for f in self.fields
            },
        }

    def __str__(self) -> str:
        return "v.object({" + ", ".join(map(str, self.fields)) + "})"


def _record_key_ok(k: str) -> bool:
    # The documented record-key rule: non-empty ASCII, no leading "$" or "_".
    return bool(k) and k.isascii() and k[0] != "$" and k[0] != "_"


@dataclass(frozen=True, slots=True)
class RecordValidator(Validator):
    """``v.record(keys, values)``: an object with any keys matching ``keys``."""

    keys: Validator
    values: Validator
    values_optional: bool = False
    _key_check: Any = field(init=False, repr=False, compare=False)
    _value_check: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Keys of a dict value are strings already checked by the key rule,
        # so v.string() keys need no further check; likewise v.any() values.
        key_check = None if type(self.keys) is StringValidator else self.keys._check
        value_check = None if type(self.values) is AnyValidator else self.values._check
        object.__setattr__(self, "_key_check", key_check)
        object.__setattr__(self, "_value_check", value_check)

    def _check(self, value: Any, ctx: ValidationContext | None) -> _Problem | None:
        if not isinstance(value, dict):
            return _Problem(_NO_MATCH, value, self)
        key_check = self._key_check
        value_check = self._value_check
        for k, x in value.items():
            if x is UNDEFINED:
                continue
            if not (isinstance(k, str) and _record_key_ok(k)) or (
                key_check is not None and key_check(k, ctx) is not None
            ):
                return _Problem(_BAD_RECORD_KEY, value, self, k)
            if value_check is not None:
                problem = value_check(x, ctx)
                if problem is not None:
                    problem.rpath.append(k)
                    return problem
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "record",
            "keys": self.keys.to_json(),
            "values": {
                "fieldType": self.values.to_json(),
                "optional": self.values_optional,
            },
        }

    def __str__(self) -> str:
        values = f"v.optional({self.values})" if self.values_optional else self.values
        return f"v.record({self.keys}, {values})"


@dataclass(frozen=True, slots=True)
class UnionValidator(Validator):
    """``v.union(...)``: a value matching any member (none if empty)."""

    members: tuple[Validator, ...]
    _checks: tuple[Any, ...] = field(init=False, repr=False, compare=False)
    # When every member is a string literal (an "enum"), one set lookup.
    _strings: frozenset[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_checks", tuple(m._check for m in self.members))
        strings = None
        if self.members and all(
            type(m) is LiteralValidator and m._kind == _LIT_STR for m in self.members
        ):
            strings = frozenset(m.value for m in self.members)
        object.__setattr__(self, "_strings", strings)

    def _check(self, value: Any, ctx: ValidationContext | None) -> _Problem | None:
        strings = self._strings
        if strings is not None:
            if isinstance(value, str) and value in strings:
                return None
            return _Problem(_NO_MATCH, value, self)
        for check in self._checks:
            if check(value, ctx) is None:
                return None
        return _Problem(_NO_MATCH, value, self)

    def to_json(self) -> dict[str, Any]:
        return {"type": "union", "value": [m.to_json() for m in self.members]}

    def __str__(self) -> str:
        return "v.union(" + ", ".join(map(str, self.members)) + ")"


# -- parsing validators -----------------------------------------------------

_SIMPLE_VALIDATORS: dict[str, Validator] = {
    "any": AnyValidator(),
    "null": NullValidator(),
    "number": NumberValidator(),
    "bigint": BigintValidator(),
    "commitTs": CommitTsValidator(),
    "boolean": BooleanValidator(),
    "string": StringValidator(),
    "bytes": BytesValidator(),
}
_TYPES = (
    "id",
    "null",
    "number",
    "bigint",
    "commitTs",
    "boolean",
    "string",
    "bytes",
    "any",
    "literal",
    "array",
    "object",
    "record",
    "union",
)


def _short_json(obj: Any) -> str:
    try:
        text = json.dumps(obj, sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        text = repr(obj)
    return text if len(text) <= 80 else text[:80] + "..."


def _load_json(text: str | bytes | bytearray, what: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise SchemaError(f"Invalid {what} JSON: nested too deeply") from None
    except (ValueError, TypeError) as e:
        raise SchemaError(f"Invalid {what} JSON: {e}") from None


def _bad(where: str, problem: str) -> SchemaError:
    return SchemaError(f"Invalid validator at {where}: {problem}")


def _parse_field(obj: Any, where: str, depth: int) -> tuple[Validator, bool]:
    """An object field or record values spec: {fieldType, optional}."""
    if not isinstance(obj, dict):
        raise _bad(
            where,
            'expected {"fieldType": <validator>, "optional": <boolean>}, got '
            f"{_json_type(obj)} {_short_json(obj)}",
        )
    if "fieldType" not in obj:
        raise _bad(where, 'missing "fieldType"')
    optional = obj.get("optional", False)
    if not isinstance(optional, bool):
        raise _bad(
            where + ".optional",
            f"expected a boolean, got {_json_type(optional)} {_short_json(optional)}",
        )
    return _parse(obj["fieldType"], where + ".fieldType", depth), optional


def _is_record_key_validator(v: Validator) -> bool:
    if isinstance(v, (StringValidator, IdValidator)):
        return True
    if isinstance(v, LiteralValidator):
        return v._kind == _LIT_STR
    if isinstance(v, UnionValidator):
        return all(map(_is_record_key_validator, v.members))
    return False


def _parse(obj: Any, where: str, depth: int) -> Validator:
    if depth >= _MAX_VALIDATOR_DEPTH:
        raise _bad(where, f"nested more than {_MAX_VALIDATOR_DEPTH} levels deep")
    depth += 1
    if not isinstance(obj, dict):
        raise _bad(
            where,
            f'expected an object with a "type" field, got {_json_type(obj)} {_short_json(obj)}',
        )
    kind = obj.get("type")
    simple = _SIMPLE_VALIDATORS.get(kind) if isinstance(kind, str) else None
    if simple is not None:
        return simple
    if kind == "id":
        table = obj.get("tableName")
        if not isinstance(table, str) or not _TABLE_REF.fullmatch(table):
            raise _bad(
                where + ".tableName",
                f"expected a table name, got {_short_json(table)}",
            )
        if len(table) > MAX_NAME_LENGTH:
            raise _bad(
                where + ".tableName",
                f"table name is longer than {MAX_NAME_LENGTH} characters",
            )
        return IdValidator(table)
    if kind == "literal":
        if "value" not in obj:
            raise _bad(where, 'a literal needs a "value"')
        try:
            value = from_json(obj["value"])
        except ConvexValueError as e:
            raise _bad(where + ".value", f"not a Convex-JSON value: {e}") from None
        try:
            return LiteralValidator(value)
        except SchemaError as e:
            raise _bad(where + ".value", str(e)) from None
    if kind == "array":
        if "value" not in obj:
            raise _bad(where, 'an array validator needs a "value" (the element)')
        return ArrayValidator(_parse(obj["value"], where + ".value", depth))
    if kind == "object":
        spec = obj.get("value")
        if not isinstance(spec, dict):
            raise _bad(
                where + ".value",
                "expected an object mapping field names to "
                f'{{"fieldType", "optional"}}, got {_json_type(spec)}',
            )
        fields = []
        for name, fobj in spec.items():
            if not isinstance(name, str) or not name:
                raise _bad(where + ".value", f"invalid field name {_short_json(name)}")
            try:
                check_field_name(name)
            except ConvexValueError as e:
                raise _bad(where + ".value", str(e)) from None
            validator, optional = _parse_field(fobj, where + ".value" + _path_segment(name), depth)
            fields.append(ObjectField(name, validator, optional))
        return ObjectValidator(tuple(fields))
    if kind == "record":
        if "keys" not in obj or "values" not in obj:
            raise _bad(where, 'a record validator needs "keys" and "values"')
        keys = _parse(obj["keys"], where + ".keys", depth)
        if not _is_record_key_validator(keys):
            raise _bad(
                where + ".keys",
                f"record keys cannot be {keys}: they must be v.string(), "
                "v.id(...), a string v.literal(...) or a union of those",
            )
        values, optional = _parse_field(obj["values"], where + ".values", depth)
        return RecordValidator(keys, values, optional)
    if kind == "union":
        members = obj.get("value")
        if not isinstance(members, list):
            raise _bad(
                where + ".value",
                f"expected an array of validators, got {_json_type(members)}",
            )
        return UnionValidator(
            tuple(_parse(m, f"{where}.value[{i}]", depth) for i, m in enumerate(members))
        )
    if "type" not in obj:
        raise _bad(where, 'missing "type"')
    raise _bad(
        where,
        f"unknown validator type {_short_json(kind)}; expected one of " + ", ".join(_TYPES),
    )


def parse_validator(json_obj: Any) -> Validator:
    """Parse validator JSON (a dict, or its JSON text) into a :class:`Validator`.

    Raises :class:`SchemaError`, and nothing else, naming where in the JSON
    the problem is (``$.value.author.fieldType``).
    """
    if isinstance(json_obj, (str, bytes, bytearray)):
        json_obj = _load_json(json_obj, "validator")
    return _parse(json_obj, "$", 0)


# -- schemas ----------------------------------------------------------------


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class SearchIndex:
    """A declared full-text search index (kept as data)."""

    name: str
    search_field: str
    filter_fields: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "indexDescriptor": self.name,
            "searchField": self.search_field,
            "filterFields": list(self.filter_fields),
        }


@dataclass(frozen=True)
class VectorIndex:
    """A declared vector index (kept as data)."""

    name: str
    vector_field: str
    dimensions: int
    filter_fields: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "indexDescriptor": self.name,
            "vectorField": self.vector_field,
            "dimensions": self.dimensions,
            "filterFields": list(self.filter_fields),
        }


@dataclass(frozen=True)
class TableSchema:
    """One table of a schema.

    ``indexes`` maps each enabled database index to its field paths (without
    the implicit ``_creationTime``); ``document_validator`` is None when any
    document is allowed. ``staged_*`` hold the declarations made with
    ``staged: true``, which are not enabled yet.
    """

    name: str
    indexes: Mapping[str, tuple[str, ...]] = field(default_factory=_empty)
    document_validator: Validator | None = None
    search_indexes: Mapping[str, SearchIndex] = field(default_factory=_empty)
    vector_indexes: Mapping[str, VectorIndex] = field(default_factory=_empty)
    staged_indexes: Mapping[str, tuple[str, ...]] = field(default_factory=_empty)
    staged_search_indexes: Mapping[str, SearchIndex] = field(default_factory=_empty)
    staged_vector_indexes: Mapping[str, VectorIndex] = field(default_factory=_empty)
    #: ``stagedDocumentType``, or None when the key is absent.
    staged_document_validator: Validator | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tableName": self.name,
            "indexes": _db_indexes_json(self.indexes),
            "stagedDbIndexes": _db_indexes_json(self.staged_indexes),
            "searchIndexes": [i.to_json() for i in self.search_indexes.values()],
            "stagedSearchIndexes": [i.to_json() for i in self.staged_search_indexes.values()],
            "vectorIndexes": [i.to_json() for i in self.vector_indexes.values()],
            "stagedVectorIndexes": [i.to_json() for i in self.staged_vector_indexes.values()],
            "documentType": (
                self.document_validator.to_json()
                if self.document_validator is not None
                else {"type": "any"}
            ),
        }
        if self.staged_document_validator is not None:
            out["stagedDocumentType"] = self.staged_document_validator.to_json()
        return out


def _db_indexes_json(indexes: Mapping[str, tuple[str, ...]]) -> list[dict[str, Any]]:
    return [{"indexDescriptor": n, "fields": list(f)} for n, f in indexes.items()]


def _strip_system_fields(doc: dict) -> dict:
    if "_id" in doc or "_creationTime" in doc:
        return {k: v for k, v in doc.items() if k not in SYSTEM_FIELDS}
    return doc


@dataclass(frozen=True)
class Schema:
    """A parsed ``schema.export()``: tables by name, in declaration order."""

    tables: Mapping[str, TableSchema]
    schema_validation: bool = True

    def table(self, name: str) -> TableSchema | None:
        """The schema of table ``name``, or None if it is not declared."""
        return self.tables.get(name)

    def to_json(self) -> dict[str, Any]:
        """The canonical export JSON (every list key present)."""
        return {
            "tables": [t.to_json() for t in self.tables.values()],
            "schemaValidation": self.schema_validation,
        }

    def _validator_for(self, table_name: str) -> Validator | None:
        if not self.schema_validation:
            return None
        table = self.tables.get(table_name)
        # Undeclared tables are not validated (see the module docstring).
        return None if table is None else table.document_validator

    def validate_document(self, table_name: str, doc: dict, ctx: ValidationContext | None) -> None:
        """Check a document about to be written to ``table_name``.

        The system fields ``_id`` and ``_creationTime`` are ignored. Raises
        :class:`ValidationError` whose message starts ``Failed to insert or
        update a document in table "<table>" because it does not match the
        schema: ``.
        """
        validator = self._validator_for(table_name)
        if validator is None:
            return
        problem = validator._check(_strip_system_fields(doc), ctx)
        if problem is not None:
            raise ValidationError(
                f'Failed to insert or update a document in table "{table_name}" '
                f"because it does not match the schema: {problem.message()}",
                problem.path(),
            )

    def check_existing(
        self,
        table_name: str,
        docs: Iterable[dict],
        ctx: ValidationContext | None,
        limit: int = 10,
    ) -> list[str]:
        """Messages for the first ``limit`` documents of ``table_name`` that
        do not match this schema (empty when all do), each naming the
        document's ``_id``; used to refuse a schema push."""
        validator = self._validator_for(table_name)
        if validator is None or limit <= 0:
            return []
        out = []
        for doc in docs:
            problem = validator._check(_strip_system_fields(doc), ctx)
            if problem is not None:
                doc_id = doc.get("_id") if isinstance(doc, dict) else None
                out.append(
                    f"Document with ID {render_value(doc_id)} in table "
                    f'"{table_name}" does not match the schema: {problem.message()}'
                )
                if len(out) >= limit:
                    break
        return out


def _schema_error(table: str | None, problem: str) -> SchemaError:
    if table is None:
        return SchemaError(f"Invalid schema: {problem}")
    return SchemaError(f'Invalid schema for table "{table}": {problem}')


def _check_user_name(name: Any, what: str, table: str | None) -> str:
    if not isinstance(name, str):
        raise _schema_error(
            table,
            f"{what} must be a string, got {_json_type(name)} {_short_json(name)}",
        )
    if len(name) > MAX_NAME_LENGTH:
        raise _schema_error(
            table,
            f"{what} {json.dumps(name[:80])} is too long ({len(name)} characters, "
            f"limit {MAX_NAME_LENGTH})",
        )
    if name.startswith("_"):
        raise _schema_error(
            table,
            f"{what} {json.dumps(name)} starts with '_', which is reserved for the system",
        )
    if not _USER_NAME.fullmatch(name):
        raise _schema_error(
            table,
            f"{what} {_short_json(name)} is invalid: it must start with a letter "
            "and use only ASCII letters, digits and '_'",
        )
    return name


def _check_field_path(path: Any, what: str, table: str) -> str:
    if not isinstance(path, str):
        raise _schema_error(
            table, f"{what}: a field path must be a string, got {_short_json(path)}"
        )
    if path == "_id":
        raise _schema_error(
            table,
            f"{what}: `_id` cannot be an index field (every index already ends "
            "with _creationTime and _id)",
        )
    if not all(_PATH_SEGMENT.fullmatch(seg) for seg in path.split(".")):
        raise _schema_error(
            table,
            f"{what}: invalid field path {_short_json(path)} (dot-separated "
            "identifiers of ASCII letters, digits and '_', not starting with a "
            "digit)",
        )
    return path


def _check_list(obj: Any, key: str, table: str) -> list:
    value = obj.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list):
        raise _schema_error(table, f'"{key}" must be an array, got {_json_type(value)}')
    return value


def _check_paths(paths: Any, what: str, table: str, limit: int) -> tuple[str, ...]:
    if not isinstance(paths, list):
        raise _schema_error(
            table, f"{what}: expected an array of field paths, got {_json_type(paths)}"
        )
    out = tuple(_check_field_path(p, what, table) for p in paths)
    if len(out) > limit:
        raise _schema_error(table, f"{what} has {len(out)} fields, more than the limit of {limit}")
    if len(set(out)) != len(out):
        dup = next(p for i, p in enumerate(out) if p in out[:i])
        raise _schema_error(table, f"{what} lists the field {dup!r} twice")
    return out


class _IndexNames:
    """Index names of one table: unique across every kind of index."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.names: set[str] = set()

    def add(self, obj: Any, kind: str) -> str:
        if not isinstance(obj, dict):
            raise _schema_error(self.table, f"each {kind} must be an object, got {_json_type(obj)}")
        name = _check_user_name(obj.get("indexDescriptor"), f"{kind} name", self.table)
        if name in RESERVED_INDEX_NAMES:
            raise _schema_error(
                self.table,
                f'index name "{name}" is reserved: every table has the indexes '
                "by_id and by_creation_time",
            )
        if name in self.names:
            raise _schema_error(self.table, f'index name "{name}" is used twice')
        self.names.add(name)
        return name


def _parse_db_indexes(items: list, names: _IndexNames, table: str) -> Mapping[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for obj in items:
        name = names.add(obj, "index")
        fields = obj.get("fields")
        what = f'index "{name}"'
        if isinstance(fields, list) and not fields:
            raise _schema_error(table, f"{what} has no fields")
        out[name] = _check_paths(fields, what, table, MAX_FIELDS_PER_INDEX)
    return MappingProxyType(out)


def _parse_search_indexes(items: list, names: _IndexNames, table: str) -> Mapping[str, SearchIndex]:
    out: dict[str, SearchIndex] = {}
    for obj in items:
        name = names.add(obj, "search index")
        what = f'search index "{name}"'
        field_path = _check_field_path(obj.get("searchField"), what, table)
        filters = _check_paths(
            obj.get("filterFields", []),
            what + " filterFields",
            table,
            MAX_FILTER_FIELDS,
        )
        out[name] = SearchIndex(name, field_path, filters)
    return MappingProxyType(out)


def _parse_vector_indexes(items: list, names: _IndexNames, table: str) -> Mapping[str, VectorIndex]:
    out: dict[str, VectorIndex] = {}
    for obj in items:
        name = names.add(obj, "vector index")
        what = f'vector index "{name}"'
        field_path = _check_field_path(obj.get("vectorField"), what, table)
        dims = obj.get("dimensions")
        if isinstance(dims, float) and dims.is_integer():
            dims = int(dims)  # JSON numbers may arrive as floats
        if (
            isinstance(dims, bool)
            or not isinstance(dims, int)
            or not MIN_VECTOR_DIMENSIONS <= dims <= MAX_VECTOR_DIMENSIONS
        ):
            raise _schema_error(
                table,
                f"{what}: dimensions must be an integer from {MIN_VECTOR_DIMENSIONS} "
                f"to {MAX_VECTOR_DIMENSIONS}, got {_short_json(dims)}",
            )
        filters = _check_paths(
            obj.get("filterFields", []),
            what + " filterFields",
            table,
            MAX_FILTER_FIELDS,
        )
        out[name] = VectorIndex(name, field_path, dims, filters)
    return MappingProxyType(out)


def _check_document_type(v: Validator, table: str, key: str) -> Validator | None:
    """A documentType must describe objects; ``any`` becomes None."""
    if isinstance(v, AnyValidator):
        return None
    members = v.members if isinstance(v, UnionValidator) else (v,)
    if not members:
        raise _schema_error(table, f"{key} is an empty union, which no document matches")
    for m in members:
        if not isinstance(m, ObjectValidator):
            raise _schema_error(
                table,
                f"{key} must be v.object(...), a union of objects or v.any(), not {m}",
            )
        for f in m.fields:
            if f.name in SYSTEM_FIELDS:
                raise _schema_error(
                    table,
                    f"{key} declares the system field `{f.name}`; the system "
                    "fields _id and _creationTime are added automatically",
                )
            _check_user_name(f.name, f"{key} field name", table)
    return v


def _parse_table(obj: Any, index: int) -> TableSchema:
    if not isinstance(obj, dict):
        raise _schema_error(None, f"tables[{index}] must be an object, got {_json_type(obj)}")
    name = _check_user_name(obj.get("tableName"), "table name", None)
    names = _IndexNames(name)
    indexes = _parse_db_indexes(_check_list(obj, "indexes", name), names, name)
    staged = _parse_db_indexes(_check_list(obj, "stagedDbIndexes", name), names, name)
    if len(indexes) + len(staged) > MAX_INDEXES_PER_TABLE:
        raise _schema_error(
            name,
            f"{len(indexes) + len(staged)} indexes, more than the limit of "
            f"{MAX_INDEXES_PER_TABLE} per table",
        )
    search = _parse_search_indexes(_check_list(obj, "searchIndexes", name), names, name)
    staged_search = _parse_search_indexes(
        _check_list(obj, "stagedSearchIndexes", name), names, name
    )
    if len(search) + len(staged_search) > MAX_SEARCH_INDEXES_PER_TABLE:
        raise _schema_error(
            name,
            f"{len(search) + len(staged_search)} search indexes, more than the "
            f"limit of {MAX_SEARCH_INDEXES_PER_TABLE} per table",
        )
    vector = _parse_vector_indexes(_check_list(obj, "vectorIndexes", name), names, name)
    staged_vector = _parse_vector_indexes(
        _check_list(obj, "stagedVectorIndexes", name), names, name
    )
    if len(vector) + len(staged_vector) > MAX_VECTOR_INDEXES_PER_TABLE:
        raise _schema_error(
            name,
            f"{len(vector) + len(staged_vector)} vector indexes, more than the "
            f"limit of {MAX_VECTOR_INDEXES_PER_TABLE} per table",
        )

    def document_type(key: str) -> Validator:
        try:
            return parse_validator(obj[key])
        except SchemaError as e:
            raise _schema_error(name, f"{key}: {e}") from None

    doc_type = obj.get("documentType")
    validator = None
    if doc_type is not None:
        validator = _check_document_type(document_type("documentType"), name, "documentType")
    staged_validator = None
    if obj.get("stagedDocumentType") is not None:
        staged_validator = document_type("stagedDocumentType")
        _check_document_type(staged_validator, name, "stagedDocumentType")
    return TableSchema(
        name=name,
        indexes=indexes,
        document_validator=validator,
        search_indexes=search,
        vector_indexes=vector,
        staged_indexes=staged,
        staged_search_indexes=staged_search,
        staged_vector_indexes=staged_vector,
        staged_document_validator=staged_validator,
    )


def parse_schema(json_text_or_obj: str | bytes | Mapping[str, Any]) -> Schema:
    """Parse the JSON of ``schema.export()`` (text or already decoded).

    Raises :class:`SchemaError` naming the table and the rule broken.
    """
    obj: Any = json_text_or_obj
    if isinstance(obj, (str, bytes, bytearray)):
        obj = _load_json(obj, "schema")
    if not isinstance(obj, Mapping):
        raise _schema_error(None, f"expected a JSON object, got {_json_type(obj)}")
    tables_json = obj.get("tables")
    if not isinstance(tables_json, list):
        raise _schema_error(None, f'"tables" must be an array, got {_json_type(tables_json)}')
    validation = obj.get("schemaValidation", True)
    if validation is None:
        validation = True
    if not isinstance(validation, bool):
        raise _schema_error(
            None, f'"schemaValidation" must be a boolean, got {_short_json(validation)}'
        )
    tables: dict[str, TableSchema] = {}
    for i, t in enumerate(tables_json):
        table = _parse_table(t, i)
        if table.name in tables:
            raise _schema_error(None, f'table "{table.name}" is declared twice')
        tables[table.name] = table
    return Schema(MappingProxyType(tables), validation)
