"""examples/chat deployed to the real daemon and used with the real ``convex`` npm client.

One scenario, shared by the tests below (as in tests/clients/test_js_storage.py):
the daemon starts, ``convex-backend deploy examples/chat/convex`` pushes the
example, and ``node examples/chat/client.mjs picture.png`` runs with
``convex@1.48.0``, exactly as the example's README tells users to. The script
subscribes to ``messages:list`` with ``ConvexClient``, sends ``@bot hello``,
uploads the picture with fetch, posts it, downloads it again from the URL the
query returns, and waits for the bot's scheduled reply to arrive through the
subscription. Then the test looks at the same deployment over HTTP (the image
URL, the scheduled job, the cron jobs, the stats the cron job wrote, acting as a
user) and finally deploys the example with its commented-out auth providers
turned on: shapes only, no provider is contacted.

(tests/test_functions_end_to_end.py covers the chat's older functions over HTTP.)
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import struct
import sys
import tempfile
import zlib
from pathlib import Path

import treq
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.clients._support import (
    JS,
    FixtureError,
    Once,
    deployed_daemon,
    ensure_js_client,
    node_env,
    node_paths,
    stop_daemon,
)
from tests.daemon import REPO, Daemon
from tests.processes import run_process

CHAT = REPO / "examples" / "chat"
#: The bot's delay in examples/chat/convex/messages.py (BOT_DELAY_MS).
BOT_DELAY = 1.0


def png(width: int, height: int) -> bytes:
    """A real PNG image (an orange gradient), built here so no binary file is needed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(
        b"\x00" + b"".join(bytes((255, (x * 8) % 256, y % 256)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PICTURE = png(32, 24)


async def call(daemon: Daemon, kind: str, path: str, args: dict, auth: str = "") -> dict:
    """``POST /api/<kind>`` as a client does; ``auth`` is an Authorization header."""
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = auth
    body = json.dumps({"path": path, "args": args}).encode()
    response = await treq.post(
        f"{daemon.api_url}/api/{kind}", data=body, headers=headers, persistent=False
    )
    return json.loads(await response.content())


async def admin_get(daemon: Daemon, route: str) -> dict:
    response = await treq.get(
        f"{daemon.api_url}/api/{route}",
        headers={"Authorization": f"Convex {daemon.admin_key}"},
        persistent=False,
    )
    return {"status": response.code, "body": json.loads(await response.content())}


async def deploy(daemon: Daemon, directory: Path) -> tuple[int | None, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "CONVEX_SELF_HOSTED_URL": daemon.api_url,
        "CONVEX_SELF_HOSTED_ADMIN_KEY": daemon.admin_key,
    }
    argv = [sys.executable, "-m", "convex_backend.cli", "deploy", str(directory)]
    code, out, err = await run_process(argv, env=env, cwd=REPO, timeout=120)
    return code, out + err


async def run_client(daemon: Daemon, work: Path) -> tuple[int | None, str, str]:
    """``node client.mjs picture.png``, the README's command, with convex@1.48.0.

    The script is copied next to a link to the test install's node_modules: Node
    looks for packages beside the script, and the example ships none.
    """
    node, _ = node_paths()
    (work / "node_modules").symlink_to(JS / "node_modules", target_is_directory=True)
    shutil.copy(CHAT / "client.mjs", work / "client.mjs")
    (work / "picture.png").write_bytes(PICTURE)
    argv = [str(node), str(work / "client.mjs"), str(work / "picture.png")]
    env = node_env(CONVEX_URL=daemon.api_url)
    return await run_process(argv, env=env, cwd=work, timeout=60)


def with_providers(source: Path, target: Path) -> Path:
    """A copy of the example's functions with auth_config.py's providers uncommented."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    config = target / "auth_config.py"
    # Code lines are "    # {..." / "    #     ..." / "    # }," ; prose lines are not.
    text = re.sub(r"(?m)^    # ([{}].*|    \S.*)$", r"    \1", config.read_text())
    config.write_text(text)
    return target


async def eventually(probe, done, timeout: float = 15.0):
    """Poll ``probe()`` until ``done(result)``; the last result either way."""
    waited = 0.0
    while True:
        result = await probe()
        if done(result) or waited >= timeout:
            return result
        await deferLater(reactor, 0.1, lambda: None)
        waited += 0.1


async def run_scenario() -> dict:
    await ensure_js_client()
    root = Path(tempfile.mkdtemp(prefix="convex-example-chat-"))
    report: dict = {}
    try:
        daemon = await deployed_daemon(str(root / "data"), app=CHAT / "convex")
        try:
            work = root / "client"
            work.mkdir()
            code, out, err = await run_client(daemon, work)
            report["client"] = {"code": code, "out": out, "err": err}
            if code is None:
                raise FixtureError(f"client.mjs was killed:\n{out}\n{err}\n{daemon.output}")

            listed = await call(daemon, "query", "messages:list", {"channel": "general"})
            report["messages"] = listed["value"]
            images = [m for m in listed["value"] if "image" in m]
            if images:
                response = await treq.get(images[0]["url"], persistent=False)
                report["download"] = {
                    "status": response.code,
                    "type": response.headers.getRawHeaders("content-type"),
                    "bytes": await response.content(),
                }
            report["jobs"] = await admin_get(daemon, "scheduled_functions")
            report["crons"] = await eventually(
                lambda: admin_get(daemon, "cron_jobs"),
                lambda r: any(
                    (job.get("lastRun") or {}).get("status") == "success"
                    for job in r["body"].get("cronJobs", [])
                ),
            )
            report["stats"] = (await call(daemon, "query", "stats:get", {}))["value"]

            # Internal functions stay internal; a bad image is refused.
            report["internal"] = await call(
                daemon,
                "mutation",
                "messages:bot_reply",
                {"channel": "general", "to": "eve", "text": "forged"},
            )
            text_file = await upload(daemon, b"not an image", "text/plain")
            report["not_an_image"] = await call(
                daemon,
                "mutation",
                "messages:send_image",
                {"channel": "general", "author": "eve", "storageId": text_file},
            )

            # The admin key acting as a signed-in user: the message is posted under
            # the identity's name, not the `author` argument.
            identity = {"subject": "u1", "issuer": "https://example.com", "name": "Grace"}
            encoded = base64.b64encode(json.dumps(identity).encode()).decode()
            report["as_user"] = await call(
                daemon,
                "mutation",
                "messages:send",
                {"channel": "signed-in", "author": "anyone", "body": "hi"},
                auth=f"Convex {daemon.admin_key}:{encoded}",
            )
            signed = await call(daemon, "query", "messages:list", {"channel": "signed-in"})
            report["signed_in_messages"] = signed["value"]

            # The hourly cleanup, run now by the admin with a cutoff of 0 days: every
            # message goes, and the image message takes its file with it.
            report["deleted"] = await call(
                daemon,
                "function",
                "messages:delete_old",
                {"olderThanDays": 0},
                auth=f"Convex {daemon.admin_key}",
            )
            if images:
                response = await treq.get(images[0]["url"], persistent=False)
                await response.content()
                report["image_after_delete"] = response.code
            report["files_after_delete"] = await admin_get(daemon, "storage_files")

            # auth_config.py with every commented provider turned on still deploys:
            # the deploy checks shapes and contacts nobody.
            providers = with_providers(CHAT / "convex", root / "with_providers")
            report["providers_deploy"] = await deploy(daemon, providers)
            token = unsigned_token({"iss": "https://other.example", "sub": "x", "aud": "convex"})
            report["foreign_token"] = await call(
                daemon, "query", "stats:get", {}, auth=f"Bearer {token}"
            )
        finally:
            await stop_daemon(daemon)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return report


async def upload(daemon: Daemon, data: bytes, content_type: str) -> str:
    url = (await call(daemon, "mutation", "messages:generate_upload_url", {}))["value"]
    response = await treq.post(
        url, data=data, headers={"Content-Type": content_type}, persistent=False
    )
    return json.loads(await response.content())["storageId"]


def unsigned_token(claims: dict) -> str:
    """A JWT-shaped token with a made-up signature: enough to reach provider matching."""

    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'kid': 'k1'})}.{part({**claims, 'exp': 4102444800})}.c2ln"


class ChatExampleTests(TestCase):
    #: The first run in a checkout installs convex@1.48.0 with npm ci.
    timeout = 900
    shared = Once(run_scenario)

    async def report(self) -> tuple[dict, str]:
        report = await self.shared.get()
        client = report["client"]
        context = f"--- client.mjs (exit {client['code']})\n{client['out']}\n{client['err']}"
        return report, context

    async def test_client_script_succeeds(self) -> None:
        report, context = await self.report()
        self.assertEqual(report["client"]["code"], 0, context)
        # Nothing on stderr but, perhaps, a warning of Node's own.
        errors = [
            line
            for line in report["client"]["err"].splitlines()
            if line.strip() and "Warning" not in line and "--trace-" not in line
        ]
        self.assertEqual(errors, [], context)

    async def test_bot_reply_arrives_live_after_its_delay(self) -> None:
        report, context = await self.report()
        lines = report["client"]["out"].splitlines()
        self.assertIn("#general ada: @bot hello", lines, context)
        self.assertIn("#general bot: ada, you said: hello", lines, context)
        # Printed by the subscription callback, after the message it answers.
        self.assertLess(
            lines.index("#general ada: @bot hello"),
            lines.index("#general bot: ada, you said: hello"),
            context,
        )
        replied = re.search(
            r"^the bot replied (\d+\.\d+) s after message (\S+): ", report["client"]["out"], re.M
        )
        self.assertIsNotNone(replied, context)
        # Scheduled one second after `send`, measured from before the client sent it.
        self.assertGreaterEqual(float(replied.group(1)), BOT_DELAY - 0.01, context)
        self.assertLess(float(replied.group(1)), BOT_DELAY + 10, context)
        sent_id = replied.group(2)
        by_id = {m["_id"]: m for m in report["messages"]}
        self.assertEqual(by_id[sent_id]["body"], "@bot hello")

    async def test_the_reply_was_a_scheduled_job(self) -> None:
        report, context = await self.report()
        self.assertEqual(report["jobs"]["status"], 200)
        jobs = [j for j in report["jobs"]["body"]["jobs"] if j["name"] == "messages:bot_reply"]
        self.assertEqual(len(jobs), 1, report["jobs"])
        self.assertEqual(jobs[0]["state"], {"kind": "success"})
        self.assertEqual(jobs[0]["args"], [{"channel": "general", "to": "ada", "text": "hello"}])
        self.assertGreaterEqual(jobs[0]["completedTime"], jobs[0]["scheduledTime"], report["jobs"])
        # Clients cannot run the internal mutation themselves.
        self.assertEqual(report["internal"]["status"], "error")
        self.assertIn("Could not find public function", report["internal"]["errorMessage"])

    async def test_image_round_trip_through_the_query_url(self) -> None:
        report, context = await self.report()
        out = report["client"]["out"]
        self.assertIn(f"uploaded picture.png ({len(PICTURE)} bytes)", out, context)
        self.assertRegex(
            out, rf"downloaded \S+: {len(PICTURE)} bytes, same bytes as uploaded", context
        )
        images = [m for m in report["messages"] if "image" in m]
        self.assertEqual(len(images), 1, report["messages"])
        self.assertEqual(images[0]["author"], "ada")
        self.assertTrue(images[0]["url"].endswith(f"/api/storage/{images[0]['image']}"))
        self.assertIn(f"#general ada: [image] {images[0]['url']}", out.splitlines(), context)
        # The same URL, fetched from here: the bytes and the type that were uploaded.
        self.assertEqual(report["download"]["status"], 200)
        self.assertEqual(report["download"]["type"], ["image/png"])
        self.assertEqual(report["download"]["bytes"], PICTURE)

    async def test_send_image_refuses_other_files(self) -> None:
        report, _ = await self.report()
        refused = report["not_an_image"]
        self.assertEqual(refused["status"], "error", refused)
        self.assertEqual(refused["errorData"]["code"], "NotAnImage", refused)

    async def test_cron_jobs_are_listed_and_the_interval_one_ran(self) -> None:
        report, _ = await self.report()
        self.assertEqual(report["crons"]["status"], 200)
        jobs = {job["name"]: job for job in report["crons"]["body"]["cronJobs"]}
        self.assertEqual(sorted(jobs), ["delete old messages", "update stats"])
        self.assertEqual(jobs["update stats"]["functionName"], "stats:update")
        self.assertEqual(jobs["update stats"]["schedule"], {"minutes": 1, "type": "interval"})
        self.assertEqual(jobs["delete old messages"]["functionName"], "messages:delete_old")
        self.assertEqual(
            jobs["delete old messages"]["schedule"], {"minuteUTC": 5, "type": "hourly"}
        )
        self.assertEqual(jobs["delete old messages"]["args"], [{"olderThanDays": 30.0}])
        # An interval job runs right after the deploy; its mutation wrote the stats row.
        self.assertEqual(jobs["update stats"]["lastRun"]["status"], "success", jobs)
        self.assertIsNotNone(report["stats"])
        self.assertIsInstance(report["stats"]["messagesLastHour"], float)
        self.assertGreater(jobs["update stats"]["nextRun"], report["stats"]["updatedAt"])

    async def test_cleanup_deletes_old_messages_and_their_images(self) -> None:
        report, _ = await self.report()
        # #general: "@bot hello", the image, the bot's reply; #signed-in: "hi".
        self.assertEqual(report["deleted"].get("value"), 4.0, report["deleted"])
        self.assertEqual(report["image_after_delete"], 404)
        files = report["files_after_delete"]["body"]["page"]
        # Only the text file that send_image refused is left.
        self.assertEqual([f["contentType"] for f in files], ["text/plain"], files)

    async def test_signed_in_users_post_under_their_name(self) -> None:
        report, _ = await self.report()
        self.assertEqual(report["as_user"]["status"], "success", report["as_user"])
        [message] = report["signed_in_messages"]
        self.assertEqual((message["author"], message["body"]), ("Grace", "hi"))

    async def test_commented_auth_providers_deploy_without_contacting_them(self) -> None:
        report, _ = await self.report()
        code, output = report["providers_deploy"]
        self.assertEqual(code, 0, output)
        self.assertIn("Deployed", output)
        # The three providers are in force: a token of another issuer is refused
        # with a message that lists them.
        refused = report["foreign_token"]
        self.assertEqual(refused["code"], "NoAuthProvider", refused)
        for provider in (
            "domain=https://verb-noun-42.clerk.accounts.dev",
            "domain=https://your-tenant.us.auth0.com/",
            "CustomJWT(issuer=https://auth.example.com",
        ):
            self.assertIn(provider, refused["message"])
