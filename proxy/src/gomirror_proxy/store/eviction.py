"""The disk store's size bound: after a write takes the store over MaxBytes, remove whole
versions, least recently served first, down to EvictToPercent of it.

Never removed: the version just written, one being written (in this process, or holding
its fetch flock in another), one pinned by a reader. A version's .info goes first, so a
half-evicted version is never complete; the module's list is rewritten afterwards.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading

from . import locks
from .base import EVICT_ORDER, FILES, version_key
from .errors import StoreError
from .usage import UsageIndex, Version

log = logging.getLogger("gomirror_proxy.store")


class SizeBound:
    def __init__(self, store, max_bytes: int, evict_to_percent: int):
        self.store = store  # a DiskStore
        self.usage = UsageIndex(max_bytes, evict_to_percent)
        self.usage.seed(self._scan())
        self._evicting = threading.Lock()
        self._metrics = None

    def bind_metrics(self, metrics) -> None:
        self._metrics = metrics
        metrics.store_bytes.set(self.usage.total)

    def written(self, v: Version) -> None:
        """v was (re)written: count its size now, and evict if that went over the bound."""
        self.usage.set_size(v, self._size(v))
        if self._metrics is not None:
            self._metrics.store_bytes.set(self.usage.total)
        if self.usage.over():
            self.evict({v})

    def _size(self, v: Version) -> int:
        size = 0
        for ext in FILES:
            st = self.store.stat_key(version_key(*v, ext))
            size += st.st_size if st is not None else 0
        return size

    def _scan(self) -> list[tuple[float, Version, int]]:
        """(newest mtime, version, bytes) of every version with files in the store."""
        found: dict[Version, list] = {}
        for em, d, filenames in self.store.version_dirs():
            for n in filenames:
                ev, dot, ext = n.rpartition(".")
                if not dot or ext not in FILES:
                    continue
                with contextlib.suppress(OSError):
                    st = os.stat(os.path.join(d, n))
                    e = found.setdefault((em, ev), [0.0, 0])
                    e[0] = max(e[0], st.st_mtime)
                    e[1] += st.st_size
        return [(mt, v, size) for v, (mt, size) in found.items()]

    def evict(self, keep: set[Version] = frozenset()) -> int:
        """Evict down to the low-water mark; returns the number of versions removed."""
        if not self._evicting.acquire(blocking=False):
            return 0  # another thread is already evicting
        removed = 0
        try:
            skip = set(keep)
            while True:
                busy = skip | self.store.writing_now()
                with self.usage.lock:
                    v = self.usage.next_victim_locked(busy)
                    if v is None:
                        break
                    nbytes = self._remove_locked(v)
                    if nbytes is None:
                        skip.add(v)
                        continue
                removed += 1
                self._after(v, nbytes)
        finally:
            self._evicting.release()
        return removed

    def _remove_locked(self, v: Version) -> int | None:
        """Delete one version's files, .info first; None if a writer holds it. The caller
        holds usage.lock, so no reader can pin v meanwhile."""
        em, ev = v
        lock_path = self.store.version_lock_path(em, ev)
        try:
            fd = locks.acquire(lock_path, blocking=False)
        except OSError:
            return None
        if fd is None:
            return None  # being fetched (written) by some process
        try:
            for ext in EVICT_ORDER:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.store.path(version_key(em, ev, ext)))
        except OSError as e:
            log.warning(json.dumps({"msg": "eviction failed", "module": em, "version": ev,
                                    "error": e.strerror}))
            return None
        finally:
            locks.release(lock_path, fd)
        return self.usage.forget_locked(v)

    def _after(self, v: Version, nbytes: int) -> None:
        em, ev = v
        with contextlib.suppress(StoreError):
            self.store.rewrite_list_sync(em)  # the list names servable versions only
        if self._metrics is not None:
            self._metrics.store_evictions.inc()
            self._metrics.store_evicted_bytes.inc(amount=nbytes)
            self._metrics.store_bytes.set(self.usage.total)
        log.info(json.dumps({"msg": "evicted", "module": em, "version": ev, "bytes": nbytes}))
