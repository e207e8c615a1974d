"""The ``twistd convex`` plugin: ``twistd -n convex --port 3210``."""

from twisted.application.service import ServiceMaker

convex = ServiceMaker(
    "convex",
    "convex_backend.service",
    "A self-hosted, Convex-compatible reactive backend.",
    "convex",
)
