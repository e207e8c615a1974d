"""The daemon's attack surface, probed from outside, table-driven.

One real daemon (``twistd -n convex --log-level debug``) runs the auth test
app (tests/clients/auth_app, with an ``auth_config.py`` naming a local OIDC
issuer) plus :data:`SECURITY_MODULE`. :func:`probe_daemon` runs every probe
once, over real HTTP and WebSocket connections, and keeps the answers and the
daemon's whole log; the tests then check them:

* every route under ``/api/`` that the Klein apps define (read from their URL
  maps, so a route added later is covered too) refuses a missing, wrong or
  malformed admin key, a user token, a wrong key acting as a user, a wrong
  ``adminKey`` in the body and the right key in the query string, all with a
  401; the routes that answer without a key are exactly :data:`PUBLIC_ROUTES`;
* internal functions are out of reach of clients over HTTP (every function
  route, path spellings included) and over the sync socket, with or without a
  user token, and no one but an admin acts as another identity;
* uploaded HTML and SVG are served sandboxed and never sniffed, storage ids do
  not reach the file system, CR/LF never gets into a stored Content-Type;
* every dashboard answer carries the CSP and anti-framing headers, and so do
  HTTP actions and ``/echo`` on the dashboard's origin;
* tokens with made-up ``kid``\\ s (over HTTP and the socket) do not make the
  daemon fetch the provider's keys more than once per interval, and a flood
  of ``Authenticate`` messages is answered without harm;
* no token, upload token or wrong key ever reaches the log, and the admin key
  not even at startup; no request got a 500.

:class:`DashboardSourceTests` reads ``static/`` for DOM XSS sinks.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import treq
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, reactor, threads
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from convex_backend.http.root import RootApp
from tests.auth.issuer import LocalIssuer, SigningKey
from tests.clients._auth_support import auth_app_modules, remove_directory
from tests.clients._support import FixtureError, Once, deployed_daemon, stop_daemon
from tests.daemon import REPO, Daemon
from tests.helpers import make_deployment

STATIC = REPO / "static"

#: The routes under /api/ that answer without an admin key: the function API
#: (its callers are clients), uploads (the token is the capability) and
#: downloads (the storage id is). The sync socket is not a Klein route; it is
#: probed on its own.
PUBLIC_ROUTES = {
    ("GET", "/api/query"),
    ("HEAD", "/api/query"),
    ("POST", "/api/query"),
    ("POST", "/api/mutation"),
    ("POST", "/api/action"),
    ("POST", "/api/function"),
    ("POST", "/api/run/<path:function_path>"),
    ("POST", "/api/query_ts"),
    ("POST", "/api/query_at_ts"),
    ("POST", "/api/query_batch"),
    ("POST", "/api/storage/upload"),
    ("GET", "/api/storage/<storage_id>"),
    ("HEAD", "/api/storage/<storage_id>"),
}

SECURITY_MODULE = '''"""Functions for tests/test_security.py."""

from convex_backend.server import action, internal_action, internal_mutation, v


@internal_mutation(args={})
def internal_write(ctx, args):
    ctx.db.insert("secrets", {"leaked": True})
    return "written"


@internal_action(args={})
def internal_act(ctx, args):
    return "acted"


@action(args={"contentType": v.string()})
def store_typed(ctx, args):
    try:
        return {"storageId": ctx.storage.store(b"<b>x</b>", args["contentType"])}
    except Exception as e:
        return {"error": str(e)}
'''

INTERNAL_QUERY = "users:internal_whoami"
NOT_FOUND = "Could not find public function"
IDENTITY = {"subject": "root", "issuer": "https://evil.example"}


def b64_identity(identity: dict) -> str:
    return base64.b64encode(json.dumps(identity).encode()).decode()


def api_routes() -> set[tuple[str, str]]:
    """(method, rule) of every route under /api/, from the Klein apps' URL maps."""
    deployment = make_deployment(tempfile.mkdtemp(prefix="convex-security-"))
    root = RootApp(deployment)
    routes = set()
    for rule in RootApp.app.url_map.iter_rules():
        # The /api/ branch rules (no methods) only hand over to the apps below.
        if rule.rule.startswith("/api/") and rule.methods:
            routes.update((method, rule.rule) for method in rule.methods)
    # The apps the /api/ branch asks in turn (FirstMatchResource keeps them).
    for klein_app, _resource in root._api._apps:
        for rule in klein_app.url_map.iter_rules():
            routes.update((method, "/api" + rule.rule) for method in rule.methods or ())
    remove_directory(str(deployment.config.data_dir))
    return routes


@dataclass
class Answer:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[-1] if values else None

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def summary(self) -> str:
        return f"{self.status} {self.body[:300]!r}"


@dataclass
class Results:
    """What :func:`probe_daemon` saw; the tests assert on it."""

    routes: set = field(default_factory=set)
    admin_probes: dict = field(default_factory=dict)
    right_key: dict = field(default_factory=dict)
    no_key: dict = field(default_factory=dict)
    internal_http: dict = field(default_factory=dict)
    internal_sync: dict = field(default_factory=dict)
    impersonation: dict = field(default_factory=dict)
    storage: dict = field(default_factory=dict)
    dashboard: dict = field(default_factory=dict)
    origin_pages: dict = field(default_factory=dict)
    kid_flood: dict = field(default_factory=dict)
    auth_flood: dict = field(default_factory=dict)
    statuses: list = field(default_factory=list)
    tables: list = field(default_factory=list)
    secrets: dict = field(default_factory=dict)
    admin_key: str = ""
    instance_secret: str = ""
    output: str = ""


