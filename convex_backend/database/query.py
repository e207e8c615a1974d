"""The serialized query: parsing, filter evaluation and index-range planning.

This module owns the meaning of the ``query`` argument that function code
sends with ``queryStream`` and ``queryPage`` (reference/server-syscalls.md §4):

* :func:`parse_query` checks the JSON shape ``{source, operators}`` and turns
  it into a :class:`Query`: a source (:class:`FullTableScan`,
  :class:`IndexRange` or :class:`SearchSource`) and a pipeline of operators
  (:class:`Filter` and :class:`Limit`) that the engine applies in order, for
  example with :meth:`Query.apply`.
* Filter expressions are compiled once, at parse time, into a tree of small
  closures, because they run once per scanned document.
* :func:`plan_range` turns the range expressions of an index query into one
  contiguous span of index keys, :class:`KeyRange`, after checking that they
  have the only legal shape.
* :func:`field_value` and :func:`index_key` say what a document's index key
  is: ``encode_index_key`` of the values of the index's fields.

Every malformed or illegal query raises :class:`QueryError`, and so does a
filter that fails while it is evaluated.

Filter semantics
----------------

``{"$field": "a.b"}`` is the dotted path into the document; anything missing
on the way is :data:`UNDEFINED`. ``{"$literal": x}`` is Convex-JSON, where
``{"$undefined": null}`` stands for a missing field. The comparisons
``$eq $neq $lt $lte $gt $gte`` use Convex's total order, in which
:data:`UNDEFINED` sorts below every value (so a missing field is less than
``null``, and equals only ``undefined``). ``$and``, ``$or`` (n-ary; empty
gives true and false respectively) and ``$not`` need boolean operands; they
evaluate left to right and stop at the first operand that decides the answer,
so a later operand that would fail is not evaluated. A filter keeps a
document only when it evaluates to exactly ``true``.

Arithmetic (``$add $sub $mul $div $mod``, ``$neg``):

* float64 with float64 gives float64 with IEEE-754 semantics, as in
  JavaScript: ``x / 0`` is ±infinity (or NaN for ``0 / 0``), and ``$mod`` is
  JavaScript's ``%`` (the remainder of truncating division, with the sign of
  the dividend; NaN when the divisor is zero or the dividend infinite);
* int64 with int64 gives int64, wrapping around in 64-bit two's complement
  (as JavaScript's ``BigInt.asIntN(64, ...)`` would); ``$div`` truncates
  toward zero and ``$mod`` has the sign of the dividend; dividing by zero is
  an error;
* anything else (an int64 with a float64, a string, a missing field...) is
  an error: there are no implicit conversions.
"""

from __future__ import annotations

import math
import struct
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from typing import Any, Union

from convex_backend.values import (
    UNDEFINED,
    ConvexValueError,
    Int64,
    Value,
    compare_values,
    encode_index_key,
    encode_key,
    from_json,
    prefix_successor,
)
from convex_backend.values.codec import json_type as _json_type
from convex_backend.values.keys import utf8

__all__ = [
    "MAX_EXPRESSION_DEPTH",
    "MAX_QUERY_OPERATORS",
    "FullTableScan",
    "Filter",
    "IndexRange",
    "KeyRange",
    "Limit",
    "Operator",
    "Query",
    "QueryError",
    "RangeExpr",
    "SearchSource",
    "Source",
    "field_value",
    "index_key",
    "index_key_function",
    "parse_filter",
    "parse_query",
    "plan_range",
]

#: The most operators a query may have (Convex's ``MAX_QUERY_OPERATORS``).
MAX_QUERY_OPERATORS = 256
#: How deeply filter expressions may nest; a guard against RecursionError far
#: above anything the query builder produces in practice.
MAX_EXPRESSION_DEPTH = 128

_LOWER_OPS = frozenset(("Gt", "Gte"))
_UPPER_OPS = frozenset(("Lt", "Lte"))
_RANGE_OPS = frozenset(("Eq",)) | _LOWER_OPS | _UPPER_OPS


