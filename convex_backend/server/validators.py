"""Argument, return and schema validators: the ``v`` builder.

This module owns the validator objects user code builds with ``v`` (the
Python spelling of Convex's ``v`` from ``convex/values``) and their validator
JSON, the form the host stores and checks values against
(``reference/server-syscalls.md`` §5)::

    v.object({"body": v.string(), "tags": v.optional(v.array(v.string()))}).json
    == {"type": "object", "value": {
           "body": {"fieldType": {"type": "string"}, "optional": False},
           "tags": {"fieldType": {"type": "array", "value": {"type": "string"}},
                    "optional": True}}}

Validation itself happens in the host; validators here only describe.
``v.optional(x)`` is ``x`` marked optional: its JSON is ``x``'s, and the mark
shows up only as ``"optional": true`` on the object field that holds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from convex_backend.values import Int64, from_python, to_json

__all__ = [
    "ArrayValidator",
    "IdValidator",
    "LiteralValidator",
    "ObjectValidator",
    "RecordValidator",
    "UnionValidator",
    "Validator",
    "pagination_opts_validator",
    "v",
]


class Validator:
    """A validator of one Convex type (``v.string()``, ``v.any()``, ...).

    ``kind`` is the validator JSON ``type``; ``is_optional`` is set by
    ``v.optional``. Compound kinds are the subclasses below.
    """

    __slots__ = ("is_optional", "kind")

    kind: str
    is_optional: bool

    def __init__(self, kind: str, *, is_optional: bool = False) -> None:
        self.kind = kind
        self.is_optional = is_optional

    @property
    def json(self) -> dict[str, Any]:
        """The validator JSON (never mentions optionality; see module doc)."""
        return {"type": self.kind}

    def _optional_copy(self) -> Validator:
        copy = object.__new__(type(self))
        for cls in type(self).__mro__:
            for name in getattr(cls, "__slots__", ()):
                object.__setattr__(copy, name, getattr(self, name))
        copy.is_optional = True
        return copy

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Validator):
            return NotImplemented
        return self.is_optional == other.is_optional and self.json == other.json

    def __hash__(self) -> int:
        return hash((self.kind, self.is_optional))

    def _repr_inner(self) -> str:
        return f"v.{_REPR_NAMES.get(self.kind, self.kind)}()"

    def __repr__(self) -> str:
        inner = self._repr_inner()
        return f"v.optional({inner})" if self.is_optional else inner


_REPR_NAMES = {"number": "float64", "bigint": "int64"}


def _required(validator: object, where: str) -> Validator:
    """Check that ``validator`` is a non-optional validator (``where`` names
    the place, for the message)."""
    if not isinstance(validator, Validator):
        raise TypeError(f"{where} must be a validator (v.string(), ...), got {validator!r}")
    if validator.is_optional:
        raise TypeError(
            f"{where} cannot be optional: v.optional() is only allowed for object fields"
        )
    return validator


class IdValidator(Validator):
    """``v.id(table_name)``: a document id of that table."""

    __slots__ = ("table_name",)

    def __init__(self, table_name: str, *, is_optional: bool = False) -> None:
        if not isinstance(table_name, str):
            raise TypeError(f"v.id() needs a table name, got {table_name!r}")
        super().__init__("id", is_optional=is_optional)
        self.table_name = table_name

    @property
    def json(self) -> dict[str, Any]:
        return {"type": "id", "tableName": self.table_name}

    def _repr_inner(self) -> str:
        return f"v.id({self.table_name!r})"


class LiteralValidator(Validator):
    """``v.literal(value)``: exactly this string, number, int64 or boolean."""

    __slots__ = ("value",)

    def __init__(self, value: Any, *, is_optional: bool = False) -> None:
        # Same set as Convex's VLiteral: no null (that is v.null()), no
        # containers.
        if value is None or not isinstance(value, (str, int, float, bool, Int64)):
            raise TypeError(
                f"v.literal() takes a string, number, Int64 or boolean, got {type(value).__name__}"
            )
        super().__init__("literal", is_optional=is_optional)
        self.value = from_python(value)

    @property
    def json(self) -> dict[str, Any]:
        return {"type": "literal", "value": to_json(self.value)}

    def _repr_inner(self) -> str:
        return f"v.literal({self.value!r})"


class ArrayValidator(Validator):
    """``v.array(element)``."""

    __slots__ = ("element",)

    def __init__(self, element: Validator, *, is_optional: bool = False) -> None:
        super().__init__("array", is_optional=is_optional)
        self.element = _required(element, "The element validator of v.array()")

    @property
    def json(self) -> dict[str, Any]:
        return {"type": "array", "value": self.element.json}

    def _repr_inner(self) -> str:
        return f"v.array({self.element!r})"


class ObjectValidator(Validator):
    """``v.object({...})``: an object with these fields (in this order)."""

    __slots__ = ("fields",)

    fields: dict[str, Validator]

    def __init__(self, fields: Mapping[str, Validator], *, is_optional: bool = False) -> None:
        if not isinstance(fields, Mapping):
            raise TypeError(f"v.object() takes a dict of validators, got {fields!r}")
        checked: dict[str, Validator] = {}
        for name, validator in fields.items():
            if not isinstance(name, str):
                raise TypeError(f"v.object() field names must be strings, got {name!r}")
            if not isinstance(validator, Validator):
                raise TypeError(
                    f"v.object() field {name!r} must be a validator (v.string(), ...), "
                    f"got {validator!r}"
                )
            checked[name] = validator
        super().__init__("object", is_optional=is_optional)
        self.fields = checked

    @property
    def json(self) -> dict[str, Any]:
        return {
            "type": "object",
            "value": {
                name: {"fieldType": validator.json, "optional": validator.is_optional}
                for name, validator in self.fields.items()
            },
        }

    # Convex's VObject helpers, for deriving one object validator from another.

    def extend(self, fields: Mapping[str, Validator]) -> ObjectValidator:
        """A copy with ``fields`` added (replacing same-named ones)."""
        return ObjectValidator({**self.fields, **fields}, is_optional=self.is_optional)

    def pick(self, *names: str) -> ObjectValidator:
        """A copy with only the named fields."""
        return ObjectValidator(
            {k: f for k, f in self.fields.items() if k in names}, is_optional=self.is_optional
        )

    def omit(self, *names: str) -> ObjectValidator:
        """A copy without the named fields."""
        return ObjectValidator(
            {k: f for k, f in self.fields.items() if k not in names},
            is_optional=self.is_optional,
        )

    def partial(self) -> ObjectValidator:
        """A copy with every field optional."""
        return ObjectValidator(
            {k: f if f.is_optional else f._optional_copy() for k, f in self.fields.items()},
            is_optional=self.is_optional,
        )

    def _repr_inner(self) -> str:
        inner = ", ".join(f"{k!r}: {f!r}" for k, f in self.fields.items())
        return f"v.object({{{inner}}})"


class RecordValidator(Validator):
    """``v.record(keys, values)``: an object with arbitrary keys."""

    __slots__ = ("keys", "values")

    def __init__(self, keys: Validator, values: Validator, *, is_optional: bool = False) -> None:
        super().__init__("record", is_optional=is_optional)
        self.keys = _required(keys, "The keys validator of v.record()")
        self.values = _required(values, "The values validator of v.record()")

    @property
    def json(self) -> dict[str, Any]:
        return {
            "type": "record",
            "keys": self.keys.json,
            "values": {"fieldType": self.values.json, "optional": False},
        }

    def _repr_inner(self) -> str:
        return f"v.record({self.keys!r}, {self.values!r})"


class UnionValidator(Validator):
    """``v.union(*members)``: a value matching any of the members."""

    __slots__ = ("members",)

    members: tuple[Validator, ...]

    def __init__(self, *members: Validator, is_optional: bool = False) -> None:
        super().__init__("union", is_optional=is_optional)
        self.members = tuple(
            _required(m, f"Member {i} of v.union()") for i, m in enumerate(members)
        )

    @property
    def json(self) -> dict[str, Any]:
        return {"type": "union", "value": [m.json for m in self.members]}

    def _repr_inner(self) -> str:
        return f"v.union({', '.join(repr(m) for m in self.members)})"


class _V:
    """The ``v`` namespace. Method names follow Convex's ``v``."""

    __slots__ = ()

    def string(self) -> Validator:
        return Validator("string")

    def number(self) -> Validator:
        """A float64 (a Python ``float``; ``int`` arguments are converted)."""
        return Validator("number")

    float64 = number

    def int64(self) -> Validator:
        """An int64 (``Int64`` in Python)."""
        return Validator("bigint")

    bigint = int64

    def boolean(self) -> Validator:
        return Validator("boolean")

    def null(self) -> Validator:
        return Validator("null")

    def bytes(self) -> Validator:
        return Validator("bytes")

    def any(self) -> Validator:
        return Validator("any")

    def id(self, table_name: str) -> IdValidator:
        return IdValidator(table_name)

    def literal(self, value: Any) -> LiteralValidator:
        return LiteralValidator(value)

    def array(self, element: Validator) -> ArrayValidator:
        return ArrayValidator(element)

    def object(self, fields: Mapping[str, Validator]) -> ObjectValidator:
        return ObjectValidator(fields)

    def record(self, keys: Validator, values: Validator) -> RecordValidator:
        return RecordValidator(keys, values)

    def union(self, *members: Validator) -> UnionValidator:
        return UnionValidator(*members)

    def optional(self, validator: Validator) -> Validator:
        """``validator``, allowed to be missing when used as an object field."""
        if not isinstance(validator, Validator):
            raise TypeError(f"v.optional() takes a validator, got {validator!r}")
        return validator if validator.is_optional else validator._optional_copy()

    def nullable(self, validator: Validator) -> UnionValidator:
        """``v.union(validator, v.null())``."""
        return UnionValidator(validator, Validator("null"))


v = _V()

#: The validator of ``paginate()`` options, as Convex's ``paginationOptsValidator``.
pagination_opts_validator = v.object(
    {
        "numItems": v.number(),
        "cursor": v.union(v.string(), v.null()),
        "endCursor": v.optional(v.union(v.string(), v.null())),
        "id": v.optional(v.number()),
        "maximumRowsRead": v.optional(v.number()),
        "maximumBytesRead": v.optional(v.number()),
    }
)


def as_args_validator(args: Validator | Mapping[str, Validator] | None) -> Validator | None:
    """Normalize the ``args=`` of a registration: a dict becomes ``v.object``."""
    if args is None or isinstance(args, Validator):
        if args is not None and args.is_optional:
            raise TypeError("args cannot be v.optional(...)")
        return args
    if isinstance(args, Mapping):
        return ObjectValidator(args)
    raise TypeError(f"args must be a dict of validators or a validator, got {args!r}")
