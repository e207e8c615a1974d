"""Builds the daemon's service tree from the ``twistd convex`` options.

::

    ConvexService (MultiService "convex")
      |- DatabaseService      the document database (opened first, closed last)
      |- FunctionsService     worker pools, the function runner, deploys
      |- SchedulerService     scheduled functions (_scheduled_functions), on a reactor timer
      |- CronService          the cron jobs of crons.py, on a reactor timer
      |- StorageService       file storage: blobs in the data dir, the _storage table
      |- HttpService          the API port and the HTTP actions port
      |- FunctionLogs         the function log buffer (stops first: answers waiting polls)

Services start in this order and stop in reverse, so the database outlives
every request that might use it.
"""

from __future__ import annotations

import gc
import shlex
from collections.abc import Mapping

from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.logger import ILogObserver, Logger
from twisted.python.components import Componentized

from convex_backend.auth.admin_key import (
    AdminKeyChecker,
    AdminKeyError,
    derive_admin_key,
    load_or_create_instance_secret,
)
from convex_backend.config import (
    DEFAULT_INSTANCE_NAME,
    Config,
    ConfigError,
    Options,
    StartupError,
    load_config,
)
from convex_backend.database.service import DatabaseService
from convex_backend.deployment import Deployment
from convex_backend.functions.logs import FunctionLogs
from convex_backend.functions.service import FunctionsService
from convex_backend.http.cors import CorsResource
from convex_backend.http.root import RootApp
from convex_backend.http.service import HttpService
from convex_backend.http.site import ConvexSite
from convex_backend.http.site_actions import HTTP_ACTION_MAX_REQUEST_BYTES, SiteApp
from convex_backend.logs import make_observer
from convex_backend.scheduler.crons import CronService
from convex_backend.scheduler.service import SchedulerService
from convex_backend.storage.service import StorageService
from convex_backend.sync import make_sync_resource

log = Logger(namespace="convex")


class ConvexService(MultiService):
    name = "convex"

    def __init__(
        self, deployment: Deployment, log_observer: ILogObserver | None, reactor=None
    ) -> None:
        super().__init__()
        self.deployment = deployment
        self._reactor = reactor
        self._log_observer = log_observer
        self._key_hint: str | None = None

    def setServiceParent(self, parent) -> None:
        # twistd hands us its Application; our level-filtered observer becomes
        # its log destination (see convex_backend.logs).
        if (
            self._log_observer is not None
            and isinstance(parent, Componentized)
            and parent.getComponent(ILogObserver, None) is None
        ):
            parent.setComponent(ILogObserver, self._log_observer)
        super().setServiceParent(parent)

    def startService(self) -> None:
        config = self.deployment.config
        log.info(
            "convex_backend {version} starting: instance {name}, data in {data_dir}",
            version=self.deployment.version,
            name=config.instance_name,
            data_dir=str(config.data_dir),
        )
        # The in-memory store and the sessions make many long-lived objects;
        # with the default thresholds the collector keeps rescanning them
        # (full collections of ~70 ms during a large fan-out). Collect less
        # often, and move everything alive once loading is done out of its reach.
        gc.set_threshold(100_000, 50, 1000)
        super().startService()
        functions = self.getServiceNamed("functions") if "functions" in self.namedServices else None
        if functions is not None:
            functions.started.addCallback(lambda _: gc.freeze())
        if self._key_hint is not None:
            # Never the key itself: whoever reads the log would be an admin.
            log.info(
                "The admin key is never logged; print it with `{command}`",
                command=self._key_hint,
            )
            self._key_hint = None

    @defer.inlineCallbacks
    def stopService(self):
        # MultiService would stop every child at once; we stop them one by one,
        # last started first, so that e.g. HTTP drains before the database closes.
        log.info("convex_backend stopping")
        Service.stopService(self)
        for child in reversed(list(self)):
            try:
                yield defer.maybeDeferred(child.stopService)
            except Exception:
                log.failure("Error stopping {name}", name=child.name)
        log.info("convex_backend stopped")
        # After a SIGTERM/SIGINT, twistd re-raises the signal once the reactor
        # stops, so the exit status would say "killed". A graceful shutdown has
        # completed here, which deserves exit status 0 (and systemd agrees).
        if getattr(self._reactor, "_exitSignal", None) is not None:
            self._reactor._exitSignal = None


