"""Options, their environment variables and the one-line validation errors."""

from __future__ import annotations

import os
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from convex_backend.config import ConfigError, Options, load_config, parse_persistence

SECRET = "cd" * 32


class LoadConfigTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.tmp = Path(self.mktemp())

    def load(self, environ: dict | None = None, **options: str):
        raw = {"data-dir": str(self.tmp)}
        raw.update({k.replace("_", "-"): v for k, v in options.items()})
        return load_config(raw, environ=environ or {})

    def test_defaults(self) -> None:
        config = self.load()
        self.assertEqual(config.port, 3210)
        self.assertEqual(config.site_port, 3211)
        self.assertEqual(config.host, "0.0.0.0")
        self.assertEqual(config.instance_name, "convex-self-hosted")
        self.assertEqual(config.persistence.scheme, "sqlite")
        self.assertEqual(config.persistence.path, self.tmp.resolve() / "convex.sqlite3")
        self.assertEqual(config.cloud_origin, "http://127.0.0.1:3210")
        self.assertEqual(config.site_origin, "http://127.0.0.1:3211")
        self.assertEqual(config.log_level, "info")
        self.assertGreaterEqual(config.workers, 1)
        self.assertFalse(config.disable_beacon)
        self.assertIsNone(config.admin_key)
        self.assertTrue(self.tmp.is_dir())

    def test_environment_variables(self) -> None:
        config = self.load(
            environ={
                "CONVEX_PORT": "4000",
                "CONVEX_SITE_PORT": "4001",
                "INSTANCE_NAME": "my-app",
                "INSTANCE_SECRET": SECRET,
                "DISABLE_BEACON": "true",
                "CONVEX_SITE_PROXY": "http://localhost:5173",
                "CONVEX_CLOUD_ORIGIN": "https://api.example.com/",
                "CONVEX_SITE_ORIGIN": "https://site.example.com",
                "CONVEX_WORKERS": "3",
                "CONVEX_LOG_LEVEL": "DEBUG",
            }
        )
        self.assertEqual((config.port, config.site_port), (4000, 4001))
        self.assertEqual(config.instance_name, "my-app")
        self.assertEqual(config.instance_secret, SECRET)
        self.assertTrue(config.disable_beacon)
        self.assertEqual(config.site_proxy, "http://localhost:5173")
        self.assertEqual(config.cloud_origin, "https://api.example.com")
        self.assertEqual(config.site_origin, "https://site.example.com")
        self.assertEqual(config.workers, 3)
        self.assertEqual(config.log_level, "debug")

    def test_flags_win_over_environment(self) -> None:
        config = self.load(environ={"CONVEX_PORT": "4000"}, port="5000")
        self.assertEqual(config.port, 5000)

    def test_origins_follow_host_and_ports(self) -> None:
        config = self.load(host="10.0.0.5", port="8000", site_port="8001")
        self.assertEqual(config.cloud_origin, "http://10.0.0.5:8000")
        self.assertEqual(config.site_origin, "http://10.0.0.5:8001")

    def test_options_parse_every_flag(self) -> None:
        options = Options()
        options.parseOptions(
            [
                "--port",
                "1",
                "--site-port",
                "2",
                "--admin-key",
                "convex-self-hosted|ab",
                "--disable-beacon",
                "--log-level",
                "warn",
                "--workers",
                "2",
            ]
        )
        self.assertEqual(options["port"], "1")
        self.assertTrue(options["disable-beacon"])

    def assertConfigError(self, fragment: str, environ: dict | None = None, **options: str) -> str:
        with self.assertRaises(ConfigError) as caught:
            self.load(environ=environ, **options)
        message = str(caught.exception)
        self.assertIn(fragment, message)
        self.assertNotIn("\n", message)
        return message

    def test_bad_ports(self) -> None:
        self.assertConfigError("--port must be a port number", port="http")
        self.assertConfigError("--port must be between 0 and 65535", port="70000")
        self.assertConfigError("--site-port must be", site_port="-1")
        self.assertConfigError("both 4000", port="4000", site_port="4000")

    def test_bad_persistence(self) -> None:
        self.assertConfigError("unknown scheme 'mysql'", persistence="mysql://u:pw@host/db")
        self.assertConfigError("must be a URL", persistence="nonsense")
        message = self.assertConfigError("unknown scheme", persistence="mysql://u:pw@h/db")
        self.assertNotIn("pw", message)
        self.assertConfigError("PostgreSQL is not supported yet", persistence="postgres://x/y")
        self.assertConfigError("names no database file", persistence="sqlite://")

    def test_persistence_urls(self) -> None:
        self.assertEqual(parse_persistence("sqlite:///var/x.db", self.tmp).path, Path("/var/x.db"))
        self.assertEqual(parse_persistence("sqlite://rel/x.db", self.tmp).path, Path("rel/x.db"))

    def test_unwritable_data_dir(self) -> None:
        if os.getuid() == 0:
            # root writes anywhere; a path under a regular file cannot be created.
            blocker = self.tmp.parent / "file"
            blocker.parent.mkdir(parents=True, exist_ok=True)
            blocker.write_text("x")
            self.assertConfigError("cannot be created", data_dir=str(blocker / "sub"))
            self.assertConfigError("is not a directory", data_dir=str(blocker))
        else:
            locked = self.tmp.parent / "locked"
            locked.mkdir(parents=True)
            locked.chmod(0o500)
            self.addCleanup(locked.chmod, 0o700)
            self.assertConfigError("is not writable", data_dir=str(locked))

    def test_bad_keys_and_secrets(self) -> None:
        self.assertConfigError("--admin-key is malformed", admin_key="no-bar")
        self.assertConfigError("never contains ':'", admin_key="convex-self-hosted|ab:cd")
        self.assertConfigError("is for instance 'other'", admin_key="other|abcd")
        message = self.assertConfigError("64 hexadecimal", instance_secret="zz" * 32)
        self.assertNotIn("zz" * 32, message)
        self.assertConfigError("--instance-name must be", instance_name="Bad Name!")

    def test_bad_misc(self) -> None:
        self.assertConfigError("--log-level must be one of", log_level="loud")
        self.assertConfigError("--workers must be at least 1", workers="0")
        self.assertConfigError("--site-proxy must be an http(s) URL", site_proxy="ftp://x")

    def test_repr_hides_secrets(self) -> None:
        config = self.load(instance_secret=SECRET, admin_key="convex-self-hosted|abcd")
        self.assertNotIn(SECRET, repr(config))
        self.assertNotIn("abcd", repr(config))
