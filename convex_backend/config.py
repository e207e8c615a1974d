"""Daemon configuration: command-line options, their environment variables, validation.

Every option can be given as a flag or through an environment variable, the flag
winning. :class:`Options` only collects strings; :func:`load_config` turns them
into a validated, immutable :class:`Config` and raises :class:`ConfigError` with
one clear sentence for anything wrong, so that the daemon fails fast with a
single line instead of a traceback or a usage dump.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from twisted.python import usage

DEFAULT_INSTANCE_NAME = "convex-self-hosted"
LOG_LEVELS = ("debug", "info", "warn", "error", "critical")
DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_FILE_BYTES = 1024 * 1024 * 1024
DEFAULT_SCHEDULER_PARALLELISM = 10
DEFAULT_SCHEDULER_RETENTION = 7 * 24 * 3600


class ConfigError(Exception):
    """A configuration value is invalid; ``str()`` is the one line to show."""


class StartupError(SystemExit):
    """Raised while starting: twistd prints the message as one line and exits 1."""

    def __init__(self, message: str) -> None:
        super().__init__(f"convex: {message}")


# option name -> (environment variable, default, help)
_PARAMETERS: list[tuple[str, str, str | None, str]] = [
    ("port", "CONVEX_PORT", "3210", "Port of the API, sync and dashboard server."),
    ("host", "CONVEX_HOST", "0.0.0.0", "Interface to listen on."),
    ("site-port", "CONVEX_SITE_PORT", "3211", "Port serving HTTP actions."),
    ("data-dir", "CONVEX_DATA_DIR", "./convex_data", "Directory for all state."),
    (
        "persistence",
        "CONVEX_PERSISTENCE",
        None,
        "Database URL: sqlite:///path (default: convex.sqlite3 in the data dir).",
    ),
    (
        "admin-key",
        "CONVEX_ADMIN_KEY",
        None,
        "Use this admin key instead of the derived one.",
    ),
    ("instance-name", "INSTANCE_NAME", DEFAULT_INSTANCE_NAME, "Deployment name."),
    (
        "instance-secret",
        "INSTANCE_SECRET",
        None,
        "64 hex chars; default: generated once and kept in the data dir.",
    ),
    ("site-proxy", "CONVEX_SITE_PROXY", None, "Forward unmatched site requests here."),
    ("cloud-origin", "CONVEX_CLOUD_ORIGIN", None, "Public URL of the API port."),
    ("site-origin", "CONVEX_SITE_ORIGIN", None, "Public URL of the HTTP actions port."),
    ("workers", "CONVEX_WORKERS", None, "Function worker processes (default: CPUs)."),
    ("log-level", "CONVEX_LOG_LEVEL", "info", "One of " + ", ".join(LOG_LEVELS) + "."),
    (
        "function-timeout",
        "CONVEX_FUNCTION_TIMEOUT",
        "1",
        "Seconds of user-code time a query or mutation may use.",
    ),
    (
        "action-timeout",
        "CONVEX_ACTION_TIMEOUT",
        "600",
        "Seconds of user-code time an action may use.",
    ),
    (
        "worker-memory",
        "CONVEX_WORKER_MEMORY",
        "1024",
        "Address-space limit of each function worker, in MiB.",
    ),
    (
        "max-request-bytes",
        "CONVEX_MAX_REQUEST_BYTES",
        str(DEFAULT_MAX_REQUEST_BYTES),
        "Largest request body accepted (deploy routes allow more).",
    ),
    (
        "max-file-bytes",
        "CONVEX_MAX_FILE_BYTES",
        str(DEFAULT_MAX_FILE_BYTES),
        "Largest file accepted by file storage (uploads and ctx.storage.store).",
    ),
    (
        "scheduler-parallelism",
        "CONVEX_SCHEDULER_PARALLELISM",
        str(DEFAULT_SCHEDULER_PARALLELISM),
        "Scheduled functions run at the same time, at most.",
    ),
    (
        "scheduler-retention",
        "CONVEX_SCHEDULER_RETENTION",
        str(DEFAULT_SCHEDULER_RETENTION),
        "Seconds finished scheduled functions stay in _scheduled_functions.",
    ),
]

_FLAGS: list[tuple[str, str, str]] = [
    (
        "disable-beacon",
        "DISABLE_BEACON",
        "Accepted for compatibility; nothing is ever sent.",
    ),
]


class Options(usage.Options):
    """The ``twistd convex`` options. Values stay strings until :func:`load_config`."""

    synopsis = "[options]"
    longdesc = (
        "Run a Convex-compatible backend. Every option can also be set through "
        "the environment variable shown in docs/configuration.md."
    )
    optParameters = [[name, None, None, help_] for name, _env, _default, help_ in _PARAMETERS]
    optFlags = [[name, None, help_] for name, _env, help_ in _FLAGS]


@dataclass(frozen=True)
class Persistence:
    """Where the database lives: ``scheme`` is ``"sqlite"`` (``path`` set)."""

    scheme: str
    path: Path | None = None
    url: str = ""


@dataclass(frozen=True)
class Config:
    host: str
    port: int
    site_port: int
    data_dir: Path
    persistence: Persistence
    instance_name: str
    instance_secret: str | None
    admin_key: str | None
    disable_beacon: bool
    site_proxy: str | None
    cloud_origin: str
    site_origin: str
    workers: int
    function_timeout: float
    action_timeout: float
    worker_memory_mb: int
    log_level: str
    max_request_bytes: int
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    scheduler_parallelism: int = DEFAULT_SCHEDULER_PARALLELISM
    scheduler_retention: float = DEFAULT_SCHEDULER_RETENTION

    def __repr__(self) -> str:
        # Secrets never leave through a repr that lands in a log line.
        return (
            f"Config(host={self.host!r}, port={self.port}, site_port={self.site_port}, "
            f"data_dir={str(self.data_dir)!r}, instance_name={self.instance_name!r})"
        )


def _raw_values(options: Mapping[str, object], environ: Mapping[str, str]) -> dict:
    raw: dict[str, object] = {}
    for name, env, default, _help in _PARAMETERS:
        value = options.get(name)
        if value is None:
            value = environ.get(env) or None
        raw[name] = value if value is not None else default
    for name, env, _help in _FLAGS:
        raw[name] = bool(options.get(name)) or _truthy(environ.get(env, ""))
    return raw


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def _port(name: str, text: object) -> int:
    try:
        port = int(str(text))
    except ValueError:
        raise ConfigError(f"--{name} must be a port number, got {text!r}")
    if not 0 <= port <= 65535:
        raise ConfigError(f"--{name} must be between 0 and 65535, got {port}")
    return port


def _positive_int(name: str, text: object) -> int:
    try:
        value = int(str(text))
    except ValueError:
        raise ConfigError(f"--{name} must be a whole number, got {text!r}")
    if value < 1:
        raise ConfigError(f"--{name} must be at least 1, got {value}")
    return value


def _positive_float(name: str, text: object) -> float:
    try:
        value = float(str(text))
    except ValueError:
        raise ConfigError(f"--{name} must be a number, got {text!r}")
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"--{name} must be a positive number, got {text!r}")
    return value


_INSTANCE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_INSTANCE_SECRET = re.compile(r"^[0-9a-fA-F]{64}$")


def validate_instance_name(name: str) -> str:
    if not _INSTANCE_NAME.match(name):
        raise ConfigError(
            "--instance-name must be 1-63 lowercase letters, digits or '-', "
            f"starting with a letter or digit; got {name!r}"
        )
    return name


def validate_instance_secret(secret: str) -> str:
    if not _INSTANCE_SECRET.match(secret):
        # Never echo the value: it is a secret even when malformed.
        raise ConfigError("--instance-secret must be exactly 64 hexadecimal characters")
    return secret.lower()


def parse_persistence(url: str | None, data_dir: Path) -> Persistence:
    """Parse ``--persistence``; the default is SQLite inside the data dir."""
    if url is None:
        return Persistence("sqlite", data_dir / "convex.sqlite3", "")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        # sqlite:///abs/path or sqlite://relative/path, as in SQLAlchemy's URLs.
        path = url.split("://", 1)[1] if "://" in url else ""
        if not path or path == "/":
            raise ConfigError(f"--persistence {url!r} names no database file")
        return Persistence("sqlite", Path(path), url)
    if scheme in ("postgres", "postgresql"):
        raise ConfigError("--persistence: PostgreSQL is not supported yet; use sqlite:///path")
    if "://" not in url:
        raise ConfigError("--persistence must be a URL such as sqlite:///path/to/db")
    # Only the scheme is shown: the rest may hold a password.
    raise ConfigError(f"--persistence: unknown scheme {scheme!r}; expected sqlite:///path")


def _origin(name: str, value: object, default: str) -> str:
    if value is None:
        return default
    text = str(value).rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"--{name} must be an http(s) URL, got {value!r}")
    return text


def _check_data_dir(path: Path) -> Path:
    path = path.expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--data-dir {str(path)!r} is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--data-dir {str(path)!r} cannot be created: {e.strerror}")
    if not path.is_dir():
        raise ConfigError(f"--data-dir {str(path)!r} is not a directory")
    probe = path / ".write-test"
    try:
        with open(probe, "wb") as f:
            f.write(b"ok")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"--data-dir {str(path)!r} is not writable: {e.strerror}")
    return path.resolve()


def load_config(options: Mapping[str, object], environ: Mapping[str, str] | None = None) -> Config:
    """Validate everything and build the :class:`Config`; creates the data dir."""
    from convex_backend.auth.admin_key import AdminKeyError, parse_admin_key

    raw = _raw_values(options, os.environ if environ is None else environ)
    port = _port("port", raw["port"])
    site_port = _port("site-port", raw["site-port"])
    if port == site_port and port != 0:
        raise ConfigError(f"--port and --site-port are both {port}")
    host = str(raw["host"])
    log_level = str(raw["log-level"]).lower()
    if log_level not in LOG_LEVELS:
        raise ConfigError(
            f"--log-level must be one of {', '.join(LOG_LEVELS)}; got {raw['log-level']!r}"
        )
    workers = (
        _positive_int("workers", raw["workers"])
        if raw["workers"] is not None
        else max(1, os.cpu_count() or 1)
    )
    instance_name = validate_instance_name(str(raw["instance-name"]))
    secret = raw["instance-secret"]
    instance_secret = validate_instance_secret(str(secret)) if secret else None
    admin_key = raw["admin-key"]
    if admin_key is not None:
        try:
            name, _token = parse_admin_key(str(admin_key))
        except AdminKeyError as e:
            raise ConfigError(f"--admin-key is malformed: {e}")
        if name != instance_name:
            raise ConfigError(
                f"--admin-key is for instance {name!r}, but this is instance {instance_name!r}"
            )
    data_dir = _check_data_dir(Path(str(raw["data-dir"])))
    persistence = parse_persistence(
        str(raw["persistence"]) if raw["persistence"] else None, data_dir
    )
    public_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in public_host:
        public_host = f"[{public_host}]"
    site_proxy = raw["site-proxy"]
    if site_proxy is not None:
        site_proxy = _origin("site-proxy", site_proxy, "")
    return Config(
        host=host,
        port=port,
        site_port=site_port,
        data_dir=data_dir,
        persistence=persistence,
        instance_name=instance_name,
        instance_secret=instance_secret,
        admin_key=str(admin_key) if admin_key is not None else None,
        disable_beacon=bool(raw["disable-beacon"]),
        site_proxy=site_proxy,
        cloud_origin=_origin("cloud-origin", raw["cloud-origin"], f"http://{public_host}:{port}"),
        site_origin=_origin("site-origin", raw["site-origin"], f"http://{public_host}:{site_port}"),
        workers=workers,
        function_timeout=_positive_float("function-timeout", raw["function-timeout"]),
        action_timeout=_positive_float("action-timeout", raw["action-timeout"]),
        worker_memory_mb=_positive_int("worker-memory", raw["worker-memory"]),
        log_level=log_level,
        max_request_bytes=_positive_int("max-request-bytes", raw["max-request-bytes"]),
        max_file_bytes=_positive_int("max-file-bytes", raw["max-file-bytes"]),
        scheduler_parallelism=_positive_int("scheduler-parallelism", raw["scheduler-parallelism"]),
        scheduler_retention=_positive_float("scheduler-retention", raw["scheduler-retention"]),
    )
