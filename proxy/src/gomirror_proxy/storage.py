"""Compatibility name for the store package (`gomirror_proxy.store`)."""

from .store import (  # noqa: F401 - re-exported names
    FILES,
    DiskStore,
    LockBusyError,
    S3Store,
    Store,
    StoreError,
    list_body,
    open_store,
    parse_version_key,
    version_key,
    versions_in,
)