# -- a WebSocket client ----------------------------------------------------------------


class _SyncSocket(WebSocketClientProtocol):
    def onOpen(self) -> None:
        self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.messages.append(json.loads(payload))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.closed = True
        if not self.factory.opened.called:
            self.factory.opened.errback(ConnectionError(reason))

    def connectionLost(self, reason) -> None:
        super().connectionLost(reason)
        if not self.factory.lost.called:
            self.factory.lost.callback(None)

    def send(self, *messages: dict) -> None:
        for message in messages:
            self.sendMessage(json.dumps(message).encode(), isBinary=False)

    @property
    def messages(self) -> list[dict]:
        return self.factory.messages

    async def until(self, predicate, what: str, seconds: float = 30.0) -> list[dict]:
        for _ in range(int(seconds / 0.02)):
            if predicate(self.messages):
                return self.messages
            await deferLater(reactor, 0.02, lambda: None)
        raise FixtureError(f"timed out waiting for {what}; got {self.messages[-5:]}")

    async def close(self) -> None:
        if not self.factory.closed:
            self.sendClose(1000)
        timer = reactor.callLater(10, self.transport.abortConnection)
        await self.factory.lost
        if timer.active():
            timer.cancel()


async def open_socket(api_url: str, path: str = "/api/sync") -> _SyncSocket:
    parts = urlsplit(api_url)
    factory = WebSocketClientFactory(f"ws://{parts.hostname}:{parts.port}{path}")
    factory.protocol = _SyncSocket
    factory.messages = []
    factory.opened = defer.Deferred()
    factory.lost = defer.Deferred()
    factory.closed = False
    reactor.connectTCP(parts.hostname, parts.port, factory)
    return await factory.opened


def authenticate(base: int, token_type: str, value: str | None = None, **extra) -> dict:
    message = {"type": "Authenticate", "baseVersion": base, "tokenType": token_type, **extra}
    if value is not None:
        message["value"] = value
    return message


def subscribe(path: str, query_id: int = 0, base: int = 0) -> dict:
    return {
        "type": "ModifyQuerySet",
        "baseVersion": base,
        "newVersion": base + 1,
        "modifications": [{"type": "Add", "queryId": query_id, "udfPath": path, "args": [{}]}],
    }


def latest_value(messages: list[dict], query_id: int = 0) -> Any:
    """The last value (or error) of a query in the transitions received."""
    found: Any = None
    for message in messages:
        if message.get("type") != "Transition":
            continue
        for modification in message["modifications"]:
            if modification.get("queryId") != query_id:
                continue
            if modification["type"] == "QueryUpdated":
                found = {"value": modification["value"]}
            elif modification["type"] == "QueryFailed":
                found = {"error": modification["errorMessage"]}
    return found


# -- the probes ------------------------------------------------------------------------