def resolve_secret(config: Config) -> str:
    """The instance secret: configured, or kept in (and first created in) the data dir."""
    try:
        return config.instance_secret or load_or_create_instance_secret(config.data_dir)
    except (OSError, AdminKeyError) as e:
        raise StartupError(f"cannot read or create the instance secret: {e}")


def resolve_admin_key(config: Config, secret: str) -> tuple[str, bool]:
    """The admin key in force and whether it was derived (rather than configured)."""
    if config.admin_key is not None:
        return config.admin_key, False
    return derive_admin_key(config.instance_name, secret), True


def admin_key_command(config: Config) -> str:
    """The command that prints this daemon's (derived) admin key."""
    command = f"convex-backend admin-key --data-dir {shlex.quote(str(config.data_dir))}"
    if config.instance_name != DEFAULT_INSTANCE_NAME:
        command += f" --instance-name {shlex.quote(config.instance_name)}"
    return command


def build(config: Config, reactor=None, log_observer: ILogObserver | None = None) -> ConvexService:
    """The whole service tree for a validated configuration."""
    if reactor is None:
        from twisted.internet import reactor  # noqa: PLC0415
    secret = resolve_secret(config)
    admin_key, derived = resolve_admin_key(config, secret)
    deployment = Deployment(config=config, admin_keys=AdminKeyChecker(admin_key))
    root = ConvexService(deployment, log_observer, reactor)
    if derived:
        root._key_hint = admin_key_command(config)
    database = DatabaseService(config.persistence, secret, reactor)
    database.setServiceParent(root)
    functions = FunctionsService(deployment, database, reactor, workers=config.workers)
    functions.setServiceParent(root)
    deployment.scheduler = SchedulerService(
        deployment,
        ready=functions.started,
        clock=reactor,
        parallelism=config.scheduler_parallelism,
        retention=config.scheduler_retention,
    )
    deployment.scheduler.setServiceParent(root)
    storage = StorageService(deployment, functions, secret)
    storage.setServiceParent(root)
    deployment.function_logs = FunctionLogs(reactor, registry=deployment.metrics.registry)
    deployment.crons = CronService(deployment, ready=functions.started, clock=reactor)
    deployment.crons.setServiceParent(root)
    root_app = RootApp(deployment)
    api_site = ConvexSite(
        CorsResource(
            root_app.resource(),
            fast=root_app.fast_routes(),
            sync=make_sync_resource(deployment, reactor),
        ),
        metrics=deployment.metrics,
        max_request_bytes=config.max_request_bytes,
    )
    # Upload bodies stream to file storage's spool files (see http/site.py).
    api_site.upload_body = storage.upload_body
    api_site.max_upload_bytes = config.max_file_bytes
    actions_site = ConvexSite(
        SiteApp(deployment).resource(),
        metrics=deployment.metrics,
        max_request_bytes=HTTP_ACTION_MAX_REQUEST_BYTES,
    )
    HttpService(
        reactor,
        config.host,
        [
            ("api", config.port, api_site),
            ("http actions", config.site_port, actions_site),
        ],
        ready=functions.started,
    ).setServiceParent(root)
    # Last, so that it stops first: log polls waiting for entries answer before HTTP drains.
    deployment.function_logs.setServiceParent(root)
    return root


def makeService(options: Mapping[str, object]) -> ConvexService:
    """Entry point of the twistd plugin."""
    try:
        config = load_config(options)
    except ConfigError as e:
        raise StartupError(str(e))
    parent = getattr(options, "parent", None)
    observer = make_observer(config.log_level, parent)
    return build(config, log_observer=observer)


__all__ = ["Options", "makeService", "build"]
