"""flock-based locks on a disk store whose lock files do not pile up.

A lock file is named by the sha256 of what it guards (a 200-character path element must
not become a 400-character file name), and it is unlinked by its holder on release, so
`.locks/` holds only the locks held now (plus what a killed process left, swept at start).

Unlinking a lock file is safe because every taker checks, after its flock succeeded, that
the path still names the inode it locked: a taker that opened the file just before the
holder unlinked it gets the flock on a dead inode, sees the mismatch and starts over.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os


def lock_name(kind: str, key: str) -> str:
    return f"{kind}-{hashlib.sha256(key.encode()).hexdigest()}.lock"


def _same_file(path: str, fd: int) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def acquire(path: str, *, blocking: bool) -> int | None:
    """The fd holding an exclusive flock on path, or None if it is held (non-blocking)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        if _same_file(path, fd):
            return fd
        os.close(fd)  # released (unlinked) between our open and our flock: take it anew


def release(path: str, fd: int) -> None:
    """Unlink while still holding, then close: waiters on this inode retry on a new file."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    os.close(fd)


def sweep(directory: str) -> int:
    """Remove the lock files nobody holds (a killed process's): taking one and releasing
    it is exactly what any holder does, so this is safe while other processes run."""
    removed = 0
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        with contextlib.suppress(OSError):
            fd = acquire(path, blocking=False)
            if fd is not None:
                release(path, fd)
                removed += 1
    return removed
