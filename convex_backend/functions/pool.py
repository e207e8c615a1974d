"""The host side of the worker protocol: a pool of worker processes as a Twisted service.

This module owns worker processes and everything the host enforces on them
(``docs/function-abi.md``, "Faults"):

* spawning workers (``python -m convex_backend.functions.worker``) with the
  protocol pipes on fds 3 and 4, waiting for ``ready``;
* :meth:`WorkerPool.invoke`: one invocation per worker, a bounded queue in
  front (:class:`Overloaded` when it is full), syscalls answered by the
  caller's handler, a time limit on user code that stops counting while the
  host answers a syscall;
* faults: a worker that times out, exits, or writes a malformed frame is
  killed and replaced, and only its own invocation fails;
* :meth:`WorkerPool.analyze` (a one-off worker that imports a modules
  directory and describes it) and :meth:`WorkerPool.swap` (move new
  invocations to fresh workers on another directory, retiring the old ones as
  they finish).

It knows nothing about transactions or function semantics: requests and
syscalls are passed through as JSON.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, protocol
from twisted.internet.error import ProcessExitedAlready
from twisted.logger import Logger
from twisted.python.failure import Failure

from convex_backend.functions.framing import FrameDecoder, FrameError, encode_frame

__all__ = [
    "FunctionTimeout",
    "HostSyscallError",
    "LoadError",
    "Overloaded",
    "PoolError",
    "PoolStopped",
    "SyscallHandler",
    "WorkerCrashed",
    "WorkerPool",
    "WorkerProtocolError",
]

log = Logger(namespace="convex.functions")

#: The checkout the workers must import: the parent of the ``convex_backend`` package.
REPO_ROOT = str(Path(__file__).resolve().parent.parent.parent)
#: Host environment variables a worker inherits (the host's secrets stay here).
_INHERITED_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "TZ",
    "LD_LIBRARY_PATH",
    "PYTHONHOME",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "SYSTEMROOT",
)
_CHILD_FDS = {0: "w", 1: "r", 2: "r", 3: "w", 4: "r"}
#: The worker's exit status after it reported a MemoryError (see the worker).
_EXIT_OUT_OF_MEMORY = 3
_SHUTDOWN = encode_frame({"type": "shutdown"})
_ANALYZE = encode_frame({"type": "analyze", "id": 1})

#: ``handler(op, args, notification)``: the answer to a syscall (a JSON-able
#: value, or a Deferred/coroutine of one); raise :class:`HostSyscallError` for
#: an error the function should see.
SyscallHandler = Callable[[str, Any, bool], Any]


# -- errors ------------------------------------------------------------------------


class PoolError(Exception):
    """An invocation failed because of the worker or the pool, not the function's code.

    ``code`` names the kind of failure; ``message`` is fit for the caller.
    """

    code = "WorkerError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Overloaded(PoolError):
    """Every worker is busy and the queue in front of them is full."""

    code = "Overloaded"


class FunctionTimeout(PoolError):
    """The function's code ran longer than its time limit; its worker was killed."""

    code = "FunctionTimeout"


class WorkerCrashed(PoolError):
    """The worker process exited (or was killed) in the middle of the invocation."""

    code = "WorkerCrashed"


class WorkerProtocolError(PoolError):
    """The worker broke the protocol (a malformed or unexpected frame); it was killed."""

    code = "WorkerProtocolError"


class PoolStopped(PoolError):
    """The pool is not running (stopped, stopping, or without working modules)."""

    code = "PoolStopped"


