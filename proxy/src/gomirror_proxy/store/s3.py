"""The S3 backend: the same key layout in a bucket (under an optional prefix), and
cross-node single flight through conditional writes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from .base import FILES, Store, list_body, version_key, versions_in
from .errors import LockBusyError, StoreError

_PRECONDITION = ("PreconditionFailed", "412", "ConditionalRequestConflict")
LIST_REWRITE_ATTEMPTS = 8  # each lost race means another node's rewrite succeeded


class S3Store(Store):
    """Same key layout in a bucket (under an optional prefix).

    Cross-node single flight: a lock object `.locks/v-<sha256 of module@version>` created
    with a conditional PUT (If-None-Match: *). Its body holds an expiry; a lock left by a
    killed node is taken over after it expires with a PUT conditional on the dead lock's
    ETag (If-Match), so of several waiters exactly one wins, and a holder releases with a
    DELETE conditional on its own ETag, so a slow holder never deletes its successor's lock.
    S3 has honoured both conditions since 2024; so do moto and MinIO.
    """

    kind = "s3"

    def __init__(self, s3cfg, client=None):
        import boto3
        from botocore.config import Config as BotoConfig

        self.bucket = s3cfg.bucket
        self.prefix = (s3cfg.prefix + "/") if s3cfg.prefix else ""
        # boto3 blocks, so every call runs on a thread. Not asyncio's default executor: it
        # has min(32, cores + 4) threads (6 on 2 cores) shared with everything else, and
        # store calls (each one S3 round trip) would queue behind each other and behind
        # the go-command fetches. Their own pool, with one pooled connection per thread.
        self.concurrency = s3cfg.max_concurrency
        self.pool = ThreadPoolExecutor(max_workers=self.concurrency,
                                       thread_name_prefix="gomirror-s3")
        if client is None:
            kw = {
                "region_name": s3cfg.region,
                "config": BotoConfig(
                    s3={"addressing_style": "path" if s3cfg.force_path_style else "auto"},
                    retries={"max_attempts": 3, "mode": "standard"},
                    max_pool_connections=self.concurrency,
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
        from botocore.exceptions import BotoCoreError, ClientError

        self.ClientError = ClientError
        self.BotoCoreError = BotoCoreError

    async def _call(self, fn, /, *args, **kwargs):
        """fn(*args, **kwargs) on the store's own thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(fn, *args, **kwargs))

    def _k(self, key: str) -> str:
        return self.prefix + key

    @contextlib.contextmanager
    def _mapped(self, key: str):
        """S3 failures as StoreErrors (the message names no endpoint or credential)."""
        try:
            yield
        except self.ClientError as e:
            code = self._code(e)
            if code == "KeyTooLongError":
                raise StoreError(404, f"not found: {key[:300]}: cannot exist here "
                                      "(key too long for S3)") from None
            raise StoreError(503, f"store unavailable: S3 answered {code or 'an error'}") from None
        except self.BotoCoreError as e:
            raise StoreError(503, f"store unavailable: {type(e).__name__}") from None

    def _missing(self, e) -> bool:
        code = e.response.get("Error", {}).get("Code", "")
        return code in ("404", "NoSuchKey", "NotFound")

    async def stat(self, key):
        with self._mapped(key):
            try:
                r = await self._call(self.s3.head_object, Bucket=self.bucket,
                                            Key=self._k(key))
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

        with self._mapped(key):
            return await self._call(get)

    async def stream(self, key, chunk=1 << 20):
        def open_body():
            return self.s3.get_object(Bucket=self.bucket, Key=self._k(key))["Body"]

        with self._mapped(key):
            body = await self._call(open_body)
        try:
            while True:
                data = await self._call(body.read, chunk)
                if not data:
                    break
                yield data
        finally:
            body.close()

    async def write(self, key, data):
        with self._mapped(key):
            await self._call(
                self.s3.put_object, Bucket=self.bucket, Key=self._k(key), Body=data
            )

    async def delete(self, key):
        with self._mapped(key):
            await self._call(
                self.s3.delete_object, Bucket=self.bucket, Key=self._k(key)
            )

    def _install_version_file(self, em: str, ev: str, ext: str, src: str) -> None:
        """One file of a version into place (the step crash tests interrupt)."""
        with open(src, "rb") as f:
            self.s3.upload_fileobj(f, self.bucket, self._k(version_key(em, ev, ext)))

    def _put_version_sync(self, em, ev, files):
        for ext in FILES:
            self._install_version_file(em, ev, ext, files[ext])
        self._rewrite_list_sync(em)

    def _rewrite_list_sync(self, em: str) -> None:
        """The module's `list` object from a listing of the bucket, never losing a version
        another node installed meanwhile: the object's ETag is read before the listing
        and the PUT is conditional on it, so a writer whose listing is older than the
        object it would replace is refused (412) and lists again. (Replicas and file://
        readers take `list` as the version list; the node itself lists the bucket.)"""
        key = self._k(f"{em}/@v/list")
        for _ in range(LIST_REWRITE_ATTEMPTS):
            try:
                cond = {"IfMatch": self.s3.head_object(Bucket=self.bucket, Key=key)["ETag"]}
            except self.ClientError as e:
                if not self._missing(e):
                    raise
                cond = {"IfNoneMatch": "*"}
            body = list_body(self._stored_versions_sync(em))
            try:
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, **cond)
                return
            except self.ClientError as e:
                if self._code(e) not in _PRECONDITION:
                    raise
        raise StoreError(503, f"store busy: {em}/@v/list changed under {LIST_REWRITE_ATTEMPTS}"
                              " rewrites in a row")

    async def put_version(self, em, ev, files):
        with self._mapped(version_key(em, ev, "zip")):
            await self._call(self._put_version_sync, em, ev, files)

    async def stored_versions(self, em):
        # On the store's own pool, and a failing S3 is a 503 like every other call.
        with self._mapped(f"{em}/@v/"):
            return await self._call(self._stored_versions_sync, em)

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
        with self._mapped("catalog"):
            return await self._call(self._catalog_sync, after, limit)

    async def check_writable(self):
        key = f".locks/probe-{uuid.uuid4().hex}"
        await self.write(key, b"probe")
        await self._call(self.s3.delete_object, Bucket=self.bucket, Key=self._k(key))

    def _lock_key(self, em: str, ev: str) -> str:
        return self._k(".locks/v-" + hashlib.sha256(f"{em}@{ev}".encode()).hexdigest())

    def _code(self, e) -> str:
        return e.response.get("Error", {}).get("Code", "")

    def _try_lock(self, key: str, ttl: int, token: str) -> str | None:
        """The ETag of our lock object if we now hold the lock, else None. `token` is unique
        to one acquisition (all its attempts): a lock object carrying it is ours."""
        body = json.dumps({"owner": f"{os.uname().nodename}:{os.getpid()}", "token": token,
                           "expires": time.time() + ttl}).encode()
        try:
            return self.s3.put_object(Bucket=self.bucket, Key=key, Body=body,
                                      IfNoneMatch="*")["ETag"]
        except self.ClientError as e:
            if self._code(e) not in _PRECONDITION:
                raise
        # Held: by us if a PUT of ours succeeded but its answer was lost (botocore's retry
        # of it, or our next attempt, then fails the condition on our own object); else
        # take it over if its holder's lease expired (a killed node).
        try:
            cur = self.s3.get_object(Bucket=self.bucket, Key=key)
            held = json.loads(cur["Body"].read())
            if held.get("token") == token:
                return cur["ETag"]
            expires = float(held.get("expires", 0))
        except self.ClientError as e:
            if self._missing(e):
                return None  # released meanwhile: the next attempt creates it
            raise
        except (ValueError, AttributeError, TypeError):
            expires = 0.0  # unreadable lock body: treat as a dead holder's
        if expires >= time.time():
            return None
        try:
            return self.s3.put_object(Bucket=self.bucket, Key=key, Body=body,
                                      IfMatch=cur["ETag"])["ETag"]
        except self.ClientError as e:
            if self._code(e) in _PRECONDITION or self._missing(e):
                return None  # another waiter took it over first
            raise

    @contextlib.asynccontextmanager
    async def lock(self, em, ev, ttl):
        key = self._lock_key(em, ev)
        deadline = time.monotonic() + ttl + 5
        token = uuid.uuid4().hex
        while (etag := await self._call(self._try_lock, key, ttl, token)) is None:
            if time.monotonic() > deadline:
                raise LockBusyError(f"{em}@{ev}")
            await asyncio.sleep(0.2)
        try:
            yield
        finally:
            with contextlib.suppress(self.ClientError):
                await self._call(self.s3.delete_object, Bucket=self.bucket, Key=key,
                                        IfMatch=etag)
