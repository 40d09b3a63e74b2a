"""A bounded in-memory map whose entries expire: upstream lists, query answers, the
not-found memory, checksum-database answers."""

from __future__ import annotations

import time
from collections import OrderedDict


class TTLCache:
    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._d: OrderedDict = OrderedDict()

    def get(self, key):
        hit = self._d.get(key)
        if hit is None:
            return None
        if hit[0] <= time.monotonic():
            del self._d[key]
            return None
        return hit[1]

    def put(self, key, value, ttl: float) -> None:
        if ttl <= 0 or self.max_entries <= 0:
            return
        self._d[key] = (time.monotonic() + ttl, value)
        self._d.move_to_end(key)
        while len(self._d) > self.max_entries:
            self._d.popitem(last=False)  # the oldest insert goes first

    def pop(self, key) -> None:
        self._d.pop(key, None)

    def __len__(self) -> int:
        return len(self._d)
