"""Convex-JSON: the wire encoding of Convex values, and the "clean JSON" export.

This module owns the translation between canonical values
(:mod:`convex_backend.values.types`) and JSON, in both directions:

* :func:`to_json` / :func:`from_json` convert between a value and its
  JSON-able encoded form (``{"$integer": ...}``, ``{"$float": ...}``,
  ``{"$bytes": ...}``, sorted object keys), exactly as the official clients'
  ``convexToJson`` / ``jsonToConvex`` do;
* :func:`dumps` / :func:`loads` do the same to and from JSON text;
* :func:`to_clean_json` produces the lossy export format used when an HTTP
  client asks for no ``format``;
* :func:`validate_field_name` holds the object field-name rules shared by the
  encoder, the decoder and the document checks in
  :mod:`convex_backend.values.size`.

Every rejection is a :class:`ConvexValueError` whose message ends with the
path of the offending part (``at .a[2].b``). The decoder never raises
anything else, whatever it is given.
"""

from __future__ import annotations

import binascii
import json
import math
import re
import struct
from typing import Any

from convex_backend.values.errors import ConvexValueError
from convex_backend.values.types import UNDEFINED, Int64, Value

__all__ = [
    "MAX_FIELD_NAME_LENGTH",
    "MAX_NESTING_DEPTH_VALUE",
    "check_field_name",
    "dumps",
    "from_json",
    "loads",
    "to_clean_json",
    "to_json",
    "validate_field_name",
]

#: Longest object field name, in characters (the client's and backend's rule).
MAX_FIELD_NAME_LENGTH = 1024
#: Deepest nesting of arrays and objects in any value (scalars are depth 0).
MAX_NESTING_DEPTH_VALUE = 64

_pack_i64 = struct.Struct("<q").pack
_unpack_i64 = struct.Struct("<q").unpack
_pack_f64 = struct.Struct("<d").pack
_unpack_f64 = struct.Struct("<d").unpack
_b2a = binascii.b2a_base64
_a2b = binascii.a2b_base64
_copysign = math.copysign
# binascii's own strict mode (3.11+) still accepts surplus padding such as
# "AAAA====", so the shape is checked here and a2b only does the decoding.
_B64_SHAPE = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _PathError(ConvexValueError):
    """Internal: a rejection that collects its path while the stack unwinds.

    Building a path string on every step would tax the common, valid case;
    instead each container adds its own segment only when an error passes
    through it, and the public entry point turns the result into a plain
    :class:`ConvexValueError`.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.rpath: list[str] = []

    def key(self, key: object) -> None:
        if isinstance(key, str) and _SIMPLE_KEY.fullmatch(key):
            self.rpath.append("." + key)
        else:
            self.rpath.append("[" + _quote(key) + "]")

    def index(self, i: int) -> None:
        self.rpath.append(f"[{i}]")

    def public(self, prefix: str = "") -> ConvexValueError:
        path = prefix + "".join(reversed(self.rpath))
        if path:
            return ConvexValueError(f"{self.message} at {path}")
        return ConvexValueError(self.message)


def _quote(key: object) -> str:
    if isinstance(key, str):
        text = json.dumps(key[:80])
        return text if len(key) <= 80 else text[:-1] + '..."'
    return f"<{type(key).__name__}>"


def _short(text: str) -> str:
    return repr(text) if len(text) <= 80 else repr(text[:80]) + "..."


# -- field names and strings ------------------------------------------------


def _field_name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid object field name, or None if it is."""
    if not isinstance(name, str):
        return f"Object field names must be strings, got {type(name).__name__}"
    if len(name) > MAX_FIELD_NAME_LENGTH:
        return (
            f"Field name {_short(name)} is too long ({len(name)} characters, "
            f"limit {MAX_FIELD_NAME_LENGTH})"
        )
    if name.startswith("$"):
        return f"Field name {_short(name)} starts with a '$', which is reserved"
    if not (name.isascii() and name.isprintable()):
        return (
            f"Field name {_short(name)} has a character that is not printable "
            "ASCII (only codes 32-126 are allowed)"
        )
    return None


def _good_key(k: object) -> bool:
    # The common case as one expression; details come from _field_name_problem.
    return (
        type(k) is str
        and len(k) <= MAX_FIELD_NAME_LENGTH
        and k.isascii()
        and k.isprintable()
        and not k.startswith("$")
    )


