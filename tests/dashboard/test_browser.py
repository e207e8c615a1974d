"""The dashboard in real headless Chromium against a real daemon.

Each test starts the daemon (tests/daemon.py), deploys ``tests/dashboard/app``
and drives ``/dashboard/`` with Playwright in a thread; checks of what the
daemon stored go through its HTTP API. Screenshots are saved as artifacts
(see ``_browser.py``); a page error or a Content-Security-Policy violation
fails the test.
"""

from __future__ import annotations

import json
import os
import re
import uuid

from twisted.internet import threads
from twisted.trial.unittest import TestCase

from tests.clients._support import stop_daemon
from tests.dashboard._browser import (
    DESKTOP,
    PHONE,
    TIMEOUT_MS,
    Browser,
    FixtureError,
    chromium_path,
    dashboard_daemon,
)

PAGES = ["data", "functions", "logs", "schedules", "files", "settings"]
#: Something each page shows once its data has loaded (in the layout test).
READY = {
    "data": "tr.doc-row",
    "functions": ".function-list tbody tr",
    "logs": "tr.log-row",
    "schedules": ".crons tbody tr",
    "files": ".files .table-wrap",
    "settings": ".env tbody tr",
}
WRONG_KEY = "convex-self-hosted|01" + "00" * 32


def expect(locator_or_page):
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=TIMEOUT_MS)
    return playwright_expect(locator_or_page)


def session_key(page) -> str | None:
    return page.evaluate("sessionStorage.getItem('convex-dashboard.adminKey')")


def horizontal_overflow(page) -> int:
    """How many CSS pixels the page is wider than the viewport (0: none)."""
    return page.evaluate(
        "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        " - window.innerWidth"
    )


def set_editor(page, change) -> None:
    """Edit the JSON in the open dialog's editor: ``change(dict) -> dict``."""
    area = page.locator("dialog textarea.json-input")
    value = json.loads(area.input_value())
    area.fill(json.dumps(change(value), indent=2))


class BrowserTestCase(TestCase):
    timeout = 400

    async def in_browser(self, scenario):
        """Run ``scenario(browser)`` in a thread against a fresh daemon; its result."""
        chromium_path()  # Fail at once, with instructions, when Chromium is missing.
        data_dir = os.path.abspath(self.mktemp())
        os.makedirs(data_dir)
        daemon = await dashboard_daemon(data_dir)
        try:
            return await threads.deferToThread(self._browse, daemon, scenario)
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- daemon output (tail)\n{daemon.output[-4000:]}") from e
        finally:
            await stop_daemon(daemon)

    def _browse(self, daemon, scenario):
        with Browser(daemon.api_url, daemon.admin_key, self._testMethodName) as browser:
            result = scenario(browser)
            browser.check_no_problems()
            return result


class LoginTests(BrowserTestCase):
    async def test_wrong_key_refused_then_login_logout_and_401(self):
        def scenario(browser: Browser) -> dict:
            page = browser.page()
            # Without the trailing slash the daemon redirects to the index.
            page.goto(f"{browser.base_url}/dashboard")
            expect(page).to_have_url(re.compile(r"/dashboard/$"))
            expect(page.locator("#login")).to_be_visible()
            expect(page.locator("#shell")).to_be_hidden()

            page.fill("#admin-key", WRONG_KEY)
            page.click("#login-submit")
            expect(page.locator("#login-error")).to_contain_text("refused")
            expect(page.locator("#shell")).to_be_hidden()
            after_wrong = session_key(page)
            browser.shot(page, "wrong-key")

            page.fill("#admin-key", browser.admin_key)
            page.click("#login-submit")
            expect(page.locator("#shell")).to_be_visible()
            expect(page.locator("#view h1")).to_have_text("Data")
            stored = {
                "session": session_key(page),
                "cookies": page.context.cookies(),
                "local": page.evaluate("localStorage.length"),
                "documentCookie": page.evaluate("document.cookie"),
            }
            browser.shot(page, "logged-in")

            # A key the daemon stops accepting: any 401 returns to the login screen.
            page.evaluate(
                "key => sessionStorage.setItem('convex-dashboard.adminKey', key)", WRONG_KEY
            )
            page.click("#nav a[data-page=functions]")
            expect(page.locator("#login")).to_be_visible()
            expect(page.locator("#login-error")).to_contain_text("no longer accepted")
            after_401 = session_key(page)

            browser.login(page)
            page.click("#logout")
            expect(page.locator("#login")).to_be_visible()
            after_logout = session_key(page)
            # A reload after logging out still shows the login screen.
            page.reload()
            expect(page.locator("#login")).to_be_visible()
            return {
                "after_wrong": after_wrong,
                "stored": stored,
                "after_401": after_401,
                "after_logout": after_logout,
            }

        result = await self.in_browser(scenario)
        self.assertIsNone(result["after_wrong"])
        self.assertTrue(result["stored"]["session"].startswith("convex-self-hosted|"))
        self.assertEqual(result["stored"]["cookies"], [])
        self.assertEqual(result["stored"]["documentCookie"], "")
        self.assertEqual(result["stored"]["local"], 0)
        self.assertIsNone(result["after_401"])
        self.assertIsNone(result["after_logout"])


