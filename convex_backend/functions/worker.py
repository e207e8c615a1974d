"""The Python worker process: runs a deployment's modules for the host.

Run as ``python -m convex_backend.functions.worker --modules DIR [--memory-limit BYTES]``.
This module owns the worker's side of ``docs/function-abi.md``:

* startup: the memory limit (``RLIMIT_AS``), the determinism and console patches,
  importing every module under ``DIR`` into a private package, assigning each
  registered function its path, then ``ready`` or ``loadError``;
* the request loop: ``analyze`` and ``invoke`` frames, one at a time;
* per invocation: a :class:`Syscalls` object for the SDK (the four synchronous ops
  answered here, the others sent to the host as ``syscall`` frames), frozen time
  and seeded randomness for queries and mutations, no network in them, captured
  ``print``/``logging`` output as Convex log lines, ``os.environ`` set to the
  deployment's environment, and errors reported without tracebacks;
* nested calls the host answers with ``{"inline": ...}`` (``1.0/runUdf``,
  ``1.0/actions/action``): the callee runs here, inside the caller's
  invocation, and its outcome goes back as ``1.0/runUdfDone``.

Nothing but frames is ever written to the host pipe; stdout and stderr are free
for anything else (the host logs them at debug level).

Only the standard library and :mod:`~convex_backend.functions.framing` are
imported at module level: the patches must be in place before the SDK and user
code import ``datetime``, ``time`` or ``random`` names.
"""

from __future__ import annotations

import argparse
import datetime as _datetime_module
import hashlib
import importlib
import io
import logging
import os
import random
import socket
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable
from typing import Any

from convex_backend.functions.framing import (
    FrameError,
    FrameReader,
    encode_frame,
    write_bytes,
)

__all__ = ["MAX_LOG_LINE_BYTES", "MAX_LOG_LINES", "Syscalls", "main"]

#: The private package user modules are imported under, so that a user's
#: ``http.py`` or ``random.py`` never shadows (or is shadowed by) a real module.
PACKAGE = "_convex_modules"
#: Log lines kept per invocation, and the size of each (Convex's limits).
MAX_LOG_LINES = 256
MAX_LOG_LINE_BYTES = 4096
#: An unterminated ``print(..., end="")`` run is cut into a line at this length.
_MAX_PENDING = 8 * MAX_LOG_LINE_BYTES
#: Exit status after a MemoryError: the process may be in a bad state.
EXIT_OUT_OF_MEMORY = 3

NETWORK_IN_TRANSACTION = "Can't use the network in queries and mutations; use an action"
NETWORK_AT_IMPORT = "Can't use the network while modules are being imported; use an action"


# -- the patched world -------------------------------------------------------------


class _Mode:
    """What the patched clock, randomness, network and console do right now.

    One process-wide instance: the worker runs one invocation at a time, and the
    patched functions read it on every call.
    """

    __slots__ = ("det_rng", "det_seed", "logs", "network_error", "now_ns", "now_s")

    def __init__(self) -> None:
        #: Frozen time in seconds (and nanoseconds), or None for the real clock.
        self.now_s: float | None = None
        self.now_ns: int = 0
        #: Seed of the deterministic byte stream behind os.urandom, or None.
        self.det_seed: bytes | None = None
        self.det_rng: random.Random | None = None
        #: Message of the error raised on any network use, or None to allow it.
        self.network_error: str | None = None
        #: The current invocation's log lines, or None outside invocations.
        self.logs: _LogLines | None = None


_mode = _Mode()

_real_time = time.time
_real_time_ns = time.time_ns
_real_localtime = time.localtime
_real_gmtime = time.gmtime
_real_ctime = time.ctime
_real_strftime = time.strftime
_real_urandom = os.urandom
_real_seed = random.Random.seed
_real_datetime = _datetime_module.datetime
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_sendto = socket.socket.sendto
_real_create_connection = socket.create_connection
_real_getaddrinfo = socket.getaddrinfo
_real_gethostbyname = socket.gethostbyname
_real_gethostbyname_ex = socket.gethostbyname_ex
_real_gethostbyaddr = socket.gethostbyaddr


def _time() -> float:
    now = _mode.now_s
    return _real_time() if now is None else now


def _time_ns() -> int:
    return _real_time_ns() if _mode.now_s is None else _mode.now_ns


def _localtime(secs: float | None = None) -> time.struct_time:
    return _real_localtime(_time() if secs is None else secs)


def _gmtime(secs: float | None = None) -> time.struct_time:
    return _real_gmtime(_time() if secs is None else secs)


