"""Read sets and the write log: the one source of change.

A :class:`ReadSet` is the set of index key ranges a transaction or a query
looked at (including ranges where it found nothing). The :class:`WriteLog` is a
bounded, in-memory list of recent commits and the index keys each one wrote.

Two things read the log: the committer, whose optimistic concurrency check
refuses a transaction if any commit after its begin timestamp wrote a key in
its read set; and subscribers ("tell me when anything in these ranges changes
after ts"), which the sync layer uses to invalidate live queries.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass


class ReadSet:
    """Index key intervals ``[start, end)`` per index id (``end`` None = unbounded)."""

    __slots__ = ("intervals", "count")

    def __init__(self) -> None:
        self.intervals: dict[int, list[tuple[bytes, bytes | None]]] = {}
        self.count = 0

    def add(self, index_id: int, start: bytes, end: bytes | None) -> None:
        if end is not None and end <= start:
            return
        self.intervals.setdefault(index_id, []).append((start, end))
        self.count += 1

    def update(self, other: ReadSet) -> None:
        for index_id, intervals in other.intervals.items():
            self.intervals.setdefault(index_id, []).extend(intervals)
        self.count += other.count

    def contains(self, index_id: int, key: bytes) -> bool:
        intervals = self.intervals.get(index_id)
        if not intervals:
            return False
        for start, end in intervals:
            if start <= key and (end is None or key < end):
                return True
        return False

    def compiled(self) -> CompiledReadSet:
        return CompiledReadSet(self)


class CompiledReadSet:
    """A read set merged into sorted, disjoint intervals for fast membership tests."""

    __slots__ = ("starts", "ends")

    def __init__(self, read_set: ReadSet) -> None:
        self.starts: dict[int, list[bytes]] = {}
        self.ends: dict[int, list[bytes | None]] = {}
        for index_id, intervals in read_set.intervals.items():
            merged: list[list] = []
            for start, end in sorted(intervals, key=lambda i: i[0]):
                if merged and (merged[-1][1] is None or start <= merged[-1][1]):
                    last_end = merged[-1][1]
                    if last_end is not None and (end is None or end > last_end):
                        merged[-1][1] = end
                else:
                    merged.append([start, end])
            self.starts[index_id] = [m[0] for m in merged]
            self.ends[index_id] = [m[1] for m in merged]

    def contains(self, index_id: int, key: bytes) -> bool:
        starts = self.starts.get(index_id)
        if not starts:
            return False
        i = bisect_right(starts, key) - 1
        if i < 0:
            return False
        end = self.ends[index_id][i]
        return end is None or key < end


@dataclass
class WriteLogEntry:
    ts: int
    #: index id -> index keys written (old and new keys of every changed document).
    writes: dict[int, list[bytes]]
    durable: bool = False


@dataclass
class Subscription:
    read_set: CompiledReadSet
    ts: int
    callback: Callable[[int], None]
    active: bool = True

    def cancel(self) -> None:
        self.active = False


class WriteLog:
    """Recent commits in timestamp order, pending ones (not yet durable) included."""

    def __init__(self, max_entries: int = 50_000, min_entries: int = 1_000) -> None:
        self.entries: deque[WriteLogEntry] = deque()
        self.max_entries = max_entries
        #: Recent commits kept even when no transaction needs them, so that a
        #: subscriber whose query ran a moment ago can still be answered exactly.
        self.min_entries = min_entries
        #: Commits at or below this timestamp are no longer in the log.
        self.horizon_ts = 0
        self._subscriptions: list[Subscription] = []

    def append(self, entry: WriteLogEntry) -> None:
        self.entries.append(entry)

    def remove(self, entry: WriteLogEntry) -> None:
        """Forget a commit whose write failed (it never happened)."""
        try:
            self.entries.remove(entry)
        except ValueError:
            pass

    def trim(self, keep_after_ts: int) -> None:
        """Drop entries nobody needs: at or below ``keep_after_ts``, or over the cap."""
        entries = self.entries
        while (
            entries
            and entries[0].durable
            and (
                len(entries) > self.max_entries
                or (entries[0].ts <= keep_after_ts and len(entries) > self.min_entries)
            )
        ):
            self.horizon_ts = entries.popleft().ts

    def first_conflict(self, read_set: ReadSet, since_ts: int) -> WriteLogEntry | None:
        """The first commit after ``since_ts`` that wrote into ``read_set``, if any.

        If the log no longer reaches back to ``since_ts`` the answer cannot be
        known, and the caller must treat it as a conflict: a sentinel entry
        with ts -1 is returned.
        """
        if since_ts < self.horizon_ts:
            return WriteLogEntry(-1, {})
        if not read_set.count:
            return None
        compiled = None
        for entry in reversed(self.entries):
            if entry.ts <= since_ts:
                break
            if compiled is None:
                compiled = read_set.compiled()
            if _touches(compiled, entry.writes):
                return entry
        return None

    # -- change notification --------------------------------------------------

    def subscribe(
        self, read_set: ReadSet, ts: int, callback: Callable[[int], None]
    ) -> Subscription:
        """Call ``callback(commit_ts)`` once, on the first durable commit after
        ``ts`` that writes into ``read_set`` (at once if one is already logged)."""
        subscription = Subscription(read_set.compiled(), ts, callback)
        if ts < self.horizon_ts:
            callback(self.horizon_ts)
            subscription.active = False
            return subscription
        for entry in self.entries:
            if entry.ts > ts and entry.durable and _touches(subscription.read_set, entry.writes):
                callback(entry.ts)
                subscription.active = False
                return subscription
        self._subscriptions.append(subscription)
        return subscription

    def published(self, entries: Iterable[WriteLogEntry]) -> None:
        """Entries became durable: mark them and notify subscribers they touch."""
        entries = list(entries)
        for entry in entries:
            entry.durable = True
        if not self._subscriptions:
            return
        remaining = []
        for subscription in self._subscriptions:
            if not subscription.active:
                continue
            fired = False
            for entry in entries:
                if entry.ts > subscription.ts and _touches(subscription.read_set, entry.writes):
                    subscription.active = False
                    subscription.callback(entry.ts)
                    fired = True
                    break
            if not fired:
                remaining.append(subscription)
        self._subscriptions = remaining

    @property
    def subscription_count(self) -> int:
        return sum(1 for s in self._subscriptions if s.active)


def _touches(read_set: CompiledReadSet, writes: dict[int, list[bytes]]) -> bool:
    for index_id, keys in writes.items():
        if index_id in read_set.starts:
            for key in keys:
                if read_set.contains(index_id, key):
                    return True
    return False


__all__ = [
    "CompiledReadSet",
    "ReadSet",
    "Subscription",
    "WriteLog",
    "WriteLogEntry",
]
