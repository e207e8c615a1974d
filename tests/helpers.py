"""Shared test fixtures: configurations on temporary directories, deployments."""

from __future__ import annotations

from pathlib import Path

from convex_backend.auth.admin_key import AdminKeyChecker, derive_admin_key
from convex_backend.config import Config, load_config
from convex_backend.deployment import Deployment

TEST_SECRET = "ab" * 32


def make_config(tmp: str | Path, **options: object) -> Config:
    raw: dict[str, object] = {
        "data-dir": str(tmp),
        "port": "0",
        "site-port": "0",
        "host": "127.0.0.1",
        "instance-secret": TEST_SECRET,
    }
    raw.update({k.replace("_", "-"): v for k, v in options.items()})
    return load_config(raw, environ={})


def make_deployment(tmp: str | Path, **options: object) -> Deployment:
    config = make_config(tmp, **options)
    key = derive_admin_key(config.instance_name, TEST_SECRET)
    return Deployment(config=config, admin_keys=AdminKeyChecker(key))


def admin_key_for(deployment: Deployment) -> str:
    return derive_admin_key(deployment.instance_name, TEST_SECRET)
