"""Registering functions: ``query``, ``mutation``, ``action``, their internal
variants and ``http_action``.

This module owns :class:`RegisteredFunction`, the object a module exports for
each Convex function, and the decorators that make one. All three Convex
spellings work::

    @query
    def count(ctx, args): ...

    @query(args={"channel": v.string()}, returns=v.array(v.any()))
    def list(ctx, args): ...

    list = query(args={"channel": v.string()}, handler=lambda ctx, args: ...)

A handler is ``handler(ctx, args)`` (``args`` is the decoded args dict) or,
when it takes a single positional parameter, ``handler(ctx)``. It may be an
``async def``; ``ctx`` methods are synchronous either way.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, overload

from convex_backend.server.validators import Validator, as_args_validator

__all__ = [
    "RegisteredFunction",
    "action",
    "http_action",
    "internal_action",
    "internal_mutation",
    "internal_query",
    "mutation",
    "query",
]

Handler = Callable[..., Any]
ArgsSpec = Validator | Mapping[str, Validator] | None


def _takes_args(handler: Handler) -> bool:
    """Whether ``handler`` accepts a second positional argument (the args)."""
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):  # builtins and odd callables: assume it does
        return True
    positional = 0
    for p in signature.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            return True
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 2


def _first_line(handler: Handler) -> int | None:
    # co_firstlineno is the first line of the function's source, which for a
    # decorated ``def`` is the line of its first decorator.
    code = getattr(inspect.unwrap(handler), "__code__", None)
    return code.co_firstlineno if code is not None else None


class RegisteredFunction:
    """A Convex function as exported by a module.

    ``udf_type`` is ``"query"``, ``"mutation"``, ``"action"`` or
    ``"httpAction"``; ``visibility`` is ``"public"``, ``"internal"`` or
    ``None`` (HTTP actions). ``path`` (``"dir/mod:name"``) is assigned by the
    worker once it knows under which export name the function was loaded.
    """

    udf_type: str
    visibility: str | None
    handler: Handler
    args_validator: Validator | None
    returns_validator: Validator | None
    line: int | None
    path: str | None

    def __init__(
        self,
        udf_type: str,
        visibility: str | None,
        handler: Handler,
        *,
        args: ArgsSpec = None,
        returns: Validator | None = None,
    ) -> None:
        if isinstance(handler, RegisteredFunction) or not callable(handler):
            raise TypeError(f"A function handler must be a plain callable, got {handler!r}")
        if returns is not None and not isinstance(returns, Validator):
            raise TypeError(f"returns must be a validator, got {returns!r}")
        self.udf_type = udf_type
        self.visibility = visibility
        self.handler = handler
        self.args_validator = as_args_validator(args)
        self.returns_validator = returns
        self.line = _first_line(handler)
        self.path = None
        self._takes_args = _takes_args(handler)
        self.__doc__ = getattr(handler, "__doc__", None)
        self.__name__ = getattr(handler, "__name__", type(handler).__name__)
        self.__qualname__ = getattr(handler, "__qualname__", self.__name__)
        self.__module__ = getattr(handler, "__module__", __name__)

    def args_json(self) -> dict[str, Any] | None:
        """The args validator JSON: ``{"type": "any"}`` when none was declared.

        ``None`` for HTTP actions, which take a request, not args.
        """
        if self.udf_type == "httpAction":
            return None
        if self.args_validator is None:
            return {"type": "any"}
        return self.args_validator.json

    def returns_json(self) -> dict[str, Any] | None:
        """The returns validator JSON, or ``None`` when none was declared."""
        if self.returns_validator is None:
            return None
        return self.returns_validator.json

    def call_handler(self, ctx: Any, arg: Any) -> Any:
        """Run the handler with ``ctx`` and the args (or the HTTP request)."""
        if self._takes_args:
            return self.handler(ctx, arg)
        return self.handler(ctx)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Convex only warns here; failing is kinder in Python, where a direct
        # call would silently skip validation and transaction semantics.
        name = self.path or self.__name__
        raise TypeError(
            f"Convex function {name!r} cannot be called directly. Use "
            "ctx.run_query/ctx.run_mutation/ctx.run_action to call it as a "
            "function, or move the shared code into a plain helper and call that."
        )

    def __repr__(self) -> str:
        parts = [self.udf_type, self.visibility, self.path or self.__qualname__]
        return f"<RegisteredFunction {' '.join(p for p in parts if p)}>"


def _registrar(udf_type: str, visibility: str) -> Callable[..., Any]:
    @overload
    def register(handler: Handler, /) -> RegisteredFunction: ...

    @overload
    def register(
        *, args: ArgsSpec = None, returns: Validator | None = None, handler: Handler
    ) -> RegisteredFunction: ...

    @overload
    def register(
        *, args: ArgsSpec = None, returns: Validator | None = None
    ) -> Callable[[Handler], RegisteredFunction]: ...

    def register(
        handler: Handler | None = None,
        /,
        *,
        args: ArgsSpec = None,
        returns: Validator | None = None,
        **kw: Any,
    ) -> Any:
        if "handler" in kw:
            if handler is not None:
                raise TypeError("Pass the handler either positionally or as handler=")
            handler = kw.pop("handler")
        if kw:
            raise TypeError(f"Unexpected arguments {sorted(kw)}; expected args, returns, handler")
        if handler is not None:
            return RegisteredFunction(udf_type, visibility, handler, args=args, returns=returns)
        # Check args/returns now so a mistake points at the decorator line.
        as_args_validator(args)
        if returns is not None and not isinstance(returns, Validator):
            raise TypeError(f"returns must be a validator, got {returns!r}")

        def decorator(fn: Handler) -> RegisteredFunction:
            return RegisteredFunction(udf_type, visibility, fn, args=args, returns=returns)

        return decorator

    register.__name__ = ("internal_" if visibility == "internal" else "") + udf_type
    register.__qualname__ = register.__name__
    register.__doc__ = (
        f"Register a {visibility} {udf_type}: ``@{register.__name__}``, "
        f"``@{register.__name__}(args=..., returns=...)`` or "
        f"``{register.__name__}(args=..., handler=...)``."
    )
    return register


query = _registrar("query", "public")
mutation = _registrar("mutation", "public")
action = _registrar("action", "public")
internal_query = _registrar("query", "internal")
internal_mutation = _registrar("mutation", "internal")
internal_action = _registrar("action", "internal")


def http_action(handler: Handler) -> RegisteredFunction:
    """Register an HTTP action: ``handler(ctx, request) -> Response``.

    Use it bare (``@http_action``) or as ``http_action(handler)``; route it
    with :meth:`HttpRouter.route`.
    """
    return RegisteredFunction("httpAction", None, handler)
