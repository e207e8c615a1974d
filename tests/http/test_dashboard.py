"""Serving the dashboard's static files: types, headers, redirects, and no way out of static/."""

from __future__ import annotations

import configparser
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath

from treq.testing import StubTreq
from twisted.internet import task
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource

from convex_backend.http import dashboard
from convex_backend.http.cors import CorsResource
from convex_backend.http.dashboard import CONTENT_TYPES, DashboardResource, static_dir
from convex_backend.http.root import RootApp
from tests.helpers import make_deployment

REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "static"
BASE = "http://convex.test"


class Fetcher:
    """StubTreq over a resource, pumped while the file is read in a thread."""

    def __init__(self, resource) -> None:
        self.treq = StubTreq(resource)

    async def __call__(self, method: str, path: str, headers: dict | None = None):
        d = self.treq.request(method, BASE + path, headers=headers or {}, allow_redirects=False)
        pump = task.LoopingCall(self.treq.flush)
        pump.start(0.002)
        try:
            response = await d
            content = await response.content()
        finally:
            pump.stop()
        return response, content


def header(response, name: str) -> str | None:
    values = response.headers.getRawHeaders(name)
    return values[0].decode() if values and isinstance(values[0], bytes) else (values or [None])[0]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags_of(html: str) -> list[tuple[str, dict]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


class ServingTests(TestCase):
    """The real static/ directory through the daemon's whole resource tree."""

    def setUp(self) -> None:
        deployment = make_deployment(Path(self.mktemp()).absolute())
        self.fetch = Fetcher(CorsResource(RootApp(deployment).resource()))

    def test_static_dir_is_the_checkout(self) -> None:
        self.assertEqual(static_dir(), STATIC.resolve())

    async def test_dashboard_without_a_slash_redirects(self) -> None:
        response, content = await self.fetch("GET", "/dashboard")
        self.assertEqual(response.code, 301)
        self.assertEqual(header(response, "location"), "/dashboard/")
        self.assertIn(b"/dashboard/", content)

    async def test_index_with_security_and_cache_headers(self) -> None:
        response, content = await self.fetch("GET", "/dashboard/")
        self.assertEqual(response.code, 200)
        self.assertEqual(content, (STATIC / "index.html").read_bytes())
        self.assertEqual(header(response, "content-type"), "text/html; charset=utf-8")
        csp = header(response, "content-security-policy")
        self.assertTrue(csp.startswith("default-src 'self';"), csp)
        self.assertNotIn("unsafe-inline", csp)
        self.assertNotIn("unsafe-eval", csp)
        self.assertIn("frame-ancestors 'none'", csp)
        self.assertEqual(header(response, "x-content-type-options"), "nosniff")
        self.assertEqual(header(response, "cache-control"), "no-cache")
        self.assertRegex(header(response, "etag"), r'^"[0-9a-f]{32}"$')
        # The index is also reachable by name; no admin key is needed for any file.
        response, same = await self.fetch("GET", "/dashboard/index.html")
        self.assertEqual((response.code, same), (200, content))

    async def test_every_file_is_served_with_its_type(self) -> None:
        files = [p for p in STATIC.rglob("*") if p.is_file()]
        self.assertGreaterEqual(len(files), 10)
        for path in files:
            relative = path.relative_to(STATIC).as_posix()
            self.assertIn(path.suffix, CONTENT_TYPES, f"{relative} has a type the server refuses")
            response, content = await self.fetch("GET", f"/dashboard/{relative}")
            self.assertEqual(response.code, 200, relative)
            self.assertEqual(content, path.read_bytes(), relative)
            self.assertEqual(header(response, "content-type"), CONTENT_TYPES[path.suffix].decode())
        response, _ = await self.fetch("GET", "/dashboard/app.js")
        self.assertEqual(header(response, "content-type"), "text/javascript; charset=utf-8")

    async def test_references_and_module_imports_resolve(self) -> None:
        html = (STATIC / "index.html").read_text()
        wanted = {attrs.get("src") or attrs.get("href") for _tag, attrs in tags_of(html)}
        wanted = {w for w in wanted if w and not w.startswith("#")}
        self.assertIn("app.js", wanted)
        self.assertIn("style.css", wanted)
        for script in STATIC.rglob("*.js"):
            folder = PurePosixPath(script.relative_to(STATIC).as_posix()).parent
            for target in re.findall(
                r"""^\s*(?:import|export)\b[^;]*?from\s+["']([^"']+)["']""",
                script.read_text(),
                re.MULTILINE | re.DOTALL,
            ):
                self.assertTrue(target.startswith("."), f"{script.name} imports {target}")
                resolved = PurePosixPath(*(folder / target).parts)
                parts: list[str] = []
                for part in resolved.parts:
                    if part == "..":
                        parts.pop()
                    elif part != ".":
                        parts.append(part)
                wanted.add("/".join(parts))
        self.assertIn("pages/data.js", wanted)
        for reference in sorted(wanted):
            response, _ = await self.fetch("GET", f"/dashboard/{reference}")
            self.assertEqual(response.code, 200, reference)

    async def test_revalidation_and_head(self) -> None:
        response, content = await self.fetch("GET", "/dashboard/style.css")
        etag = header(response, "etag")
        response, again = await self.fetch(
            "GET", "/dashboard/style.css", headers={"If-None-Match": etag}
        )
        self.assertEqual((response.code, again), (304, b""))
        self.assertEqual(header(response, "etag"), etag)
        response, head = await self.fetch("HEAD", "/dashboard/style.css")
        self.assertEqual((response.code, head), (200, b""))
        self.assertEqual(header(response, "content-length"), str(len(content)))

    async def test_only_get_and_head(self) -> None:
        for method in ("POST", "PUT", "DELETE"):
            response, content = await self.fetch(method, "/dashboard/index.html")
            self.assertEqual(response.code, 405, method)
            self.assertEqual(json.loads(content)["code"], "MethodNotAllowed")
            self.assertEqual(header(response, "allow"), "GET, HEAD")

    async def test_unknown_files_are_json_404s(self) -> None:
        for path in ("/dashboard/nope.js", "/dashboard/pages/", "/dashboard/pages", "/dashboardx"):
            response, content = await self.fetch("GET", path)
            self.assertEqual(response.code, 404, path)
            self.assertEqual(set(json.loads(content)), {"code", "message"})


class NoInlineCodeTests(TestCase):
    """What the Content-Security-Policy would block must not be there in the first place."""

    def test_html_has_no_inline_script_style_or_handlers(self) -> None:
        for page in STATIC.rglob("*.html"):
            for tag, attrs in tags_of(page.read_text()):
                if tag == "script":
                    self.assertIn("src", attrs, f"inline <script> in {page.name}")
                    self.assertEqual(attrs.get("type"), "module")
                self.assertNotEqual(tag, "style", f"<style> in {page.name}")
                self.assertNotIn("style", attrs, f"style attribute on <{tag}> in {page.name}")
                for name in attrs:
                    self.assertFalse(name.startswith("on"), f"{name} handler in {page.name}")
                for name in ("src", "href"):
                    value = attrs.get(name) or ""
                    self.assertNotRegex(value, r"^(https?:)?//", f"remote {value} in {page.name}")

    def test_scripts_build_the_dom_without_html_strings(self) -> None:
        for script in STATIC.rglob("*.js"):
            text = script.read_text()
            for forbidden in (
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "eval(",
                "new Function",
                "document.write",
                "http://",
                "https://cdn",
            ):
                self.assertNotIn(forbidden, text, f"{forbidden} in {script.name}")
            self.assertNotIn("localStorage.setItem", text, script.name)
            self.assertNotIn("document.cookie", text, script.name)


class ConfinementTests(TestCase):
    """A static directory with traps around it: nothing outside it is ever served."""

    def setUp(self) -> None:
        base = Path(self.mktemp()).absolute()
        root = base / "static"
        (root / "sub").mkdir(parents=True)
        (root / "index.html").write_text("<!doctype html><title>t</title>")
        (root / "app.js").write_text("export {};")
        (root / "sub" / "ok.js").write_text("export const ok = 1;")
        (root / ".hidden.js").write_text("secret")
        (base / "outside.js").write_text("outside")
        (root / "link.js").symlink_to(base / "outside.js")
        (root / "notes.py").write_text("print('source')")
        self.root = root
        self.resource = DashboardResource(root)
        tree = Resource()
        tree.putChild(b"dashboard", self.resource)
        self.fetch = Fetcher(tree)

    async def test_files_inside_are_served(self) -> None:
        response, content = await self.fetch("GET", "/dashboard/sub/ok.js")
        self.assertEqual((response.code, content), (200, b"export const ok = 1;"))

    async def test_nothing_outside_or_hidden(self) -> None:
        for path in (
            "/dashboard/%2e%2e/outside.js",
            "/dashboard/sub/%2e%2e/%2e%2e/outside.js",
            "/dashboard/sub%2f..%2f..%2foutside.js",
            "/dashboard/..%5coutside.js",
            "/dashboard/.hidden.js",
            "/dashboard/link.js",
            "/dashboard/notes.py",
            "/dashboard/sub",
            "/dashboard/sub/",
            "/dashboard/app.js%00.html",
            "/dashboard/%ff.js",
            "/dashboard//app.js",
        ):
            response, content = await self.fetch("GET", path)
            self.assertEqual(response.code, 404, path)
            self.assertNotIn(b"outside", content)
            self.assertNotIn(b"secret", content)
            self.assertEqual(json.loads(content)["code"], "NotFound")

    def test_segments_that_are_refused(self) -> None:
        refused = [
            [b".."],
            [b"..", b"outside.js"],
            [b"sub", b"..", b"..", b"outside.js"],
            [b"sub/../../outside.js"],
            [b"..\\outside.js"],
            [b".hidden.js"],
            [b"link.js"],
            [b"sub"],
            [b"app.js\x00"],
            [b"\xff.js"],
            [b"", b"app.js"],
        ]
        for segments in refused:
            self.assertIsNone(self.resource._resolve(segments), segments)
        self.assertEqual(self.resource._resolve([b""]), (self.root / "index.html").resolve())
        self.assertEqual(
            self.resource._resolve([b"sub", b"ok.js"]), (self.root / "sub" / "ok.js").resolve()
        )

    async def test_a_missing_static_directory_gives_404s(self) -> None:
        tree = Resource()
        tree.putChild(b"dashboard", DashboardResource(self.root / "does-not-exist"))
        response, content = await Fetcher(tree)("GET", "/dashboard/")
        self.assertEqual(response.code, 404)
        error = json.loads(content)
        self.assertEqual(error["code"], "NotFound")
        self.assertIn("not installed", error["message"])


class LocationTests(TestCase):
    def test_setup_cfg_installs_every_static_file(self) -> None:
        """Each file of static/ matches a data_files glob that installs it where it belongs."""
        config = configparser.ConfigParser()
        config.read(REPO / "setup.cfg")
        entries = config["options.data_files"]
        installed: dict[str, str] = {}
        for target, patterns in entries.items():
            for pattern in filter(
                None, (p.strip() for p in patterns.replace("\n", ",").split(","))
            ):
                for path in REPO.glob(pattern):
                    installed[path.relative_to(STATIC).as_posix()] = target
        for path in STATIC.rglob("*"):
            if path.is_file():
                relative = path.relative_to(STATIC)
                self.assertIn(relative.as_posix(), installed, "not installed by setup.cfg")
                expected = (PurePosixPath("share/convex-backend/static") / relative).parent
                self.assertEqual(installed[relative.as_posix()], str(expected))

    def test_installed_data_directory_is_a_candidate(self) -> None:
        """``pip install .`` puts the files under <prefix>/share/convex-backend/static."""
        prefix = Path(self.mktemp()).absolute()
        installed = prefix / "share" / "convex-backend" / "static"
        installed.mkdir(parents=True)
        for name in ("index.html", "app.js"):
            (installed / name).write_text("x")
        self.patch(dashboard, "_checkout_static", lambda: prefix / "no-checkout")
        self.patch(sys, "prefix", str(prefix))
        self.assertEqual(dashboard.find_static_dir(), installed.resolve())
        (installed / "app.js").unlink()
        self.assertIsNone(dashboard.find_static_dir())
