"""Instance secrets, derived admin keys and the constant-time checker."""

from __future__ import annotations

import stat
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from convex_backend.auth.admin_key import (
    AdminKeyChecker,
    AdminKeyError,
    derive_admin_key,
    load_or_create_instance_secret,
    parse_admin_key,
)

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
