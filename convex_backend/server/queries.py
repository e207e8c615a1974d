"""Database queries: ``ctx.db.query(table)`` and its builders.

This module owns the query objects and the serialized query JSON they send
(``reference/server-syscalls.md`` §4)::

    ctx.db.query("messages")
        .with_index("by_channel", lambda q: q.eq("channel", c).gt("_creationTime", t))
        .filter(lambda q: q.and_(q.eq(q.field("deleted"), False), q.gt(q.field("n"), 2)))
        .order("desc")
        .take(10)

becomes ``{"source": {"type": "IndexRange", "indexName": "messages.by_channel",
"range": [...], "order": "desc"}, "operators": [{"filter": ...}, {"limit": 10}]}``.

Python cannot name methods ``and``/``or``/``not``, so the filter builder
spells them ``and_``/``or_``/``not_``. A :class:`Query` can be chained or run
once (as in Convex); ``collect``/``take``/``first``/``unique`` and iteration
read through a stream (``1.0/queryStream`` + batched ``1.0/queryStreamNext`` +
``1.0/queryCleanup``), ``paginate`` is a single ``1.0/queryPage``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from convex_backend.server._syscalls import CONVEX_VERSION, Invocation
from convex_backend.values import UNDEFINED, from_json, from_python, to_json

__all__ = [
    "MAX_QUERY_OPERATORS",
    "Expression",
    "FilterBuilder",
    "IndexRangeBuilder",
    "Query",
    "QueryInitializer",
    "SearchFilterBuilder",
]

#: The most operators (filters and limits) one query may have, as in Convex.
MAX_QUERY_OPERATORS = 256


def literal_json(value: Any) -> Any:
    """Convex-JSON of a filter or range literal; ``UNDEFINED`` is allowed here."""
    if value is UNDEFINED:
        return {"$undefined": None}
    return to_json(from_python(value))


# -- filter expressions ------------------------------------------------------


class Expression:
    """A filter expression node built by :class:`FilterBuilder`; ``json`` is its form."""

    __slots__ = ("json",)

    json: dict[str, Any]

    def __init__(self, json: dict[str, Any]) -> None:
        self.json = json

    def __bool__(self) -> bool:
        # `q.eq(a, 1) and q.eq(b, 2)` would silently keep only one condition.
        raise TypeError(
            "A filter expression has no truth value: combine expressions with "
            "q.and_(...), q.or_(...) and q.not_(...), not Python's and/or/not"
        )

    def __repr__(self) -> str:
        return f"Expression({self.json!r})"


def _operand(x: Any) -> Any:
    """An expression's JSON, or a plain value wrapped as ``$literal``."""
    if isinstance(x, Expression):
        return x.json
    return {"$literal": literal_json(x)}


class FilterBuilder:
    """The ``q`` of ``.filter(lambda q: ...)``. Operands are expressions or
    plain values (which become literals)."""

    __slots__ = ()

    def field(self, path: str) -> Expression:
        """The value of a (dotted) field path of the document."""
        if not isinstance(path, str):
            raise TypeError(f"q.field() takes a field path string, got {path!r}")
        return Expression({"$field": path})

    def _binary(self, op: str, left: Any, right: Any) -> Expression:
        return Expression({op: [_operand(left), _operand(right)]})

    def eq(self, left: Any, right: Any) -> Expression:
        return self._binary("$eq", left, right)

    def neq(self, left: Any, right: Any) -> Expression:
        return self._binary("$neq", left, right)

    def lt(self, left: Any, right: Any) -> Expression:
        return self._binary("$lt", left, right)

    def lte(self, left: Any, right: Any) -> Expression:
        return self._binary("$lte", left, right)

    def gt(self, left: Any, right: Any) -> Expression:
        return self._binary("$gt", left, right)

    def gte(self, left: Any, right: Any) -> Expression:
        return self._binary("$gte", left, right)

    def add(self, left: Any, right: Any) -> Expression:
        return self._binary("$add", left, right)

    def sub(self, left: Any, right: Any) -> Expression:
        return self._binary("$sub", left, right)

    def mul(self, left: Any, right: Any) -> Expression:
        return self._binary("$mul", left, right)

    def div(self, left: Any, right: Any) -> Expression:
        return self._binary("$div", left, right)

    def mod(self, left: Any, right: Any) -> Expression:
        return self._binary("$mod", left, right)

    def neg(self, x: Any) -> Expression:
        return Expression({"$neg": _operand(x)})

    def not_(self, x: Any) -> Expression:
        return Expression({"$not": _operand(x)})

    def and_(self, *xs: Any) -> Expression:
        return Expression({"$and": [_operand(x) for x in xs]})

    def or_(self, *xs: Any) -> Expression:
        return Expression({"$or": [_operand(x) for x in xs]})


