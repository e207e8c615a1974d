"""The WebSocket sync protocol: sessions, versions, transitions, live queries.

- :mod:`~convex_backend.sync.protocol`: the wire format (messages, u64 timestamps);
- :mod:`~convex_backend.sync.session`: one connection's state machine;
- :mod:`~convex_backend.sync.subscriptions`: the shared query cache and write-log
  subscriptions;
- :mod:`~convex_backend.sync.idempotency`: idempotent mutations per (session, request);
- :mod:`~convex_backend.sync.hub`: what the sessions of one deployment share;
- :mod:`~convex_backend.sync.server`: the Autobahn glue and :func:`make_sync_resource`.
"""

from convex_backend.sync.server import make_sync_resource

__all__ = ["make_sync_resource"]