def _ctime(secs: float | None = None) -> str:
    return _real_ctime(_time() if secs is None else secs)


def _strftime(format: str, t: Any = None) -> str:
    return _real_strftime(format, _localtime() if t is None else t)


def _urandom(size: int) -> bytes:
    seed = _mode.det_seed
    if seed is None:
        return _real_urandom(size)
    rng = _mode.det_rng
    if rng is None:
        # Created on first use: most functions never ask for random bytes.
        rng = _mode.det_rng = random.Random(seed)
    return rng.randbytes(size)


def _seed(self: random.Random, a: Any = None, version: int = 2) -> None:
    # random.Random() and random.seed() with no argument would read the OS's
    # entropy directly (in C, not through os.urandom); in a query or mutation
    # they read the seeded stream instead.
    if a is None and _mode.det_seed is not None:
        a = _urandom(32)
    _real_seed(self, a, version)


def _module_seed(a: Any = None, version: int = 2) -> None:
    _seed(random._inst, a, version)  # type: ignore[attr-defined]


class _DatetimeMeta(type):
    # Instances made before the patch (or by code holding the original class)
    # still count as datetimes for isinstance/issubclass checks in user code.
    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, _real_datetime)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, _real_datetime)


class _Datetime(_real_datetime, metaclass=_DatetimeMeta):
    """``datetime.datetime`` whose ``now``/``utcnow``/``today`` see the frozen clock."""

    __slots__ = ()

    @classmethod
    def now(cls, tz: _datetime_module.tzinfo | None = None) -> _Datetime:  # type: ignore[override]
        now = _mode.now_s
        if now is None:
            return super().now(tz)  # type: ignore[return-value]
        return cls.fromtimestamp(now, tz)  # type: ignore[return-value]

    @classmethod
    def utcnow(cls) -> _Datetime:  # type: ignore[override]
        now = _mode.now_s
        if now is None:
            return super().utcnow()  # type: ignore[return-value]
        return cls.utcfromtimestamp(now)  # type: ignore[return-value]

    @classmethod
    def today(cls) -> _Datetime:  # type: ignore[override]
        return cls.now()


_Datetime.__name__ = _Datetime.__qualname__ = "datetime"
_Datetime.__module__ = "datetime"


def _check_network() -> None:
    message = _mode.network_error
    if message is not None:
        raise RuntimeError(message)


def _connect(self: socket.socket, address: Any) -> None:
    _check_network()
    return _real_connect(self, address)


def _connect_ex(self: socket.socket, address: Any) -> int:
    _check_network()
    return _real_connect_ex(self, address)


def _sendto(self: socket.socket, *args: Any) -> int:
    _check_network()
    return _real_sendto(self, *args)


def _create_connection(*args: Any, **kwargs: Any) -> socket.socket:
    _check_network()
    return _real_create_connection(*args, **kwargs)


def _getaddrinfo(*args: Any, **kwargs: Any) -> list:
    _check_network()
    return _real_getaddrinfo(*args, **kwargs)


def _gethostbyname(*args: Any) -> str:
    _check_network()
    return _real_gethostbyname(*args)


def _gethostbyname_ex(*args: Any) -> tuple:
    _check_network()
    return _real_gethostbyname_ex(*args)


def _gethostbyaddr(*args: Any) -> tuple:
    _check_network()
    return _real_gethostbyaddr(*args)


def _install_patches() -> None:
    """Patch time, randomness, datetime and sockets to consult :data:`_mode`.

    Done once, before the SDK and user modules are imported, so that names they
    import (``from time import time``, ``from datetime import datetime``) are
    already the patched ones.
    """
    time.time = _time
    time.time_ns = _time_ns
    time.localtime = _localtime
    time.gmtime = _gmtime
    time.ctime = _ctime
    time.strftime = _strftime
    # date.today() and datetime.today() call time.time() by name, so the
    # patched time.time covers them; datetime.now() reads the system clock in
    # C, hence the subclass.
    _datetime_module.datetime = _Datetime  # type: ignore[misc]
    # uuid.uuid4() calls os.urandom by name; SystemRandom (and so secrets)
    # holds random's own reference to it.
    os.urandom = _urandom
    random._urandom = _urandom  # type: ignore[attr-defined]
    random.Random.seed = _seed  # type: ignore[method-assign]
    random.seed = _module_seed
    socket.socket.connect = _connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]
    socket.socket.sendto = _sendto  # type: ignore[method-assign]
    socket.create_connection = _create_connection
    socket.getaddrinfo = _getaddrinfo
    socket.gethostbyname = _gethostbyname
    socket.gethostbyname_ex = _gethostbyname_ex
    socket.gethostbyaddr = _gethostbyaddr


