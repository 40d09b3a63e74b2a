"""What a size-bounded store needs to know: each stored version's size, the order in which
versions were last served, and which versions are in use right now.

Recency lives in memory (seeded from file mtimes when the store opens; atime is not
reliable): a version served since the start is more recent than every version not served.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

Version = tuple[str, str]  # (escaped module, escaped version)


class UsageIndex:
    def __init__(self, max_bytes: int, evict_to_percent: int):
        self.max_bytes = max_bytes
        self.low_water = max_bytes * evict_to_percent // 100
        self.total = 0
        # Guards everything below; held by the evictor across the deletion of one
        # version, so a reader's pin() either precedes the choice (the version is
        # skipped) or follows the deletion (the reader sees a miss, never half a version).
        self.lock = threading.Lock()
        self._sizes: OrderedDict[Version, int] = OrderedDict()  # least recently served first
        self._pins: dict[Version, int] = {}

    def seed(self, found: list[tuple[float, Version, int]]) -> None:
        with self.lock:
            for _mtime, v, size in sorted(found):
                self._set_locked(v, size)

    def _set_locked(self, v: Version, size: int) -> None:
        self.total += size - self._sizes.get(v, 0)
        self._sizes[v] = size
        self._sizes.move_to_end(v)

    def set_size(self, v: Version, size: int) -> None:
        """A version was (re)written: its size now, and it counts as just served."""
        with self.lock:
            self._set_locked(v, size)

    def touch(self, v: Version) -> None:
        with self.lock:
            if v in self._sizes:
                self._sizes.move_to_end(v)

    def pin(self, v: Version) -> None:
        with self.lock:
            self._pins[v] = self._pins.get(v, 0) + 1
            if v in self._sizes:
                self._sizes.move_to_end(v)

    def unpin(self, v: Version) -> None:
        with self.lock:
            n = self._pins.get(v, 0) - 1
            if n > 0:
                self._pins[v] = n
            else:
                self._pins.pop(v, None)

    def over(self) -> bool:
        return self.max_bytes > 0 and self.total > self.max_bytes

    def next_victim_locked(self, skip: set[Version]) -> Version | None:
        """The least recently served version that is neither pinned nor in skip, while
        the store is above its low-water mark; the caller holds self.lock."""
        if self.total <= self.low_water:
            return None
        for v in self._sizes:
            if v not in skip and not self._pins.get(v):
                return v
        return None

    def forget_locked(self, v: Version) -> int:
        size = self._sizes.pop(v, 0)
        self.total -= size
        return size

    def __contains__(self, v: Version) -> bool:
        return v in self._sizes