class Prober:
    def __init__(self, daemon: Daemon, issuer: LocalIssuer, results: Results) -> None:
        self.daemon = daemon
        self.api = daemon.api_url
        self.issuer = issuer
        self.r = results
        self.key = daemon.admin_key
        self.wrong_key = "convex-self-hosted|01" + secrets.token_hex(32)
        self.r.secrets["wrong admin key"] = self.wrong_key
        self.r.admin_key = self.key

    def token(self, name: str, **kwargs) -> str:
        """A user token, remembered so that the log can be searched for it."""
        token = self.issuer.token(**kwargs)
        self.r.secrets[name] = token
        return token

    def random_kid_token(self, name: str) -> str:
        key = SigningKey("kid-" + secrets.token_hex(8), "RS256", self.issuer.oidc_keys[0].private)
        token = self.issuer.sign(self.issuer.claims(), key)
        self.r.secrets[name] = token
        return token

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        data: bytes | None = None,
        headers: dict | None = None,
        base: str | None = None,
    ) -> Answer:
        headers = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        response = await treq.request(
            method,
            (base or self.api) + path,
            data=data,
            headers=headers,
            persistent=False,
            allow_redirects=False,
            timeout=60,
        )
        content = await response.content()
        answer = Answer(
            response.code,
            {
                k.decode().lower(): [v.decode("latin-1") for v in vs]
                for k, vs in response.headers.getAllRawHeaders()
            },
            content,
        )
        self.r.statuses.append((method, path, answer.status))
        return answer

    async def admin(self, method: str, path: str, **kwargs) -> Answer:
        headers = {"Authorization": f"Convex {self.key}", **kwargs.pop("headers", {})}
        return await self.call(method, path, headers=headers, **kwargs)

    # -- setup ---------------------------------------------------------------------

    async def prepare(self) -> None:
        # A document, a log entry and the issuer's keys in the daemon's cache.
        valid = self.token("valid user token", claims={"name": "Ada"})
        answer = await self.call(
            "POST",
            "/api/mutation",
            body={"path": "users:remember", "args": {"note": "hi"}},
            headers={"Authorization": f"Bearer {valid}"},
        )
        if answer.json() is None or answer.json().get("status") != "success":
            raise FixtureError(f"the user's mutation failed: {answer.summary()}")
        answer = await self.admin("POST", "/api/storage/generate_upload_url", body={})
        upload_url = answer.json()["uploadUrl"]
        self.upload_token = upload_url.partition("?token=")[2]
        self.r.secrets["upload token"] = self.upload_token
        self.stored = {}
        for name, content_type, data in [
            ("html", "text/html; charset=utf-8", b"<html><script>alert(1)</script></html>"),
            ("svg", "image/svg+xml", b'<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>'),
            ("pdf", "application/pdf", b"%PDF-1.4\n%%EOF\n"),
            # Browsers take the last type of a list: this one is HTML to them.
            ("pdf then html", "application/pdf;x=,text/html", b"<script>alert(1)</script>"),
            ("text", "text/plain", b"<script>alert(1)</script>"),
            ("none", None, b"<script>alert(1)</script>"),
        ]:
            headers = {"Content-Type": content_type} if content_type else {}
            answer = await self.call(
                "POST", f"/api/storage/upload?token={self.upload_token}", data=data, headers=headers
            )
            if answer.status != 200:
                raise FixtureError(f"upload of {name} failed: {answer.summary()}")
            self.stored[name] = answer.json()["storageId"]
        self.r.storage["ids"] = dict(self.stored)

    # -- the route table -------------------------------------------------------------

    def concrete(self, rule: str) -> str:
        return (
            rule.replace("<table>", "notes")
            .replace("<storage_id>", self.stored["text"])
            .replace("<path:function_path>", "users/whoami")
        )

    def attempts(self, method: str) -> list[tuple[str, dict, Any, str]]:
        """(name, headers, body, query) of each attempt without the right key."""
        valid = self.r.secrets["valid user token"]
        body = {} if method == "POST" else None
        rows = [
            ("no key", {}, body, ""),
            ("wrong key", {"Authorization": f"Convex {self.wrong_key}"}, body, ""),
            ("malformed key", {"Authorization": "Convex not-a-key"}, body, ""),
            ("empty key", {"Authorization": "Convex "}, body, ""),
            ("other scheme", {"Authorization": f"Basic {self.key}"}, body, ""),
            ("user token", {"Authorization": f"Bearer {valid}"}, body, ""),
            (
                "wrong key acting as a user",
                {"Authorization": f"Convex {self.wrong_key}:{b64_identity(IDENTITY)}"},
                body,
                "",
            ),
            ("right key in the query string", {}, body, f"?adminKey={self.key}"),
        ]
        if method == "POST":
            rows.append(("wrong adminKey in the body", {}, {"adminKey": self.wrong_key}, ""))
            rows.append(("adminKey not a string", {}, {"adminKey": [self.key]}, ""))
        return rows

    async def route_table(self) -> None:
        self.r.routes = api_routes()
        for method, rule in sorted(self.r.routes):
            path = self.concrete(rule)
            answer = await self.call(method, path, body={} if method == "POST" else None)
            self.r.no_key[(method, rule)] = answer
            if (method, rule) in PUBLIC_ROUTES:
                continue
            for name, headers, body, query in self.attempts(method):
                self.r.admin_probes[(method, rule, name)] = await self.call(
                    method, path + query, headers=headers, body=body
                )

    async def right_key_table(self) -> None:
        # Last: these run the admin routes for real (with bodies they refuse).
        for method, rule in sorted(self.r.routes):
            if (method, rule) in PUBLIC_ROUTES:
                continue
            path = self.concrete(rule)
            if rule == "/api/stream_function_logs":
                path += "?cursor=0"
            self.r.right_key[(method, rule)] = await self.admin(
                method, path, body={} if method == "POST" else None
            )

    # -- internal functions and impersonation ---------------------------------------

    async def internal_functions(self) -> None:
        ts = (await self.call("POST", "/api/query_ts", body={})).json()["ts"]
        rows = [
            ("POST /api/query", "POST", "/api/query", {"path": INTERNAL_QUERY}),
            ("GET /api/query", "GET", f"/api/query?path={INTERNAL_QUERY}", None),
            ("POST /api/function", "POST", "/api/function", {"path": INTERNAL_QUERY}),
            ("module.py spelling", "POST", "/api/function", {"path": "users.py:internal_whoami"}),
            ("module.js spelling", "POST", "/api/function", {"path": "users.js:internal_whoami"}),
            ("POST /api/run", "POST", "/api/run/users/internal_whoami", {}),
            (
                "query_batch",
                "POST",
                "/api/query_batch",
                {"queries": [{"path": INTERNAL_QUERY, "args": {}}]},
            ),
            ("query_at_ts", "POST", "/api/query_at_ts", {"path": INTERNAL_QUERY, "ts": ts}),
            ("internal mutation", "POST", "/api/mutation", {"path": "security:internal_write"}),
            (
                "internal mutation as function",
                "POST",
                "/api/function",
                {"path": "security:internal_write"},
            ),
            ("internal action", "POST", "/api/action", {"path": "security:internal_act"}),
        ]
        valid = self.token("user token for internal calls")
        for who, headers in [("anonymous", {}), ("user", {"Authorization": f"Bearer {valid}"})]:
            for name, method, path, body in rows:
                answer = await self.call(method, path, body=body, headers=headers)
                self.r.internal_http[(who, name)] = answer
        self.r.internal_http[("http action", "/http/users:internal_whoami")] = await self.call(
            "GET", "/http/users:internal_whoami"
        )
        # Positive control: the functions exist, an admin reaches them.
        for name, path in [
            ("admin query", INTERNAL_QUERY),
            ("admin action", "security:internal_act"),
        ]:
            self.r.internal_http[("admin", name)] = await self.admin(
                "POST", "/api/function", body={"path": path}
            )
        tables = (await self.admin("GET", "/api/tables")).json()
        self.r.tables = [t.get("name") for t in tables.get("tables", [])]

        # The sync socket, anonymous and as a user.
        for who in ("anonymous", "user"):
            sock = await open_socket(self.api)
            if who == "user":
                sock.send(authenticate(0, "User", self.token("user token for sync")))
            sock.send(
                subscribe(INTERNAL_QUERY),
                {
                    "type": "Mutation",
                    "requestId": 0,
                    "udfPath": "security:internal_write",
                    "args": [{}],
                },
                {
                    "type": "Action",
                    "requestId": 1,
                    "udfPath": "security:internal_act",
                    "args": [{}],
                },
            )
            messages = await sock.until(
                lambda ms: (
                    latest_value(ms) is not None
                    and sum(m["type"] in ("MutationResponse", "ActionResponse") for m in ms) == 2
                ),
                f"the {who} socket's answers",
            )
            await sock.close()
            self.r.internal_sync[who] = messages

    async def impersonation(self) -> None:
        valid = self.token("user token for impersonation", claims={"name": "Ada"})
        whoami = {"path": "users:whoami"}
        rows = [
            ("wrong key", f"Convex {self.wrong_key}:{b64_identity(IDENTITY)}"),
            ("empty key", f"Convex :{b64_identity(IDENTITY)}"),
            ("user token with an identity", f"Bearer {valid}:{b64_identity(IDENTITY)}"),
            ("right key", f"Convex {self.key}:{b64_identity(IDENTITY)}"),
        ]
        for name, header in rows:
            self.r.impersonation[("http", name)] = await self.call(
                "POST", "/api/query", body=whoami, headers={"Authorization": header}
            )
        # Over the socket: only an admin's Authenticate may carry an identity.
        cases = [
            ("user token", authenticate(0, "User", valid, impersonating=IDENTITY)),
            ("no token", authenticate(0, "None", impersonating=IDENTITY)),
            ("wrong admin key", authenticate(0, "Admin", self.wrong_key, impersonating=IDENTITY)),
            ("right admin key", authenticate(0, "Admin", self.key, impersonating=IDENTITY)),
            (
                "key not a string",
                authenticate(0, "Admin", impersonating=IDENTITY) | {"value": [self.key]},
            ),
        ]
        for name, message in cases:
            sock = await open_socket(self.api)
            sock.send(message, subscribe("users:whoami"))
            await sock.until(
                lambda ms: (
                    latest_value(ms) is not None
                    or any(m["type"] in ("AuthError", "FatalError") for m in ms)
                ),
                f"the answer to {name}",
            )
            await sock.close()
            self.r.impersonation[("sync", name)] = list(sock.messages)

    # -- storage -------------------------------------------------------------------

    async def storage(self) -> None:
        for name, storage_id in self.stored.items():
            self.r.storage[("GET", name)] = await self.call("GET", f"/api/storage/{storage_id}")
            self.r.storage[("HEAD", name)] = await self.call("HEAD", f"/api/storage/{storage_id}")
            self.r.storage[("range", name)] = await self.call(
                "GET", f"/api/storage/{storage_id}", headers={"Range": "bytes=0-3"}
            )
        # Ids that are not storage ids never reach the file system.
        notes = await self.admin("GET", "/api/tables/notes/documents")
        note_id = notes.json()["page"][0]["_id"]
        traversal = [
            "/api/storage/..%2F..%2Fcredentials%2Finstance_secret",
            "/api/storage/%2e%2e",
            "/api/storage/" + "a" * 32,
            "/api/storage/" + note_id,
            "/api/storage/" + self.stored["text"] + "%00",
            "/api/storage/" + self.stored["text"].upper(),
        ]
        for path in traversal:
            self.r.storage[("traversal", path)] = await self.call("GET", path)
        raw_paths = [
            "/api/storage/../../credentials/instance_secret",
            "/api/storage/..%2f..%2fcredentials%2finstance_secret",
            "/api/storage/%2e%2e/%2e%2e/credentials/instance_secret",
        ]
        for path in raw_paths:
            self.r.storage[("raw traversal", path)] = await self.raw(
                f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
            )
        # CR/LF and other bytes no header may hold, at upload and from functions.
        for name, content_type in [
            ("lone CR", b"text/html\rX-Injected: 1"),
            ("DEL", b"text/html\x7f"),
            ("latin-1", b"text/html\xff"),
        ]:
            request = (
                (
                    f"POST /api/storage/upload?token={self.upload_token} HTTP/1.1\r\n"
                    "Host: x\r\nConnection: close\r\nContent-Length: 5\r\n"
                ).encode()
                + b"Content-Type: "
                + content_type
                + b"\r\n\r\nhello"
            )
            self.r.storage[("raw upload", name)] = await self.raw(request)
        for name, content_type in [
            ("CRLF", "text/html\r\nSet-Cookie: stolen=1"),
            ("LF", "text/html\nX-Injected: 1"),
            ("NUL", "text/html\x00"),
        ]:
            answer = await self.call(
                "POST",
                "/api/action",
                body={"path": "security:store_typed", "args": {"contentType": content_type}},
            )
            self.r.storage[("action", name)] = answer
        listing = await self.admin("GET", "/api/storage_files?numItems=1000")
        self.r.storage["content types"] = [f.get("contentType") for f in listing.json()["page"]]

    async def raw(self, request: bytes) -> bytes:
        parts = urlsplit(self.api)

        def exchange() -> bytes:
            with socket.create_connection((parts.hostname, parts.port), timeout=20) as s:
                s.sendall(request)
                chunks = []
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        return b"".join(chunks)
                    chunks.append(chunk)

        return await threads.deferToThread(exchange)

    # -- pages on the dashboard's origin ----------------------------------------------

    async def dashboard(self) -> None:
        index = await self.call("GET", "/dashboard/")
        etag = index.header("etag") or '"none"'
        rows = [
            ("redirect", "GET", "/dashboard", {}),
            ("index", "GET", "/dashboard/", {}),
            ("index.html", "GET", "/dashboard/index.html", {}),
            ("script", "GET", "/dashboard/app.js", {}),
            ("page module", "GET", "/dashboard/pages/data.js", {}),
            ("style", "GET", "/dashboard/style.css", {}),
            ("head", "HEAD", "/dashboard/index.html", {}),
            ("not modified", "GET", "/dashboard/", {"If-None-Match": etag}),
            ("missing", "GET", "/dashboard/nothing.js", {}),
            ("traversal", "GET", "/dashboard/..%2f..%2fsetup.cfg", {}),
            ("dot file", "GET", "/dashboard/.hidden.js", {}),
            ("post", "POST", "/dashboard/", {}),
        ]
        for name, method, path, headers in rows:
            self.r.dashboard[name] = await self.call(method, path, headers=headers)

    async def origin_pages(self) -> None:
        bad = self.token("expired user token", variant="expired")
        self.r.origin_pages["main /http/"] = await self.call("GET", "/http/whoami")
        self.r.origin_pages["main /http/ refused token"] = await self.call(
            "GET", "/http/whoami", headers={"Authorization": f"Bearer {bad}"}
        )
        self.r.origin_pages["site port"] = await self.call(
            "GET", "/whoami", base=self.daemon.site_url
        )
        self.r.origin_pages["echo"] = await self.call(
            "POST",
            "/echo",
            data=b"<script>alert(1)</script>",
            headers={"Content-Type": "text/html"},
        )

    # -- floods --------------------------------------------------------------------

    async def kid_flood(self) -> None:
        before = dict(self.issuer.requests)
        http = []
        for i in range(40):
            token = self.random_kid_token(f"random kid token {i}")
            http.append(
                await self.call(
                    "POST",
                    "/api/query",
                    body={"path": "users:whoami"},
                    headers={"Authorization": f"Bearer {token}"},
                )
            )
        sockets = []
        for i in range(15):
            sock = await open_socket(self.api)
            sock.send(authenticate(0, "User", self.random_kid_token(f"random kid socket {i}")))
            sockets.append(sock)
        for sock in sockets:
            await sock.until(lambda ms: any(m["type"] == "AuthError" for m in ms), "an AuthError")
            await sock.close()
        # One socket, many bad tokens at once: one AuthError, then closed.
        sock = await open_socket(self.api)
        sock.send(
            *[
                authenticate(0, "User", self.random_kid_token(f"burst token {i}"))
                for i in range(100)
            ]
        )
        await sock.until(lambda ms: any(m["type"] == "AuthError" for m in ms), "the AuthError")
        await sock.close()
        self.r.kid_flood = {
            "http": http,
            "sockets": [s.messages for s in sockets],
            "burst": list(sock.messages),
            "before": before,
            "after": dict(self.issuer.requests),
        }

    async def auth_flood(self) -> None:
        count = 200
        tokens = [self.issuer.token(claims={"name": f"user {i}"}) for i in range(count)]
        sock = await open_socket(self.api)
        sock.send(subscribe("users:whoami"))
        sock.send(*[authenticate(i, "User", token) for i, token in enumerate(tokens)])
        messages = await sock.until(
            lambda ms: (
                any(m["type"] == "Transition" and m["endVersion"]["identity"] == count for m in ms)
                or any(m["type"] in ("AuthError", "FatalError") for m in ms)
            ),
            "the last identity",
            seconds=60,
        )
        # The session still works: a mutation as the last user.
        sock.send(
            {
                "type": "Mutation",
                "requestId": 0,
                "udfPath": "users:remember",
                "args": [{"note": "after"}],
            }
        )
        messages = await sock.until(
            lambda ms: (
                any(m["type"] == "MutationResponse" for m in ms)
                or any(m["type"] in ("AuthError", "FatalError") for m in ms)
            ),
            "the mutation after the flood",
        )
        await sock.close()
        self.r.auth_flood = {"messages": list(messages), "count": count}

    async def run(self) -> None:
        await self.prepare()
        await self.route_table()
        await self.internal_functions()
        await self.impersonation()
        await self.storage()
        await self.dashboard()
        await self.origin_pages()
        await self.kid_flood()
        await self.auth_flood()
        await self.right_key_table()
        self.r.storage["alive"] = await self.call("GET", "/version")


