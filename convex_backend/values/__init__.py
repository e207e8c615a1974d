"""Convex values: the value model, Convex-JSON, total order, index keys, sizes, ids.

This package depends on nothing else in convex_backend. Its public names:

- types: ``Int64``, ``UNDEFINED``, ``Value``; errors: ``ConvexValueError``,
  ``InvalidIdError``
- Convex-JSON: ``to_json``, ``from_json``, ``dumps``, ``loads``, ``to_clean_json``
- order and index keys: ``compare_values``, ``encode_key``, ``encode_index_key``,
  ``decode_key``, ``decode_index_key``, ``prefix_successor``
- sizes and limits: ``value_size``, ``check_value``, ``check_document``,
  ``validate_identifier``, ``validate_user_table_name``
- the Python mapping for function code: ``from_python``, ``to_python``
- ids: ``encode_id``, ``decode_id``, ``is_id``, ``new_internal_id``, ``DocumentId``
"""

from convex_backend.values.codec import dumps, from_json, loads, to_clean_json, to_json
from convex_backend.values.errors import ConvexValueError, InvalidIdError
from convex_backend.values.ids import (
    DocumentId,
    decode_id,
    encode_id,
    is_id,
    new_internal_id,
)
from convex_backend.values.keys import (
    decode_index_key,
    decode_key,
    encode_index_key,
    encode_key,
    prefix_successor,
)
from convex_backend.values.order import compare_values
from convex_backend.values.python import from_python, to_python
from convex_backend.values.size import (
    check_document,
    check_value,
    validate_identifier,
    validate_user_table_name,
    value_size,
)
from convex_backend.values.types import UNDEFINED, Int64, Value

__all__ = [
    "UNDEFINED",
    "ConvexValueError",
    "DocumentId",
    "Int64",
    "InvalidIdError",
    "Value",
    "check_document",
    "check_value",
    "compare_values",
    "decode_id",
    "decode_index_key",
    "decode_key",
    "dumps",
    "encode_id",
    "encode_index_key",
    "encode_key",
    "from_json",
    "from_python",
    "is_id",
    "loads",
    "new_internal_id",
    "prefix_successor",
    "to_clean_json",
    "to_json",
    "to_python",
    "validate_identifier",
    "validate_user_table_name",
    "value_size",
]
