"""Fixtures for the dashboard's browser tests: a real daemon, real headless Chromium.

- :func:`dashboard_daemon` starts ``twistd -n convex`` (tests/daemon.py) and
  deploys ``tests/dashboard/app`` with ``convex-backend deploy``.
- :class:`Browser` drives Debian's ``chromium`` through Playwright's sync API.
  It blocks, so tests run it in a thread (``deferToThread``) while the reactor
  keeps serving the daemon's output. No browser is ever downloaded: the
  executable is ``/usr/bin/chromium`` (or ``$CONVEX_TEST_CHROMIUM``), and a
  missing one fails the tests, it never skips them (CI installs it).
- Screenshots go to ``$CONVEX_TEST_ARTIFACTS/dashboard-screenshots`` or, by
  default, ``dashboard-screenshots/`` in trial's working directory
  (``_trial_temp``), which git ignores.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.clients._support import FixtureError, deployed_daemon
from tests.daemon import Daemon

APP = Path(__file__).resolve().parent / "app"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
#: Playwright's wait for any one condition; generous because CI machines are shared.
TIMEOUT_MS = 30_000


def chromium_path() -> str:
    """Debian's Chromium: ``$CONVEX_TEST_CHROMIUM``, ``chromium`` on PATH, /usr/bin/chromium."""
    configured = os.environ.get("CONVEX_TEST_CHROMIUM")
    candidates = [configured] if configured else [shutil.which("chromium"), DEFAULT_CHROMIUM]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise FixtureError(
        "The dashboard browser tests need Debian's Chromium "
        f"({configured or DEFAULT_CHROMIUM} was not found). Install it with "
        "`apt-get install -y chromium` (CI's .ci/run does), or point "
        "CONVEX_TEST_CHROMIUM at a Chromium executable."
    )


def artifacts_dir() -> Path:
    root = os.environ.get("CONVEX_TEST_ARTIFACTS")
    base = Path(root) if root else Path.cwd()
    path = (base / "dashboard-screenshots").absolute()
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- the daemon ----------------------------------------------------------------------


async def dashboard_daemon(data_dir: str) -> Daemon:
    """Start the daemon on free ports and deploy ``tests/dashboard/app``."""
    return await deployed_daemon(data_dir, APP, workers=1)


# -- plain HTTP from the browser thread ----------------------------------------------


class Http:
    """Blocking JSON calls to the daemon, for checks made from the browser's thread."""

    def __init__(self, base_url: str, admin_key: str) -> None:
        self.base_url = base_url
        self.admin_key = admin_key

    def call(self, method: str, path: str, body: Any = None, *, admin: bool = True):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        if admin:
            request.add_header("Authorization", f"Convex {self.admin_key}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = self.call(method, path, body)
        if status != 200:
            raise AssertionError(f"{method} {path} answered {status}: {answer}")
        return answer

    def mutation(self, path: str, args: dict) -> Any:
        answer = self.ok("POST", "/api/mutation", {"path": path, "args": args})
        if answer.get("status") != "success":
            raise AssertionError(f"{path} failed: {answer}")
        return answer["value"]

    def documents(self, table: str) -> list[dict]:
        return self.ok("GET", f"/api/tables/{table}/documents?numItems=1000")["page"]


# -- the browser ----------------------------------------------------------------------


class Browser:
    """Headless Chromium via Playwright (sync API: use it from one thread only)."""

    def __init__(self, base_url: str, admin_key: str, name: str) -> None:
        self.base_url = base_url
        self.admin_key = admin_key
        self.name = name
        self.shots = artifacts_dir()
        self.problems: list[str] = []
        self.http = Http(base_url, admin_key)

    def __enter__(self) -> Browser:
        from playwright.sync_api import expect, sync_playwright

        executable = chromium_path()
        expect.set_options(timeout=TIMEOUT_MS)
        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(
                executable_path=executable, args=CHROMIUM_ARGS, headless=True
            )
        except Exception:
            self._playwright.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self._browser.close()
        finally:
            self._playwright.stop()

    def page(self, viewport: dict = DESKTOP):
        """A fresh page (its own context: its own sessionStorage) at ``viewport``."""
        context = self._browser.new_context(viewport=viewport)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.on("pageerror", lambda error: self.problems.append(f"uncaught: {error}"))

        def console(message) -> None:
            text = message.text
            # CSP violations are reported on the console only.
            if "Content Security Policy" in text or "Refused to" in text:
                self.problems.append(f"console: {text}")

        page.on("console", console)
        return page

    def open(self, page, fragment: str = "") -> None:
        page.goto(f"{self.base_url}/dashboard/{fragment}")

    def login(self, page, key: str | None = None) -> None:
        from playwright.sync_api import expect

        self.open(page)
        expect(page.locator("#login")).to_be_visible()
        page.fill("#admin-key", key or self.admin_key)
        page.click("#login-submit")
        expect(page.locator("#shell")).to_be_visible()

    def shot(self, page, label: str) -> Path:
        size = page.viewport_size or {}
        path = self.shots / f"{self.name}-{size.get('width')}x{size.get('height')}-{label}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def check_no_problems(self) -> None:
        if self.problems:
            raise AssertionError("the page reported problems:\n" + "\n".join(self.problems))