class QueryError(ConvexValueError):
    """A query is malformed or illegal, or its filter failed on a document."""


# --- documents and index keys ------------------------------------------------


@lru_cache(maxsize=4096)
def _getter(path: str) -> Callable[[dict], Value]:
    """A function reading the dotted ``path`` out of a document.

    Cached because the same few paths are looked up for every document.
    """
    parts = tuple(path.split("."))
    if len(parts) == 1:
        name = parts[0]

        def get_top(doc: dict) -> Value:
            return doc.get(name, UNDEFINED)

        return get_top

    def get_nested(doc: dict) -> Value:
        value: Any = doc
        for part in parts:
            if type(value) is not dict:
                return UNDEFINED
            value = value.get(part, UNDEFINED)
        return value

    return get_nested


def field_value(doc: dict, path: str) -> Value:
    """The value at the dotted ``path`` of ``doc``, or :data:`UNDEFINED`.

    ``"a.b"`` is ``doc["a"]["b"]`` when both levels are objects; a missing
    field or a non-object on the way gives :data:`UNDEFINED`.
    """
    return _getter(path)(doc)


def index_key(doc: dict, fields: Sequence[str]) -> bytes:
    """The key of ``doc`` in an index over ``fields`` (the full field list,
    including any implicit trailing ``_creationTime`` and ``_id``)."""
    return encode_index_key([_getter(f)(doc) for f in fields])


def index_key_function(fields: Sequence[str]) -> Callable[[dict], bytes]:
    """:func:`index_key` for a fixed ``fields``, with the paths resolved once."""
    getters = tuple(_getter(f) for f in fields)

    def key(doc: dict) -> bytes:
        return encode_index_key([get(doc) for get in getters])

    return key


# --- the query model -----------------------------------------------------------


@dataclass(frozen=True)
class FullTableScan:
    """Every document of ``table_name``, in creation order."""

    table_name: str
    order: str  # "asc" or "desc"


@dataclass(frozen=True)
class RangeExpr:
    """One index range expression: ``op`` is Eq, Gt, Gte, Lt or Lte."""

    op: str
    field_path: str
    value: Value  # may be UNDEFINED (a missing field)


@dataclass(frozen=True)
class IndexRange:
    """The documents of ``table_name`` in a span of the index ``index_name``."""

    table_name: str
    index_name: str  # without the table: "by_author"
    range: tuple[RangeExpr, ...]
    order: str  # "asc" or "desc"


@dataclass(frozen=True)
class SearchSource:
    """A full-text search query (parsed so it can be refused clearly)."""

    table_name: str
    index_name: str
    search_field: str
    query_text: str
    filters: tuple[tuple[str, Value], ...]  # (field path, value) equalities


Source = Union[FullTableScan, IndexRange, SearchSource]


class Filter:
    """A compiled ``{"filter": expr}`` operator.

    ``canonical`` is an unambiguous byte form of the expression (used for
    query fingerprints): equal expressions give equal bytes.
    """

    __slots__ = ("_eval", "canonical")

    def __init__(self, evaluate: Callable[[dict], Value], canonical: bytes) -> None:
        self._eval = evaluate
        self.canonical = canonical

    def evaluate(self, doc: dict) -> Value:
        """The expression's value on ``doc``; :class:`QueryError` if it fails."""
        return self._eval(doc)

    def matches(self, doc: dict) -> bool:
        """Whether ``doc`` passes: the expression is exactly ``true``."""
        return self._eval(doc) is True

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Filter):
            return self.canonical == other.canonical
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.canonical)

    def __repr__(self) -> str:
        return f"Filter(<{len(self.canonical)} bytes>)"


@dataclass(frozen=True)
class Limit:
    """A ``{"limit": n}`` operator: pass on at most ``n`` documents."""

    n: int


Operator = Union[Filter, Limit]


