"""The HTTP request and response objects HTTP actions see and return.

This module owns :class:`Request`, :class:`Response` and :class:`Headers`,
small synchronous counterparts of the Web Fetch classes Convex HTTP actions
use, and their JSON forms on the worker protocol (``docs/function-abi.md``,
"HTTP actions")::

    @http_action
    def post_message(ctx, request):
        body = request.json()                      # await request.json()
        ...
        return Response(status=200)                # new Response(null, {status: 200})

    Response("hi")                                 # text/plain;charset=UTF-8
    Response(b"\\x00\\x01", headers={"content-type": "application/octet-stream"})
    Response({"ok": True})                         # application/json (Response.json)

Header names are stored lowercased (as Fetch does); lookups ignore case.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["Headers", "Request", "Response"]


class Headers:
    """An ordered, case-insensitive multi-map of header names to values."""

    def __init__(
        self, init: Headers | Mapping[str, str] | Iterable[Iterable[str]] | None = None
    ) -> None:
        self._pairs: list[tuple[str, str]] = []
        if init is None:
            return
        if isinstance(init, Headers):
            pairs: Iterable[Any] = init.items()
        elif isinstance(init, Mapping):
            pairs = init.items()
        else:
            pairs = init
        for pair in pairs:
            name, value = pair
            self.append(name, value)

    @staticmethod
    def _check(name: object, value: object) -> tuple[str, str]:
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"Header names and values must be strings, got {name!r}: {value!r}")
        return name.lower(), value

    def append(self, name: str, value: str) -> None:
        """Add a value, keeping existing ones."""
        self._pairs.append(self._check(name, value))

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` with ``value``."""
        name, value = self._check(name, value)
        self.delete(name)
        self._pairs.append((name, value))

    def delete(self, name: str) -> None:
        lower = name.lower()
        self._pairs = [(k, v) for k, v in self._pairs if k != lower]

    def get(self, name: str, default: str | None = None) -> str | None:
        """All values of ``name`` joined with ``", "`` (Fetch's rule), or ``default``."""
        values = self.get_all(name)
        return ", ".join(values) if values else default

    def get_all(self, name: str) -> list[str]:
        lower = name.lower()
        return [v for k, v in self._pairs if k == lower]

    def has(self, name: str) -> bool:
        return name.lower() in self

    def items(self) -> list[tuple[str, str]]:
        """Every (lowercase name, value) pair, in order."""
        return list(self._pairs)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(k == name.lower() for k, _ in self._pairs)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: str) -> None:
        self.set(name, value)

    def __delitem__(self, name: str) -> None:
        self.delete(name)

    def __iter__(self) -> Iterator[str]:
        seen: list[str] = []
        for k, _ in self._pairs:
            if k not in seen:
                seen.append(k)
        return iter(seen)

    def __len__(self) -> int:
        return len(self._pairs)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._pairs == other._pairs
        return NotImplemented

    def __repr__(self) -> str:
        return f"Headers({self._pairs!r})"


class _Body:
    """Body readers shared by Request and Response (sync versions of Fetch's)."""

    _body: bytes | None

    @property
    def body(self) -> bytes | None:
        """The raw body, or ``None`` when there is none."""
        return self._body

    def bytes(self) -> bytes:
        """The body as bytes (``b""`` when there is none); Fetch's ``arrayBuffer``."""
        return self._body or b""

    array_buffer = bytes

    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced, as Fetch does)."""
        return self.bytes().decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (plain JSON, not Convex-JSON)."""
        return json.loads(self.text())


def _body_bytes(body: Any) -> bytes | None:
    if body is None or isinstance(body, bytes):
        return body
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    raise TypeError(f"A body must be str, bytes or None, got {type(body).__name__}")


def _b64_body(body: bytes | None) -> dict[str, str] | None:
    return None if body is None else {"$bytes": base64.b64encode(body).decode("ascii")}


class Request(_Body):
    """An incoming HTTP request: ``method``, ``url``, ``headers`` and the body."""

    method: str
    url: str
    headers: Headers

    def __init__(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: Headers | Mapping[str, str] | Iterable[Iterable[str]] | None = None,
        body: str | bytes | None = None,
    ) -> None:
        self.url = url
        self.method = method.upper()
        self.headers = Headers(headers)
        self._body = _body_bytes(body)

    @property
    def path(self) -> str:
        """The URL's path, still percent-encoded (``new URL(url).pathname``)."""
        return urlsplit(self.url).path or "/"

    @property
    def search_params(self) -> dict[str, list[str]]:
        """The query string's parameters, each with its list of values."""
        return parse_qs(urlsplit(self.url).query, keep_blank_values=True)

    @classmethod
    def from_json(cls, request_json: Mapping[str, Any]) -> Request:
        """Build a request from its worker-protocol JSON."""
        body = request_json.get("body")
        raw = None
        if body is not None:
            if not isinstance(body, Mapping) or set(body) != {"$bytes"}:
                raise ValueError(f"A request body must be {{'$bytes': ...}} or null, got {body!r}")
            raw = base64.b64decode(body["$bytes"], validate=True)
        return cls(
            request_json["url"],
            method=request_json.get("method", "GET"),
            headers=[tuple(pair) for pair in request_json.get("headers") or []],
            body=raw,
        )

    def to_json(self) -> dict[str, Any]:
        """The worker-protocol JSON of this request."""
        return {
            "method": self.method,
            "url": self.url,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": _b64_body(self._body),
        }

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url}>"


class Response(_Body):
    """An HTTP response, as in Fetch's ``new Response(body, {status, headers})``.

    ``body`` may be ``None``, ``str`` (UTF-8; ``content-type`` defaults to
    ``text/plain;charset=UTF-8``), ``bytes``, or — as a shortcut for Fetch's
    ``Response.json(data)`` — a ``dict`` or ``list``, sent as JSON with
    ``content-type: application/json``. An explicit ``content-type`` header
    always wins.
    """

    status: int
    headers: Headers

    def __init__(
        self,
        body: str | bytes | dict[str, Any] | list[Any] | None = None,
        status: int = 200,
        headers: Headers | Mapping[str, str] | Iterable[Iterable[str]] | None = None,
        *,
        status_text: str = "",
    ) -> None:
        if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
            raise ValueError(f"A response status must be an int from 200 to 599, got {status!r}")
        self.status = status
        self.status_text = status_text
        self.headers = Headers(headers)
        content_type = None
        if isinstance(body, (dict, list)):
            body = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
            content_type = "application/json"
        elif isinstance(body, str):
            content_type = "text/plain;charset=UTF-8"
        self._body = _body_bytes(body)
        if content_type is not None and "content-type" not in self.headers:
            self.headers.append("content-type", content_type)

    @property
    def ok(self) -> bool:
        return 200 <= self.status <= 299

    @classmethod
    def from_json(cls, response_json: Mapping[str, Any]) -> Response:
        """Build a response from its worker-protocol JSON."""
        body = response_json.get("body")
        raw = None if body is None else base64.b64decode(body["$bytes"], validate=True)
        return cls(
            raw,
            status=response_json.get("status", 200),
            headers=[tuple(pair) for pair in response_json.get("headers") or []],
        )

    def to_json(self) -> dict[str, Any]:
        """The worker-protocol JSON of this response."""
        return {
            "status": self.status,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": _b64_body(self._body),
        }

    def __repr__(self) -> str:
        return f"<Response {self.status}>"