class DataTests(BrowserTestCase):
    async def test_browse_filter_edit_insert_delete_clear(self):
        def scenario(browser: Browser) -> dict:
            http = browser.http
            ids = {
                text: http.mutation("tasks:add", {"text": text})
                for text in ("alpha", "beta", "gamma")
            }
            page = browser.page()
            browser.login(page)

            # Browse: the table list and its documents.
            tables = page.locator(".table-list a[data-table=tasks]")
            expect(tables).to_contain_text("3")
            rows = page.locator("tr.doc-row")
            expect(rows).to_have_count(3)
            for text in ids:
                cell = page.locator("tr.doc-row td[data-field=text]", has_text=text)
                expect(cell).to_have_count(1)
            browser.shot(page, "browse")

            # Filter on the server: text == "beta".
            page.locator(".filter-field").first.fill("text")
            page.locator(".filter-value").first.fill("beta")
            page.click("text=Apply filter")
            expect(rows).to_have_count(1)
            expect(rows.first).to_contain_text(ids["beta"])
            browser.shot(page, "filtered")
            page.click("text=Reset")
            expect(rows).to_have_count(3)

            # View, then edit a document.
            page.locator(f"tr.doc-row[data-id='{ids['alpha']}']").click()
            panel = page.locator(".doc-panel")
            expect(panel).to_contain_text('"text": "alpha"')
            before = next(d for d in http.documents("tasks") if d["_id"] == ids["alpha"])

            # Invalid JSON is caught before anything is sent.
            panel.locator("text=Edit").click()
            page.locator("dialog textarea.json-input").fill('{"text": ')
            expect(page.locator("dialog .json-status")).to_have_class(re.compile("error"))
            page.click("dialog button[type=submit]")
            expect(page.locator("dialog p.error[role=alert]")).to_contain_text("Invalid JSON")
            page.click("dialog >> text=Cancel")

            # A document the schema refuses: the daemon's message is shown.
            panel.locator("text=Edit").click()
            set_editor(page, lambda d: {**d, "done": "yes"})
            page.click("dialog button[type=submit]")
            expect(page.locator("dialog p.error[role=alert]")).to_contain_text(
                "does not match the schema"
            )
            browser.shot(page, "schema-error")
            page.click("dialog >> text=Cancel")

            panel.locator("text=Edit").click()
            set_editor(page, lambda d: {**d, "text": "alpha, edited in the browser", "done": True})
            browser.shot(page, "editing")
            page.click("dialog button[type=submit]")
            expect(page.locator("#notice")).to_contain_text("Document saved")
            edited_row = page.locator(f"tr.doc-row[data-id='{ids['alpha']}']")
            expect(edited_row).to_contain_text("alpha, edited in the browser")
            expect(panel).to_contain_text('"done": true')
            after_edit = next(d for d in http.documents("tasks") if d["_id"] == ids["alpha"])
            browser.shot(page, "edited")

            # Insert.
            page.click("text=Add document")
            page.locator("dialog textarea.json-input").fill('{"text": "delta", "done": false}')
            page.click("dialog button[type=submit]")
            expect(page.locator("#notice")).to_contain_text("Inserted")
            expect(rows).to_have_count(4)
            expect(tables).to_contain_text("4")
            after_insert = http.documents("tasks")

            # Delete the inserted one through the selection.
            delta = page.locator("tr.doc-row", has_text="delta")
            delta.locator("input[type=checkbox]").check()
            page.click("text=Delete selected (1)")
            page.click("dialog button[type=submit]")
            expect(rows).to_have_count(3)
            after_delete = http.documents("tasks")

            # Clear the table.
            page.click("text=Clear table")
            page.click("dialog button[type=submit]")
            expect(rows).to_have_count(0)
            expect(page.locator(".results")).to_contain_text("No documents")
            browser.shot(page, "cleared")
            after_clear = http.ok("GET", "/api/tables")["tables"]
            return {
                "ids": ids,
                "before": before,
                "after_edit": after_edit,
                "after_insert": after_insert,
                "after_delete": after_delete,
                "after_clear": after_clear,
            }

        result = await self.in_browser(scenario)
        before, after = result["before"], result["after_edit"]
        self.assertEqual(before["text"], "alpha")
        self.assertEqual(after["text"], "alpha, edited in the browser")
        self.assertIs(after["done"], True)
        self.assertEqual(after["_creationTime"], before["_creationTime"])
        self.assertEqual(
            sorted(d["text"] for d in result["after_insert"]),
            ["alpha, edited in the browser", "beta", "delta", "gamma"],
        )
        self.assertEqual(
            sorted(d["text"] for d in result["after_delete"]),
            ["alpha, edited in the browser", "beta", "gamma"],
        )
        self.assertEqual(result["after_clear"], [{"name": "tasks", "documentCount": 0}])


