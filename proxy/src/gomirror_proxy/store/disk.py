"""The disk backend: atomic files under a root directory, flock single flight, and an
optional size bound that evicts the least recently served versions."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import stat
import tempfile
import threading
import time

from . import locks
from .base import FILES, Store, list_body, parse_version_key, version_key, versions_in
from .errors import LockBusyError, StoreError, mapped
from .eviction import SizeBound
from .usage import Version

_MISSING = (errno.ENOENT, errno.ENOTDIR)
_INTERNAL = (".tmp", ".locks", "sumdb")


def _pathconf(path: str, name: str, default: int) -> int:
    try:
        return os.pathconf(path, name)
    except (OSError, ValueError):
        return default


class _KeyedLocks:
    """asyncio locks per key that disappear when nobody holds or waits for them."""

    def __init__(self):
        self._locks: dict[str, list] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str):
        entry = self._locks.setdefault(key, [asyncio.Lock(), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[key]


class DiskStore(Store):
    kind = "disk"

    def __init__(self, root: str, max_bytes: int = 0, evict_to_percent: int = 90):
        self.root = os.path.realpath(root)
        self.tmp = os.path.join(self.root, ".tmp")
        self.locks = os.path.join(self.root, ".locks")
        os.makedirs(self.tmp, exist_ok=True)
        os.makedirs(self.locks, exist_ok=True)
        self._name_max = _pathconf(self.root, "PC_NAME_MAX", 255)
        self._path_max = _pathconf(self.root, "PC_PATH_MAX", 4096)
        self._list_locks = _KeyedLocks()
        self._writing: set[Version] = set()  # in this process; other processes hold flocks
        self._writing_lock = threading.Lock()
        self.bound: SizeBound | None = None
        if max_bytes > 0:
            self.bound = SizeBound(self, max_bytes, evict_to_percent)

    # --- paths and errors -------------------------------------------------------------
    def path(self, key: str) -> str:
        p = os.path.join(self.root, key)
        # Checked up front: the kernel reports ENAMETOOLONG only once the parent exists,
        # so a fresh store would otherwise start a fetch it can never store.
        if len(p.encode()) >= self._path_max or any(
                len(e.encode()) > self._name_max for e in key.split("/")):
            raise StoreError(404, f"not found: {key[:300]}: cannot exist here "
                                  "(a name is too long for the store's file system)")
        # Keys are built from validated paths; this is a second, independent fence.
        if os.path.commonpath([self.root, os.path.normpath(p)]) != self.root:
            raise StoreError(404, f"not found: {key[:300]}: cannot exist here")
        return p

    def version_lock_path(self, em: str, ev: str) -> str:
        return os.path.join(self.locks, locks.lock_name("v", f"{em}@{ev}"))

    def stat_key(self, key: str) -> os.stat_result | None:
        """stat of key; None when it does not exist, StoreError when it cannot."""
        try:
            return os.stat(self.path(key))
        except OSError as e:
            if e.errno in _MISSING:
                return None
            with mapped(key):
                raise

    # --- reads ------------------------------------------------------------------------
    def local_path(self, key):
        st = self.stat_key(key)
        return self.path(key) if st is not None and stat.S_ISREG(st.st_mode) else None

    async def has_version(self, em, ev):
        return self.stat_key(version_key(em, ev, "info")) is not None

    async def stat(self, key):
        st = self.stat_key(key)
        return st.st_size if st is not None else None

    def _read_sync(self, key):
        try:
            with open(self.path(key), "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as e:
            with mapped(key):
                raise e from None

    async def read(self, key):
        return await asyncio.to_thread(self._read_sync, key)

    # --- writes -----------------------------------------------------------------------
    def _atomic_install(self, src_copy_from: str | None, data: bytes | None, key: str) -> None:
        dest = self.path(key)
        with mapped(key):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.tmp, prefix="w-")
            try:
                with os.fdopen(fd, "wb") as out:
                    if src_copy_from is not None:
                        with open(src_copy_from, "rb") as inp:
                            shutil.copyfileobj(inp, out, 1 << 20)
                    else:
                        out.write(data or b"")
                    out.flush()
                    os.fsync(out.fileno())
                os.chmod(tmp, 0o644)
                os.replace(tmp, dest)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise

    @contextlib.contextmanager
    def _writing_version(self, v: Version | None):
        """Mark v as being written in this process (eviction skips it)."""
        if v is None:
            yield
            return
        with self._writing_lock:
            self._writing.add(v)
        try:
            yield
        finally:
            with self._writing_lock:
                self._writing.discard(v)

    def _write_sync(self, key, data):
        v = parse_version_key(key)
        with self._writing_version(v):
            self._atomic_install(None, data, key)
            if v is not None:
                self._account(v)

    async def write(self, key, data):
        await asyncio.to_thread(self._write_sync, key, data)

    async def delete(self, key):
        def unlink():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(key))

        await asyncio.to_thread(unlink)

    def _install_version_file(self, em: str, ev: str, ext: str, src: str) -> None:
        """One file of a version into place (the step crash tests interrupt)."""
        self._atomic_install(src, None, version_key(em, ev, ext))

    def _put_version_sync(self, em, ev, files):
        v = (em, ev)
        with self._writing_version(v):
            installed = []
            try:
                for ext in FILES:
                    self._install_version_file(em, ev, ext, files[ext])
                    installed.append(ext)
            except StoreError:
                # A refused write (full disk) must not leave a zip without its .info: nobody
                # can be served it. A lone .mod is a valid state and stays (and is counted).
                if "zip" in installed:
                    with contextlib.suppress(OSError):
                        os.unlink(self.path(version_key(em, ev, "zip")))
                self._account(v)
                raise
            d = os.path.dirname(self.path(version_key(em, ev, "info")))
            with contextlib.suppress(OSError):
                dfd = os.open(d, os.O_RDONLY)
                os.fsync(dfd)
                os.close(dfd)
            self._account(v)

    def rewrite_list_sync(self, em):
        path = os.path.join(self.locks, locks.lock_name("list", em))
        with mapped(f"{em}/@v/list"):
            fd = locks.acquire(path, blocking=True)
        try:
            versions = self._stored_versions_sync(em)
            self._atomic_install(None, list_body(versions), f"{em}/@v/list")
        finally:
            locks.release(path, fd)

    async def put_version(self, em, ev, files):
        await asyncio.to_thread(self._put_version_sync, em, ev, files)
        async with self._list_locks.hold(em):
            await asyncio.to_thread(self.rewrite_list_sync, em)

    # --- listing ----------------------------------------------------------------------
    def _stored_versions_sync(self, em):
        d = self.path(f"{em}/@v")
        try:
            return versions_in(os.listdir(d))
        except OSError:
            return []

    def version_dirs(self):
        """(escaped module, @v dir, file names) for every module directory of the store."""
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel = os.path.relpath(dirpath, self.root)
            if rel == ".":
                dirnames[:] = [d for d in dirnames if d not in _INTERNAL]
            if os.path.basename(dirpath) != "@v":
                continue
            dirnames[:] = []
            yield os.path.dirname(rel), dirpath, filenames

    def _catalog_sync(self, after, limit):
        found: list[tuple[str, str]] = []
        for em, _d, filenames in self.version_dirs():
            for n in filenames:
                if n.endswith(".info"):
                    found.append((em, n[: -len(".info")]))
        # The same order as S3 keys, so a token means the same on both backends.
        found.sort(key=lambda x: version_key(x[0], x[1], "info"))
        if after:
            em, _, ev = after.rpartition("@")
            start = version_key(em, ev, "info")
            found = [x for x in found if version_key(x[0], x[1], "info") > start]
        return found[:limit]

    async def catalog(self, after, limit):
        return await asyncio.to_thread(self._catalog_sync, after, limit)

    async def check_writable(self):
        def probe():
            fd, p = tempfile.mkstemp(dir=self.tmp, prefix="probe-")
            os.close(fd)
            os.unlink(p)

        await asyncio.to_thread(probe)

    # --- crash leftovers ------------------------------------------------------------
    def cleanup_tmp(self, older_than: float = 0) -> None:
        """Remove temp files a killed writer left (only ours, in .tmp/) and lock files
        nobody holds (a killed process's)."""
        now = time.time()
        for name in os.listdir(self.tmp):
            p = os.path.join(self.tmp, name)
            with contextlib.suppress(OSError):
                if now - os.lstat(p).st_mtime >= older_than:
                    if os.path.isdir(p) and not os.path.islink(p):
                        shutil.rmtree(p, ignore_errors=True)
                    else:
                        os.unlink(p)
        locks.sweep(self.locks)

    # --- single flight ----------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lock(self, em, ev, ttl):
        path = self.version_lock_path(em, ev)
        deadline = time.monotonic() + ttl
        while True:
            with mapped(f"{em}/@v/{ev}"):
                fd = await asyncio.to_thread(locks.acquire, path, blocking=False)
            if fd is not None:
                break
            if time.monotonic() > deadline:
                raise LockBusyError(f"{em}@{ev}")
            await asyncio.sleep(0.05)
        try:
            yield
        finally:
            locks.release(path, fd)  # a killed process's flock is released by the kernel

    # --- size bound (eviction.py) -----------------------------------------------------
    def bind_metrics(self, metrics) -> None:
        if self.bound is not None:
            self.bound.bind_metrics(metrics)

    def touch(self, em, ev):
        if self.bound is not None:
            self.bound.usage.touch((em, ev))

    @contextlib.contextmanager
    def reading(self, em, ev):
        if self.bound is None:
            yield
            return
        self.bound.usage.pin((em, ev))
        try:
            yield
        finally:
            self.bound.usage.unpin((em, ev))

    def writing_now(self) -> set[Version]:
        """The versions this process is writing at this moment."""
        with self._writing_lock:
            return set(self._writing)

    def _account(self, v: Version) -> None:
        if self.bound is not None:
            self.bound.written(v)
