"""The auth test app, deployed with an ``auth_config.py`` naming a local issuer.

:func:`auth_app_modules` gives the modules of ``tests/clients/auth_app`` plus an
``auth_config.py`` whose providers point at a :class:`~tests.auth.issuer.LocalIssuer`
(its port is only known at test time). :func:`auth_daemon` starts the real
daemon (``twistd -n convex``) and deploys them with ``convex-backend deploy``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from tests.auth.issuer import LocalIssuer
from tests.clients._support import FixtureError, stop_daemon
from tests.daemon import REPO, Daemon
from tests.processes import run_process

AUTH_APP = Path(__file__).resolve().parent / "auth_app"


def auth_config_source(issuer: LocalIssuer) -> str:
    return f"providers = {issuer.providers()!r}\n"


def auth_app_modules(issuer: LocalIssuer) -> list[dict]:
    modules = [
        {"path": path.name, "source": path.read_text()} for path in sorted(AUTH_APP.glob("*.py"))
    ]
    return modules + [{"path": "auth_config.py", "source": auth_config_source(issuer)}]


async def auth_daemon(issuer: LocalIssuer, data_dir: str) -> Daemon:
    """A started daemon with the auth app deployed (stop it with ``stop_daemon``)."""
    app = Path(data_dir) / "app"
    app.mkdir(parents=True)
    for module in auth_app_modules(issuer):
        (app / module["path"]).write_text(module["source"])
    daemon = Daemon(
        str(Path(data_dir) / "data"), "--port", "0", "--site-port", "0", "--workers", "2"
    )
    await daemon.start(timeout=60)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", tempfile.gettempdir()),
        "PYTHONPATH": str(REPO),
        "CONVEX_SELF_HOSTED_URL": daemon.api_url,
        "CONVEX_SELF_HOSTED_ADMIN_KEY": daemon.admin_key,
    }
    argv = [sys.executable, "-m", "convex_backend.cli", "deploy", str(app)]
    code, out, err = await run_process(argv, env=env, cwd=REPO, timeout=120)
    if code != 0 or not daemon.admin_key:
        await stop_daemon(daemon)
        raise FixtureError(
            f"deploying the auth app failed (exit {code}):\n{out}\n{err}\n--- daemon\n"
            f"{daemon.output}"
        )
    return daemon


def temporary_directory() -> str:
    return tempfile.mkdtemp(prefix="convex-auth-")


def remove_directory(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