def _key_error(k: object) -> None:
    """Raise for an invalid key that failed :func:`_good_key`; a valid key
    can only get here as a str subclass, which passes."""
    problem = _field_name_problem(k)
    if problem is not None:
        raise _PathError(problem)


def check_field_name(name: str, path: str = "") -> None:
    """Raise :class:`ConvexValueError` unless ``name`` is a valid field name.

    The rules (shared by the clients and the backend): a string of at most
    1024 characters, not starting with ``$``, every character printable ASCII
    (codes 32..126). ``path`` is where the field sits (``.a[2]``), for the
    message.
    """
    problem = _field_name_problem(name)
    if problem is not None:
        raise ConvexValueError(f"{problem} at {path}" if path else problem)


validate_field_name = check_field_name


def _check_unicode(s: str) -> None:
    # Python's json hands back lone surrogates ("\ud800"), which are not
    # Unicode scalar values and cannot be stored or sent as UTF-8.
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as e:
        raise _PathError(
            f"String is not valid Unicode (lone surrogate at index {e.start})"
        ) from None


# -- encoding ---------------------------------------------------------------


def _b64(data: bytes) -> str:
    return _b2a(data, newline=False).decode("ascii")


def _too_nested() -> _PathError:
    return _PathError(
        f"Value is nested too deeply (more than {MAX_NESTING_DEPTH_VALUE} "
        "levels of arrays and objects)"
    )


def _unsupported(v: object) -> _PathError:
    if v is UNDEFINED:
        return _PathError(
            "undefined is not a Convex value; only an object field may be "
            "undefined (it is then left out)"
        )
    if isinstance(v, int):
        return _PathError(
            f"Python int {v} is not a canonical Convex value: use "
            "convex_backend.values.python.from_python (which makes it a "
            f"float64) or Int64({v}) for an int64"
        )
    return _PathError(f"{type(v).__name__} is not a supported Convex value type")


def _enc(v: Any, depth: int) -> Any:
    t = type(v)
    if t is str:
        if not v.isascii():
            _check_unicode(v)
        return v
    if t is float:
        # v - v is 0.0 exactly for finite v; -0.0 must keep its sign bit.
        if v - v == 0.0 and (v or _copysign(1.0, v) > 0.0):
            return v
        return {"$float": _b64(_pack_f64(v))}
    if v is None or t is bool:
        return v
    if t is dict:
        return _enc_object(v, depth)
    if t is list:
        return _enc_array(v, depth)
    if t is Int64:
        return {"$integer": _b64(_pack_i64(v.value))}
    if t is bytes:
        return {"$bytes": _b64(v)}
    # Subclasses of the canonical types, off the fast path.
    if isinstance(v, str):
        return _enc(str(v), depth)
    if isinstance(v, float):
        return _enc(float(v), depth)
    if isinstance(v, dict):
        return _enc_object(v, depth)
    if isinstance(v, list):
        return _enc_array(v, depth)
    if isinstance(v, Int64):
        return {"$integer": _b64(_pack_i64(v.value))}
    if isinstance(v, bytes):
        return {"$bytes": _b64(v)}
    raise _unsupported(v)


def _enc_object(v: dict, depth: int) -> dict:
    if depth >= MAX_NESTING_DEPTH_VALUE:
        raise _too_nested()
    depth += 1
    items = []
    k = None
    try:
        for k, x in v.items():
            if not _good_key(k):
                _key_error(k)
            if x is UNDEFINED:
                continue
            items.append((k, _enc(x, depth)))
    except _PathError as e:
        e.key(k)
        raise
    # Keys are unique, so the tuples never compare their second halves; the
    # keys are ASCII, so code point order is UTF-8 (and UTF-16) order.
    items.sort()
    return dict(items)


def _enc_array(v: list, depth: int) -> list:
    if depth >= MAX_NESTING_DEPTH_VALUE:
        raise _too_nested()
    depth += 1
    out: list = []
    append = out.append
    try:
        for x in v:
            append(_enc(x, depth))
    except _PathError as e:
        e.index(len(out))
        raise
    return out


def to_json(value: Value) -> Any:
    """Encode a canonical value as a JSON-able Python object (Convex-JSON).

    Floats that JSON cannot carry (NaN, ±Infinity, -0.0) become ``$float``,
    ``Int64`` becomes ``$integer``, bytes become ``$bytes``; object keys come
    out sorted and fields whose value is ``UNDEFINED`` are left out.
    Raises :class:`ConvexValueError` for anything that is not a canonical
    value (including Python ``int``).
    """
    try:
        return _enc(value, 0)
    except _PathError as e:
        raise e.public() from None