@dataclass(frozen=True)
class Query:
    """A parsed query: where the rows come from, then what happens to them."""

    source: Source
    operators: tuple[Operator, ...]

    @property
    def filters(self) -> tuple[Filter, ...]:
        """The filters, in order (without the limits between them)."""
        return tuple(op for op in self.operators if isinstance(op, Filter))

    def apply(self, rows: Iterable[dict]) -> Iterator[dict]:
        """Run the operators over ``rows`` (documents in source order), lazily.

        A limit stops pulling rows as soon as it has passed on its ``n``, so
        the source is read no further than needed.
        """
        it: Iterator[dict] = iter(rows)
        for op in self.operators:
            if isinstance(op, Filter):
                it = filter(op.matches, it)
            else:
                # islice takes at most sys.maxsize; more is "no limit" anyway.
                it = islice(it, min(op.n, sys.maxsize))
        return it


# --- parsing -------------------------------------------------------------------


def _value(obj: object, what: str) -> Value:
    """Decode a Convex-JSON value that may be ``{"$undefined": null}``."""
    try:
        value = from_json(obj, allow_undefined=True)
        # from_json also lets UNDEFINED through as an object field (patches
        # use that); encode_key accepts it only at the top, as queries need.
        encode_key(value)
    except ConvexValueError as e:
        raise QueryError(f"Invalid {what}: {e}") from None
    return value


def _string(obj: dict, key: str, what: str) -> str:
    if key not in obj:
        raise QueryError(f"{what} is missing {key!r}")
    value = obj[key]
    if not isinstance(value, str):
        raise QueryError(f"{what}: {key!r} must be a string, got {_json_type(value)}")
    return _unicode(value, f"{what}: {key!r}")


def _unicode(text: str, what: str) -> str:
    # JSON can smuggle in lone surrogates, which have no UTF-8 form: refuse
    # them here rather than fail later while fingerprinting or comparing.
    try:
        utf8(text)
    except ConvexValueError:
        raise QueryError(f"{what} is not valid Unicode (lone surrogate)") from None
    return text


def _order(obj: dict, what: str) -> str:
    order = obj.get("order")
    if order is None:
        return "asc"  # null (or absent) is the default, ascending
    if order == "asc" or order == "desc":
        return order
    raise QueryError(f'{what}: "order" must be null, "asc" or "desc", got {order!r}')


def _split_index_name(name: str) -> tuple[str, str]:
    table, dot, index = name.partition(".")
    if not dot or not table or not index or "." in index:
        raise QueryError(f"Invalid index name {name!r}: expected '<table>.<index>'")
    return table, index


def _range_expr(obj: object, i: int) -> RangeExpr:
    what = f"Index range expression {i}"
    if not isinstance(obj, dict):
        raise QueryError(f"{what} must be an object, got {_json_type(obj)}")
    op = obj.get("type")
    if not isinstance(op, str) or op not in _RANGE_OPS:
        raise QueryError(f"{what}: 'type' must be one of Eq, Gt, Gte, Lt, Lte, got {op!r}")
    path = _string(obj, "fieldPath", what)
    if "value" not in obj:
        raise QueryError(f"{what} is missing 'value'")
    return RangeExpr(op, path, _value(obj["value"], f"value in {what.lower()}"))


def _source(obj: object) -> Source:
    if not isinstance(obj, dict):
        raise QueryError(f"Query 'source' must be an object, got {_json_type(obj)}")
    kind = obj.get("type")
    if kind == "FullTableScan":
        table = _string(obj, "tableName", "FullTableScan source")
        return FullTableScan(table, _order(obj, "FullTableScan source"))
    if kind == "IndexRange":
        what = "IndexRange source"
        table, index = _split_index_name(_string(obj, "indexName", what))
        exprs = obj.get("range")
        if not isinstance(exprs, list):
            raise QueryError(f"{what}: 'range' must be an array, got {_json_type(exprs)}")
        rng = tuple(_range_expr(e, i) for i, e in enumerate(exprs))
        return IndexRange(table, index, rng, _order(obj, what))
    if kind == "Search":
        return _search_source(obj)
    raise QueryError(
        f"Query source 'type' must be FullTableScan, IndexRange or Search, got {kind!r}"
    )


