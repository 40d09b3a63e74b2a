"""The module store: the go command's module-cache download layout.

    <escaped module>/@v/list
    <escaped module>/@v/<escaped version>.zip | .mod | .info
    sumdb/<name>/tile/...          (full checksum-database tiles, immutable)

A version is complete when its .info exists; writers put .zip, then .mod, then .info,
each atomically (temp file + rename on disk, one PUT on S3), so a crash at any point
leaves no version that looks complete. The `list` file is rewritten after each version
(versions that are not pseudo-versions, sorted). Internal state lives under `.tmp/` and
`.locks/` (disk) or `.locks/` (S3): exclude those when replicating.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator

from . import modpath

FILES = ("zip", "mod", "info")  # write order; .info last = completion marker


def version_key(escaped_mod: str, escaped_ver: str, ext: str) -> str:
    return f"{escaped_mod}/@v/{escaped_ver}.{ext}"


def _fault_delay(point: str) -> None:
    """Test-only fault injection: GOMIRROR_PROXY_FAULT_SLEEP=<point>:<seconds>."""
    spec = os.environ.get("GOMIRROR_PROXY_FAULT_SLEEP", "")
    if spec and spec.split(":")[0] == point:
        time.sleep(float(spec.split(":")[1]))


class LockBusyError(Exception):
    pass


def versions_in(names) -> list[str]:
    """The versions of an @v/ directory's file names that are complete (have a .info)."""
    out = []
    for n in names:
        if n.endswith(".info"):
            with contextlib.suppress(ValueError):
                out.append(modpath.unescape_version(n[: -len(".info")]))
    return out


class Store:
    kind = "abstract"

    async def has_version(self, em: str, ev: str) -> bool: ...
    async def stat(self, key: str) -> int | None: ...
    async def read(self, key: str) -> bytes | None: ...
    async def write(self, key: str, data: bytes) -> None: ...
    async def put_version(self, em: str, ev: str, files: dict[str, str]) -> None: ...
    async def stored_versions(self, em: str) -> list[str]:
        return await asyncio.to_thread(self._stored_versions_sync, em)

    def _stored_versions_sync(self, em: str) -> list[str]: ...
    async def catalog(self, after: str, limit: int) -> list[tuple[str, str]]: ...
    async def check_writable(self) -> None: ...

    def local_path(self, key: str) -> str | None:
        return None

    async def stream(self, key: str, chunk: int = 1 << 20) -> AsyncIterator[bytes]:
        data = await self.read(key)
        if data is not None:
            yield data

    def lock(self, em: str, ev: str, ttl: int):
        """An async context manager serialising fetches of one version across processes."""
        raise NotImplementedError


def _list_body(versions: list[str]) -> bytes:
    vs = sorted({v for v in versions if not modpath.is_pseudo(v)}, key=modpath.semver_key)
    return "".join(v + "\n" for v in vs).encode()


