"""Instance secrets, derived admin keys, the constant-time checker, and key rotation."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import treq
from twisted.trial.unittest import SynchronousTestCase, TestCase

from convex_backend.auth.admin_key import (
    AdminKeyChecker,
    AdminKeyError,
    derive_admin_key,
    load_or_create_instance_secret,
    parse_admin_key,
)
from tests.daemon import REPO, Daemon
from tests.processes import run_process

SECRET = "01" * 32


class InstanceSecretTests(SynchronousTestCase):
    def test_created_once_with_mode_0600(self) -> None:
        data_dir = Path(self.mktemp())
        data_dir.mkdir()
        first = load_or_create_instance_secret(data_dir)
        second = load_or_create_instance_secret(data_dir)
        self.assertEqual(first, second)
        self.assertRegex(first, r"^[0-9a-f]{64}$")
        path = data_dir / "credentials" / "instance_secret"
        self.assertEqual(stat.S_IMODE(path.stat().st_mode), 0o600)

    def test_corrupt_secret_file_is_reported(self) -> None:
        data_dir = Path(self.mktemp())
        (data_dir / "credentials").mkdir(parents=True)
        (data_dir / "credentials" / "instance_secret").write_text("not hex")
        self.assertRaises(AdminKeyError, load_or_create_instance_secret, data_dir)


class AdminKeyTests(SynchronousTestCase):
    def test_shape(self) -> None:
        key = derive_admin_key("convex-self-hosted", SECRET)
        name, token = parse_admin_key(key)
        self.assertEqual(name, "convex-self-hosted")
        self.assertRegex(token, r"^01[0-9a-f]{64}$")
        self.assertNotIn(":", key)

    def test_deterministic_and_rotates_with_the_secret(self) -> None:
        a = derive_admin_key("app", SECRET)
        self.assertEqual(a, derive_admin_key("app", SECRET))
        self.assertNotEqual(a, derive_admin_key("app", "02" * 32))
        self.assertNotEqual(a, derive_admin_key("other", SECRET).replace("other", "app"))

    def test_parse_rejects_malformed(self) -> None:
        for bad in (
            "",
            "nobar",
            "|abc",
            "name|",
            "name|ab:cd",
            "name|XYZ",
            "name|ABCD",
        ):
            self.assertRaises(AdminKeyError, parse_admin_key, bad)

    def test_checker(self) -> None:
        key = derive_admin_key("app", SECRET)
        checker = AdminKeyChecker(key)
        self.assertTrue(checker.is_valid(key))
        for bad in (
            None,
            "",
            key[:-1],
            key + "0",
            key.upper(),
            "app|00",
            "é" * 10,
            "\udcff",
        ):
            self.assertFalse(checker.is_valid(bad), bad)
        self.assertNotIn(key, repr(checker))


class RotationTests(TestCase):
    """A new instance secret gives a new admin key; the old key stops working."""

    timeout = 120

    async def check(self, daemon: Daemon, key: str) -> int:
        response = await treq.get(
            daemon.api_url + "/api/check_admin_key",
            headers={"Authorization": f"Convex {key}"},
            persistent=False,
        )
        body = json.loads(await response.content())
        if response.code != 200:
            self.assertEqual(body["code"], "BadAdminKey")
        return response.code

    async def started(self, data_dir: str, *args: str) -> Daemon:
        daemon = Daemon(data_dir, "--port", "0", "--site-port", "0", *args)
        self.addCleanup(daemon.kill)
        await daemon.start(timeout=60)
        return daemon

    async def stopped(self, daemon: Daemon) -> None:
        daemon.signal()
        self.assertEqual(await daemon.wait(), 0)

    async def test_old_key_refused_after_rotation(self) -> None:
        data_dir = os.path.abspath(self.mktemp())
        first = await self.started(data_dir)
        old_key = first.admin_key
        self.assertEqual(await self.check(first, old_key), 200)
        await self.stopped(first)

        # Rotation by a new secret file: remove the old one, a new one is made.
        (Path(data_dir) / "credentials" / "instance_secret").unlink()
        second = await self.started(data_dir)
        new_key = second.admin_key
        self.assertNotEqual(new_key, old_key)
        self.assertEqual(await self.check(second, new_key), 200)
        self.assertEqual(await self.check(second, old_key), 401)
        # `convex-backend admin-key` prints the key now in force.
        code, out, err = await run_process(
            [sys.executable, "-m", "convex_backend.cli", "admin-key", "--data-dir", data_dir],
            env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)},
            cwd=REPO,
            timeout=60,
        )
        self.assertEqual((code, out.strip()), (0, new_key), err)
        await self.stopped(second)

        # Rotation by --instance-secret: that secret's key replaces the stored one's.
        secret = "c3" * 32
        third = await self.started(data_dir, "--instance-secret", secret)
        self.assertEqual(third.admin_key, derive_admin_key("convex-self-hosted", secret))
        self.assertEqual(await self.check(third, third.admin_key), 200)
        self.assertEqual(await self.check(third, new_key), 401)
        await self.stopped(third)
