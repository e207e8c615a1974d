"""Function references: ``api.messages.send`` and ``internal.messages.send``.

Convex code names the function to call, schedule or run from a cron through
the generated ``api`` and ``internal`` objects. This module owns their Python
counterparts: attribute access builds a path, and the reference resolves to
the canonical ``"module:function"`` name the host understands::

    from convex_backend.server import api, internal

    api.messages.send                # -> "messages:send"
    internal.folder.file.cleanup     # -> "folder/file:cleanup"
    api["my-module"].send            # names that are not Python identifiers

The last attribute is the export, everything before it the module path.
``api`` and ``internal`` only differ in what they document: whether a
function is public or internal is decided by its registration, and the host
checks it when the call is made (clients never reach internal functions).

:func:`get_function_name` turns a reference, a registered function or a
``"module:function"`` string into that name (Convex's ``getFunctionName``).
"""

from __future__ import annotations

from typing import Any

from convex_backend.server.registration import RegisteredFunction

__all__ = ["FunctionReference", "api", "get_function_name", "internal"]


class FunctionReference:
    """A path of attribute names below ``api`` or ``internal``.

    Any attribute not starting with ``_`` extends the path; a reference with
    at least a module and an export resolves to ``"module:export"``.
    """

    __slots__ = ("_parts", "_visibility")

    def __init__(self, parts: tuple[str, ...], visibility: str) -> None:
        self._parts = parts
        self._visibility = visibility

    def __getattr__(self, name: str) -> FunctionReference:
        # Private and special names (copy, pickle, IPython probes...) are not
        # module or function names; pretending otherwise would hide bugs.
        if name.startswith("_"):
            raise AttributeError(name)
        return FunctionReference((*self._parts, name), self._visibility)

    def __getitem__(self, name: str) -> FunctionReference:
        if not isinstance(name, str) or not name or "/" in name or ":" in name:
            raise KeyError(f"Invalid module or function name {name!r}")
        return FunctionReference((*self._parts, name), self._visibility)

    @property
    def __convex_path__(self) -> str:
        """The canonical ``"module:function"`` this reference names."""
        if len(self._parts) < 2:
            root = "internal" if self._visibility == "internal" else "api"
            shown = ".".join((root, *self._parts))
            raise ValueError(
                f"{shown} is not a function reference: name a module and one of its "
                f"functions, like {root}.messages.send"
            )
        return "/".join(self._parts[:-1]) + ":" + self._parts[-1]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FunctionReference):
            return NotImplemented
        return self._parts == other._parts and self._visibility == other._visibility

    def __hash__(self) -> int:
        return hash((self._parts, self._visibility))

    def __repr__(self) -> str:
        root = "internal" if self._visibility == "internal" else "api"
        return "<FunctionReference " + ".".join((root, *self._parts)) + ">"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"{self!r} cannot be called directly; pass it to ctx.run_query, "
            "ctx.run_mutation, ctx.run_action or ctx.scheduler"
        )


#: References to public functions: ``api.<module path>.<function>``.
api = FunctionReference((), "public")
#: References to internal functions: ``internal.<module path>.<function>``.
internal = FunctionReference((), "internal")


def get_function_name(fn: Any) -> str:
    """The canonical ``"module:function"`` of a reference, a registered
    function (once loaded) or a ``"module"``/``"module:function"`` string."""
    from convex_backend.server.context import canonical_function_name

    if isinstance(fn, FunctionReference):
        return fn.__convex_path__
    if isinstance(fn, RegisteredFunction):
        if fn.path is None:
            raise ValueError(
                f"{fn!r} has no path yet: a function gets one when the module "
                "exporting it is loaded by the worker; use api.<module>.<function> instead"
            )
        return fn.path
    if isinstance(fn, str):
        return canonical_function_name(fn)
    raise TypeError(f"Expected a function reference or 'module:function', got {fn!r}")