_FILTER_BUILDER = FilterBuilder()


# -- index ranges and search filters ------------------------------------------


class IndexRangeBuilder:
    """The ``q`` of ``.with_index(name, lambda q: ...)``: ``eq`` on leading
    index fields, then at most one lower (``gt``/``gte``) and one upper
    (``lt``/``lte``) bound. Each call returns a new builder; chain them.

    The order rules are checked by the host, as in Convex.
    """

    __slots__ = ("_consumed", "_exprs")

    def __init__(self, exprs: tuple[dict[str, Any], ...] = ()) -> None:
        self._exprs = exprs
        self._consumed = False

    def _add(self, kind: str, field: str, value: Any) -> IndexRangeBuilder:
        if self._consumed:
            raise RuntimeError(
                "This index range builder was already used: chain the calls, "
                "as in q.eq('a', 1).gt('b', 2)"
            )
        if not isinstance(field, str):
            raise TypeError(f"An index range needs a field path string, got {field!r}")
        self._consumed = True
        expr = {"type": kind, "fieldPath": field, "value": literal_json(value)}
        return IndexRangeBuilder((*self._exprs, expr))

    def eq(self, field: str, value: Any) -> IndexRangeBuilder:
        return self._add("Eq", field, value)

    def gt(self, field: str, value: Any) -> IndexRangeBuilder:
        return self._add("Gt", field, value)

    def gte(self, field: str, value: Any) -> IndexRangeBuilder:
        return self._add("Gte", field, value)

    def lt(self, field: str, value: Any) -> IndexRangeBuilder:
        return self._add("Lt", field, value)

    def lte(self, field: str, value: Any) -> IndexRangeBuilder:
        return self._add("Lte", field, value)

    def export(self) -> list[dict[str, Any]]:
        """The range expressions, in call order."""
        return list(self._exprs)


class SearchFilterBuilder:
    """The ``q`` of ``.with_search_index(name, lambda q: ...)``: one
    ``search(field, text)`` first, then ``eq(field, value)`` filters."""

    __slots__ = ("_consumed", "_filters")

    def __init__(self, filters: tuple[dict[str, Any], ...] = ()) -> None:
        self._filters = filters
        self._consumed = False

    def _add(self, entry: dict[str, Any]) -> SearchFilterBuilder:
        if self._consumed:
            raise RuntimeError("This search filter builder was already used: chain the calls")
        self._consumed = True
        return SearchFilterBuilder((*self._filters, entry))

    def search(self, field: str, query: str) -> SearchFilterBuilder:
        if self._filters:
            raise RuntimeError("search() must come first, and only once")
        if not isinstance(field, str) or not isinstance(query, str):
            raise TypeError("search() takes a field path and a query string")
        return self._add({"type": "Search", "fieldPath": field, "value": query})

    def eq(self, field: str, value: Any) -> SearchFilterBuilder:
        if not self._filters:
            raise RuntimeError("Call search(field, text) before eq()")
        if not isinstance(field, str):
            raise TypeError(f"eq() needs a field path string, got {field!r}")
        return self._add({"type": "Eq", "fieldPath": field, "value": literal_json(value)})

    def export(self) -> list[dict[str, Any]]:
        if not self._filters:
            raise RuntimeError("A search index query needs q.search(field, text)")
        return list(self._filters)


# -- queries --------------------------------------------------------------------


def _count_arg(n: Any, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, float)):
        raise TypeError(f"{what} must be a number, got {n!r}")
    if not (math.isfinite(n) and n == int(n)):
        raise ValueError(f"{what} must be an integer, got {n!r}")
    if n < 0:
        raise ValueError(f"{what} must be non-negative, got {n!r}")
    return int(n)


def _json_number(n: Any) -> Any:
    # Integral floats (what decoded args hold) go out as JSON integers.
    if isinstance(n, float) and math.isfinite(n) and n == int(n):
        return int(n)
    return n