class DiskStore(Store):
    kind = "disk"

    def __init__(self, root: str):
        self.root = os.path.realpath(root)
        self.tmp = os.path.join(self.root, ".tmp")
        self.locks = os.path.join(self.root, ".locks")
        os.makedirs(self.tmp, exist_ok=True)
        os.makedirs(self.locks, exist_ok=True)
        self._list_locks: dict[str, asyncio.Lock] = {}

    def cleanup_tmp(self, older_than: float = 0) -> None:
        """Remove temp files a killed writer left (only ours, in .tmp/)."""
        now = time.time()
        for name in os.listdir(self.tmp):
            p = os.path.join(self.tmp, name)
            with contextlib.suppress(OSError):
                if now - os.lstat(p).st_mtime >= older_than:
                    if os.path.isdir(p) and not os.path.islink(p):
                        shutil.rmtree(p, ignore_errors=True)
                    else:
                        os.unlink(p)

    def _path(self, key: str) -> str:
        p = os.path.join(self.root, key)
        # Keys are built from validated paths; this is a second, independent fence.
        if os.path.commonpath([self.root, os.path.normpath(p)]) != self.root:
            raise ValueError(f"key escapes the store: {key!r}")
        return p

    def local_path(self, key: str) -> str | None:
        p = self._path(key)
        return p if os.path.isfile(p) else None

    async def has_version(self, em, ev):
        return os.path.isfile(self._path(version_key(em, ev, "info")))

    async def stat(self, key):
        try:
            return os.stat(self._path(key)).st_size
        except OSError:
            return None

    def _read_sync(self, key):
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    async def read(self, key):
        return await asyncio.to_thread(self._read_sync, key)

    def _atomic_install(self, src_copy_from: str | None, data: bytes | None, dest: str) -> None:
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

    async def write(self, key, data):
        await asyncio.to_thread(self._atomic_install, None, data, self._path(key))

    def _put_version_sync(self, em, ev, files):
        for ext in FILES:
            self._atomic_install(files[ext], None, self._path(version_key(em, ev, ext)))
            _fault_delay(f"after-{ext}")
        d = os.path.dirname(self._path(version_key(em, ev, "info")))
        with contextlib.suppress(OSError):
            dfd = os.open(d, os.O_RDONLY)
            os.fsync(dfd)
            os.close(dfd)

    def _rewrite_list_sync(self, em):
        lockf = os.path.join(self.locks, "list-" + em.replace("/", "%") + ".lock")
        with open(lockf, "a") as lf:
            fcntl.flock(lf, fcntl.LOCK_EX)
            versions = self._stored_versions_sync(em)
            self._atomic_install(None, _list_body(versions), self._path(f"{em}/@v/list"))

    async def put_version(self, em, ev, files):
        await asyncio.to_thread(self._put_version_sync, em, ev, files)
        lock = self._list_locks.setdefault(em, asyncio.Lock())
        async with lock:
            await asyncio.to_thread(self._rewrite_list_sync, em)

    def _stored_versions_sync(self, em):
        d = self._path(f"{em}/@v")
        try:
            return versions_in(os.listdir(d))
        except OSError:
            return []

    def _catalog_sync(self, after, limit):
        found: list[tuple[str, str]] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel = os.path.relpath(dirpath, self.root)
            if rel == ".":
                dirnames[:] = [d for d in dirnames if d not in (".tmp", ".locks", "sumdb")]
            if os.path.basename(dirpath) != "@v":
                continue
            dirnames[:] = []
            em = os.path.dirname(rel)
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

    @contextlib.asynccontextmanager
    async def lock(self, em, ev, ttl):
        name = "v-" + f"{em}@{ev}".replace("/", "%") + ".lock"
        path = os.path.join(self.locks, name)
        f = await asyncio.to_thread(open, path, "a")
        try:
            deadline = time.monotonic() + ttl
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() > deadline:
                        raise LockBusyError(name) from None
                    await asyncio.sleep(0.05)
            yield
        finally:
            f.close()  # closing releases the flock; a killed process releases it too


