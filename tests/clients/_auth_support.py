"""The auth test app, deployed with an ``auth_config.py`` naming a local issuer.

:func:`auth_app_modules` gives the modules of ``tests/clients/auth_app`` plus an
``auth_config.py`` whose providers point at a :class:`~tests.auth.issuer.LocalIssuer`
(its port is only known at test time). :func:`auth_daemon` starts the real
daemon (``twistd -n convex``) and deploys them with ``convex-backend deploy``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tests.auth.issuer import LocalIssuer
from tests.clients._support import deployed_daemon
from tests.daemon import Daemon

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
    return await deployed_daemon(str(Path(data_dir) / "data"), app)


def temporary_directory() -> str:
    return tempfile.mkdtemp(prefix="convex-auth-")


def remove_directory(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
