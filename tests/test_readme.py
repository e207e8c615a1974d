"""The README's commands are the ones CI and users actually run."""

from __future__ import annotations

import re
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

REPO = Path(__file__).resolve().parent.parent


def fenced_commands(markdown: str, heading: str) -> list[str]:
    section = markdown.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", section, re.S)


class ReadmeTests(SynchronousTestCase):
    def test_ci_runs_the_readme_test_command(self) -> None:
        readme = (REPO / "README.md").read_text()
        [command] = fenced_commands(readme, "Test it")
        ci = (REPO / ".ci" / "run").read_text().strip().splitlines()
        self.assertEqual(ci[-1], command)

    def test_run_command_uses_the_plugin(self) -> None:
        readme = (REPO / "README.md").read_text()
        [command] = fenced_commands(readme, "Run it")
        self.assertIn("twistd -n convex --port 3210", command)
        self.assertTrue((REPO / "twisted" / "plugins" / "convex_plugin.py").exists())
        # twisted/plugins must stay a namespace: an __init__.py would shadow Twisted's.
        self.assertFalse((REPO / "twisted" / "__init__.py").exists())
        self.assertFalse((REPO / "twisted" / "plugins" / "__init__.py").exists())

    def test_every_option_is_documented(self) -> None:
        from convex_backend.config import _FLAGS, _PARAMETERS

        readme = (REPO / "README.md").read_text()
        for name, env, *_ in _PARAMETERS + _FLAGS:
            self.assertIn(f"`--{name}`", readme)
            self.assertIn(f"`{env}`", readme)