def dumps(value: Value) -> str:
    """Encode a canonical value as compact Convex-JSON text."""
    return _json_encoder.encode(to_json(value))


_json_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


# -- decoding ---------------------------------------------------------------


def _b64decode(payload: object, form: str) -> bytes:
    if type(payload) is not str:
        raise _PathError(f"{form} must hold a base64 string, got {json_type(payload)}")
    if len(payload) % 4 or not _B64_SHAPE.fullmatch(payload):
        raise _PathError(f"{form} holds invalid base64 (standard alphabet with padding expected)")
    return _a2b(payload)


def json_type(o: object) -> str:
    """The JSON type name of a decoded JSON value, for error messages."""
    if o is None:
        return "null"
    if isinstance(o, bool):
        return "boolean"
    if isinstance(o, (int, float)):
        return "number"
    if isinstance(o, str):
        return "string"
    if isinstance(o, list):
        return "array"
    if isinstance(o, dict):
        return "object"
    return type(o).__name__


def _dec_special(key: str, payload: object, allow_undefined: bool) -> Any:
    if key == "$integer":
        data = _b64decode(payload, "$integer")
        if len(data) != 8:
            raise _PathError(f"$integer: received {len(data)} bytes, expected 8")
        return Int64(_unpack_i64(data)[0])
    if key == "$float":
        data = _b64decode(payload, "$float")
        if len(data) != 8:
            raise _PathError(f"$float: received {len(data)} bytes, expected 8")
        f = _unpack_f64(data)[0]
        if f - f == 0.0 and (f or _copysign(1.0, f) > 0.0):
            raise _PathError(f"Float {f!r} should be encoded as a number")
        return f
    if key == "$bytes":
        return _b64decode(payload, "$bytes")
    if key == "$undefined":
        if not allow_undefined:
            raise _PathError(
                '{"$undefined": null} is not a Convex value (it is only '
                "accepted in patches and filters)"
            )
        if payload is not None:
            raise _PathError("$undefined must hold null")
        return UNDEFINED
    if key == "$set" or key == "$map":
        raise _PathError(
            f"{key} is no longer supported as a Convex type; use an array or an object"
        )
    if key == "$commitTs":
        raise _PathError("The $commitTs placeholder is not supported")
    _key_error(key)
    raise _PathError(f"Unknown special form {key}")


def _dec(o: Any, depth: int, allow_undefined: bool) -> Any:
    t = type(o)
    if t is str:
        if not o.isascii():
            _check_unicode(o)
        return o
    if t is float:
        return o
    if t is dict:
        return _dec_object(o, depth, allow_undefined)
    if t is list:
        return _dec_array(o, depth, allow_undefined)
    if o is None or t is bool:
        return o
    if t is int:
        return _int_to_float(o)
    if isinstance(o, str):
        return _dec(str(o), depth, allow_undefined)
    if isinstance(o, int):
        return _int_to_float(int(o))
    if isinstance(o, float):
        return float(o)
    if isinstance(o, dict):
        return _dec_object(o, depth, allow_undefined)
    if isinstance(o, list):
        return _dec_array(o, depth, allow_undefined)
    raise _PathError(f"{type(o).__name__} is not a JSON value")


def _int_to_float(i: int) -> float:
    try:
        return float(i)
    except OverflowError:
        raise _PathError("Number is out of the float64 range") from None


def _dec_object(o: dict, depth: int, allow_undefined: bool) -> Any:
    if len(o) == 1:
        for k in o:
            if type(k) is str and k.startswith("$"):
                return _dec_special(k, o[k], allow_undefined)
    if depth >= MAX_NESTING_DEPTH_VALUE:
        raise _too_nested()
    depth += 1
    out = {}
    k = None
    try:
        for k, x in o.items():
            if not _good_key(k):
                _key_error(k)
            out[k] = _dec(x, depth, allow_undefined)
    except _PathError as e:
        e.key(k)
        raise
    return out


def _dec_array(o: list, depth: int, allow_undefined: bool) -> list:
    if depth >= MAX_NESTING_DEPTH_VALUE:
        raise _too_nested()
    depth += 1
    out: list = []
    append = out.append
    try:
        for x in o:
            v = _dec(x, depth, allow_undefined)
            if v is UNDEFINED:
                raise _PathError("An array element cannot be undefined")
            append(v)
    except _PathError as e:
        e.index(len(out))
        raise
    return out


