"""The HTTP listeners as one service: the API port and the HTTP actions (site) port.

Ports are bound in ``privilegedStartService`` so that a port already in use
stops the daemon before it starts serving, with one clear line. Stopping stops
listening first, then waits (bounded) for requests in flight to finish.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorTCP, IReactorTime
from twisted.logger import Logger

from convex_backend.config import StartupError
from convex_backend.http.site import ConvexSite

log = Logger(namespace="convex.http")


class HttpService(Service):
    name = "http"

    def __init__(
        self,
        reactor: IReactorTCP,
        host: str,
        listeners: list[tuple[str, int, ConvexSite]],
        drain_timeout: float = 5.0,
        ready: defer.Deferred | None = None,
    ) -> None:
        self._reactor = reactor
        self._ready = ready
        self._host = host
        self._listeners = listeners
        self._drain_timeout = drain_timeout
        self.ports: dict[str, IListeningPort] = {}

    def privilegedStartService(self) -> None:
        for name, port, site in self._listeners:
            try:
                self.ports[name] = self._reactor.listenTCP(port, site, interface=self._host)
            except CannotListenError as e:
                for bound in self.ports.values():
                    bound.stopListening()
                self.ports.clear()
                reason = getattr(e.socketError, "strerror", None) or str(e.socketError)
                raise StartupError(f"cannot listen on {self._host}:{port} ({name}): {reason}")
        super().privilegedStartService()

    def startService(self) -> None:
        if not self.ports:
            self.privilegedStartService()
        super().startService()
        if self._ready is None or self._ready.called:
            self._serve()
            return
        # The ports are bound (so a busy port failed fast) but accept nothing
        # until the database and functions are loaded: early clients wait in
        # the listen backlog instead of getting "not ready" errors.
        for port in self.ports.values():
            port.stopReading()
        self._ready.addCallback(lambda result: (self._serve(), result)[1])

    def _serve(self) -> None:
        if not self.running:
            return
        for name, p in self.ports.items():
            p.startReading()
            address = p.getHost()
            log.info(
                "Serving {name} on http://{host}:{port}/",
                name=name,
                host=address.host,
                port=address.port,
            )

    @defer.inlineCallbacks
    def stopService(self):
        super().stopService()
        ports, self.ports = list(self.ports.values()), {}
        yield defer.gatherResults([defer.maybeDeferred(p.stopListening) for p in ports])
        sites = [site for _name, _port, site in self._listeners]
        drained = defer.gatherResults([site.wait_idle() for site in sites])
        clock: IReactorTime = self._reactor  # type: ignore[assignment]
        timeout = clock.callLater(self._drain_timeout, drained.cancel)
        try:
            yield drained
        except (defer.CancelledError, defer.FirstError):
            log.warn(
                "Stopped with {n} HTTP requests still in flight",
                n=sum(site.in_flight for site in sites),
            )
        else:
            if timeout.active():
                timeout.cancel()
