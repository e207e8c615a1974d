"""The WebSocket glue: Autobahn protocol and factory around :class:`SyncSession`.

:func:`make_sync_resource` gives the ``twisted.web`` resource the HTTP tree
mounts at ``/api/sync`` and ``/api/<client version>/sync``. Each connection
gets a :class:`~convex_backend.sync.session.SyncSession`; this module only moves
frames: JSON text in and out, binary frames refused, any ``Origin`` accepted,
no subprotocol. Handshakes are refused with 503 while the database and the
function runtime are still starting. The client's version (in the URL, or a
``Convex-Client`` header) says whether it reassembles ``TransitionChunk``s.
The socket's write buffer pauses the session's Transitions (they coalesce)
until the client has read what it was sent. Protocol-level WebSocket pings keep
idle connections alive and find dead ones; the session itself sends a JSON
``Ping`` after 15 s of silence, which is what the clients' inactivity timers
look at.
"""

from __future__ import annotations

from typing import Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from convex_backend.sync.hub import SyncHub, SyncLimits
from convex_backend.sync.protocol import supports_transition_chunks
from convex_backend.sync.session import SyncSession

log = Logger(namespace="convex.sync")

#: WebSocket protocol pings: how often, and how long to wait for the pong.
AUTO_PING_INTERVAL = 5.0
AUTO_PING_TIMEOUT = 120.0


@implementer(IPushProducer)
class _SessionProducer:
    """Receives the transport's pause/resume and passes them to the session."""

    def __init__(self, protocol: SyncServerProtocol) -> None:
        self.protocol = protocol

    def pauseProducing(self) -> None:
        if self.protocol.session is not None:
            self.protocol.session.pause_output()

    def resumeProducing(self) -> None:
        if self.protocol.session is not None:
            self.protocol.session.resume_output()

    def stopProducing(self) -> None:
        pass


class SyncServerProtocol(WebSocketServerProtocol):
    factory: SyncServerFactory
    session: SyncSession | None = None
    #: Whether the client reassembles TransitionChunks (from its version).
    transition_chunks = False

    def onConnect(self, request: Any) -> None:
        if not self.factory.hub.ready:
            raise ConnectionDeny(503, "The backend is still starting; try again shortly")
        # No subprotocol, whatever the client offers; any Origin is fine.
        self.transition_chunks = supports_transition_chunks(
            request.headers.get("convex-client"), request.path
        )
        return None

    def onOpen(self) -> None:
        hub = self.factory.hub
        self.session = SyncSession(
            hub,
            self._send_text,
            self._close,
            self.factory.reactor,
            transition_chunks=self.transition_chunks,
        )
        self._watch_write_buffer()

    def _watch_write_buffer(self) -> None:
        # twisted.web's channel registered itself as the producer of this
        # socket; it is done with the connection since the upgrade, so the
        # session takes its place and hears when the client stops reading.
        transport = self.transport
        try:
            if getattr(transport, "producer", None) is not None:
                transport.unregisterProducer()
            transport.registerProducer(_SessionProducer(self), True)
        except Exception as e:
            log.debug("No flow control for a sync socket: {e}", e=e)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.session is None:
            return
        if isBinary:
            self.session.receive_binary()
        else:
            self.session.receive(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self.session is not None:
            self.session.connection_lost()

    def _send_text(self, text: str) -> None:
        # Once the closing handshake has begun (the client's close frame may
        # arrive before onClose), there is nobody to send to: drop the message.
        if self.state != self.STATE_OPEN:
            return
        self.sendMessage(text.encode("utf-8"), isBinary=False)

    def _close(self, code: int, reason: str) -> None:
        # sendClose() refuses the 1011/1013 codes the protocol uses.
        self.sendCloseFrame(code=code, reasonUtf8=reason.encode("utf-8")[:123], isReply=False)


class SyncServerFactory(WebSocketServerFactory):
    protocol = SyncServerProtocol

    def __init__(self, hub: SyncHub, reactor: Any, *, auto_ping: bool = True) -> None:
        super().__init__(reactor=reactor)
        self.hub = hub
        self.reactor = reactor
        limit = hub.limits.max_message_bytes
        self.setProtocolOptions(
            maxMessagePayloadSize=limit,
            maxFramePayloadSize=limit,
            autoPingInterval=AUTO_PING_INTERVAL if auto_ping else 0,
            autoPingTimeout=AUTO_PING_TIMEOUT if auto_ping else 0,
        )


_HUB_ATTRIBUTE = "_convex_sync_hub"


def get_hub(deployment: Any, reactor: Any, limits: SyncLimits | None = None) -> SyncHub:
    """The deployment's one :class:`SyncHub` (metrics must be registered only once)."""
    hub = getattr(deployment, _HUB_ATTRIBUTE, None)
    if hub is None:
        hub = SyncHub(deployment, reactor, limits=limits)
        setattr(deployment, _HUB_ATTRIBUTE, hub)
    return hub


def make_sync_resource(deployment: Any, reactor: Any) -> WebSocketResource:
    """The resource serving the sync protocol, to mount at ``/api/sync`` and
    ``/api/<version>/sync``. Calling it again for the same deployment shares
    the sessions' hub (cache, metrics)."""
    return WebSocketResource(SyncServerFactory(get_hub(deployment, reactor), reactor))


__all__ = [
    "SyncServerFactory",
    "SyncServerProtocol",
    "get_hub",
    "make_sync_resource",
]
