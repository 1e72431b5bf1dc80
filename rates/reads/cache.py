"""A per-process response cache that is exact: entries are tagged with the data version.

The data version (table data_version, migration 0002) is bumped in the same transaction as
every write to prices, ports or regions, by any writer. A request reads the current version
(one indexed single-row read) and serves a cached body when it was computed at that version or
a newer one; otherwise it runs the query, which returns the version of its own snapshot, and
stores the result under it. A result older than the version read is never served. Serving a
newer one is what keeps a worker's answers monotonic, and its cache useful, when its reads are
spread over replicas at different replay points: the lagging replica does not evict the entry
the replica ahead computed, and its older answer is not served after the newer one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable


class VersionedCache:
    """Least-recently-used mapping key -> (data version, body), bounded by entry count."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[int, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0

    def get(self, key: Hashable, version: int) -> tuple[int, bytes] | None:
        """(its version, the body) stored for ``key`` if computed at ``version`` or later, else None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] < version:
                return None
            self._entries.move_to_end(key)
            return entry

    def has(self, key: Hashable) -> bool:
        return key in self._entries

    def put(self, key: Hashable, version: int, body: bytes) -> None:
        if not self.enabled:
            return
        with self._lock:
            current = self._entries.get(key)
            if current is not None and current[0] > version:
                return  # a concurrent request already stored a newer result
            self._entries[key] = (version, body)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