def from_json(obj: Any, *, allow_undefined: bool = False) -> Value:
    """Decode a JSON-able Python object (Convex-JSON) into a canonical value.

    Strict: special forms (``$integer``, ``$float``, ``$bytes``) only as an
    object with exactly that one key and a well-formed payload, every other
    key checked by the field-name rules, strings valid Unicode, nesting at
    most 64. JSON numbers (Python ``int`` or ``float``) become floats.

    With ``allow_undefined`` (patches and filters), ``{"$undefined": null}``
    decodes to :data:`UNDEFINED` at the top level or as an object field
    value, where it is kept (a patch uses it to delete the field).

    Raises :class:`ConvexValueError`, and nothing else, for any bad input.
    """
    try:
        return _dec(obj, 0, allow_undefined)
    except _PathError as e:
        raise e.public() from None
    except RecursionError:
        # Only reachable when the caller's own stack is already nearly full.
        raise ConvexValueError("Value is nested too deeply") from None


def _reject_constant(name: str) -> Any:
    raise ConvexValueError(f"{name} is not valid JSON")


# parse_int=float: JSON.parse reads every number as a double (huge integer
# literals become Infinity, as "1e400" does), and it side-steps Python's
# limit on the digits of an int.
_json_decoder = json.JSONDecoder(parse_int=float, parse_constant=_reject_constant)


def loads(text: str | bytes, *, allow_undefined: bool = False) -> Value:
    """Decode Convex-JSON text (str, or bytes that must be UTF-8).

    Follows ``JSON.parse``: bare ``NaN``/``Infinity`` are rejected, numbers
    are doubles. Raises :class:`ConvexValueError` for any bad input.
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConvexValueError(f"Invalid UTF-8 in JSON text at byte {e.start}") from None
    elif not isinstance(text, str):
        raise ConvexValueError(f"JSON text must be str or bytes, got {type(text).__name__}")
    try:
        obj = _json_decoder.decode(text)
    except ConvexValueError:
        raise
    except RecursionError:
        raise ConvexValueError("JSON text is nested too deeply") from None
    except ValueError as e:  # json.JSONDecodeError
        raise ConvexValueError(f"Invalid JSON: {e}") from None
    return from_json(obj, allow_undefined=allow_undefined)


# -- clean JSON export ------------------------------------------------------


def _clean(v: Any, depth: int) -> Any:
    t = type(v)
    if t is str:
        if not v.isascii():
            _check_unicode(v)
        return v
    if v is None or t is bool:
        return v
    if t is float:
        if v - v == 0.0:
            return v
        if v != v:
            return "NaN"
        return "Infinity" if v > 0 else "-Infinity"
    if isinstance(v, Int64):
        return str(v.value)
    if isinstance(v, bytes):
        return _b64(v)
    if isinstance(v, dict) or isinstance(v, list):
        if depth >= MAX_NESTING_DEPTH_VALUE:
            raise _too_nested()
        depth += 1
        if isinstance(v, list):
            out: list = []
            try:
                for x in v:
                    out.append(_clean(x, depth))
            except _PathError as e:
                e.index(len(out))
                raise
            return out
        items = []
        k = None
        try:
            for k, x in v.items():
                if not _good_key(k):
                    _key_error(k)
                if x is not UNDEFINED:
                    items.append((k, _clean(x, depth)))
        except _PathError as e:
            e.key(k)
            raise
        items.sort()
        return dict(items)
    if isinstance(v, str):
        return _clean(str(v), depth)
    if isinstance(v, float):
        return _clean(float(v), depth)
    raise _unsupported(v)


def to_clean_json(value: Value) -> Any:
    """Convert a canonical value to Convex's lossy "clean JSON" export form.

    Used for HTTP responses when the client asks for no ``format``: an int64
    becomes its decimal string, NaN/±Infinity become ``"NaN"``,
    ``"Infinity"``, ``"-Infinity"``, other floats (-0.0 included) stay
    numbers, bytes become a standard base64 string, object keys are sorted
    and ``UNDEFINED`` fields are left out. Not reversible.
    """
    try:
        return _clean(value, 0)
    except _PathError as e:
        raise e.public() from None