def _seed_bytes(seed: Any) -> bytes:
    if isinstance(seed, str):
        try:
            return bytes.fromhex(seed)
        except ValueError:
            return seed.encode()
    return repr(seed).encode()


def _enter_deterministic(seed: bytes, now_ms: float) -> None:
    _mode.now_s = now_ms / 1000.0
    _mode.now_ns = int(now_ms * 1_000_000)
    _mode.det_seed = hashlib.sha256(b"urandom:" + seed).digest()
    _mode.det_rng = None
    _real_seed(random._inst, seed)  # type: ignore[attr-defined]


def _enter_real() -> None:
    if _mode.det_seed is not None:
        # The module-level generator still holds the last query's seeded state;
        # an action must not be able to predict it.
        _mode.det_seed = None
        _mode.det_rng = None
        _real_seed(random._inst, None)  # type: ignore[attr-defined]
    _mode.now_s = None


# -- environment -------------------------------------------------------------------


class _Environment:
    """Sets ``os.environ`` to a given mapping, touching only what differs.

    Clearing and refilling ``os.environ`` costs a putenv/unsetenv per variable
    and an O(n) scan per deletion, hundreds of microseconds per invocation;
    invocations almost always bring the same variables, so comparing the
    encoded mapping ``os.environ`` keeps (``_data``) first makes the common
    case nearly free.
    """

    def __init__(self) -> None:
        # The last two mappings encoded: the deployment's and the worker's own
        # environment alternate.
        self._cache: list[tuple[dict[str, str], dict[bytes, bytes]]] = []

    def _encode(self, env: dict[str, str]) -> dict[bytes, bytes]:
        for known, encoded in self._cache:
            if env == known:
                return encoded
        environ = os.environ
        encoded = {
            environ.encodekey(str(k)): environ.encodevalue(str(v))  # type: ignore[attr-defined]
            for k, v in env.items()
        }
        self._cache = [(dict(env), encoded), *self._cache[:1]]
        return encoded

    def apply(self, env: dict[str, str]) -> None:
        environ = os.environ
        data = getattr(environ, "_data", None)
        if not isinstance(data, dict):  # not CPython's os.environ: the slow way
            environ.clear()
            environ.update({str(k): str(v) for k, v in env.items()})
            return
        encoded = self._encode(env)
        if data == encoded:
            return
        for key in [k for k in data if k not in encoded]:
            os.unsetenv(key)
            del data[key]
        for key, value in encoded.items():
            if data.get(key) != value:
                os.putenv(key, value)
                data[key] = value


# -- console capture ---------------------------------------------------------------


class _LogLines:
    """One invocation's log lines, within Convex's count and size limits."""

    __slots__ = ("dropped", "lines")

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.dropped = 0

    def add(self, level: str, text: str) -> None:
        if len(self.lines) >= MAX_LOG_LINES:
            self.dropped += 1
            return
        line = f"[{level}] {text!r}"
        # A character is at most 4 bytes, so short lines skip the encoding.
        if len(line) > MAX_LOG_LINE_BYTES // 4:
            raw = line.encode("utf-8", "replace")
            if len(raw) > MAX_LOG_LINE_BYTES:
                line = raw[:MAX_LOG_LINE_BYTES].decode("utf-8", "ignore")
        self.lines.append(line)

    def finish(self) -> list[str]:
        if self.dropped:
            self.lines.append(
                f"[WARN] Log overflow (maximum {MAX_LOG_LINES}). "
                f"{self.dropped} remaining log lines omitted."
            )
            self.dropped = 0
        return self.lines


class _ConsoleStream(io.TextIOBase):
    """``sys.stdout``/``sys.stderr``: log lines during an invocation, else the real stream."""

    def __init__(self, level: str, real: Any) -> None:
        super().__init__()
        self._level = level
        self._real = real
        self._pending = ""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "strict"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._real.fileno()

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        logs = _mode.logs
        if logs is None:
            return self._real.write(s)
        text = self._pending + s if self._pending else s
        if "\n" in text:
            *lines, text = text.split("\n")
            for line in lines:
                logs.add(self._level, line)
        if len(text) > _MAX_PENDING:
            logs.add(self._level, text)
            text = ""
        self._pending = text
        return len(s)

    def flush(self) -> None:
        if _mode.logs is None:
            self._real.flush()

    def end_invocation(self, logs: _LogLines) -> None:
        if self._pending:
            logs.add(self._level, self._pending)
            self._pending = ""