async def start_daemon(issuer: LocalIssuer, tmp: Path) -> Daemon:
    """The daemon, logging at debug level (access lines too), with the apps deployed."""
    app = tmp / "app"
    app.mkdir()
    for module in auth_app_modules(issuer):
        (app / module["path"]).write_text(module["source"])
    (app / "security.py").write_text(SECURITY_MODULE)
    return await deployed_daemon(str(tmp / "data"), app, extra_args=("--log-level", "debug"))


async def probe_daemon() -> Results:
    results = Results()
    issuer = await LocalIssuer().start()
    tmp = Path(tempfile.mkdtemp(prefix="convex-security-"))
    try:
        daemon = await start_daemon(issuer, tmp)
        try:
            secret_file = tmp / "data" / "credentials" / "instance_secret"
            results.instance_secret = secret_file.read_text().strip()
            try:
                await Prober(daemon, issuer, results).run()
            except Exception as e:
                raise FixtureError(f"{e}\n--- daemon (tail)\n{daemon.output[-6000:]}") from e
        finally:
            await stop_daemon(daemon)
            results.output = daemon.output
    finally:
        await issuer.stop()
        remove_directory(str(tmp))
    return results


# -- the tests -------------------------------------------------------------------------


class SecurityTests(TestCase):
    timeout = 600
    shared = Once(probe_daemon)

    async def results(self) -> Results:
        return await self.shared.get()

    def assertJsonError(self, answer: Answer, status: int, codes: set[str], where: str) -> dict:
        self.assertEqual(answer.status, status, f"{where}: {answer.summary()}")
        error = answer.json()
        self.assertIsInstance(error, dict, where)
        self.assertEqual(set(error), {"code", "message"}, where)
        self.assertIn(error["code"], codes, where)
        self.assertNotIn("Traceback", error["message"], where)
        return error

    # -- admin routes ----------------------------------------------------------------

    async def test_the_public_routes_are_exactly_the_intended_set(self) -> None:
        r = await self.results()
        self.assertTrue(PUBLIC_ROUTES <= r.routes, PUBLIC_ROUTES - r.routes)
        answered = {route for route, answer in r.no_key.items() if answer.status != 401}
        self.assertEqual(answered, PUBLIC_ROUTES)
        # Enough routes were found for the table to mean something.
        self.assertGreater(len(r.routes - PUBLIC_ROUTES), 25)

    async def test_every_admin_route_refuses_without_the_right_key(self) -> None:
        r = await self.results()
        admin_routes = r.routes - PUBLIC_ROUTES
        checked = set()
        for (method, rule, attempt), answer in sorted(r.admin_probes.items()):
            where = f"{method} {rule} with {attempt}"
            if method == "HEAD":
                self.assertEqual(answer.status, 401, where)
            elif attempt == "adminKey not a string" and answer.status == 400:
                # A body the route cannot read may be refused as such: never served.
                self.assertJsonError(answer, 400, {"BadJsonBody"}, where)
            else:
                error = self.assertJsonError(answer, 401, {"MissingAdminKey", "BadAdminKey"}, where)
                for secret in (r.admin_key, r.secrets["wrong admin key"]):
                    self.assertNotIn(secret, error["message"], where)
            checked.add((method, rule))
        self.assertEqual(checked, admin_routes)
        for route in admin_routes:
            if route[0] != "HEAD":
                answer = r.no_key[route]
                self.assertEqual(answer.json()["code"], "MissingAdminKey", route)

    async def test_the_right_key_reaches_every_admin_route(self) -> None:
        r = await self.results()
        self.assertEqual(set(r.right_key), r.routes - PUBLIC_ROUTES)
        for route, answer in sorted(r.right_key.items()):
            # Bodies of `{}` are refused (400) by some: never as unauthorized.
            self.assertNotIn(
                answer.status, (401, 403, 404, 405, 500), f"{route}: {answer.summary()}"
            )

    # -- internal functions, impersonation --------------------------------------------

    async def test_internal_functions_are_unreachable_by_clients(self) -> None:
        r = await self.results()
        self.assertEqual(len(r.internal_http), 2 * 11 + 1 + 2)
        for (who, name), answer in r.internal_http.items():
            if who == "admin":
                continue
            where = f"{who}: {name}"
            if who == "http action":
                self.assertEqual(answer.status, 404, where)
                continue
            self.assertEqual(answer.status, 200, f"{where}: {answer.summary()}")
            body = answer.json()
            outcome = body["results"][0] if "results" in body else body
            self.assertEqual(outcome["status"], "error", where)
            self.assertIn(NOT_FOUND, outcome["errorMessage"], where)
        # The same functions answer an admin (so the probes above hit real ones).
        for name in ("admin query", "admin action"):
            self.assertEqual(r.internal_http[("admin", name)].json()["status"], "success", name)
        self.assertIn("notes", r.tables)
        self.assertNotIn("secrets", r.tables)
        for who, messages in r.internal_sync.items():
            self.assertIn(NOT_FOUND, latest_value(messages)["error"], who)
            responses = [m for m in messages if m["type"] in ("MutationResponse", "ActionResponse")]
            self.assertEqual(len(responses), 2, who)
            for response in responses:
                self.assertFalse(response["success"], who)
                self.assertIn(NOT_FOUND, response["result"], who)

    async def test_only_an_admin_acts_as_another_identity(self) -> None:
        r = await self.results()
        http = {name: answer for (kind, name), answer in r.impersonation.items() if kind == "http"}
        self.assertJsonError(http["wrong key"], 401, {"BadAdminKey"}, "wrong key")
        self.assertEqual(http["empty key"].status, 401)
        self.assertJsonError(
            http["user token with an identity"], 401, {"InvalidAuthHeader"}, "token:identity"
        )
        identity = http["right key"].json()["value"]
        self.assertEqual(identity["subject"], "root")
        sync = {name: m for (kind, name), m in r.impersonation.items() if kind == "sync"}
        # A user's Authenticate ignores `impersonating`: the token decides.
        user = latest_value(sync["user token"])["value"]
        self.assertEqual((user["subject"], user["name"]), ("user-1", "Ada"))
        self.assertIsNone(latest_value(sync["no token"])["value"])
        self.assertEqual([m["type"] for m in sync["wrong admin key"]], ["AuthError"])
        self.assertEqual(latest_value(sync["right admin key"])["value"]["subject"], "root")
        (fatal,) = sync["key not a string"]
        self.assertEqual(fatal["type"], "FatalError")
        self.assertNotIn(r.admin_key[:20], fatal["error"])

    # -- storage ----------------------------------------------------------------------

    async def test_uploaded_files_cannot_script_the_dashboard_origin(self) -> None:
        r = await self.results()
        for kind in ("GET", "HEAD", "range"):
            for name in ("html", "svg", "text", "none", "pdf", "pdf then html"):
                answer = r.storage[(kind, name)]
                where = f"{kind} {name}: {answer.summary()}"
                self.assertIn(answer.status, (200, 206), where)
                self.assertEqual(answer.header("x-content-type-options"), "nosniff", where)
                csp = answer.header("content-security-policy")
                if name == "pdf":
                    self.assertIsNone(csp, where)
                else:
                    self.assertEqual(csp, "sandbox", where)
        self.assertEqual(
            r.storage[("GET", "html")].header("content-type"), "text/html; charset=utf-8"
        )
        self.assertEqual(
            r.storage[("GET", "none")].header("content-type"), "application/octet-stream"
        )

    async def test_storage_ids_never_reach_the_file_system(self) -> None:
        r = await self.results()
        for key, answer in r.storage.items():
            if key[0] == "traversal":
                self.assertIn(answer.status, (400, 404), f"{key}: {answer.summary()}")
                self.assertNotIn(r.instance_secret.encode(), answer.body)
            elif key[0] == "raw traversal":
                status_line = answer.split(b"\r\n", 1)[0]
                self.assertRegex(status_line, rb"^HTTP/1\.1 (400|404) ", key)
                self.assertNotIn(r.instance_secret.encode(), answer)

    async def test_no_header_injection_through_content_types(self) -> None:
        r = await self.results()
        for name in ("lone CR", "DEL", "latin-1"):
            answer = r.storage[("raw upload", name)]
            self.assertRegex(answer.split(b"\r\n", 1)[0], rb"^HTTP/1\.1 400 ", name)
            self.assertNotIn(b"\r\nX-Injected", answer, name)
        for name in ("CRLF", "LF", "NUL"):
            value = r.storage[("action", name)].json()["value"]
            self.assertIn("content type must be printable ASCII", value.get("error", ""), name)
        for content_type in r.storage["content types"]:
            self.assertTrue(content_type is None or re.fullmatch(r"[\x20-\x7e]*", content_type))

    # -- pages on the dashboard's origin ----------------------------------------------

    async def test_every_dashboard_answer_carries_the_security_headers(self) -> None:
        r = await self.results()
        expected = {
            "redirect": 301,
            "index": 200,
            "index.html": 200,
            "script": 200,
            "page module": 200,
            "style": 200,
            "head": 200,
            "not modified": 304,
            "missing": 404,
            "traversal": 404,
            "dot file": 404,
            "post": 405,
        }
        self.assertEqual({name: a.status for name, a in r.dashboard.items()}, expected)
        for name, answer in r.dashboard.items():
            csp = answer.header("content-security-policy") or ""
            self.assertIn("frame-ancestors 'none'", csp, name)
            self.assertIn("default-src 'self'", csp, name)
            self.assertIn("object-src 'none'", csp, name)
            self.assertNotIn("unsafe-inline", csp, name)
            self.assertNotIn("unsafe-eval", csp, name)
            self.assertEqual(answer.header("x-frame-options"), "DENY", name)
            self.assertEqual(answer.header("x-content-type-options"), "nosniff", name)
        self.assertNotIn(b"[tool:", r.dashboard["traversal"].body)

    async def test_http_actions_and_echo_on_the_dashboard_origin_are_sandboxed(self) -> None:
        r = await self.results()
        main = r.origin_pages["main /http/"]
        self.assertEqual(main.status, 200)
        self.assertTrue(main.header("content-security-policy").startswith("sandbox "))
        self.assertNotIn("allow-same-origin", main.header("content-security-policy"))
        refused = r.origin_pages["main /http/ refused token"]
        self.assertEqual(refused.status, 401)
        self.assertIn("sandbox", refused.header("content-security-policy"))
        site = r.origin_pages["site port"]
        self.assertEqual(site.status, 200)
        self.assertIsNone(site.header("content-security-policy"))
        echo = r.origin_pages["echo"]
        self.assertEqual(echo.body, b"<script>alert(1)</script>")
        self.assertEqual(echo.header("content-security-policy"), "sandbox")
        self.assertEqual(echo.header("x-content-type-options"), "nosniff")

    # -- floods ------------------------------------------------------------------------

    async def test_made_up_kids_do_not_make_the_daemon_fetch_keys(self) -> None:
        r = await self.results()
        flood = r.kid_flood
        for answer in flood["http"]:
            error = self.assertJsonError(answer, 401, {"Unauthenticated"}, "random kid")
            self.assertIn("no key with kid", error["message"])
        for messages in flood["sockets"]:
            self.assertEqual([m["type"] for m in messages], ["AuthError"])
        self.assertEqual([m["type"] for m in flood["burst"]], ["AuthError"])
        # 55 tokens and 100 more in a burst: at most one more fetch (an interval
        # may have passed since the keys were first fetched).
        fetched = flood["after"]["jwks"] - flood["before"]["jwks"]
        self.assertLessEqual(fetched, 1, flood)

    async def test_an_authenticate_flood_is_answered_in_order(self) -> None:
        r = await self.results()
        messages, count = r.auth_flood["messages"], r.auth_flood["count"]
        self.assertFalse([m for m in messages if m["type"] in ("AuthError", "FatalError")])
        transitions = [m for m in messages if m["type"] == "Transition"]
        identities = [t["endVersion"]["identity"] for t in transitions]
        self.assertEqual(identities, sorted(identities))
        self.assertEqual(identities[-1], count)
        # No amplification: at most one transition per Authenticate (they coalesce).
        self.assertLessEqual(len(transitions), count + 1)
        self.assertEqual(latest_value(messages)["value"]["name"], f"user {count - 1}")
        (response,) = [m for m in messages if m["type"] == "MutationResponse"]
        self.assertTrue(response["success"], response)
        self.assertEqual(response["result"]["name"], f"user {count - 1}")

    # -- the log -------------------------------------------------------------------------

    async def test_no_secret_reaches_the_log(self) -> None:
        r = await self.results()
        log = r.output
        self.assertIn("Sync session authentication failed", log)  # the log is the real one
        self.assertIn("/api/storage/upload", log)  # access lines (debug) are in it
        self.assertIn("The admin key is never logged", log)
        rest = log
        secrets = {**r.secrets, "admin key": r.admin_key, "instance secret": r.instance_secret}
        for name, secret in secrets.items():
            self.assertNotIn(secret, rest, name)
            # Not even a recognisable part of it (the admin key's hex, a JWT's signature).
            unique = secret.rpartition("|")[2]
            for part in (unique[:24], unique[-24:]):
                self.assertNotIn(part, rest, name)

    async def test_nothing_failed_and_the_daemon_kept_serving(self) -> None:
        r = await self.results()
        self.assertEqual(r.storage["alive"].status, 200)
        failed = [entry for entry in r.statuses if entry[2] >= 500]
        self.assertEqual(failed, [])
        self.assertNotIn("Traceback", r.output)