class FunctionsAndLogsTests(BrowserTestCase):
    async def test_run_functions_and_see_the_log_line(self):
        marker = uuid.uuid4().hex[:12]
        later = uuid.uuid4().hex[:12]

        def scenario(browser: Browser) -> dict:
            page = browser.page()
            browser.login(page)
            page.click("#nav a[data-page=functions]")
            expect(page.locator("#view h1")).to_have_text("Functions")
            listed = page.locator(".function-list tbody tr").all_inner_texts()

            # An internal function, which admins may run, with JSON arguments.
            page.click("text=tasks:shout")
            page.locator("textarea[name=args]").fill(json.dumps({"marker": marker}))
            page.click("button:has-text('Run Mutation')")
            output = page.locator(".run-output")
            expect(output).to_contain_text("Succeeded")
            expect(output.locator(".log-lines")).to_contain_text(f"dashboard says {marker}")
            expect(output).to_contain_text(f'"marker": "{marker}"')
            browser.shot(page, "run-result")

            # Acting as a user.
            page.click("text=tasks:whoami")
            page.check("#act-as")
            page.locator("textarea[name=identity]").fill(
                json.dumps({"subject": "browser-user", "issuer": "https://issuer.test"})
            )
            page.click("button:has-text('Run Query')")
            expect(output).to_contain_text("Succeeded")
            expect(output.locator("pre.code").first).to_have_text('"browser-user"')

            # A failing function shows its error.
            page.click("text=tasks:fail")
            page.click("button:has-text('Run Action')")
            expect(output).to_contain_text("Failed")
            expect(output).to_contain_text("this action always fails")
            browser.shot(page, "run-error")

            # The Logs page streams the execution with its log line.
            page.click("#nav a[data-page=logs]")
            line = page.locator("tr.log-row.line", has_text=f"dashboard says {marker}")
            expect(line).to_have_count(1)
            expect(line).to_contain_text("tasks:shout")
            expect(line).to_contain_text("LOG")
            failure = page.locator("tr.log-row.completion.failure", has_text="tasks:fail")
            expect(failure.first).to_contain_text("this action always fails")
            browser.shot(page, "logs")

            # Filters.
            page.fill(".log-filter-function", "whoami")
            expect(line).to_have_count(0)
            page.fill(".log-filter-function", "")
            page.select_option(".log-filter-status", "failure")
            expect(line).to_have_count(0)
            expect(failure.first).to_be_visible()
            page.select_option(".log-filter-status", "")
            page.fill(".log-filter-text", marker)
            expect(line).to_have_count(1)
            page.fill(".log-filter-text", "")

            # Live: a new execution appears without reloading.
            browser.http.ok(
                "POST", "/api/function", {"path": "tasks:shout", "args": {"marker": later}}
            )
            fresh = page.locator("tr.log-row.line", has_text=f"dashboard says {later}")
            expect(fresh).to_have_count(1)

            # Pause, clear, resume.
            page.click("button:has-text('Pause')")
            expect(page.locator(".live-status")).to_have_text("Paused")
            page.click("button:has-text('Clear')")
            expect(page.locator("tr.log-row")).to_have_count(0)
            page.click("button:has-text('Resume')")
            expect(page.locator(".live-status")).to_have_text("Live")
            return {"listed": listed}

        result = await self.in_browser(scenario)
        listed = "\n".join(result["listed"])
        for path in ("tasks:add", "tasks:list", "tasks:shout", "tasks:whoami", "tasks:fail"):
            self.assertIn(path, listed)
        shout = next(row for row in result["listed"] if "tasks:shout" in row)
        self.assertIn("internal", shout)
        self.assertIn("marker: string", shout)