_LEVELS = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARN",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "ERROR",
}


def _level_name(levelno: int) -> str:
    name = _LEVELS.get(levelno)
    if name is not None:
        return name
    if levelno >= logging.ERROR:
        return "ERROR"
    if levelno >= logging.WARNING:
        return "WARN"
    return "INFO" if levelno >= logging.INFO else "DEBUG"


class _LogHandler(logging.Handler):
    """The root logger's handler: records become log lines of the invocation."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                message += "\n" + _describe(record.exc_info[1])
        except Exception:
            self.handleError(record)
            return
        logs = _mode.logs
        if logs is None:
            sys.__stderr__.write(f"{record.levelname}:{record.name}:{message}\n")
        else:
            logs.add(_level_name(record.levelno), message)


_stdout: _ConsoleStream | None = None
_stderr: _ConsoleStream | None = None
_log_handler = _LogHandler()


def _install_console() -> None:
    global _stdout, _stderr
    _stdout = _ConsoleStream("LOG", sys.__stdout__)
    _stderr = _ConsoleStream("ERROR", sys.__stderr__)
    sys.stdout = _stdout
    sys.stderr = _stderr
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_log_handler)
    # Like console.debug in Convex, every level is captured.
    root.setLevel(logging.DEBUG)


# -- errors ------------------------------------------------------------------------


def _clean(text: str) -> str:
    # Users never see the private package name in messages.
    return text.replace(PACKAGE + ".", "").replace(PACKAGE, "")


def _describe(e: BaseException) -> str:
    """``Type: text`` for an exception, no traceback, no private package names."""
    text = e.msg if isinstance(e, SyntaxError) and e.msg else str(e)
    name = type(e).__name__
    return _clean(f"{name}: {text}" if text else name)


def _is_convex_error(e: BaseException) -> bool:
    return any(cls.__name__ == "ConvexError" for cls in type(e).__mro__)


class _InvokeError(Exception):
    """A failure the worker reports as-is (no ``Uncaught`` prefix)."""


# -- loading -----------------------------------------------------------------------


class LoadFailure(Exception):
    def __init__(self, message: str, file: str | None, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line


def _module_files(root: str) -> list[tuple[str, str]]:
    """``(module path, file path)`` of every importable ``.py`` under ``root``, sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".") and "." not in d and d not in ("__pycache__", "node_modules")
        )
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(filenames):
            stem, ext = os.path.splitext(name)
            if ext != ".py" or "." in stem or name.startswith(".") or stem == "__init__":
                continue
            rel = name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/")
            found.append((rel[:-3], rel))
    return found


def _failure_location(e: BaseException, root: str, importing: str) -> tuple[str, int | None]:
    prefix = root.rstrip(os.sep) + os.sep
    if isinstance(e, SyntaxError) and e.filename and e.filename.startswith(prefix):
        return e.filename[len(prefix) :].replace(os.sep, "/"), e.lineno
    for frame in reversed(traceback.extract_tb(e.__traceback__)):
        if frame.filename.startswith(prefix):
            return frame.filename[len(prefix) :].replace(os.sep, "/"), frame.lineno
    return importing, None


