"""A recording fake of the worker's ``Syscalls``, for testing the SDK's serialization.

The unit under test is what the SDK sends and how it reads answers, so a fake
that records every op and returns canned answers is the right tool here.
Arguments go through a JSON round trip, which also proves they are plain
JSON-able objects, as the worker protocol needs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


class RecordingSyscalls:
    """Records ``(kind, op, args)`` and answers from ``answers``.

    ``answers[op]`` is a value (returned every time), a list (one item per
    call, in order) or a callable taking the args. An answer that is an
    exception is raised. ``1.0/queryStream`` and ``1.0/queryCleanup`` have
    default answers (counting query ids, and ``True``).
    """

    def __init__(self, answers: dict[str, Any] | None = None) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.answers: dict[str, Any] = dict(answers or {})
        self._next_query_id = 0

    def _answer(self, op: str, args: Any) -> Any:
        if op not in self.answers:
            if op == "1.0/queryStream":
                self._next_query_id += 1
                return {"queryId": self._next_query_id - 1}
            if op == "1.0/queryCleanup":
                return True
            raise AssertionError(f"unexpected syscall {op} {args!r}")
        answer = self.answers[op]
        if isinstance(answer, list):
            if not answer:
                raise AssertionError(f"no more canned answers for {op}")
            answer = answer.pop(0)
        elif callable(answer) and not isinstance(answer, BaseException):
            answer = answer(args)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def _record(self, kind: str, op: str, args: dict[str, Any]) -> Any:
        assert isinstance(op, str)
        assert isinstance(args, dict)
        args = json.loads(json.dumps(args, allow_nan=False))
        self.calls.append((kind, op, args))
        return self._answer(op, args)

    def syscall(self, op: str, args: dict[str, Any]) -> Any:
        return self._record("sync", op, args)

    def async_syscall(self, op: str, args: dict[str, Any]) -> Any:
        return self._record("async", op, args)

    def ops(self) -> list[str]:
        return [op for _, op, _ in self.calls]

    def args_of(self, op: str) -> list[Any]:
        return [args for _, o, args in self.calls if o == op]


def batches(*batches: list[Any]) -> Callable[[Any], Any]:
    """A ``1.0/queryStreamNext`` answerer giving these batches, the last one done."""
    pending = list(batches)

    def answer(args: Any) -> Any:
        values = pending.pop(0)
        return {"values": values, "done": not pending}

    return answer
