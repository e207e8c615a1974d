"""The deployment: what every request handler and service of one daemon shares.

It holds the validated configuration, the admin key checker and the metrics;
later layers (database, function runner, subscriptions) hang off it too. It
owns no I/O itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from convex_backend import __version__
from convex_backend.auth.admin_key import AdminKeyChecker
from convex_backend.config import Config
from convex_backend.metrics import Metrics


@dataclass
class Deployment:
    config: Config
    admin_keys: AdminKeyChecker
    metrics: Metrics = field(default_factory=Metrics)
    version: str = __version__
    #: Set once the database has loaded and the function runtime has started.
    database: Any = None
    runner: Any = None
    deployer: Any = None
    #: The :class:`~convex_backend.storage.files.FileStorage`, once started.
    storage: Any = None
    #: The :class:`~convex_backend.functions.logs.FunctionLogs` buffer, once built.
    function_logs: Any = None
    #: The :class:`~convex_backend.auth.users.UserAuthenticator`, made on first use.
    user_auth: Any = None
    #: The :class:`~convex_backend.scheduler.crons.CronService`, once built.
    crons: Any = None
    #: The :class:`~convex_backend.scheduler.service.SchedulerService`, once built.
    scheduler: Any = None

    @property
    def instance_name(self) -> str:
        return self.config.instance_name
