"""A byte range of an open blob written to an HTTP response, read on a thread.

:class:`RangeProducer` is a push producer: it reads the next chunk with
``deferToThread`` (so a slow disk never stalls the reactor), writes it to the
request, and reads on only while the transport wants more. It stops (and
closes the file) when the client goes away.
"""

from __future__ import annotations

from typing import BinaryIO

from twisted.internet import defer, threads
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from zope.interface import implementer

log = Logger(namespace="convex.storage")

CHUNK_BYTES = 256 * 1024


def _read_at(file: BinaryIO, offset: int, size: int) -> bytes:
    file.seek(offset)
    return file.read(size)


@implementer(IPushProducer)
class RangeProducer:
    def __init__(self, request: IRequest, file: BinaryIO, start: int, length: int) -> None:
        self.request = request
        self.file = file
        self.offset = start
        self.remaining = length
        self.done: defer.Deferred = defer.Deferred()
        self._paused = False
        self._reading = False
        self._stopped = False

    def start(self) -> defer.Deferred:
        """Begin streaming; ``done`` fires once the range is written (or abandoned)."""
        self.request.registerProducer(self, True)
        self.request.notifyFinish().addErrback(lambda _: self.stopProducing())
        self._read_next()
        return self.done

    def _read_next(self) -> None:
        if self._paused or self._reading or self._stopped:
            return
        if self.remaining <= 0:
            self._finish()
            return
        self._reading = True
        size = min(CHUNK_BYTES, self.remaining)
        d = threads.deferToThread(_read_at, self.file, self.offset, size)
        d.addCallbacks(self._got, self._failed)

    def _got(self, data: bytes) -> None:
        self._reading = False
        if self._stopped:
            self._close()
            return
        if not data:
            # The file shrank under us; the length was promised, so cut the
            # connection rather than send a short body as complete.
            log.error("A blob ended before its recorded size")
            self._abort()
            return
        self.offset += len(data)
        self.remaining -= len(data)
        self.request.write(data)
        self._read_next()

    def _failed(self, failure) -> None:
        self._reading = False
        if self._stopped:
            self._close()
            return
        log.failure("Reading a blob failed", failure)
        self._abort()

    def _abort(self) -> None:
        self._stopped = True
        self._close()
        self.request.unregisterProducer()
        transport = getattr(self.request, "transport", None) or getattr(
            getattr(self.request, "channel", None), "transport", None
        )
        if transport is not None:
            transport.abortConnection()
        self._done()

    def _finish(self) -> None:
        self._stopped = True
        self._close()
        self.request.unregisterProducer()
        self.request.finish()
        self._done()

    def _close(self) -> None:
        if not self._reading:
            self.file.close()

    def _done(self) -> None:
        if not self.done.called:
            self.done.callback(None)

    # -- IPushProducer ---------------------------------------------------------------

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._read_next()

    def stopProducing(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._close()
        self._done()


__all__ = ["CHUNK_BYTES", "RangeProducer"]