class S3Store(Store):
    """Same key layout in a bucket (under an optional prefix).

    Cross-node single flight: a lock object `.locks/<module>@<version>` created with a
    conditional PUT (If-None-Match: *), which S3 and moto both honour; its body holds an
    expiry so a lock left by a killed node is taken over after LockTTL.
    """

    kind = "s3"

    def __init__(self, s3cfg, client=None):
        import boto3
        from botocore.config import Config as BotoConfig

        self.bucket = s3cfg.bucket
        self.prefix = (s3cfg.prefix + "/") if s3cfg.prefix else ""
        if client is None:
            kw = {
                "region_name": s3cfg.region,
                "config": BotoConfig(
                    s3={"addressing_style": "path" if s3cfg.force_path_style else "auto"},
                    retries={"max_attempts": 3, "mode": "standard"},
                    max_pool_connections=64,
                ),
            }
            if s3cfg.endpoint:
                kw["endpoint_url"] = s3cfg.endpoint
            if not s3cfg.use_default_configuration and s3cfg.key:
                kw["aws_access_key_id"] = s3cfg.key
                kw["aws_secret_access_key"] = s3cfg.secret
                if s3cfg.token:
                    kw["aws_session_token"] = s3cfg.token
            client = boto3.client("s3", **kw)
        self.s3 = client
        from botocore.exceptions import ClientError

        self.ClientError = ClientError

    def _k(self, key: str) -> str:
        return self.prefix + key

    def _missing(self, e) -> bool:
        code = e.response.get("Error", {}).get("Code", "")
        return code in ("404", "NoSuchKey", "NotFound")

    async def stat(self, key):
        try:
            r = await asyncio.to_thread(self.s3.head_object, Bucket=self.bucket, Key=self._k(key))
        except self.ClientError as e:
            if self._missing(e):
                return None
            raise
        return r["ContentLength"]

    async def has_version(self, em, ev):
        return await self.stat(version_key(em, ev, "info")) is not None

    async def read(self, key):
        def get():
            try:
                r = self.s3.get_object(Bucket=self.bucket, Key=self._k(key))
            except self.ClientError as e:
                if self._missing(e):
                    return None
                raise
            return r["Body"].read()

        return await asyncio.to_thread(get)

    async def stream(self, key, chunk=1 << 20):
        def open_body():
            return self.s3.get_object(Bucket=self.bucket, Key=self._k(key))["Body"]

        body = await asyncio.to_thread(open_body)
        try:
            while True:
                data = await asyncio.to_thread(body.read, chunk)
                if not data:
                    break
                yield data
        finally:
            body.close()

    async def write(self, key, data):
        await asyncio.to_thread(
            self.s3.put_object, Bucket=self.bucket, Key=self._k(key), Body=data
        )

    def _put_version_sync(self, em, ev, files):
        for ext in FILES:
            with open(files[ext], "rb") as f:
                self.s3.upload_fileobj(f, self.bucket, self._k(version_key(em, ev, ext)))
            _fault_delay(f"after-{ext}")
        versions = self._stored_versions_sync(em)
        self.s3.put_object(
            Bucket=self.bucket, Key=self._k(f"{em}/@v/list"), Body=_list_body(versions)
        )

    async def put_version(self, em, ev, files):
        await asyncio.to_thread(self._put_version_sync, em, ev, files)

    def _stored_versions_sync(self, em):
        pag = self.s3.get_paginator("list_objects_v2")
        pre = self._k(f"{em}/@v/")
        return versions_in(
            o["Key"][len(pre) :]
            for page in pag.paginate(Bucket=self.bucket, Prefix=pre, Delimiter="/")
            for o in page.get("Contents", [])
        )

    def _catalog_sync(self, after, limit):
        out: list[tuple[str, str]] = []
        kw = {"Bucket": self.bucket, "Prefix": self.prefix}
        if after:
            em, _, ev = after.rpartition("@")
            kw["StartAfter"] = self._k(version_key(em, ev, "info"))
        pag = self.s3.get_paginator("list_objects_v2")
        for page in pag.paginate(**kw):
            for o in page.get("Contents", []):
                k = o["Key"][len(self.prefix) :]
                if (not k.endswith(".info") or "/@v/" not in k
                        or k.startswith((".locks/", "sumdb/"))):
                    continue
                em, _, rest = k.rpartition("/@v/")
                out.append((em, rest[: -len(".info")]))
                if len(out) >= limit:
                    return out
        return out

    async def catalog(self, after, limit):
        return await asyncio.to_thread(self._catalog_sync, after, limit)

    async def check_writable(self):
        key = f".locks/probe-{uuid.uuid4().hex}"
        await self.write(key, b"probe")
        await asyncio.to_thread(self.s3.delete_object, Bucket=self.bucket, Key=self._k(key))

    def _try_lock(self, key: str, ttl: int) -> bool:
        body = json.dumps({"owner": f"{os.uname().nodename}:{os.getpid()}",
                           "expires": time.time() + ttl}).encode()
        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
            return True
        except self.ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code not in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise
        # Held: take it over if its holder's lease expired (a killed node).
        try:
            cur = json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
            if float(cur.get("expires", 0)) < time.time():
                self.s3.delete_object(Bucket=self.bucket, Key=key)
        except (self.ClientError, ValueError):
            pass
        return False

    @contextlib.asynccontextmanager
    async def lock(self, em, ev, ttl):
        key = self._k(f".locks/{em}@{ev}")
        deadline = time.monotonic() + ttl + 5
        while not await asyncio.to_thread(self._try_lock, key, ttl):
            if time.monotonic() > deadline:
                raise LockBusyError(key)
            await asyncio.sleep(0.2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.s3.delete_object, Bucket=self.bucket, Key=key)


def open_store(cfg) -> Store:
    if cfg.storage_type == "s3":
        return S3Store(cfg.s3)
    return DiskStore(cfg.disk_root)
