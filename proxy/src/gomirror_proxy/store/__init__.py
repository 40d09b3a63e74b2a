"""The node's module store: one interface (base.Store), a disk and an S3 backend.

Files: base.py (interface, key layout), disk.py, s3.py, locks.py (flock files on disk),
eviction.py (the disk size bound) with usage.py (its sizes/recency/pins bookkeeping),
errors.py (StoreError: OS errors as HTTP statuses).
"""

from __future__ import annotations

from .base import FILES, Store, list_body, parse_version_key, version_key, versions_in
from .disk import DiskStore
from .errors import LockBusyError, StoreError
from .s3 import S3Store

__all__ = [
    "FILES", "DiskStore", "LockBusyError", "S3Store", "Store", "StoreError", "list_body",
    "open_store", "parse_version_key", "version_key", "versions_in",
]


def open_store(cfg) -> Store:
    if cfg.storage_type == "s3":
        return S3Store(cfg.s3)
    return DiskStore(cfg.disk_root, max_bytes=cfg.disk_max_bytes,
                     evict_to_percent=cfg.disk_evict_to_percent)