class OperationsTests(BrowserTestCase):
    async def test_schedules_files_and_environment_variables(self):
        payload = bytes(range(256)) * 8

        def scenario(browser: Browser) -> dict:
            http = browser.http
            job_id = http.mutation("tasks:later", {"text": "from the future"})
            page = browser.page()
            browser.login(page)

            # Scheduled functions and cron jobs.
            page.click("#nav a[data-page=schedules]")
            job = page.locator(".jobs tbody tr", has_text=job_id)
            expect(job).to_contain_text("tasks:add")
            expect(job).to_contain_text("pending")
            expect(job).to_contain_text("from the future")
            crons = page.locator(".crons tbody")
            expect(crons.locator("tr", has_text="morning report")).to_contain_text(
                "daily at 07:15 UTC"
            )
            expect(crons.locator("tr", has_text="hourly tidy")).to_contain_text("every 1 h")
            browser.shot(page, "schedules")
            job.locator("button:has-text('Cancel')").click()
            page.click("dialog button[type=submit]")
            expect(job).to_contain_text("canceled")
            jobs = http.ok("GET", "/api/scheduled_functions?limit=10")["jobs"]

            # Files: upload, download, delete.
            page.click("#nav a[data-page=files]")
            page.set_input_files(
                "#upload-file",
                files=[{"name": "bytes.bin", "mimeType": "application/x-test", "buffer": payload}],
            )
            page.click("button:has-text('Upload')")
            expect(page.locator("#notice")).to_contain_text("Uploaded bytes.bin")
            row = page.locator(".files tbody tr", has_text="application/x-test")
            expect(row).to_contain_text("2.0 KiB")
            browser.shot(page, "files")
            href = row.locator("a:has-text('Download')").get_attribute("href")
            with page.expect_download() as download_info:
                row.locator("a:has-text('Download')").click()
            downloaded = open(download_info.value.path(), "rb").read()
            listed = http.ok("GET", "/api/storage_files")["page"]
            row.locator("button:has-text('Delete')").click()
            page.click("dialog button[type=submit]")
            expect(page.locator(".files")).to_contain_text("No files stored")
            after_delete = http.ok("GET", "/api/storage_files")["page"]

            # Environment variables: add, then remove.
            page.click("#nav a[data-page=settings]")
            page.click("button:has-text('Add variable')")
            page.fill("#env-name", "FROM_THE_BROWSER")
            page.fill("#env-value", "set in the dashboard")
            page.click("dialog button[type=submit]")
            variable = page.locator(".env tbody tr", has_text="FROM_THE_BROWSER")
            expect(variable).to_contain_text("set in the dashboard")
            env_after_set = http.ok("GET", "/api/list_environment_variables")
            variable.locator("button:has-text('Remove')").click()
            page.click("dialog button[type=submit]")
            expect(variable).to_have_count(0)
            env_after_remove = http.ok("GET", "/api/list_environment_variables")
            return {
                "env_after_set": env_after_set["environmentVariables"],
                "env_after_remove": env_after_remove["environmentVariables"],
                "job_id": job_id,
                "jobs": jobs,
                "href": href,
                "downloaded": downloaded,
                "listed": listed,
                "after_delete": after_delete,
            }

        result = await self.in_browser(scenario)
        job = next(j for j in result["jobs"] if j["id"] == result["job_id"])
        self.assertEqual(job["state"]["kind"], "canceled")
        self.assertEqual(result["downloaded"], payload)
        [stored] = result["listed"]
        self.assertEqual(stored["size"], len(payload))
        self.assertEqual(stored["contentType"], "application/x-test")
        self.assertEqual(result["href"], f"/api/storage/{stored['storageId']}")
        self.assertEqual(result["after_delete"], [])
        self.assertEqual(result["env_after_set"].get("FROM_THE_BROWSER"), "set in the dashboard")
        self.assertNotIn("FROM_THE_BROWSER", result["env_after_remove"])


