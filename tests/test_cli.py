"""The ``convex-backend`` command."""

from __future__ import annotations

import io
import os

from twisted.trial.unittest import SynchronousTestCase

from convex_backend import __version__, cli


class CliTests(SynchronousTestCase):
    def run_cli(self, *argv: str, environ: dict | None = None) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        self.patch(cli.sys, "stdout", out)
        self.patch(cli.sys, "stderr", err)
        self.patch(cli.os, "environ", environ or {})
        return cli.main(list(argv)), out.getvalue(), err.getvalue()

    def test_admin_key_is_stable_and_created_on_demand(self) -> None:
        data_dir = os.path.abspath(self.mktemp())
        code, first, _ = self.run_cli("admin-key", "--data-dir", data_dir)
        self.assertEqual(code, 0)
        self.assertRegex(first, r"^convex-self-hosted\|01[0-9a-f]{64}\n$")
        self.assertEqual(self.run_cli("admin-key", "--data-dir", data_dir)[1], first)

    def test_admin_key_honours_the_environment(self) -> None:
        data_dir = os.path.abspath(self.mktemp())
        code, out, _ = self.run_cli(
            "admin-key",
            "--data-dir",
            data_dir,
            environ={"INSTANCE_NAME": "my-app", "INSTANCE_SECRET": "0f" * 32},
        )
        self.assertEqual(code, 0)
        self.assertTrue(out.startswith("my-app|01"))
        code, out, _ = self.run_cli(
            "admin-key",
            "--data-dir",
            data_dir,
            environ={"CONVEX_ADMIN_KEY": "convex-self-hosted|ab"},
        )
        self.assertEqual(out, "convex-self-hosted|ab\n")

    def test_errors_are_one_line(self) -> None:
        code, out, err = self.run_cli(
            "admin-key", "--data-dir", self.mktemp(), "--instance-name", "Bad!"
        )
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(err.count("\n"), 1)
        self.assertIn("--instance-name must be", err)

    def test_usage(self) -> None:
        code, _, err = self.run_cli()
        self.assertEqual(code, 2)
        self.assertIn("a command is required", err)

    def test_version(self) -> None:
        self.assertEqual(self.run_cli("version")[1], __version__ + "\n")