class _Deployment:
    """The imported modules and their functions, by path."""

    def __init__(self, root: str) -> None:
        self.root = root
        #: (module path, file, module object), in import order.
        self.modules: list[tuple[str, str, types.ModuleType]] = []
        #: (module path, file, export name, path, function) for analyze.
        self.exports: list[tuple[str, str, str, str, Any]] = []
        self.functions: dict[str, Any] = {}

    def load(self, rt: Any) -> None:
        root = self.root
        package = types.ModuleType(PACKAGE)
        package.__path__ = [root]
        package.__package__ = PACKAGE
        sys.modules[PACKAGE] = package
        importlib.invalidate_caches()
        for module_path, file in _module_files(root):
            name = PACKAGE + "." + module_path.replace("/", ".")
            try:
                module = importlib.import_module(name)
            except BaseException as e:
                where, line = _failure_location(e, root, file)
                raise LoadFailure(_describe(e), where, line) from None
            self.modules.append((module_path, file, module))
        for module_path, file, module in self.modules:
            try:
                registered = rt.registered_functions(module)
            except Exception as e:
                raise LoadFailure(_describe(e), file, None) from None
            for export, fn in registered:
                path = module_path if export == "default" else f"{module_path}:{export}"
                self.exports.append((module_path, file, export, path, fn))
                self.functions[path] = fn
        # A function re-exported by another module keeps the path of the module
        # that defines it; the re-export is still callable by its own path.
        for _m, _f, _e, path, fn in self.exports:
            if getattr(fn, "path", None) is None and getattr(fn, "__module__", None) == (
                PACKAGE + "." + _m.replace("/", ".")
            ):
                fn.path = path
        for _m, _f, _e, path, fn in self.exports:
            if getattr(fn, "path", None) is None:
                fn.path = path

    def module(self, module_path: str) -> types.ModuleType | None:
        for path, _file, module in self.modules:
            if path == module_path:
                return module
        return None

    def lookup(self, path: Any) -> Any:
        if not isinstance(path, str):
            raise _InvokeError(f"Invalid function path {path!r}")
        fn = self.functions.get(path)
        if fn is not None:
            return fn
        module_path, _, name = path.partition(":")
        for ext in (".py", ".js"):
            if module_path.endswith(ext):
                module_path = module_path[: -len(ext)]
        if name in ("", "default"):
            fn = self.functions.get(module_path)
        else:
            fn = self.functions.get(f"{module_path}:{name}")
        if fn is None:
            raise _InvokeError(f"Could not find function for '{path}'")
        return fn

    def analyze(self, rt: Any) -> dict[str, Any]:
        functions = []
        for _module_path, file, export, path, fn in self.exports:
            udf_type = fn.udf_type
            http = udf_type == "httpAction"
            functions.append(
                {
                    "name": export,
                    "module": file,
                    "path": path,
                    "udfType": udf_type,
                    "visibility": fn.visibility,
                    "args": None if http else fn.args_json(),
                    "returns": None if http else fn.returns_json(),
                    "line": fn.line,
                }
            )
        schema = None
        schema_module = self.module("schema")
        if schema_module is not None:
            try:
                schema = rt.schema_export(schema_module)
            except Exception as e:
                raise LoadFailure(_describe(e), "schema.py", None) from None
        routes = None
        router = self.router(rt)
        if router is not None:
            try:
                routes = router.export_routes()
            except Exception as e:
                raise LoadFailure(_describe(e), "http.py", None) from None
        crons = None
        crons_module = self.module("crons")
        if crons_module is not None:
            try:
                crons = rt.crons_export(crons_module)
            except Exception as e:
                raise LoadFailure(_describe(e), "crons.py", None) from None
        auth_config = None
        auth_module = self.module("auth_config")
        if auth_module is not None:
            try:
                auth_config = _auth_config_export(auth_module)
            except Exception as e:
                raise LoadFailure(_describe(e), "auth_config.py", None) from None
        return {
            "functions": functions,
            "schema": schema,
            "httpRoutes": routes,
            "crons": crons,
            "authConfig": auth_config,
        }

    def router(self, rt: Any) -> Any:
        module = self.module("http")
        return None if module is None else rt.http_router(module)


