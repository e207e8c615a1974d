"""The sync protocol's wire format: client messages in, server messages out.

This module owns the JSON shapes of the WebSocket sync protocol (see
``reference/client-protocol.md`` §1) and nothing else: parsing and validating
what a client sends into small dataclasses (:func:`parse_client_message`),
building what the server sends (:func:`transition`, :func:`query_updated`, ...),
splitting a large Transition into ``TransitionChunk`` messages for the clients
that understand them (:func:`supports_transition_chunks`,
:func:`transition_chunks`), and the u64 timestamp encoding (8 bytes
little-endian, standard base64 with padding). It does no I/O and keeps no state.

Every malformed client message raises :class:`ProtocolError` with a message
that says what was wrong; the session answers it with a ``FatalError``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from dataclasses import dataclass, field
from typing import Any

from convex_backend.values import ConvexValueError, from_json, to_json

#: The largest u64 a timestamp may have; the JS client misbehaves at 2^63 and above.
MAX_TS = 2**63 - 1
_U64 = struct.Struct("<Q")
_B64_U64 = re.compile(r"[A-Za-z0-9+/\-_]{11}=")

#: Upper bounds on scalar fields, so a hostile client cannot make us keep huge strings.
MAX_ID = 2**53
MAX_PATH_LENGTH = 1024
MAX_SESSION_ID_LENGTH = 256
MAX_TOKEN_LENGTH = 64 * 1024
MAX_JOURNAL_LENGTH = 64 * 1024

#: A Transition whose JSON text is longer goes out as ``TransitionChunk``s of at
#: most this many characters each (the real backend's threshold, about 5 MB).
MAX_TRANSITION_BYTES = 5_000_000
#: The oldest npm client that reassembles ``TransitionChunk``s (as the real backend).
MIN_NPM_VERSION_FOR_CHUNKS = (1, 28, 0)


class ProtocolError(ValueError):
    """A client message that is not valid JSON or not a valid protocol message."""


# -- u64 timestamps ---------------------------------------------------------------


def encode_u64(value: int) -> str:
    """``1000`` → ``"6AMAAAAAAAA="``: 8 bytes little-endian, base64 with padding."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TS:
        raise ValueError(f"timestamps must be integers in [0, 2^63), got {value!r}")
    return base64.b64encode(_U64.pack(value)).decode("ascii")


def decode_u64(text: object) -> int:
    """The inverse of :func:`encode_u64`; also accepts the URL-safe alphabet."""
    if not isinstance(text, str) or not _B64_U64.fullmatch(text):
        raise ProtocolError(f"Expected a base64-encoded u64 (12 characters), got {text!r}")
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except binascii.Error:
        raise ProtocolError(f"Invalid base64 in u64 {text!r}")
    (value,) = _U64.unpack(raw)
    if value > MAX_TS:
        raise ProtocolError(f"u64 {text!r} is too large")
    return value


# -- client messages ----------------------------------------------------------------


@dataclass
class Connect:
    session_id: str | None
    connection_count: int | None = None
    last_close_reason: str | None = None
    client_ts: float | None = None
    max_observed_ts: int | None = None


@dataclass
class AddQuery:
    query_id: int
    udf_path: str
    #: The decoded argument object (Convex values).
    args: dict
    #: The journal the client holds for this query; None when it sent none (or null).
    journal: str | None = None
    component_path: str | None = None


@dataclass
class RemoveQuery:
    query_id: int


@dataclass
class ModifyQuerySet:
    base_version: int
    new_version: int
    modifications: list[AddQuery | RemoveQuery] = field(default_factory=list)


@dataclass
class MutationRequest:
    request_id: int
    udf_path: str
    args: dict
    component_path: str | None = None


@dataclass
class ActionRequest:
    request_id: int
    udf_path: str
    args: dict
    component_path: str | None = None


@dataclass
class Authenticate:
    base_version: int
    token_type: str  # "User" | "Admin" | "None"
    value: str | None = None
    #: The identity an admin acts as (``impersonating`` or its alias ``actingAs``).
    impersonating: dict | None = None

    def __repr__(self) -> str:  # never log tokens or admin keys
        return f"Authenticate(base_version={self.base_version}, token_type={self.token_type!r})"


@dataclass
class Event:
    event_type: str
    event: Any = None


ClientMessage = Connect | ModifyQuerySet | MutationRequest | ActionRequest | Authenticate | Event


