"""The function runtime: user modules run in worker processes, driven from the host.

- :mod:`~convex_backend.functions.framing`: the frame format of the worker protocol
  (``docs/function-abi.md``);
- :mod:`~convex_backend.functions.worker`: the Python worker process
  (``python -m convex_backend.functions.worker``);
- :mod:`~convex_backend.functions.pool`: the host side, a Twisted service that keeps
  a pool of workers and runs invocations on them.

This package module imports nothing: the worker process loads it before it
installs its determinism patches, so it must not pull in anything that reads the
clock or the random generators at import time.
"""