def _search_source(obj: dict) -> SearchSource:
    what = "Search source"
    table, index = _split_index_name(_string(obj, "indexName", what))
    filters = obj.get("filters")
    if not isinstance(filters, list):
        raise QueryError(f"{what}: 'filters' must be an array, got {_json_type(filters)}")
    if not filters:
        raise QueryError(f"{what} needs a search filter")
    search_field = query_text = None
    eqs: list[tuple[str, Value]] = []
    for i, f in enumerate(filters):
        fwhat = f"Search filter {i}"
        if not isinstance(f, dict):
            raise QueryError(f"{fwhat} must be an object, got {_json_type(f)}")
        kind = f.get("type")
        path = _string(f, "fieldPath", fwhat)
        if "value" not in f:
            raise QueryError(f"{fwhat} is missing 'value'")
        if i == 0:
            if kind != "Search":
                raise QueryError(f"{what}: the first filter must be a Search filter")
            if not isinstance(f["value"], str):
                raise QueryError(f"{fwhat}: the search text must be a string")
            search_field = path
            query_text = _unicode(f["value"], f"{fwhat}: the search text")
        elif kind == "Eq":
            eqs.append((path, _value(f["value"], f"value in {fwhat.lower()}")))
        else:
            raise QueryError(f"{fwhat}: only Eq filters may follow the Search filter, got {kind!r}")
    assert search_field is not None and query_text is not None
    return SearchSource(table, index, search_field, query_text, tuple(eqs))


def _limit(n: object) -> Limit:
    if isinstance(n, bool) or not isinstance(n, (int, float)):
        raise QueryError(f"'limit' must be a number, got {_json_type(n)}")
    if isinstance(n, float) and not (math.isfinite(n) and n.is_integer()):
        raise QueryError(f"'limit' must be an integer, got {n!r}")
    if n < 0:
        raise QueryError(f"'limit' must not be negative, got {n!r}")
    return Limit(int(n))


def _operator(obj: object, i: int) -> Operator:
    if not isinstance(obj, dict) or len(obj) != 1:
        raise QueryError(
            f"Query operator {i} must be an object with the single key 'filter' or 'limit'"
        )
    ((key, arg),) = obj.items()
    if key == "filter":
        return parse_filter(arg)
    if key == "limit":
        return _limit(arg)
    raise QueryError(f"Unknown query operator {key!r} (expected 'filter' or 'limit')")


def parse_query(obj: object) -> Query:
    """Parse and check a serialized query ``{source, operators}``.

    Raises :class:`QueryError` (and nothing else) for anything malformed.
    """
    if not isinstance(obj, dict):
        raise QueryError(f"A query must be an object, got {_json_type(obj)}")
    if "source" not in obj:
        raise QueryError("A query needs a 'source'")
    source = _source(obj["source"])
    ops = obj.get("operators", [])
    if not isinstance(ops, list):
        raise QueryError(f"Query 'operators' must be an array, got {_json_type(ops)}")
    if len(ops) > MAX_QUERY_OPERATORS:
        raise QueryError(
            f"A query may have at most {MAX_QUERY_OPERATORS} operators, got {len(ops)}"
        )
    return Query(source, tuple(_operator(op, i) for i, op in enumerate(ops)))


# --- filter expressions ----------------------------------------------------------

Evaluator = Callable[[dict], Value]

_pack_len = struct.Struct(">I").pack
_INT64_BIAS = 1 << 63
_INT64_MASK = (1 << 64) - 1
_INF = math.inf
_NAN = math.nan


def _type_name(v: Value) -> str:
    if v is UNDEFINED:
        return "undefined (a missing field)"
    t = type(v)
    if t is float:
        return "float64"
    if t is Int64:
        return "int64"
    if v is None:
        return "null"
    if t is bool:
        return "boolean"
    if t is str:
        return "string"
    if t is bytes:
        return "bytes"
    if t is list:
        return "array"
    if t is dict:
        return "object"
    return type(v).__name__


