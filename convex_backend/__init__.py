"""convex_backend: a self-hosted, Convex-compatible reactive backend on Twisted."""

__version__ = "0.1.0"
