"""Store failures as HTTP statuses: a full or read-only disk must not become a 500 storm."""

from __future__ import annotations

import contextlib
import errno


class StoreError(Exception):
    """A store operation failed in a way the client should see as `status`.

    404: the key cannot exist on this store (a name too long for its file system).
    507: the store is full (writes refused; stored versions are still served).
    503: the store cannot be read or written at all (permissions, read-only, I/O errors).
    """

    def __init__(self, status: int, msg: str):
        super().__init__(msg)
        self.status, self.msg = status, msg


class LockBusyError(Exception):
    pass


_CANNOT_EXIST = (errno.ENAMETOOLONG, errno.EINVAL)
_FULL = (errno.ENOSPC, errno.EDQUOT)
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)


def from_os_error(e: OSError, key: str) -> StoreError:
    """The StoreError for an OSError on `key` (the message names the key, never the
    store's own directory)."""
    what = e.strerror or type(e).__name__
    if e.errno in _CANNOT_EXIST:
        return StoreError(404, f"not found: {key[:300]}: cannot exist here ({what})")
    if e.errno in _FULL:
        return StoreError(507, f"insufficient storage: the store is full ({what}); "
                               "stored versions are still served")
    if e.errno in _DENIED:
        return StoreError(503, f"store unavailable: {what}")
    return StoreError(503, f"store error: {what}")


@contextlib.contextmanager
def mapped(key: str):
    """Turn any OSError in the block into the StoreError for key."""
    try:
        yield
    except OSError as e:
        raise from_os_error(e, key) from None