def _wrap(n: int) -> Int64:
    """``n`` reduced to a signed 64-bit integer (two's complement wrapping)."""
    return Int64(((n + _INT64_BIAS) & _INT64_MASK) - _INT64_BIAS)


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


def _fdiv(a: float, b: float) -> float:
    try:
        return a / b
    except ZeroDivisionError:
        # Python refuses what IEEE-754 (and JavaScript) define.
        if a != a or a == 0.0:
            return _NAN
        return math.copysign(_INF, a) * math.copysign(1.0, b)


def _fmod(a: float, b: float) -> float:
    try:
        return math.fmod(a, b)
    except ValueError:
        # fmod(inf, y) and fmod(x, 0): NaN in IEEE-754 and in JavaScript.
        return _NAN


def _idiv(a: int, b: int) -> int:
    if b == 0:
        raise QueryError("$div: int64 division by zero")
    return _trunc_div(a, b)


def _imod(a: int, b: int) -> int:
    if b == 0:
        raise QueryError("$mod: int64 division by zero")
    return a - b * _trunc_div(a, b)


_ARITHMETIC: dict[str, tuple[Callable[[float, float], float], Callable[[int, int], int]]] = {
    "$add": (lambda a, b: a + b, lambda a, b: a + b),
    "$sub": (lambda a, b: a - b, lambda a, b: a - b),
    "$mul": (lambda a, b: a * b, lambda a, b: a * b),
    "$div": (_fdiv, _idiv),
    "$mod": (_fmod, _imod),
}

_COMPARISONS: dict[str, Callable[[int], bool]] = {
    "$eq": lambda c: c == 0,
    "$neq": lambda c: c != 0,
    "$lt": lambda c: c < 0,
    "$lte": lambda c: c <= 0,
    "$gt": lambda c: c > 0,
    "$gte": lambda c: c >= 0,
}


def _canon(op: str, parts: Sequence[bytes]) -> bytes:
    """An unambiguous byte form: the operator, then length-prefixed parts."""
    out = [utf8(op), b"\x00", _pack_len(len(parts))]
    for p in parts:
        out += (_pack_len(len(p)), p)
    return b"".join(out)


def _operands(op: str, arg: object, n: int | None) -> list:
    if not isinstance(arg, list):
        raise QueryError(f"{op} takes an array of operands, got {_json_type(arg)}")
    if n is not None and len(arg) != n:
        raise QueryError(f"{op} takes exactly {n} operands, got {len(arg)}")
    return arg


def _compile_comparison(op: str, arg: object, depth: int) -> tuple[Evaluator, bytes]:
    (lf, lc), (rf, rc) = (_compile(x, depth) for x in _operands(op, arg, 2))
    test = _COMPARISONS[op]

    def compare(doc: dict) -> Value:
        return test(compare_values(lf(doc), rf(doc)))

    # $eq is by far the most common filter; skip the indirection through test.
    def equal(doc: dict) -> Value:
        return compare_values(lf(doc), rf(doc)) == 0

    return (equal if op == "$eq" else compare), _canon(op, (lc, rc))


def _compile_arithmetic(op: str, arg: object, depth: int) -> tuple[Evaluator, bytes]:
    (lf, lc), (rf, rc) = (_compile(x, depth) for x in _operands(op, arg, 2))
    fop, iop = _ARITHMETIC[op]

    def arithmetic(doc: dict) -> Value:
        a = lf(doc)
        b = rf(doc)
        ta = type(a)
        tb = type(b)
        if ta is float and tb is float:
            return fop(a, b)
        if ta is Int64 and tb is Int64:
            return _wrap(iop(a.value, b.value))
        raise QueryError(
            f"{op} needs two float64 or two int64 operands, got {_type_name(a)} and {_type_name(b)}"
        )

    return arithmetic, _canon(op, (lc, rc))