def _auth_config_export(module: types.ModuleType) -> Any:
    """``auth_config.providers`` as JSON; the host checks its shape at deploy time."""
    import json  # noqa: PLC0415

    if not hasattr(module, "providers"):
        raise ValueError("auth_config.py must define `providers`, a list of auth providers")
    try:
        return json.loads(json.dumps(module.providers, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ValueError(f"`providers` must hold only JSON values (dicts of strings): {e}")


# -- the host connection and syscalls ----------------------------------------------


def _exit(status: int) -> None:
    # os._exit: no atexit handlers of user code, no waiting for threads an
    # action left running.
    try:
        sys.__stdout__.flush()
        sys.__stderr__.flush()
    except Exception:
        pass
    os._exit(status)


class _Channel:
    """The two pipes to the host; one round trip at a time across threads."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.reader = FrameReader(rfd)
        self.wfd = wfd
        #: One round trip at a time; one frame being written at a time.
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self._next_id = 0

    def send(self, frame: dict[str, Any]) -> None:
        self.send_bytes(encode_frame(frame))

    def send_bytes(self, data: bytes) -> None:
        # Frames larger than PIPE_BUF are not written atomically: threads an
        # action started must not interleave theirs.
        with self.write_lock:
            try:
                write_bytes(self.wfd, data)
            except OSError:
                _exit(0)  # the host is gone

    def receive(self) -> dict[str, Any] | None:
        try:
            return self.reader.read()
        except FrameError as e:
            sys.__stderr__.write(f"convex worker: bad frame from the host: {e}\n")
            _exit(2)
        except OSError:
            _exit(0)
        return None  # unreachable

    def round_trip(self, invocation: Any, op: str, args: Any) -> dict[str, Any]:
        """Send a ``syscall`` and wait for its ``syscallResult``."""
        with self.lock:
            self._next_id += 1
            call_id = self._next_id
            self.send(
                {"type": "syscall", "id": call_id, "invocation": invocation, "op": op, "args": args}
            )
            while True:
                frame = self.receive()
                if frame is None:
                    _exit(0)
                kind = frame.get("type")
                if kind == "syscallResult" and frame.get("id") == call_id:
                    return frame
                if kind == "shutdown":
                    _exit(0)
                # Anything else is stale or out of place; the host never sends
                # another request while an invocation is running.


#: Ops whose answer may be ``{"inline": {"path", "udfType", "args"}}``: run the
#: callee in this worker, then report its outcome with ``1.0/runUdfDone``.
_INLINE_OPS = frozenset(("1.0/runUdf", "1.0/actions/action"))


class Syscalls:
    """The SDK's view of the host for one invocation (the ``Syscalls`` protocol).

    The four synchronous ops are answered here without a round trip; every
    other op is a ``syscall`` frame to the host.
    """

    __slots__ = (
        "_channel",
        "_closed",
        "_error",
        "_inline",
        "_invocation",
        "_next_query",
        "_queries",
        "_snapshot_ts",
        "_started",
        "_tables",
        "request_id",
    )

    def __init__(
        self,
        channel: _Channel,
        invocation: Any,
        tables: dict[str, int],
        snapshot_ts: Any,
        error_class: type[Exception],
        *,
        request_id: str = "",
        inline: Callable[[dict[str, Any], Syscalls], dict[str, Any]] | None = None,
    ) -> None:
        self._channel = channel
        self._invocation = invocation
        self._tables = tables
        self._snapshot_ts = snapshot_ts
        self._error = error_class
        self._inline = inline
        self.request_id = request_id
        self._queries: dict[int, Any] = {}
        self._started: set[int] = set()
        self._next_query = 0
        self._closed = False

    def syscall(self, op: str, args: dict[str, Any]) -> Any:
        if op == "1.0/queryStream":
            query_id = self._next_query
            self._next_query += 1
            self._queries[query_id] = args.get("query")
            return {"queryId": query_id}
        if op == "1.0/queryCleanup":
            query_id = args.get("queryId")
            known = self._queries.pop(query_id, None) is not None
            if query_id in self._started:
                self._started.discard(query_id)
                if not self._closed:
                    self._channel.send(
                        {
                            "type": "syscall",
                            "invocation": self._invocation,
                            "op": "1.0/queryCleanup",
                            "args": {"queryId": query_id},
                        }
                    )
            return known
        if op == "1.0/db/normalizeId":
            return {"id": self._normalize_id(args.get("table"), args.get("idString"))}
        if op == "1.0/getSnapshotTs":
            return self._snapshot_ts
        raise self._error(f"Unknown operation {op}")

    def _normalize_id(self, table: Any, id_string: Any) -> str | None:
        number = self._tables.get(table) if isinstance(table, str) else None
        if number is None or not isinstance(id_string, str):
            return None
        from convex_backend.values import InvalidIdError, decode_id

        try:
            decoded = decode_id(id_string)
        except InvalidIdError:
            return None
        return id_string if decoded.table_number == number else None

    def async_syscall(self, op: str, args: dict[str, Any]) -> Any:
        if self._closed:
            raise self._error(f"{op} was called after the function returned")
        if op == "1.0/queryStreamNext":
            query_id = args.get("queryId")
            if query_id not in self._started and query_id in self._queries:
                # The host never saw queryStream: the first next carries the query.
                self._started.add(query_id)
                args = {**args, "query": self._queries[query_id]}
        result = self._round_trip(op, args)
        if (
            op in _INLINE_OPS
            and type(result) is dict
            and "inline" in result
            and self._inline is not None
        ):
            # The host validated a nested call and wants it run here, in this
            # invocation (same transaction); it then checks the outcome.
            outcome = self._inline(result["inline"], self)
            result = self._round_trip("1.0/runUdfDone", outcome)
        return result

    def _round_trip(self, op: str, args: Any) -> Any:
        frame = self._channel.round_trip(self._invocation, op, args)
        error = frame.get("error")
        if error is not None:
            if not isinstance(error, dict):
                error = {"message": str(error)}
            raise self._error(
                str(error.get("message", "")), error.get("data"), has_data="data" in error
            )
        return frame.get("result")

    def close(self) -> None:
        self._closed = True


# -- the request loop --------------------------------------------------------------


class _Worker:
    def __init__(self, channel: _Channel, deployment: _Deployment, rt: Any, memory_limit: int):
        self.channel = channel
        self.deployment = deployment
        self.rt = rt
        self.memory_limit = memory_limit
        self.base_environ = dict(os.environ)
        self.environment = _Environment()
        self.router_cache: list[Any] = []

    def serve(self) -> None:
        channel = self.channel
        while True:
            frame = channel.receive()
            if frame is None:
                return
            kind = frame.get("type")
            if kind == "invoke":
                self.invoke(frame)
            elif kind == "analyze":
                self.analyze(frame)
            elif kind == "shutdown":
                return
            # Anything else (a late syscallResult) is ignored.

    def analyze(self, frame: dict[str, Any]) -> None:
        try:
            result = self.deployment.analyze(self.rt)
        except LoadFailure as e:
            self.channel.send(
                {"type": "loadError", "message": e.message, "file": e.file, "line": e.line}
            )
            return
        self.channel.send({"type": "analyzed", "id": frame.get("id"), **result})

    def _router(self) -> Any:
        if not self.router_cache:
            self.router_cache.append(self.deployment.router(self.rt))
        return self.router_cache[0]

    def invoke(self, frame: dict[str, Any]) -> None:
        rt = self.rt
        invocation = frame.get("id")
        udf_type = frame.get("udfType")
        path = frame.get("path")
        args = frame.get("args")
        request_id = frame.get("requestId") or ""
        logs = _LogLines()
        syscalls = Syscalls(
            self.channel,
            invocation,
            frame.get("tables") or {},
            frame.get("snapshotTs"),
            rt.SyscallError,
            request_id=request_id,
            inline=self.run_inline,
        )
        out_of_memory = False
        self._begin(frame, udf_type, logs)
        try:
            if udf_type == "httpAction":
                router = self._router()
                if router is None:
                    raise _InvokeError("This deployment has no HTTP router (http.py)")
                value = rt.invoke_http(router, syscalls, args, request_id=request_id)
            else:
                fn = self.deployment.lookup(path)
                if fn.udf_type != udf_type:
                    raise _InvokeError(f"{path} is a {fn.udf_type}, not a {udf_type}")
                value = rt.invoke(fn, syscalls, args, request_id=request_id)
            result: dict[str, Any] = {
                "type": "result",
                "id": invocation,
                "success": True,
                "value": value,
            }
        except MemoryError:
            out_of_memory = True
            result = self._failure(invocation, {"message": self._oom_message()})
        except BaseException as e:
            result = self._failure(invocation, self._error_json(e))
        finally:
            syscalls.close()
            self._end(logs)
        result["logLines"] = logs.finish()
        try:
            data = encode_frame(result)
        except FrameError as e:
            data = encode_frame(
                self._failure(
                    invocation,
                    {"message": f"The function's result could not be sent: {e}"},
                    logs.lines,
                )
            )
        except MemoryError:
            out_of_memory = True
            data = encode_frame(self._failure(invocation, {"message": self._oom_message()}))
        self.channel.send_bytes(data)
        if out_of_memory:
            # The heap may be fragmented or half-updated: the host replaces us.
            _exit(EXIT_OUT_OF_MEMORY)

    def _failure(
        self, invocation: Any, error: dict[str, Any], log_lines: list[str] | None = None
    ) -> dict[str, Any]:
        frame = {"type": "result", "id": invocation, "success": False, "error": error}
        if log_lines is not None:
            frame["logLines"] = log_lines
        return frame

    def _oom_message(self) -> str:
        if self.memory_limit:
            mib = self.memory_limit / (1024 * 1024)
            return f"Function ran out of memory (the worker's limit is {mib:g} MiB)"
        return "Function ran out of memory"

    def _error_json(self, e: BaseException) -> dict[str, Any]:
        """The ``error`` of a failed result: ``Uncaught Type: text``, data for ConvexError."""
        if isinstance(e, _InvokeError):
            return {"message": _clean(str(e))}
        text = _clean(str(e))
        rt = self.rt
        convex_error = _is_convex_error(e)
        if convex_error:
            name = "ConvexError"
        elif isinstance(e, rt.SyscallError) or type(e).__name__ == "ConvexFunctionError":
            name = "Error"  # a host-reported failure is JavaScript's plain Error
        else:
            name = type(e).__name__
        if text.startswith("Uncaught "):
            message = text  # already formatted, by a nested call
        else:
            message = f"Uncaught {name}: {text}" if text else f"Uncaught {name}"
        error: dict[str, Any] = {"message": message}
        if convex_error:
            try:
                error["data"] = rt.error_data_json(e)
            except Exception:
                error["data"] = None
        elif isinstance(e, rt.SyscallError) and getattr(e, "has_data", False):
            error["data"] = e.data
        return error

    def run_inline(self, spec: Any, syscalls: Syscalls) -> dict[str, Any]:
        """Run a nested call the host asked to run here; the ``1.0/runUdfDone`` args."""
        try:
            if not isinstance(spec, dict):
                raise _InvokeError(f"Invalid nested call {spec!r}")
            path = spec.get("path")
            fn = self.deployment.lookup(path)
            udf_type = spec.get("udfType")
            if udf_type is not None and fn.udf_type != udf_type:
                raise _InvokeError(f"{path} is a {fn.udf_type}, not a {udf_type}")
            value = self.rt.invoke(fn, syscalls, spec.get("args"), request_id=syscalls.request_id)
        except MemoryError:
            raise
        except BaseException as e:
            return {"error": self._error_json(e)}
        return {"value": value}

    def _begin(self, frame: dict[str, Any], udf_type: Any, logs: _LogLines) -> None:
        env = frame.get("env")
        self.environment.apply(env if isinstance(env, dict) else {})
        if udf_type in ("query", "mutation"):
            now = frame.get("now")
            if not isinstance(now, (int, float)):
                now = _real_time() * 1000
            _enter_deterministic(_seed_bytes(frame.get("seed")), float(now))
            _mode.network_error = NETWORK_IN_TRANSACTION
        else:
            _enter_real()
            _mode.network_error = None
        # User code may have swapped these out in an earlier invocation.
        if sys.stdout is not _stdout or sys.stderr is not _stderr:
            sys.stdout, sys.stderr = _stdout, _stderr
        root = logging.getLogger()
        if _log_handler not in root.handlers:
            root.addHandler(_log_handler)
        _mode.logs = logs

    def _end(self, logs: _LogLines) -> None:
        _mode.logs = None
        assert _stdout is not None and _stderr is not None
        _stdout.end_invocation(logs)
        _stderr.end_invocation(logs)
        self.environment.apply(self.base_environ)


# -- main --------------------------------------------------------------------------


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m convex_backend.functions.worker",
        description="Run a deployment's function modules for the host (fds 3 and 4).",
    )
    parser.add_argument("--modules", required=True, help="directory of the modules")
    parser.add_argument(
        "--memory-limit", type=int, default=0, help="address-space limit in bytes (0: none)"
    )
    return parser.parse_args(argv)


def _take_fd(fd: int) -> int:
    # Move the protocol pipes off 3 and 4, far from the small numbers user code
    # gets for its own files, and close-on-exec, so that neither a subprocess
    # nor a stray os.write(4, ...) in user code can reach them.
    import fcntl

    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100)
    os.close(fd)
    return new


def main(argv: list[str] | None = None) -> int:
    """The worker's entry point; returns only on a clean end (shutdown or EOF)."""
    options = _parse(argv)
    if options.memory_limit > 0:
        import resource

        limit = options.memory_limit
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    channel = _Channel(_take_fd(3), _take_fd(4))
    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    os.close(stdin)

    _install_patches()
    _install_console()
    # Module imports see a frozen clock and seeded randomness of their own (the
    # same seed in every worker, so module-level constants agree across them)
    # and no network.
    _enter_deterministic(b"convex:import", _real_time() * 1000)
    _mode.network_error = NETWORK_AT_IMPORT

    root = os.path.abspath(options.modules)
    try:
        from convex_backend.server import _runtime as rt

        deployment = _Deployment(root)
        deployment.load(rt)
    except LoadFailure as e:
        channel.send({"type": "loadError", "message": e.message, "file": e.file, "line": e.line})
        _exit(1)
    except BaseException as e:
        channel.send({"type": "loadError", "message": _describe(e), "file": None, "line": None})
        _exit(1)
    _enter_real()
    _mode.network_error = None

    channel.send({"type": "ready", "pid": os.getpid()})
    worker = _Worker(channel, deployment, rt, options.memory_limit)
    worker.serve()
    _exit(0)
    return 0


if __name__ == "__main__":
    main()