class LoadError(PoolError):
    """The modules could not be imported: ``message`` and, when known, ``file`` and ``line``."""

    code = "LoadError"

    def __init__(self, message: str, file: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.file = file
        self.line = line

    def __str__(self) -> str:
        if self.file:
            where = f"{self.file}:{self.line}" if self.line is not None else self.file
            return f"{where}: {self.message}"
        return self.message


class HostSyscallError(Exception):
    """Raised by a syscall handler: the function sees an error with ``message``
    (and, for a ``ConvexError`` of a nested call, ``data``, already Convex-JSON)."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


def _syscall_error(e: HostSyscallError) -> dict[str, Any]:
    error: dict[str, Any] = {"message": str(e.message)}
    if e.data is not None:
        error["data"] = e.data
    return error


_INTERNAL_ERROR = {"message": "Internal error"}


def _duration(seconds: float) -> str:
    return f"{seconds:g}s"


# -- invocations -------------------------------------------------------------------


class _Job:
    """One invocation: its encoded frame, its caller, and its clock."""

    __slots__ = (
        "budget",
        "deferred",
        "frame",
        "handler",
        "id",
        "requeued",
        "resumed",
        "started",
        "timer",
        "used",
    )

    def __init__(self, job_id: int, frame: bytes, handler: SyscallHandler, budget: float):
        self.id = job_id
        self.frame = frame
        self.handler = handler
        self.budget = budget
        self.deferred: defer.Deferred = defer.Deferred()
        #: Seconds of worker time already spent, and when the worker last
        #: resumed computing (None while the host answers a syscall).
        self.used = 0.0
        self.resumed: float | None = None
        self.timer: Any = None
        #: Whether the worker has shown that it read the invoke (a frame arrived).
        self.started = False
        self.requeued = False

    def succeed(self, result: dict[str, Any]) -> None:
        if not self.deferred.called:  # the caller may have cancelled
            self.deferred.callback(result)

    def fail(self, error: Exception) -> None:
        if not self.deferred.called:
            self.deferred.errback(Failure(error))


# -- worker processes --------------------------------------------------------------

_STARTING, _IDLE, _BUSY, _STOPPING, _DEAD = range(5)


class _Generation:
    """The workers of one modules directory."""

    __slots__ = ("failures", "modules_dir", "ready", "waiter", "workers")

    def __init__(self, modules_dir: str) -> None:
        self.modules_dir = modules_dir
        self.workers: set[_Worker] = set()
        self.ready = 0
        #: Fires when the first ``size`` workers are ready (pending generations).
        self.waiter: defer.Deferred | None = None
        #: Replacement workers that failed to start in a row (for backoff).
        self.failures = 0


class _Process(protocol.ProcessProtocol):
    """A worker process and its frame stream (shared by pool workers and analyzers)."""

    transport: Any

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.decoder = FrameDecoder()
        self.pid: int | None = None
        self.state = _STARTING
        self.ended: defer.Deferred = defer.Deferred()
        self._timer: Any = None
        self._kill_timer: Any = None
        self._writer: Any = None

    # transport events

    def connectionMade(self) -> None:
        self.pid = self.transport.pid
        self.transport.closeStdin()
        writer = getattr(self.transport, "pipes", {}).get(3)
        if all(hasattr(writer, a) for a in ("fd", "_tempDataLen", "dataBuffer", "offset")):
            self._writer = writer

    def childDataReceived(self, fd: int, data: bytes) -> None:
        if fd == 4:
            if self.state == _DEAD:
                return
            try:
                frames = self.decoder.feed(data)
            except FrameError as e:
                self.protocol_error(str(e))
                return
            for frame in frames:
                self.frame_received(frame)
                if self.state == _DEAD:
                    return
        else:
            text = data.decode("utf-8", "replace").rstrip("\n")
            if text:
                log.debug("worker {pid}: {text}", pid=self.pid, text=text)

    def processEnded(self, reason: Failure) -> None:
        for timer in (self._timer, self._kill_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._timer = self._kill_timer = None
        self.pool._processes.discard(self)
        code = getattr(reason.value, "exitCode", None)
        signal = getattr(reason.value, "signal", None)
        was = self.state
        self.state = _DEAD
        try:
            self.exited(was, code, signal)
        finally:
            self.ended.callback(None)

    # helpers

    def write(self, data: bytes) -> None:
        writer = self._writer
        if (
            writer is not None
            and writer.connected
            and not writer.disconnecting
            and not writer._tempDataLen
            and writer.offset == len(writer.dataBuffer)
        ):
            # Hot path: nothing is queued in Twisted's buffer, so write to the
            # (non-blocking) pipe right away instead of waiting for the next
            # reactor iteration; that saves two epoll changes and a loop per
            # frame. Whatever the pipe does not take goes through Twisted.
            try:
                written = os.write(writer.fd, data)
            except BlockingIOError:
                written = 0
            except OSError:
                return  # the pipe is gone: processEnded will follow
            if written == len(data):
                return
            data = data[written:]
        try:
            self.transport.writeToChild(3, data)
        except (KeyError, AttributeError, OSError):
            pass  # the pipe is gone: processEnded will follow

    def terminate(self) -> None:
        """Give up on the process: no more frames are handled, and it is SIGKILLed."""
        self.cancel_timer()
        self.state = _DEAD
        self.kill()

    def kill(self) -> None:
        """SIGKILL the process (its exit is still reported to processEnded)."""
        try:
            self.transport.signalProcess("KILL")
        except (ProcessExitedAlready, OSError):
            pass

    def shutdown(self, grace: float) -> None:
        """Ask the worker to exit; SIGKILL it if it has not after ``grace`` seconds."""
        if self.state in (_STOPPING, _DEAD):
            return
        self.state = _STOPPING
        self.write(_SHUTDOWN)
        try:
            self.transport.closeChildFD(3)
        except (KeyError, AttributeError, OSError):
            pass
        self._kill_timer = self.pool._reactor.callLater(grace, self.kill)

    def start_timer(self, seconds: float, callback: Callable[[], None]) -> None:
        self._timer = self.pool._reactor.callLater(seconds, callback)

    def cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    # subclasses

    def frame_received(self, frame: dict[str, Any]) -> None:
        raise NotImplementedError

    def protocol_error(self, reason: str) -> None:
        raise NotImplementedError

    def exited(self, was: int, code: int | None, signal: int | None) -> None:
        raise NotImplementedError


def _exit_description(code: int | None, signal: int | None) -> str:
    if signal is not None:
        return f"signal {signal}"
    return f"status {code}"


class _Worker(_Process):
    """A pool worker: starting, then idle or running one invocation."""

    def __init__(self, pool: WorkerPool, generation: _Generation) -> None:
        super().__init__(pool)
        self.generation = generation
        self.job: _Job | None = None
        self.load_error: LoadError | None = None
        #: Invocations this worker finished (a result came back).
        self.results = 0

    # invocations

    def run(self, job: _Job) -> None:
        self.state = _BUSY
        self.job = job
        pool = self.pool
        pool._invocations += 1
        now = pool._seconds()
        job.resumed = now
        job.timer = pool._reactor.callLater(job.budget, self._check_time, job)
        self.write(job.frame)

    def _check_time(self, job: _Job) -> None:
        job.timer = None
        if self.job is not job or job.resumed is None:
            return  # finished, or the host is answering a syscall (resume re-arms)
        elapsed = job.used + self.pool._seconds() - job.resumed
        remaining = job.budget - elapsed
        if remaining > 0.0005:
            job.timer = self.pool._reactor.callLater(remaining, self._check_time, job)
            return
        self.pool._timeouts += 1
        log.warn(
            "Worker {pid}: function timed out after {t}; killing it", pid=self.pid, t=job.budget
        )
        self._abort(FunctionTimeout(f"Function execution timed out after {_duration(job.budget)}"))

    def _abort(self, error: PoolError) -> None:
        """Kill the worker now, fail its invocation, and replace it."""
        job = self.job
        self.job = None
        was = self.state
        self.terminate()
        if job is not None:
            if job.timer is not None:
                job.timer.cancel()
                job.timer = None
            job.fail(error)
        self.pool._worker_gone(self, was)

    def _syscall(self, job: _Job, frame: dict[str, Any]) -> None:
        op = frame.get("op")
        args = frame.get("args")
        call_id = frame.get("id")
        if call_id is None:  # a notification: no reply, no pause
            try:
                result = job.handler(op, args, True)
            except Exception:
                log.failure("Syscall notification {op} failed", op=op)
                return
            if isinstance(result, defer.Deferred):
                result.addErrback(lambda f: log.failure("Syscall notification failed", f))
            elif inspect.iscoroutine(result):
                defer.ensureDeferred(result).addErrback(
                    lambda f: log.failure("Syscall notification failed", f)
                )
            return
        # The worker waits for the answer: its clock stops until it gets it.
        if job.resumed is not None:
            job.used += self.pool._seconds() - job.resumed
            job.resumed = None
        try:
            result = job.handler(op, args, False)
        except HostSyscallError as e:
            self._reply(job, call_id, None, _syscall_error(e))
            return
        except Exception:
            log.failure("Syscall {op} failed", op=op)
            self._reply(job, call_id, None, _INTERNAL_ERROR)
            return
        if inspect.iscoroutine(result):
            result = defer.ensureDeferred(result)
        if isinstance(result, defer.Deferred):
            result.addCallbacks(
                self._reply_ok,
                self._reply_failed,
                callbackArgs=(job, call_id),
                errbackArgs=(job, call_id, op),
            )
        else:
            self._reply(job, call_id, result, None)

    def _reply_ok(self, result: Any, job: _Job, call_id: Any) -> None:
        self._reply(job, call_id, result, None)

    def _reply_failed(self, failure: Failure, job: _Job, call_id: Any, op: Any) -> None:
        if failure.check(HostSyscallError):
            self._reply(job, call_id, None, _syscall_error(failure.value))
        else:
            log.failure("Syscall {op} failed", failure, op=op)
            self._reply(job, call_id, None, _INTERNAL_ERROR)

    def _reply(self, job: _Job, call_id: Any, result: Any, error: dict[str, Any] | None) -> None:
        if self.job is not job or self.state == _DEAD:
            return  # the invocation ended (timeout, crash) while the host worked
        if error is None:
            try:
                data = encode_frame({"type": "syscallResult", "id": call_id, "result": result})
            except FrameError as e:
                log.error("Syscall result could not be encoded: {e}", e=e)
                error = _INTERNAL_ERROR
        if error is not None:
            data = encode_frame({"type": "syscallResult", "id": call_id, "error": error})
        job.resumed = self.pool._seconds()
        if job.timer is None:
            job.timer = self.pool._reactor.callLater(
                max(0.0, job.budget - job.used), self._check_time, job
            )
        self.write(data)

    def _result(self, job: _Job, frame: dict[str, Any]) -> None:
        if job.timer is not None:
            job.timer.cancel()
            job.timer = None
        self.job = None
        self.results += 1
        del frame["type"]
        del frame["id"]
        if self.state == _BUSY:
            self.state = _IDLE
            # Hand the worker on before the caller's callbacks run, which may
            # well invoke again.
            self.pool._worker_available(self)
        job.succeed(frame)

    # ProcessProtocol hooks

    def frame_received(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        job = self.job
        if job is not None:
            job.started = True
            if frame.get("invocation" if kind == "syscall" else "id") != job.id:
                self.protocol_error(f"{kind} frame for another invocation")
            elif kind == "syscall":
                self._syscall(job, frame)
            elif kind == "result":
                self._result(job, frame)
            else:
                self.protocol_error(f"unexpected {kind!r} frame during an invocation")
            return
        if self.state == _STOPPING:
            return  # told to go; whatever it says now does not matter
        if kind == "ready" and self.state == _STARTING:
            self.cancel_timer()
            self.state = _IDLE
            self.pool._worker_ready(self)
        elif kind == "loadError" and self.state == _STARTING:
            self.cancel_timer()
            self.load_error = LoadError(
                str(frame.get("message") or "The modules could not be loaded"),
                frame.get("file"),
                frame.get("line"),
            )
        else:
            self.protocol_error(f"unexpected {kind!r} frame")

    def protocol_error(self, reason: str) -> None:
        log.warn(
            "Worker {pid} broke the protocol ({reason}); killing it", pid=self.pid, reason=reason
        )
        was = self.state
        if was == _STARTING:
            self.terminate()
            self.pool._startup_failed(self, WorkerProtocolError(f"Worker protocol error: {reason}"))
            return
        self._abort(WorkerProtocolError("The function's worker process sent a malformed message"))

    def start_timeout(self) -> None:
        self._timer = None
        if self.state != _STARTING:
            return
        self.terminate()
        self.pool._startup_failed(
            self,
            LoadError(f"Timed out after {_duration(self.pool.load_timeout)} importing the modules"),
        )

    def exited(self, was: int, code: int | None, signal: int | None) -> None:
        job = self.job
        self.job = None
        if was == _STARTING:
            error = self.load_error or WorkerCrashed(
                "The function's worker process exited while loading the modules "
                f"({_exit_description(code, signal)})"
            )
            self.pool._startup_failed(self, error)
            return
        if job is not None:
            if job.timer is not None:
                job.timer.cancel()
                job.timer = None
            if (
                code == _EXIT_OUT_OF_MEMORY
                and self.results
                and not job.started
                and not job.requeued
            ):
                # The worker exits right after reporting a MemoryError, never
                # reading the invocation it was handed meanwhile: run it elsewhere
                # (once: a function that exits with this status itself must not
                # loop through the pool).
                self.pool._requeue(job)
            elif was == _STOPPING:
                job.fail(PoolStopped("The function runtime is shutting down"))
            else:
                self.pool._crashes += 1
                log.warn(
                    "Worker {pid} exited during an invocation ({how})",
                    pid=self.pid,
                    how=_exit_description(code, signal),
                )
                job.fail(WorkerCrashed("The function's worker process exited unexpectedly"))
        if was != _DEAD:
            self.pool._worker_gone(self, was)


class _Analyzer(_Process):
    """A one-off worker that imports a directory and answers one ``analyze``."""

    def __init__(self, pool: WorkerPool) -> None:
        super().__init__(pool)
        self.result: defer.Deferred = defer.Deferred()
        self.outcome: Any = None

    def _finish(self, outcome: Any) -> None:
        # Delivered once the process is gone (see exited), so that no analyzer
        # outlives the answer it gave.
        self.cancel_timer()
        if self.outcome is None:
            self.outcome = outcome

    def frame_received(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "ready" and self.state == _STARTING:
            self.state = _BUSY
            self.write(_ANALYZE)
        elif kind == "analyzed" and self.state == _BUSY:
            frame.pop("type", None)
            frame.pop("id", None)
            self._finish(frame)
            self.shutdown(self.pool.shutdown_grace)
        elif kind == "loadError":
            self._finish(
                LoadError(
                    str(frame.get("message") or "The modules could not be loaded"),
                    frame.get("file"),
                    frame.get("line"),
                )
            )
            self.shutdown(self.pool.shutdown_grace)
        else:
            self.protocol_error(f"unexpected {kind!r} frame")

    def protocol_error(self, reason: str) -> None:
        self._finish(WorkerProtocolError(f"Worker protocol error: {reason}"))
        self.terminate()

    def timed_out(self) -> None:
        self._timer = None
        self._finish(
            LoadError(f"Timed out after {_duration(self.pool.load_timeout)} importing the modules")
        )
        self.terminate()

    def exited(self, was: int, code: int | None, signal: int | None) -> None:
        self._finish(
            WorkerCrashed(
                "The function's worker process exited while loading the modules "
                f"({_exit_description(code, signal)})"
            )
        )
        outcome = self.outcome
        if isinstance(outcome, Exception):
            self.result.errback(Failure(outcome))
        else:
            self.result.callback(outcome)


# -- the pool ----------------------------------------------------------------------


class WorkerPool(Service):
    """A pool of ``size`` worker processes running the modules in ``modules_dir``."""

    def __init__(
        self,
        reactor: Any,
        modules_dir: str | os.PathLike[str],
        *,
        size: int,
        queue_limit: int = 1000,
        query_timeout: float = 1.0,
        action_timeout: float = 600.0,
        memory_limit: int | None = 1 << 30,
        load_timeout: float = 60.0,
        shutdown_grace: float = 2.0,
        python: str = sys.executable,
    ) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self._reactor = reactor
        self._seconds = reactor.seconds
        self.modules_dir = os.path.abspath(modules_dir)
        self.size = size
        self.queue_limit = queue_limit
        self.query_timeout = query_timeout
        self.action_timeout = action_timeout
        self.memory_limit = memory_limit
        self.load_timeout = load_timeout
        self.shutdown_grace = shutdown_grace
        self.python = python
        self._env = _worker_environment()
        #: The deployment's environment variables, also given to the processes
        #: started from now on, so that module-level code (``auth_config.py``,
        #: ``crons.py``) can read them as Convex's does at push time.
        self.environment: dict[str, str] = {}
        self._current: _Generation | None = None
        self._pending: _Generation | None = None
        self._retired: set[_Worker] = set()
        #: Every process not yet reaped, whatever its role.
        self._processes: set[_Process] = set()
        #: Delayed respawns of workers that failed to start.
        self._retries: set[Any] = set()
        self._idle: list[_Worker] = []
        self._queue: deque[_Job] = deque()
        self._unavailable: PoolError | None = None
        self._swap_lock = defer.DeferredLock()
        self._next_id = 0
        self._stopping = False
        self._ready_waiters: list[defer.Deferred] = []
        self._invocations = 0
        self._restarts = 0
        self._timeouts = 0
        self._crashes = 0
        self._overloaded = 0

    # -- service -------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        self._unavailable = None
        self.swap(self.modules_dir).addErrback(self._start_failed)

    def _start_failed(self, failure: Failure) -> None:
        if failure.check(PoolStopped):
            return  # stopped before the workers were up: nothing to report
        log.error(
            "Function workers could not start on {dir}: {error}",
            dir=self.modules_dir,
            error=failure.getErrorMessage(),
        )

    def when_ready(self) -> defer.Deferred:
        """Fires once workers are serving (at once if they are), or fails with
        the reason the first generation could not start."""
        if self._current is not None:
            return defer.succeed(None)
        if self._unavailable is not None and self._pending is None:
            return defer.fail(self._unavailable)
        d: defer.Deferred = defer.Deferred()
        self._ready_waiters.append(d)
        return d

    def stopService(self) -> defer.Deferred:
        """Shut every worker down (``shutdown``, then SIGKILL after a grace period)."""
        super().stopService()
        self._stopping = True
        error = PoolStopped("The function runtime is shutting down")
        queue, self._queue = self._queue, deque()
        for job in queue:
            job.fail(error)
        self._fail_waiters(error)
        for call in self._retries:
            if call.active():
                call.cancel()
        self._retries = set()
        pending = self._pending
        if pending is not None and pending.waiter is not None:
            waiter, pending.waiter = pending.waiter, None
            waiter.errback(Failure(error))
        self._idle = []
        self._current = self._pending = None
        self._unavailable = error
        processes = list(self._processes)
        for p in processes:
            if p.state in (_STARTING, _DEAD):
                p.terminate()
            else:
                p.shutdown(self.shutdown_grace)
        return defer.DeferredList([p.ended for p in processes])

    # -- invocations ---------------------------------------------------------------

    def invoke(self, request: dict[str, Any], handler: SyscallHandler) -> defer.Deferred:
        """Run one invocation; fires with the ``result`` frame minus ``type`` and ``id``
        (``success``, ``value`` or ``error``, ``logLines``).

        ``request`` is the ``invoke`` frame minus ``type`` and ``id``. Fails with a
        :class:`PoolError` (:class:`Overloaded`, :class:`FunctionTimeout`,
        :class:`WorkerCrashed`, ...) when the function could not run to the end.
        """
        if self._stopping or not self.running:
            return defer.fail(PoolStopped("The function runtime is not running"))
        self._next_id += 1
        job_id = self._next_id
        try:
            frame = encode_frame({"type": "invoke", "id": job_id, **request})
        except FrameError as e:
            return defer.fail(PoolError(f"The invocation could not be sent to a worker: {e}"))
        if request.get("udfType") in ("action", "httpAction"):
            budget = self.action_timeout
        else:
            budget = self.query_timeout
        job = _Job(job_id, frame, handler, budget)
        idle = self._idle
        if idle:
            idle.pop().run(job)
            return job.deferred
        if self._current is None and self._pending is None:
            return defer.fail(self._unavailable or PoolStopped("No function workers are running"))
        if len(self._queue) >= self.queue_limit:
            self._overloaded += 1
            return defer.fail(
                Overloaded(
                    "Too many functions are waiting to run "
                    f"({self.queue_limit} queued, {self.size} workers busy); try again later"
                )
            )
        self._queue.append(job)
        job.deferred._canceller = self._cancel_queued  # type: ignore[attr-defined]
        return job.deferred

    def _cancel_queued(self, d: defer.Deferred) -> None:
        for job in self._queue:
            if job.deferred is d:
                self._queue.remove(job)
                return

    def _requeue(self, job: _Job) -> None:
        job.used = 0.0
        job.resumed = None
        job.started = False
        job.requeued = True
        if self._idle:
            self._idle.pop().run(job)
        elif self._current is None and self._pending is None:
            job.fail(self._unavailable or PoolStopped("No function workers are running"))
        else:
            self._queue.appendleft(job)

    # -- analyze and swap ----------------------------------------------------------

    def analyze(self, modules_dir: str | os.PathLike[str]) -> defer.Deferred:
        """Import ``modules_dir`` in a one-off worker; fires with the ``analyzed``
        frame minus ``type`` and ``id``, or fails with :class:`LoadError`."""
        analyzer = _Analyzer(self)
        try:
            self._spawn_process(analyzer, os.path.abspath(modules_dir))
        except Exception as e:
            return defer.fail(WorkerCrashed(f"Could not start a worker process: {e}"))
        analyzer.start_timer(self.load_timeout, analyzer.timed_out)
        return analyzer.result

    def swap(self, modules_dir: str | os.PathLike[str]) -> defer.Deferred:
        """Route new invocations to fresh workers on ``modules_dir``.

        Fires once the new workers are all ready and serving; the old ones finish
        their current invocation and are shut down. Fails (leaving the old workers
        in place) with :class:`LoadError` or :class:`WorkerCrashed` if the new
        workers cannot start. Swaps run one after another.
        """
        # Absolute: workers run in the checkout, not in the host's directory.
        return self._swap_lock.run(self._swap, os.path.abspath(modules_dir))

    def _swap(self, modules_dir: str) -> defer.Deferred:
        if self._stopping or not self.running:
            return defer.fail(PoolStopped("The function runtime is not running"))
        generation = _Generation(modules_dir)
        generation.waiter = defer.Deferred()
        self._pending = generation
        for _ in range(self.size):
            self._spawn(generation)
        return generation.waiter

    def _activate(self, generation: _Generation) -> None:
        old = self._current
        self._current = generation
        self._pending = None
        self._unavailable = None
        self.modules_dir = generation.modules_dir
        self._idle = []
        if old is not None:
            for worker in list(old.workers):
                if worker.state == _BUSY:
                    self._retired.add(worker)  # shut down when its result is in
                else:
                    worker.shutdown(self.shutdown_grace)
                    self._retired.add(worker)
        for worker in list(generation.workers):
            if worker.state == _IDLE:
                self._worker_available(worker)
        # A worker that was ready and then died while the others started.
        for _ in range(self.size - len(generation.workers)):
            self._spawn(generation)
        waiter, generation.waiter = generation.waiter, None
        waiters, self._ready_waiters = self._ready_waiters, []
        for d in waiters:
            d.callback(None)
        if waiter is not None:
            waiter.callback(None)

    def _fail_waiters(self, error: Exception) -> None:
        waiters, self._ready_waiters = self._ready_waiters, []
        for d in waiters:
            d.errback(Failure(error))

    # -- worker lifecycle ------------------------------------------------------------

    def _spawn_process(self, proc: _Process, modules_dir: str) -> None:
        args = [self.python, "-m", "convex_backend.functions.worker", "--modules", modules_dir]
        if self.memory_limit:
            args += ["--memory-limit", str(int(self.memory_limit))]
        env = {**_process_safe(self.environment), **self._env}
        self._reactor.spawnProcess(
            proc, self.python, args, env=env, path=REPO_ROOT, childFDs=_CHILD_FDS
        )
        self._processes.add(proc)

    def _spawn(self, generation: _Generation) -> None:
        worker = _Worker(self, generation)
        generation.workers.add(worker)
        try:
            self._spawn_process(worker, generation.modules_dir)
        except Exception as e:
            log.failure("Could not start a worker process")
            worker.state = _DEAD
            self._startup_failed(worker, WorkerCrashed(f"Could not start a worker process: {e}"))
            return
        worker.start_timer(self.load_timeout, worker.start_timeout)

    def _worker_ready(self, worker: _Worker) -> None:
        generation = worker.generation
        generation.failures = 0
        if generation is self._current:
            self._worker_available(worker)
        elif generation is self._pending:
            generation.ready += 1
            if generation.ready >= self.size:
                self._activate(generation)
        else:
            worker.shutdown(self.shutdown_grace)

    def _worker_available(self, worker: _Worker) -> None:
        if worker.generation is not self._current or self._stopping:
            self._retired.add(worker)
            worker.shutdown(self.shutdown_grace)
            return
        if self._queue:
            job = self._queue.popleft()
            job.deferred._canceller = None  # type: ignore[attr-defined]
            worker.run(job)
        else:
            self._idle.append(worker)

    def _startup_failed(self, worker: _Worker, error: PoolError) -> None:
        generation = worker.generation
        generation.workers.discard(worker)
        if generation is self._pending:
            # The new code does not load: give up on this generation entirely.
            self._pending = None
            for other in list(generation.workers):
                other.terminate()
            generation.workers.clear()
            if self._current is None:
                self._unavailable = error
                queue, self._queue = self._queue, deque()
                for job in queue:
                    job.fail(error)
                self._fail_waiters(error)
            waiter, generation.waiter = generation.waiter, None
            if waiter is not None:
                waiter.errback(Failure(error))
        elif generation is self._current and not self._stopping:
            # A replacement failed to start although its modules loaded before:
            # retry, backing off so a persistent failure does not spin.
            generation.failures += 1
            delay = min(30.0, 0.1 * 2 ** min(generation.failures, 10))
            log.error(
                "A replacement worker failed to start ({error}); retrying in {delay:.1f}s",
                error=str(error),
                delay=delay,
            )
            call = self._reactor.callLater(delay, self._replace, generation)
            self._retries.add(call)

    def _replace(self, generation: _Generation) -> None:
        self._retries = {c for c in self._retries if c.active()}
        if generation is self._current and not self._stopping and self.running:
            if len(generation.workers) < self.size:
                self._spawn(generation)

    def _worker_gone(self, worker: _Worker, was: int) -> None:
        """A worker left (killed or exited after starting): forget it, replace it."""
        self._retired.discard(worker)
        generation = worker.generation
        if worker in generation.workers:
            generation.workers.discard(worker)
        try:
            self._idle.remove(worker)
        except ValueError:
            pass
        if was != _STOPPING and generation is self._current and not self._stopping:
            self._restarts += 1
            self._replace(generation)

    # -- metrics ---------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, int]:
        """Counters and gauges for /metrics."""
        workers = list(self._current.workers) if self._current is not None else []
        busy = sum(1 for w in workers if w.state == _BUSY)
        busy += sum(1 for w in self._retired if w.state == _BUSY)
        return {
            "invocations": self._invocations,
            "restarts": self._restarts,
            "timeouts": self._timeouts,
            "crashes": self._crashes,
            "overloaded": self._overloaded,
            "queue_length": len(self._queue),
            "busy_workers": busy,
            "workers": len(workers),
        }


def _process_safe(environment: dict[str, str]) -> dict[str, str]:
    """The variables that may go into a worker's process environment: not the
    ones that change how Python or the dynamic loader start the process (a
    function still sees those in ``os.environ`` while it runs)."""
    return {
        name: value
        for name, value in environment.items()
        if not name.upper().startswith(("PYTHON", "LD_"))
    }


def _worker_environment() -> dict[str, str]:
    env = {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}
    existing = os.environ.get("PYTHONPATH")
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + existing if existing else "")
    # String hashing must not differ between workers: set iteration order is
    # visible to queries, whose results must be deterministic.
    env["PYTHONHASHSEED"] = "0"
    env["PYTHONUNBUFFERED"] = "1"
    return env