class Query:
    """A query being built (chain ``filter``/``order``/``limit``) or run.

    Every chaining or running call uses the query up; chaining returns a new
    one. Running it a second time is an error, as in Convex.
    """

    def __init__(self, invocation: Invocation, query: dict[str, Any], table_name: str) -> None:
        self._invocation = invocation
        self._query: dict[str, Any] | None = query
        self._table_name = table_name

    @property
    def json(self) -> dict[str, Any]:
        """The serialized query (without using the query up)."""
        if self._query is None:
            raise RuntimeError("This query was already used")
        return self._query

    def _take(self) -> dict[str, Any]:
        if self._query is None:
            raise RuntimeError(
                "A query can only be chained or run once, and not after iteration began"
            )
        query, self._query = self._query, None
        return query

    def _chain(self, query: dict[str, Any]) -> Query:
        return Query(self._invocation, query, self._table_name)

    def _push(self, operator: dict[str, Any]) -> Query:
        query = self._take()
        if len(query["operators"]) >= MAX_QUERY_OPERATORS:
            raise ValueError(f"A query can have at most {MAX_QUERY_OPERATORS} operators")
        return self._chain({**query, "operators": [*query["operators"], operator]})

    # -- chaining -------------------------------------------------------------

    def filter(self, predicate: Callable[[FilterBuilder], Any]) -> Query:
        """Keep documents for which ``predicate(q)`` evaluates truthy."""
        return self._push({"filter": _operand(predicate(_FILTER_BUILDER))})

    def order(self, order: str) -> Query:
        """``"asc"`` (the default) or ``"desc"``, by the index (or creation time)."""
        if order not in ("asc", "desc"):
            raise ValueError(f'order must be "asc" or "desc", got {order!r}')
        query = self._take()
        source = query["source"]
        if source["type"] == "Search":
            raise ValueError(
                "Search queries must always be in relevance order; they cannot be ordered"
            )
        if source["order"] is not None:
            raise ValueError("Queries may only specify order at most once")
        return self._chain({**query, "source": {**source, "order": order}})

    def limit(self, n: int) -> Query:
        """Return at most ``n`` documents."""
        return self._push({"limit": _count_arg(n, "limit(n)")})

    # -- running ----------------------------------------------------------------

    def _stream(self, query: dict[str, Any]) -> Iterator[Any]:
        invocation = self._invocation
        query_id = invocation.open_stream(query)
        try:
            done = False
            while not done:
                values, done = invocation.next_batch(query_id)
                if done:
                    invocation.close_stream(query_id)
                for value in values:
                    yield from_json(value)
        finally:
            # Also runs when the consumer stops early (break, take, first).
            invocation.close_stream(query_id)

    def __iter__(self) -> Iterator[Any]:
        return self._stream(self._take())

    def collect(self) -> list[Any]:
        """Every matching document."""
        return list(self._stream(self._take()))

    def take(self, n: int) -> list[Any]:
        """The first ``n`` documents."""
        n = _count_arg(n, "take(n)")
        query = self.limit(n)._take()
        # The host honours the limit; cutting here too keeps a careless host
        # from reading more than asked. The stream starts even for n == 0, so
        # the host still sees (and checks) the query, as with Convex.
        out: list[Any] = []
        with contextlib.closing(self._stream(query)) as rows:
            if n == 0:
                next(rows, None)
            for row in rows if n else ():
                out.append(row)
                if len(out) >= n:
                    break
        return out

    def first(self) -> Any:
        """The first document, or ``None``."""
        rows = self.take(1)
        return rows[0] if rows else None

    def unique(self) -> Any:
        """The only document, or ``None``; raises if there is more than one."""
        rows = self.take(2)
        if len(rows) > 1:
            ids = ", ".join(str(row.get("_id")) for row in rows if isinstance(row, dict))
            raise ValueError(
                f"unique() query returned more than one result from table "
                f"{self._table_name}:\n [{ids}, ...]"
            )
        return rows[0] if rows else None

    def paginate(self, opts: Mapping[str, Any]) -> dict[str, Any]:
        """One page: ``{"page", "isDone", "continueCursor", "splitCursor", "pageStatus"}``.

        ``opts`` is a :data:`pagination_opts_validator` value:
        ``{"numItems": n, "cursor": None | str, "endCursor"?, "maximumRowsRead"?,
        "maximumBytesRead"?}``.
        """
        if not isinstance(opts, Mapping):
            raise TypeError(f"paginate() takes the pagination options dict, got {opts!r}")
        num_items = opts.get("numItems")
        if isinstance(num_items, bool) or not isinstance(num_items, (int, float)) or num_items < 0:
            raise ValueError(f"options.numItems must be a positive number, got {num_items!r}")
        query = self._take()
        args: dict[str, Any] = {
            "query": query,
            "cursor": opts.get("cursor"),
            "endCursor": opts.get("endCursor"),
            "pageSize": _json_number(num_items),
            "maximumRowsRead": _json_number(opts.get("maximumRowsRead")),
        }
        if opts.get("maximumBytesRead") is not None:
            args["maximumBytesRead"] = _json_number(opts["maximumBytesRead"])
        args["version"] = CONVEX_VERSION
        result = self._invocation.async_syscall("1.0/queryPage", args)
        return {
            "page": [from_json(doc) for doc in result["page"]],
            "isDone": result["isDone"],
            "continueCursor": result["continueCursor"],
            "splitCursor": result.get("splitCursor"),
            "pageStatus": result.get("pageStatus"),
        }

    def __repr__(self) -> str:
        return f"<Query {self._query!r}>"