class DashboardSourceTests(TestCase):
    """The dashboard's code, read: no HTML sinks, no inline code, no key in URLs."""

    def sources(self) -> dict[str, str]:
        files = sorted(STATIC.rglob("*.js")) + sorted(STATIC.rglob("*.html"))
        self.assertGreater(len(files), 5)
        return {str(f.relative_to(STATIC)): f.read_text() for f in files}

    def test_no_html_sinks_or_code_from_strings(self) -> None:
        sinks = re.compile(
            r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\s*\(|"
            r"new\s+Function\s*\(|set(?:Timeout|Interval)\s*\(\s*['\"`]|\.srcdoc|"
            r"createContextualFragment|DOMParser|javascript:"
        )
        for name, text in self.sources().items():
            self.assertIsNone(sinks.search(text), f"{name}: {sinks.search(text)}")

    def test_no_inline_scripts_styles_or_handlers(self) -> None:
        html = (STATIC / "index.html").read_text()
        self.assertIsNone(re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html))
        self.assertIsNone(re.search(r"\son[a-z]+\s*=", html, re.IGNORECASE))
        self.assertIsNone(re.search(r"<style\b", html))
        self.assertIsNone(re.search(r"\sstyle\s*=", html))

    def test_the_admin_key_stays_out_of_urls_and_cookies(self) -> None:
        sources = self.sources()
        for name, text in sources.items():
            self.assertNotIn("document.cookie", text, name)
            self.assertNotIn("localStorage", text, name)
            self.assertIsNone(re.search(r"[?&](admin_?key|key|token)=", text, re.I), name)
        api = sources["api.js"]
        # The key goes in the Authorization header, requests carry no credentials.
        self.assertIn("headers.Authorization = authorization(useKey, identity)", api)
        self.assertIn('credentials: "omit"', api)
        self.assertRegex(api, r"sessionStorage\.getItem\(KEY\)")