class LayoutTests(BrowserTestCase):
    async def test_every_page_at_desktop_and_phone_sizes(self):
        def scenario(browser: Browser) -> dict:
            http = browser.http
            http.mutation("tasks:add", {"text": "a task with a rather long text " * 4})
            http.ok(
                "POST",
                "/api/update_environment_variables",
                {"changes": [{"name": "GREETING", "value": "hello from the settings page"}]},
            )
            seen: dict = {}
            for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
                page = browser.page(viewport)
                browser.login(page)
                toggle = page.locator("#menu-toggle")
                nav_link = page.locator("#nav a[data-page=settings]")
                seen[label] = {
                    "toggle": toggle.is_visible(),
                    "nav_before": nav_link.is_visible(),
                }
                for name in PAGES:
                    if label == "phone":
                        expect(page.locator(f"#nav a[data-page={name}]")).to_be_hidden()
                        toggle.click()
                        expect(toggle).to_have_attribute("aria-expanded", "true")
                        if name == "settings":
                            browser.shot(page, "menu-open")
                    page.click(f"#nav a[data-page={name}]")
                    expect(page.locator("#view")).to_have_attribute("data-page", name)
                    expect(page.locator("#view h1")).to_have_text(name.capitalize())
                    expect(page.locator("#view .loading")).to_have_count(0)
                    if label == "phone":
                        # Choosing a page closes the menu again.
                        expect(page.locator("#nav")).not_to_have_class(re.compile("open"))
                    # The page's data has arrived (so overflow is measured on real content).
                    expect(page.locator(READY[name]).first).to_be_visible()
                    seen[label][name] = horizontal_overflow(page)
                    browser.shot(page, name)
                settings = page.locator("#view")
                seen[label]["settings_text"] = settings.inner_text()
            return seen

        seen = await self.in_browser(scenario)
        self.assertEqual(seen["desktop"]["toggle"], False)
        self.assertEqual(seen["desktop"]["nav_before"], True)
        self.assertEqual(seen["phone"]["toggle"], True)
        self.assertEqual(seen["phone"]["nav_before"], False)
        for label in ("desktop", "phone"):
            for name in PAGES:
                self.assertLessEqual(seen[label][name], 0, f"{label} {name} overflows sideways")
            self.assertIn("GREETING", seen[label]["settings_text"])
            self.assertIn("hello from the settings page", seen[label]["settings_text"])
            self.assertIn("convex-self-hosted", seen[label]["settings_text"])


class ChromiumLookupTests(TestCase):
    def test_missing_chromium_fails_with_instructions(self):
        previous = os.environ.get("CONVEX_TEST_CHROMIUM")
        os.environ["CONVEX_TEST_CHROMIUM"] = "/nonexistent/chromium"
        try:
            with self.assertRaises(FixtureError) as caught:
                chromium_path()
        finally:
            if previous is None:
                del os.environ["CONVEX_TEST_CHROMIUM"]
            else:
                os.environ["CONVEX_TEST_CHROMIUM"] = previous
        self.assertIn("apt-get install -y chromium", str(caught.exception))
        # FixtureError is an assertion failure: a missing browser fails, never skips.
        self.assertIsInstance(caught.exception, AssertionError)