def _compile_neg(arg: object, depth: int) -> tuple[Evaluator, bytes]:
    f, c = _compile(arg, depth)

    def neg(doc: dict) -> Value:
        v = f(doc)
        t = type(v)
        if t is float:
            return -v
        if t is Int64:
            return _wrap(-v.value)
        raise QueryError(f"$neg needs a float64 or int64 operand, got {_type_name(v)}")

    return neg, _canon("$neg", (c,))


def _boolean(op: str, v: Value) -> bool:
    if type(v) is not bool:
        raise QueryError(f"{op} needs boolean operands, got {_type_name(v)}")
    return v


def _compile_not(arg: object, depth: int) -> tuple[Evaluator, bytes]:
    f, c = _compile(arg, depth)

    def not_(doc: dict) -> Value:
        v = f(doc)
        if v is True:
            return False
        if v is False:
            return True
        return not _boolean("$not", v)

    return not_, _canon("$not", (c,))


def _compile_logical(op: str, arg: object, depth: int) -> tuple[Evaluator, bytes]:
    compiled = [_compile(x, depth) for x in _operands(op, arg, None)]
    fs = tuple(f for f, _ in compiled)
    canonical = _canon(op, [c for _, c in compiled])

    if op == "$and":

        def and_(doc: dict) -> Value:
            for f in fs:
                v = f(doc)
                if v is not True:
                    if v is False:
                        return False
                    _boolean(op, v)
            return True

        return and_, canonical

    def or_(doc: dict) -> Value:
        for f in fs:
            v = f(doc)
            if v is not False:
                if v is True:
                    return True
                _boolean(op, v)
        return False

    return or_, canonical


def _compile_field(arg: object) -> tuple[Evaluator, bytes]:
    if not isinstance(arg, str):
        raise QueryError(f"$field takes a field path string, got {_json_type(arg)}")
    return _getter(arg), _canon("$field", (utf8(_unicode(arg, "$field")),))


def _compile_literal(arg: object) -> tuple[Evaluator, bytes]:
    value = _value(arg, "$literal")

    def literal(doc: dict) -> Value:
        return value

    return literal, _canon("$literal", (encode_key(value),))


def _compile(expr: object, depth: int) -> tuple[Evaluator, bytes]:
    """Compile an expression into (evaluator, canonical bytes)."""
    depth += 1
    if depth > MAX_EXPRESSION_DEPTH:
        raise QueryError(
            f"Filter expression is nested more than {MAX_EXPRESSION_DEPTH} levels deep"
        )
    if not isinstance(expr, dict) or len(expr) != 1:
        raise QueryError(
            "A filter expression must be an object with a single operator key "
            f'such as "$field", "$literal" or "$eq", got {_describe(expr)}'
        )
    ((op, arg),) = expr.items()
    if op == "$field":
        return _compile_field(arg)
    if op == "$literal":
        return _compile_literal(arg)
    if op in _COMPARISONS:
        return _compile_comparison(op, arg, depth)
    if op in _ARITHMETIC:
        return _compile_arithmetic(op, arg, depth)
    if op == "$and" or op == "$or":
        return _compile_logical(op, arg, depth)
    if op == "$not":
        return _compile_not(arg, depth)
    if op == "$neg":
        return _compile_neg(arg, depth)
    raise QueryError(f"Unknown filter expression operator {op!r}")


def _describe(o: object) -> str:
    if isinstance(o, dict):
        keys = ", ".join(repr(k) for k in list(o)[:4])
        return f"an object with keys [{keys}{', ...' if len(o) > 4 else ''}]"
    return f"a {_json_type(o)}"


def parse_filter(expr: object) -> Filter:
    """Compile one filter expression (the argument of ``{"filter": ...}``)."""
    try:
        evaluate, canonical = _compile(expr, 0)
    except RecursionError:
        raise QueryError("Filter expression is nested too deeply") from None
    return Filter(evaluate, canonical)


# --- index ranges ------------------------------------------------------------------


