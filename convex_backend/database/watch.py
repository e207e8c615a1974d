"""Following the committed writes of one table through the write log.

Services that keep something in step with a table (the scheduler's job
index, the removal of deleted file blobs) use a :class:`TableWatcher`
instead of polling: it subscribes to writes of the table's ``by_id`` index
and hands over the ids of the documents written since it last reported.
"""

from __future__ import annotations

from collections.abc import Callable

from convex_backend.database.tables import BY_ID
from convex_backend.database.writelog import ReadSet
from convex_backend.values.keys import decode_index_key


class TableWatcher:
    """Calls ``on_changes(ids)`` after durable commits that wrote ``table``.

    ``ids`` are the written documents' ids, in commit order without repeats;
    ``None`` means the write log no longer reaches back to the previous
    report, so the caller must re-read the whole table. Called a reactor turn
    after the commit, outside the write log's notification loop.
    """

    def __init__(self, database, table: str, on_changes: Callable[[list[str] | None], None]):
        self.database = database
        self.table = table
        self.on_changes = on_changes
        self._ts: int | None = None
        self._subscription = None
        self._running = False

    def start(self) -> None:
        """Report writes committed after the latest published timestamp."""
        self._running = True
        self._ts = self.database.published_ts
        self._subscribe()

    def stop(self) -> None:
        self._running = False
        if self._subscription is not None:
            self._subscription.cancel()
            self._subscription = None

    def _index_id(self) -> int:
        table = self.database.store.tables_by_name[self.table]
        return table.indexes[BY_ID].descriptor.index_id

    def _subscribe(self) -> None:
        read_set = ReadSet()
        read_set.add(self._index_id(), b"", None)
        self._subscription = self.database.write_log.subscribe(read_set, self._ts, self._changed)

    def _changed(self, _commit_ts: int) -> None:
        # The write log is notifying its subscribers; subscribing again from
        # inside that loop is not allowed, so act a turn later.
        self._subscription = None
        if self._running:
            self.database.reactor.callLater(0, self._report)

    def _report(self) -> None:
        if not self._running:
            return
        write_log = self.database.write_log
        since = self._ts
        assert since is not None
        ids: list[str] | None
        if since < write_log.horizon_ts:
            ids = None
            since = self.database.published_ts
        else:
            index_id = self._index_id()
            changed: dict[str, None] = {}
            for entry in write_log.entries:
                if not entry.durable:
                    break
                if entry.ts <= since:
                    continue
                since = entry.ts
                for key in entry.writes.get(index_id, ()):
                    document_id = decode_index_key(key)[0]
                    if isinstance(document_id, str):
                        changed[document_id] = None
            ids = list(changed)
        self._ts = since
        self._subscribe()
        self.on_changes(ids)