class QueryInitializer:
    """What ``ctx.db.query(table)`` returns: pick an index (``with_index``,
    ``with_search_index``, ``full_table_scan``), or use any :class:`Query`
    method directly for a full table scan. It can be used many times, each
    use starting a new query (as in Convex)."""

    def __init__(self, invocation: Invocation, table_name: str) -> None:
        self._invocation = invocation
        self._table_name = table_name

    def full_table_scan(self) -> Query:
        source = {"type": "FullTableScan", "tableName": self._table_name, "order": None}
        return Query(self._invocation, {"source": source, "operators": []}, self._table_name)

    def with_index(
        self,
        index_name: str,
        index_range: Callable[[IndexRangeBuilder], IndexRangeBuilder] | None = None,
    ) -> Query:
        """Read through the table's index ``index_name``, limited to ``index_range``."""
        if not isinstance(index_name, str):
            raise TypeError(f"with_index() takes an index name, got {index_name!r}")
        builder = IndexRangeBuilder()
        if index_range is not None:
            builder = index_range(builder)
            if not isinstance(builder, IndexRangeBuilder):
                raise TypeError(
                    "The index range function must return the builder, as in "
                    "lambda q: q.eq('field', value)"
                )
        source = {
            "type": "IndexRange",
            "indexName": f"{self._table_name}.{index_name}",
            "range": builder.export(),
            "order": None,
        }
        return Query(self._invocation, {"source": source, "operators": []}, self._table_name)

    def with_search_index(
        self, index_name: str, search_filter: Callable[[SearchFilterBuilder], SearchFilterBuilder]
    ) -> Query:
        """Full-text search through ``index_name``; results come in relevance order."""
        if not isinstance(index_name, str):
            raise TypeError(f"with_search_index() takes an index name, got {index_name!r}")
        builder = search_filter(SearchFilterBuilder())
        if not isinstance(builder, SearchFilterBuilder):
            raise TypeError("The search filter function must return the builder")
        source = {
            "type": "Search",
            "indexName": f"{self._table_name}.{index_name}",
            "filters": builder.export(),
        }
        return Query(self._invocation, {"source": source, "operators": []}, self._table_name)

    def count(self) -> float:
        """The number of documents in the table (``1.0/count``)."""
        result = self._invocation.async_syscall("1.0/count", {"table": self._table_name})
        return from_json(result)

    # The Query methods, each on a fresh full table scan.

    def filter(self, predicate: Callable[[FilterBuilder], Any]) -> Query:
        return self.full_table_scan().filter(predicate)

    def order(self, order: str) -> Query:
        return self.full_table_scan().order(order)

    def limit(self, n: int) -> Query:
        return self.full_table_scan().limit(n)

    def collect(self) -> list[Any]:
        return self.full_table_scan().collect()

    def take(self, n: int) -> list[Any]:
        return self.full_table_scan().take(n)

    def first(self) -> Any:
        return self.full_table_scan().first()

    def unique(self) -> Any:
        return self.full_table_scan().unique()

    def paginate(self, opts: Mapping[str, Any]) -> dict[str, Any]:
        return self.full_table_scan().paginate(opts)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.full_table_scan())

    def __repr__(self) -> str:
        return f"<QueryInitializer {self._table_name!r}>"