def _field(
    message: dict, name: str, kind: str, *, optional: bool = False, where: str | None = None
) -> Any:
    """Fetch and type-check one field; ``kind`` is one of int/str/num/bool/dict/list/any."""
    where = where or str(message.get("type", "Message"))
    if name not in message or (optional and message[name] is None):
        if optional:
            return None
        raise ProtocolError(f"{where} is missing the field {name!r}")
    value = message[name]
    ok = {
        "int": _is_int,
        "str": lambda v: isinstance(v, str),
        "num": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "dict": lambda v: isinstance(v, dict),
        "list": lambda v: isinstance(v, list),
        "any": lambda v: True,
    }[kind](value)
    if not ok:
        expected = {"int": "a non-negative integer", "num": "a number"}.get(kind, f"a {kind}")
        raise ProtocolError(f"{where}.{name} must be {expected}, got {_short(value)}")
    if kind == "int":
        return int(value)
    return value


def _is_int(value: object) -> bool:
    # JavaScript numbers arrive as ints or as integral floats (0.0).
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return float(value).is_integer() and 0 <= value <= MAX_ID


def _short(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _limited(value: str | None, limit: int, what: str) -> str | None:
    if value is not None and len(value) > limit:
        raise ProtocolError(f"{what} is too long ({len(value)} characters, limit {limit})")
    return value


def parse_args(raw: object, where: str) -> dict:
    """Function arguments: an array holding one Convex-JSON object (or the object itself)."""
    if isinstance(raw, list):
        if len(raw) != 1:
            raise ProtocolError(f"{where}.args must be an array holding exactly one object")
        raw = raw[0]
    if not isinstance(raw, dict):
        raise ProtocolError(f"{where}.args must hold an object, got {_short(raw)}")
    try:
        value = from_json(raw)
    except ConvexValueError as e:
        raise ProtocolError(f"{where}.args is not valid Convex JSON: {e}")
    if not isinstance(value, dict):
        raise ProtocolError(f"{where}.args must hold an object")
    return value


def _path(message: dict, where: str) -> str:
    path = _field(message, "udfPath", "str", where=where)
    if not path:
        raise ProtocolError(f"{where}.udfPath must not be empty")
    return _limited(path, MAX_PATH_LENGTH, f"{where}.udfPath")  # type: ignore[return-value]


def _parse_connect(m: dict) -> Connect:
    max_observed = m.get("maxObservedTimestamp")
    return Connect(
        session_id=_limited(
            _field(m, "sessionId", "str", optional=True), MAX_SESSION_ID_LENGTH, "sessionId"
        ),
        connection_count=_field(m, "connectionCount", "int", optional=True),
        last_close_reason=(
            m["lastCloseReason"][:256] if isinstance(m.get("lastCloseReason"), str) else None
        ),
        client_ts=_field(m, "clientTs", "num", optional=True),
        max_observed_ts=decode_u64(max_observed) if max_observed is not None else None,
    )


def _parse_modification(raw: object, index: int) -> AddQuery | RemoveQuery:
    where = f"ModifyQuerySet.modifications[{index}]"
    if not isinstance(raw, dict):
        raise ProtocolError(f"{where} must be an object")
    kind = raw.get("type")
    if kind == "Add":
        journal = raw.get("journal")
        if journal is not None and not isinstance(journal, str):
            raise ProtocolError(f"{where}.journal must be a string or null")
        component = raw.get("componentPath")
        if component is not None and not isinstance(component, str):
            raise ProtocolError(f"{where}.componentPath must be a string")
        return AddQuery(
            query_id=_field(raw, "queryId", "int", where=where),
            udf_path=_path(raw, where),
            args=parse_args(raw.get("args"), where),
            journal=_limited(journal, MAX_JOURNAL_LENGTH, f"{where}.journal"),
            component_path=component,
        )
    if kind == "Remove":
        return RemoveQuery(query_id=_field(raw, "queryId", "int", where=where))
    raise ProtocolError(f"{where}.type must be 'Add' or 'Remove', got {_short(kind)}")


def _parse_modify(m: dict) -> ModifyQuerySet:
    modifications = _field(m, "modifications", "list")
    return ModifyQuerySet(
        base_version=_field(m, "baseVersion", "int"),
        new_version=_field(m, "newVersion", "int"),
        modifications=[_parse_modification(raw, i) for i, raw in enumerate(modifications)],
    )


def _parse_request(m: dict, cls: type) -> Any:
    where = m["type"]
    component = m.get("componentPath")
    if component is not None and not isinstance(component, str):
        raise ProtocolError(f"{where}.componentPath must be a string")
    return cls(
        request_id=_field(m, "requestId", "int"),
        udf_path=_path(m, where),
        args=parse_args(m.get("args"), where),
        component_path=component,
    )


def _parse_authenticate(m: dict) -> Authenticate:
    token_type = _field(m, "tokenType", "str")
    if token_type not in ("User", "Admin", "None"):
        raise ProtocolError(
            f"Authenticate.tokenType must be 'User', 'Admin' or 'None', got {_short(token_type)}"
        )
    if m.get("value") is not None and not isinstance(m["value"], str):
        # Not echoed like other fields' bad values: it may hold a token or a key.
        raise ProtocolError("Authenticate.value must be a string (a token or an admin key)")
    value = _limited(_field(m, "value", "str", optional=True), MAX_TOKEN_LENGTH, "token")
    impersonating = m.get("impersonating", m.get("actingAs"))
    if impersonating is not None and not isinstance(impersonating, dict):
        raise ProtocolError("Authenticate.impersonating must be an object")
    return Authenticate(
        base_version=_field(m, "baseVersion", "int"),
        token_type=token_type,
        value=value,
        impersonating=impersonating,
    )


def _parse_event(m: dict) -> Event:
    return Event(event_type=str(m.get("eventType", "")), event=m.get("event"))


_PARSERS = {
    "Connect": _parse_connect,
    "ModifyQuerySet": _parse_modify,
    "Mutation": lambda m: _parse_request(m, MutationRequest),
    "Action": lambda m: _parse_request(m, ActionRequest),
    "Authenticate": _parse_authenticate,
    "Event": _parse_event,
}


def parse_client_message(text: str | bytes) -> ClientMessage:
    """One JSON text frame → a message dataclass; :class:`ProtocolError` if malformed."""
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise ProtocolError(f"Invalid JSON in message: {e}")
    if not isinstance(message, dict):
        raise ProtocolError("Each message must be a JSON object")
    kind = message.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise ProtocolError(f"Unknown message type {_short(kind)}")
    return parser(message)


# -- server messages ---------------------------------------------------------------


@dataclass(frozen=True)
class StateVersion:
    """Where a client's view stands: query set version, identity version, timestamp."""

    query_set: int = 0
    identity: int = 0
    ts: int = 0

    def to_json(self) -> dict:
        return {"querySet": self.query_set, "identity": self.identity, "ts": encode_u64(self.ts)}


def transition(
    start: StateVersion,
    end: StateVersion,
    modifications: list[dict],
    *,
    client_clock_skew: int | None = None,
    server_ts: int | None = None,
) -> dict:
    """``client_clock_skew``: the client's clock minus ours, in ms (from ``Connect.clientTs``);
    ``server_ts``: when this is sent, in ns since the epoch. The npm client uses both
    only to time large Transitions and, with ``initialAuthTokenReuse``, to schedule
    token refreshes; each is left out when unknown."""
    message = {
        "type": "Transition",
        "startVersion": start.to_json(),
        "endVersion": end.to_json(),
        "modifications": modifications,
    }
    if client_clock_skew is not None:
        message["clientClockSkew"] = client_clock_skew
    if server_ts is not None:
        message["serverTs"] = server_ts
    return message


def transition_chunks(
    text: str, transition_id: str, max_part: int = MAX_TRANSITION_BYTES
) -> list[dict]:
    """The ``TransitionChunk`` messages carrying the JSON ``text`` of one Transition.

    The client joins the ``chunk`` strings of parts ``0 .. totalParts - 1`` and
    parses the result, so any split works; ``text`` is ASCII (see
    :func:`encode_message`), so ``max_part`` characters are as many bytes.
    """
    if max_part < 1:
        raise ValueError("max_part must be positive")
    parts = [text[i : i + max_part] for i in range(0, len(text), max_part)] or [""]
    return [
        {
            "type": "TransitionChunk",
            "chunk": part,
            "partNumber": number,
            "totalParts": len(parts),
            "transitionId": transition_id,
        }
        for number, part in enumerate(parts)
    ]


_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def supports_transition_chunks(client_header: str | None, path: str | bytes | None) -> bool:
    """Whether a sync client reassembles ``TransitionChunk``s: an npm client at 1.28.0 or
    later, named by its ``Convex-Client`` header (``npm-1.48.0``) or, when there is none
    (browsers cannot set headers on a WebSocket), by the URL (``/api/1.48.0/sync``).
    Other clients (the Python/Rust one says ``python-0.8.1``) treat a chunk as an error.
    """
    if client_header:
        kind, _, version = client_header.strip().partition("-")
        if kind != "npm":
            return False
    else:
        if isinstance(path, bytes):
            path = path.decode("latin-1")
        segments = [s for s in (path or "").split("?")[0].split("/") if s]
        if len(segments) < 3 or segments[-1] != "sync" or segments[-3] != "api":
            return False
        version = segments[-2]
    match = _VERSION.match(version)
    if match is None:
        return False
    return tuple(int(n) for n in match.groups()) >= MIN_NPM_VERSION_FOR_CHUNKS


def query_updated(
    query_id: int, value_json: Any, log_lines: list[str], journal: str | None
) -> dict:
    """``value_json`` is already Convex-JSON (the cache keeps results encoded)."""
    return {
        "type": "QueryUpdated",
        "queryId": query_id,
        "value": value_json,
        "logLines": list(log_lines),
        "journal": journal,
    }


_ABSENT: Any = object()


def query_failed(
    query_id: int,
    message: str,
    log_lines: list[str],
    journal: str | None,
    error_data_json: Any = _ABSENT,
) -> dict:
    """``error_data_json`` only for a ConvexError: its presence makes the client raise one."""
    result = {
        "type": "QueryFailed",
        "queryId": query_id,
        "errorMessage": message,
        "logLines": list(log_lines),
        "journal": journal,
    }
    if error_data_json is not _ABSENT:
        result["errorData"] = error_data_json
    return result


def query_removed(query_id: int) -> dict:
    return {"type": "QueryRemoved", "queryId": query_id}


def mutation_success(request_id: int, value: Any, ts: int, log_lines: list[str]) -> dict:
    return {
        "type": "MutationResponse",
        "requestId": request_id,
        "success": True,
        "result": to_json(value),
        "ts": encode_u64(ts),
        "logLines": list(log_lines),
    }


def mutation_failure(
    request_id: int, message: str, log_lines: list[str], error_data: Any = _ABSENT
) -> dict:
    result = {
        "type": "MutationResponse",
        "requestId": request_id,
        "success": False,
        "result": message,
        "ts": None,
        "logLines": list(log_lines),
    }
    if error_data is not _ABSENT:
        result["errorData"] = to_json(error_data)
    return result


def action_success(request_id: int, value: Any, log_lines: list[str]) -> dict:
    return {
        "type": "ActionResponse",
        "requestId": request_id,
        "success": True,
        "result": to_json(value),
        "logLines": list(log_lines),
    }


def action_failure(
    request_id: int, message: str, log_lines: list[str], error_data: Any = _ABSENT
) -> dict:
    result = {
        "type": "ActionResponse",
        "requestId": request_id,
        "success": False,
        "result": message,
        "logLines": list(log_lines),
    }
    if error_data is not _ABSENT:
        result["errorData"] = to_json(error_data)
    return result


def auth_error(message: str, base_version: int, auth_update_attempted: bool = True) -> dict:
    return {
        "type": "AuthError",
        "error": message,
        "baseVersion": base_version,
        "authUpdateAttempted": auth_update_attempted,
    }


def fatal_error(message: str) -> dict:
    return {"type": "FatalError", "error": message}


def ping() -> dict:
    return {"type": "Ping"}


def encode_message(message: dict) -> str:
    """Compact ASCII JSON text for one frame (no NaN: Convex-JSON never needs it)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False)


__all__ = [
    "MAX_TRANSITION_BYTES",
    "MAX_TS",
    "ActionRequest",
    "AddQuery",
    "Authenticate",
    "ClientMessage",
    "Connect",
    "Event",
    "ModifyQuerySet",
    "MutationRequest",
    "ProtocolError",
    "RemoveQuery",
    "StateVersion",
    "action_failure",
    "action_success",
    "auth_error",
    "decode_u64",
    "encode_message",
    "encode_u64",
    "fatal_error",
    "mutation_failure",
    "mutation_success",
    "parse_args",
    "parse_client_message",
    "ping",
    "query_failed",
    "query_removed",
    "query_updated",
    "supports_transition_chunks",
    "transition",
    "transition_chunks",
]