@dataclass(frozen=True)
class KeyRange:
    """A span of index keys: ``start <= key < end`` (``end`` None: no bound)."""

    start: bytes
    end: bytes | None

    @property
    def is_empty(self) -> bool:
        return self.end is not None and self.start >= self.end

    def __contains__(self, key: bytes) -> bool:
        return self.start <= key and (self.end is None or key < self.end)


def _describe_range(exprs: Sequence[RangeExpr]) -> str:
    return " ".join(f"{e.op}({e.field_path!r})" for e in exprs) or "(empty)"


def plan_range(
    index_fields: Sequence[str],
    range_exprs: Sequence[RangeExpr],
    *,
    index_name: str | None = None,
) -> KeyRange:
    """The span of index keys selected by ``range_exprs``.

    ``index_fields`` is the index's full field list, including the implicit
    trailing ``_creationTime`` and ``_id`` of user indexes. The only legal
    shape is zero or more ``Eq`` on consecutive index fields from the first,
    then at most one lower bound (``Gt``/``Gte``) and at most one upper bound
    (``Lt``/``Lte``), both on the next field; anything else raises
    :class:`QueryError`. A range whose bounds cross is simply empty.
    """
    fields = list(index_fields)
    for e in range_exprs:
        if not isinstance(e, RangeExpr):
            raise QueryError(f"Not an index range expression: {e!r}")

    def invalid(problem: str) -> QueryError:
        name = f" for index {index_name!r}" if index_name else ""
        return QueryError(
            f"Uh oh! Index range expression {_describe_range(range_exprs)}{name} "
            f"is invalid: {problem}. Use zero or more eq() on the index fields "
            f"in order ({', '.join(fields)}), then optionally one lower bound "
            "(gt/gte) and one upper bound (lt/lte) on the next field"
        )

    prefix: list[bytes] = []
    lower: RangeExpr | None = None
    upper: RangeExpr | None = None
    bound_field: str | None = None
    for e in range_exprs:
        pos = len(prefix)
        if e.op == "Eq":
            if bound_field is not None:
                raise invalid(
                    f"Eq on {e.field_path!r} comes after a range bound on "
                    f"{bound_field!r}; every Eq must come before the bounds"
                )
            if pos >= len(fields):
                raise invalid(
                    f"Eq on {e.field_path!r} but all {len(fields)} index fields already have an Eq"
                )
            if e.field_path != fields[pos]:
                raise invalid(
                    f"Eq on {e.field_path!r} where index field {fields[pos]!r} was expected"
                )
            prefix.append(encode_key(e.value))
            continue
        if e.op not in _RANGE_OPS:
            raise QueryError(f"Unknown index range operator {e.op!r}")
        expected = bound_field
        if expected is None:
            if pos >= len(fields):
                raise invalid(
                    f"{e.op} on {e.field_path!r} but all {len(fields)} index fields "
                    "already have an Eq"
                )
            expected = fields[pos]
        if e.field_path != expected:
            raise invalid(f"{e.op} on {e.field_path!r} where index field {expected!r} was expected")
        bound_field = expected
        if e.op in _LOWER_OPS:
            if lower is not None:
                raise invalid(f"two lower bounds ({lower.op} and {e.op})")
            lower = e
        else:
            if upper is not None:
                raise invalid(f"two upper bounds ({upper.op} and {e.op})")
            upper = e

    p = b"".join(prefix)
    # The key encodings are self-delimiting and no encoding is a prefix of
    # another, so "field == v" is exactly "key starts with P + enc(v)".
    if lower is None:
        start = p
    elif lower.op == "Gte":
        start = p + encode_key(lower.value)
    else:
        after = prefix_successor(p + encode_key(lower.value))
        assert after is not None  # a non-empty encoding never ends in all 0xFF
        start = after
    if upper is None:
        end = prefix_successor(p)
    elif upper.op == "Lt":
        end = p + encode_key(upper.value)
    else:
        end = prefix_successor(p + encode_key(upper.value))
    return KeyRange(start, end)
