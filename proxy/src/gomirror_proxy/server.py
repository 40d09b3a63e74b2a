"""The aiohttp server: GOPROXY protocol, checksum-DB proxy, operations endpoints."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import logging
import os
import re
import signal
import ssl
import time
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from . import __version__, modpath
from .config import Config, match_glob
from .fetcher import FetchError, GoRunner
from .metrics import Metrics
from .storage import LockBusyError, Store, version_key

log = logging.getLogger("gomirror_proxy")
access_log = logging.getLogger("gomirror_proxy.access")
lifecycle = logging.getLogger("gomirror_proxy.lifecycle")  # always at INFO

CC_IMMUTABLE = "public, max-age=31536000, immutable"
CC_ERROR = "public, max-age=10"
CC_NOSTORE = "no-store"
CONTENT_TYPES = {
    "info": "application/json",
    "mod": "text/plain; charset=utf-8",
    "zip": "application/zip",
}
TILE_RE = re.compile(
    r"^tile/[0-9]{1,2}/(?:[0-9]{1,3}|data)/(?:x[0-9]{3}/)*[0-9]{3}(?:\.p/[0-9]{1,3})?$"
)
SUMDB_LATEST_TTL = 5.0
SMALL_FILE = 64 << 10
SUMDB_LOOKUP_TTL = 300.0


class HTTPError(Exception):
    def __init__(self, status: int, msg: str, cc: str | None = None):
        super().__init__(msg)
        self.status, self.msg = status, msg
        self.cc = cc or (CC_ERROR if status < 500 else CC_NOSTORE)


@dataclass
class ListEntry:
    expires: float
    versions: list[str] | None
    latest: dict | None
    error: FetchError | None


class Node:
    def __init__(self, cfg: Config, store: Store):
        self.cfg = cfg
        self.store = store
        self.metrics = Metrics()
        self.runner = GoRunner(cfg, self.metrics)
        self.inflight: dict[tuple[str, str], asyncio.Future] = {}
        self.list_cache: dict[str, ListEntry] = {}
        self.list_inflight: dict[str, asyncio.Future] = {}
        self.sumdb_mem: dict[str, tuple[float, bytes]] = {}
        self.sumdb_down_until: dict[str, float] = {}
        self.bg: set[asyncio.Task] = set()
        self.proto_sem = asyncio.Semaphore(cfg.protocol_workers)
        self.http: aiohttp.ClientSession | None = None
        self.shutting_down = False
        self._ready_cache: tuple[float, bool, dict] | None = None

    # --- lifecycle ----------------------------------------------------------------
    async def startup(self, _app=None):
        # A replica of the store is then usable with GOPROXY=file:// and the default GOSUMDB.
        for name in self.cfg.sumdbs:
            key = f"sumdb/{name}/supported"
            with contextlib.suppress(Exception):
                if await self.store.stat(key) is None:
                    await self.store.write(key, b"")
        # Bodies are stored and served byte for byte, so ask upstreams (an edge of the core
        # region gzips text) for them uncompressed instead of aiohttp's default gzip/deflate.
        self.http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=min(self.cfg.timeout, 60), connect=10),
            auto_decompress=False,
            headers={"Accept-Encoding": "identity"},
        )

    async def cleanup(self, _app=None):
        for t in list(self.bg):
            t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self.bg, return_exceptions=True)
        if self.http:
            await self.http.close()
        await asyncio.to_thread(self.runner.close)

    # --- policy -------------------------------------------------------------------
    def download_rule(self, module: str) -> tuple[str, str]:
        mode, url = self.cfg.download_mode, self.cfg.download_url
        for r in self.cfg.download_rules:
            if match_glob([r.pattern], module):
                mode, url = r.mode, r.download_url
                break
        if mode in ("redirect", "async_redirect") and self.runner.is_private(module):
            # never hand a private module path to a (public) redirect target
            mode = "sync" if mode == "redirect" else "async"
        return mode, url

    def excluded(self, module: str) -> bool:
        return match_glob(self.cfg.exclude_patterns, module)

    # --- fetch (single flight) ------------------------------------------------------
    @staticmethod
    async def single_flight(table: dict, key, start):
        """Run start() once for every concurrent caller with this key in table, and give
        each its result (shielded, so one caller going away does not cancel the others')."""
        fut = table.get(key)
        if fut is None:
            fut = asyncio.ensure_future(start())
            table[key] = fut
            fut.add_done_callback(lambda _f: table.pop(key, None))
        return await asyncio.shield(fut)

    async def ensure_version(self, module: str, em: str, version: str, ev: str) -> None:
        await self.single_flight(
            self.inflight, (em, ev), lambda: self._fetch(module, em, version, ev)
        )

    async def _fetch(self, module, em, version, ev):
        try:
            async with self.store.lock(em, ev, self.cfg.lock_ttl):
                if await self.store.has_version(em, ev):
                    self.metrics.fetches.inc("peer")  # another process/node stored it
                    return
                async with self.runner.tempdir() as tmp:
                    info = await self.runner.download(module, version, tmp)
                    await self.store.put_version(
                        em, ev, {"info": info["Info"], "mod": info["GoMod"], "zip": info["Zip"]}
                    )
        except FetchError as e:
            self.metrics.fetches.inc("error")
            log.warning(json.dumps({"msg": "fetch failed", "module": module, "version": version,
                                    "status": e.status, "error": str(e)[:500]}))
            raise
        except LockBusyError:
            self.metrics.fetches.inc("error")
            raise FetchError(504, "another fetch of this version is still running") from None
        self.metrics.fetches.inc("ok")
        self.list_cache.pop(em, None)
        log.info(json.dumps({"msg": "fetched", "module": module, "version": version}))

    async def ensure_mod(self, module, em, version, ev) -> None:
        """A go.mod alone (the module graph needs only that): fetched from the proxies of
        the GOPROXY chain over HTTP; if none has it and the chain ends in direct, the
        whole version is fetched with the go command."""
        await self.single_flight(
            self.inflight, (em, ev + ".mod"), lambda: self._fetch_mod(module, em, version, ev)
        )

    async def _fetch_mod(self, module, em, version, ev):
        body, direct = await self.upstream_get(f"{em}/@v/{ev}.mod", limit=16 << 20)
        if body is None:
            if direct:
                return await self.ensure_version(module, em, version, ev)
            self.metrics.fetches.inc("error")
            raise FetchError(404, f"{module}@{version}: go.mod not found upstream")
        self.metrics.fetches.inc("ok_mod")
        await self.store.write(version_key(em, ev, "mod"), body)

    async def upstream_get(self, rel: str, limit: int) -> tuple[bytes | None, bool]:
        """GET rel from the GOPROXY chain (',' falls through on 404/410, '|' on any
        error). Returns (body or None, whether the chain continues with direct)."""
        chain = re.split(r"([,|])", self.cfg.goproxy)
        last_err: str | None = None
        i = 0
        while i < len(chain):
            item = chain[i].strip()
            sep = chain[i + 1] if i + 1 < len(chain) else ","
            i += 2
            if item == "off":
                return None, False
            if item == "direct":
                return None, True
            if item.startswith("file://"):
                path = item[len("file://"):].rstrip("/") + "/" + rel
                try:
                    return (await asyncio.to_thread(_read_file, path, limit)), False
                except OSError:
                    continue
            url = item.rstrip("/") + "/" + rel
            t0 = time.monotonic()
            try:
                async with self.http.get(url) as r:
                    if r.status == 200:
                        # StreamReader.read(n) returns what has arrived so far, not n
                        # bytes: read to the end, bounded, or a body split across TCP
                        # segments is stored cut short (and fails go.sum verification).
                        chunks, size = [], 0
                        async for chunk in r.content.iter_chunked(1 << 16):
                            size += len(chunk)
                            if size > limit:
                                raise FetchError(502, f"{url}: response too large")
                            chunks.append(chunk)
                        body = b"".join(chunks)
                        if r.content_length is not None and len(body) != r.content_length:
                            raise FetchError(502, f"{url}: response cut short")
                        self.metrics.fetch_seconds.observe(time.monotonic() - t0)
                        return body, False
                    last_err = f"{url}: {r.status}"
                    if r.status in (404, 410) or sep == "|":
                        continue
                    raise FetchError(502, f"upstream {last_err}")
            except (aiohttp.ClientError, TimeoutError) as e:
                last_err = f"{url}: {type(e).__name__}"
                if sep == "|":
                    continue
                raise FetchError(502, f"upstream unreachable: {last_err}") from None
        return None, False

    def fetch_background(self, module, em, version, ev) -> None:
        async def run():
            with contextlib.suppress(FetchError, asyncio.CancelledError):
                await self.ensure_version(module, em, version, ev)

        t = asyncio.ensure_future(run())
        self.bg.add(t)
        t.add_done_callback(self.bg.discard)

    # --- upstream list / latest ----------------------------------------------------
    async def upstream_list(self, module: str, em: str) -> ListEntry:
        now = time.monotonic()
        e = self.list_cache.get(em)
        if e and e.expires > now:
            return e
        return await self.single_flight(
            self.list_inflight, em, lambda: self._upstream_list(module, em)
        )

    async def _upstream_list(self, module, em) -> ListEntry:
        try:
            versions, latest = await self.runner.list_versions(module)
            e = ListEntry(time.monotonic() + self.cfg.list_cache_seconds, versions, latest, None)
        except FetchError as err:
            e = ListEntry(time.monotonic() + min(self.cfg.list_cache_seconds, 5), None, None, err)
        self.list_cache[em] = e
        if len(self.list_cache) > 10000:
            self.list_cache.clear()
        return e

    async def resolve_list(self, module: str, em: str) -> tuple[list[str], dict | None]:
        """(versions, latest-info) by NetworkMode; raises HTTPError."""
        mode, _ = self.download_rule(module)
        stored = list(await self.store.stored_versions(em))
        use_upstream = self.cfg.network_mode != "offline" and mode != "none"
        if use_upstream:
            async with self.proto_sem:
                e = await self.upstream_list(module, em)
            if e.error is None:
                merged = set(e.versions or []) | {v for v in stored if not modpath.is_pseudo(v)}
                return sorted(merged, key=modpath.semver_key), e.latest
            if self.cfg.network_mode == "strict" and not (e.error.status == 404 and stored):
                raise HTTPError(e.error.status, f"upstream: {e.error}")
        if not stored:
            raise HTTPError(404, f"not found: {module}: no stored versions")
        rel = [v for v in stored if not modpath.is_pseudo(v)]
        return sorted(rel, key=modpath.semver_key), None

    # --- HTTP -----------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise HTTPError(405, "method not allowed")
        try:
            path = modpath.decode_request_path(request.raw_path)
        except modpath.InvalidPathError as e:
            request["endpoint"] = "invalid"
            raise HTTPError(400, f"bad request: {e}") from None
        if path in ("/healthz", "/readyz", "/version", "/metrics", "/catalog"):
            request["endpoint"] = path[1:]
            return await getattr(self, "h_" + path[1:])(request)
        if path.startswith("/sumdb/"):
            request["endpoint"] = "sumdb"
            return await self.h_sumdb(request, path[len("/sumdb/") :])
        return await self.h_module(request, path)

    async def h_module(self, request, path: str):
        p = path[1:]
        if p.endswith("/@latest"):
            request["endpoint"] = "latest"
            em, rest = p[: -len("/@latest")], "@latest"
        elif "/@v/" in p:
            em, _, rest = p.partition("/@v/")
        else:
            request["endpoint"] = "other"
            raise HTTPError(404, "not found")
        try:
            module = modpath.unescape_path(em)
        except modpath.InvalidPathError as e:
            request.setdefault("endpoint", "invalid")
            raise HTTPError(400, f"bad request: invalid module path: {e}") from None
        if rest == "@latest":
            return await self.h_latest(request, module, em)
        if rest == "list":
            request["endpoint"] = "list"
            return await self.h_list(request, module, em)
        if "/" in rest:
            request["endpoint"] = "invalid"
            raise HTTPError(400, "bad request: extra path elements after @v/")
        ev, dot, ext = rest.rpartition(".")
        if not dot or ext not in CONTENT_TYPES:
            request["endpoint"] = "other"
            raise HTTPError(404, "not found")
        request["endpoint"] = ext
        try:
            version = modpath.unescape_version(ev)
        except (modpath.InvalidVersionError, modpath.InvalidPathError) as e:
            raise HTTPError(400, f"bad request: {e}") from None
        try:
            modpath.check_version(module, version)
        except modpath.InvalidVersionError as e:
            raise HTTPError(404, f"not found: {module}@{version}: {e}") from None
        if self.excluded(module):
            raise HTTPError(403, f"forbidden: {module} is excluded by this mirror")
        key = version_key(em, ev, ext)
        if ext == "mod":
            present = await self.store.stat(key) is not None
        else:
            present = await self.store.has_version(em, ev)
        if present:
            self.metrics.store.inc("hit")
            return await self.serve_file(request, key, ext)
        self.metrics.store.inc("miss")
        mode, url = self.download_rule(module)
        if self.cfg.network_mode == "offline" or mode == "none":
            raise HTTPError(404, f"not found: {module}@{version} is not stored")
        if mode in ("redirect", "async_redirect"):
            if mode == "async_redirect":
                self.fetch_background(module, em, version, ev)
            raise web.HTTPFound(
                f"{url}/{em}/@v/{ev}.{ext}", headers={"Cache-Control": "public, max-age=60"}
            )
        if mode == "async":
            self.fetch_background(module, em, version, ev)
            raise HTTPError(404, f"not found: {module}@{version}: fetch started, retry later",
                            cc=CC_NOSTORE)
        try:
            async with self.proto_sem:  # ProtocolWorkers: requests waiting on upstream work
                if ext == "mod" and not self.runner.is_private(module):
                    await self.ensure_mod(module, em, version, ev)
                else:
                    await self.ensure_version(module, em, version, ev)
        except FetchError as e:
            raise HTTPError(e.status, f"not found: {e}" if e.status == 404 else str(e)) from None
        return await self.serve_file(request, key, ext)

    async def serve_file(self, request, key: str, ext: str):
        headers = {"Cache-Control": CC_IMMUTABLE, "Content-Type": CONTENT_TYPES[ext]}
        local = self.store.local_path(key)
        if local is not None:
            try:
                size = os.stat(local).st_size
            except OSError:
                raise HTTPError(404, "not found") from None
            request["bytes"] = size
            if size <= SMALL_FILE and ext != "zip":
                # .info/.mod are tiny and page-cached: one read beats FileResponse's
                # executor round trips; zips go out with sendfile.
                with open(local, "rb") as f:  # noqa: ASYNC230
                    body = f.read()
                return web.Response(body=body, headers=headers)
            return web.FileResponse(local, headers=headers)
        size = await self.store.stat(key)
        request["bytes"] = size
        if size is None:
            raise HTTPError(404, "not found")
        resp = web.StreamResponse(headers=headers)
        resp.content_length = size
        await resp.prepare(request)
        if request.method != "HEAD":
            async for chunk in self.store.stream(key):
                await resp.write(chunk)
        await resp.write_eof()
        return resp

    async def h_list(self, request, module, em):
        if self.excluded(module):
            raise HTTPError(403, f"forbidden: {module} is excluded by this mirror")
        mode, url = self.download_rule(module)
        if (mode in ("redirect", "async_redirect") and self.cfg.network_mode != "offline"
                and not await self.store.stored_versions(em)):
                raise web.HTTPFound(f"{url}/{em}/@v/list",
                                    headers={"Cache-Control": "public, max-age=60"})
        try:
            versions, _ = await self.resolve_list(module, em)
        except HTTPError as e:
            if e.status == 404 and self.cfg.network_mode != "strict":
                versions = []
            else:
                raise
        return self.text("".join(v + "\n" for v in versions),
                         cc=f"public, max-age={self.cfg.list_cache_seconds}")

    async def h_latest(self, request, module, em):
        request["endpoint"] = "latest"
        if self.excluded(module):
            raise HTTPError(403, f"forbidden: {module} is excluded by this mirror")
        mode, url = self.download_rule(module)
        if (mode in ("redirect", "async_redirect") and self.cfg.network_mode != "offline"
                and not await self.store.stored_versions(em)):
                raise web.HTTPFound(f"{url}/{em}/@latest",
                                    headers={"Cache-Control": "public, max-age=60"})
        _, latest = await self.resolve_list(module, em)
        if latest is None:
            stored = sorted(await self.store.stored_versions(em), key=modpath.semver_key)
            rel = [v for v in stored if not modpath.is_pseudo(v)] or stored
            if not rel:
                raise HTTPError(404, f"not found: {module}: no versions")
            best = rel[-1]
            raw = await self.store.read(version_key(em, modpath.escape_version(best), "info"))
            try:
                info = json.loads(raw or b"{}")
                latest = {"Version": info["Version"]}
                if info.get("Time"):
                    latest["Time"] = info["Time"]
            except (ValueError, KeyError):
                latest = {"Version": best}
        return self.text(json.dumps(latest), ctype="application/json",
                         cc=f"public, max-age={self.cfg.list_cache_seconds}")

    # --- checksum database proxy -------------------------------------------------------
    async def h_sumdb(self, request, rest: str):
        name, _, sub = rest.partition("/")
        if name not in self.cfg.sumdbs:
            raise HTTPError(404, f"not found: checksum database {name!r} is not proxied here")
        if sub == "supported":
            return self.text("", cc="public, max-age=86400")
        if sub == "latest":
            body = await self.sumdb_fetch(name, sub, mem_ttl=SUMDB_LATEST_TTL, persist=True)
            return self.text(body, cc=f"public, max-age={int(SUMDB_LATEST_TTL)}")
        if sub.startswith("lookup/"):
            target = sub[len("lookup/") :]
            em, at, ev = target.rpartition("@")
            try:
                module = modpath.unescape_path(em)
                version = modpath.unescape_version(ev)
            except (modpath.InvalidPathError, modpath.InvalidVersionError) as e:
                raise HTTPError(400, f"bad request: {e}") from None
            if not at or not modpath.is_valid_semver(version):
                raise HTTPError(400, "bad request: invalid version")
            if match_glob(self.cfg.no_sum_patterns + self.cfg.private_patterns, module):
                raise HTTPError(403, f"forbidden: {module} matches NoSumPatterns/PrivatePatterns")
            body = await self.sumdb_fetch(name, sub, mem_ttl=SUMDB_LOOKUP_TTL, persist=True)
            return self.text(body, cc="public, max-age=3600")
        if TILE_RE.match(sub):
            body = await self.sumdb_tile(name, sub)
            return self.text(body, ctype="application/octet-stream", cc=CC_IMMUTABLE)
        raise HTTPError(404, "not found")

    async def _sumdb_upstream(self, name: str, sub: str) -> bytes:
        url = f"{self.cfg.sumdb_upstreams[name]}/{sub}"
        if self.cfg.network_mode == "offline":
            raise HTTPError(404, "not found: offline")
        if self.sumdb_down_until.get(name, 0) > time.monotonic():
            raise HTTPError(502, "checksum database upstream recently unreachable")
        try:
            async with self.http.get(url) as r:
                if r.status in (404, 410):
                    raise HTTPError(r.status, f"not found: {sub}")
                if r.status != 200:
                    raise HTTPError(502, f"checksum database upstream answered {r.status}")
                return await r.read()
        except (aiohttp.ClientError, TimeoutError) as e:
            # Don't make every client wait for a dead upstream: serve stored data for a while.
            self.sumdb_down_until[name] = time.monotonic() + 10
            raise HTTPError(502, f"checksum database upstream unreachable: {e}") from None

    async def sumdb_fetch(self, name, sub, mem_ttl: float, persist: bool) -> bytes:
        key = f"{name}/{sub}"
        now = time.monotonic()
        hit = self.sumdb_mem.get(key)
        if hit and hit[0] > now:
            self.metrics.sumdb.inc("memory")
            return hit[1]
        try:
            body = await self._sumdb_upstream(name, sub)
        except HTTPError as e:
            if e.status in (404, 410) and self.cfg.network_mode != "offline":
                raise
            stored = await self.store.read(f"sumdb/{key}") if persist else None
            if stored is None:
                raise
            self.metrics.sumdb.inc("stale")
            return stored
        self.metrics.sumdb.inc("upstream")
        self.sumdb_mem[key] = (now + mem_ttl, body)
        if len(self.sumdb_mem) > 20000:
            self.sumdb_mem.clear()
        if persist:
            with contextlib.suppress(Exception):
                await self.store.write(f"sumdb/{key}", body)
        return body

    async def sumdb_tile(self, name, sub) -> bytes:
        key = f"sumdb/{name}/{sub}"
        body = await self.store.read(key)
        if body is not None:
            self.metrics.sumdb.inc("store")
            return body
        body = await self._sumdb_upstream(name, sub)
        self.metrics.sumdb.inc("upstream")
        with contextlib.suppress(Exception):
            await self.store.write(key, body)
        return body

    # --- operations ----------------------------------------------------------------------
    def text(self, body, ctype="text/plain; charset=utf-8", cc=CC_NOSTORE, status=200):
        if isinstance(body, str):
            body = body.encode()
        return web.Response(body=body, status=status, headers={
            "Content-Type": ctype, "Cache-Control": cc})

    async def h_healthz(self, request):
        return self.text("ok\n")

    async def readiness(self) -> tuple[bool, dict]:
        now = time.monotonic()
        if self._ready_cache and self._ready_cache[0] > now:
            return self._ready_cache[1], self._ready_cache[2]
        checks: dict[str, str] = {}
        ok = True
        try:
            await self.store.check_writable()
            checks["store"] = "ok"
        except Exception as e:  # noqa: BLE001 - any failure means not ready
            ok, checks["store"] = False, f"not writable: {e}"
        ups = self.cfg.upstream_urls()
        if self.cfg.network_mode == "offline":
            checks["upstream"] = "offline mode"
        elif not ups:
            checks["upstream"] = "direct only"
        else:
            # Ready when some upstream of the chain answers: a regional node whose first
            # upstream (the core region) is down still fetches from the ones after it.
            failures = []
            for url in ups:
                try:
                    async with self.http.get(url + "/", timeout=aiohttp.ClientTimeout(total=5)):
                        checks["upstream"] = f"ok: {url}"
                        break
                except Exception as e:  # noqa: BLE001
                    failures.append(f"{url}: {type(e).__name__}")
            else:
                ok, checks["upstream"] = False, "unreachable: " + ", ".join(failures)
        if self.shutting_down:
            ok, checks["shutdown"] = False, "shutting down"
        self._ready_cache = (now + 2, ok, checks)
        return ok, checks

    async def h_readyz(self, request):
        ok, checks = await self.readiness()
        if self.shutting_down:
            ok, checks = False, {**checks, "shutdown": "shutting down"}
        return self.text(json.dumps({"ready": ok, "checks": checks}),
                         ctype="application/json", status=200 if ok else 503)

    async def h_version(self, request):
        return self.text(json.dumps({"name": "gomirror-proxy", "version": __version__,
                                     "storage": self.store.kind}), ctype="application/json")

    async def h_metrics(self, request):
        return self.text(self.metrics.render(), ctype="text/plain; version=0.0.4; charset=utf-8")

    async def h_catalog(self, request):
        q = request.query
        try:
            size = int(q.get("pagesize", "1000"))
        except ValueError:
            raise HTTPError(400, "bad request: pagesize must be an integer") from None
        if not 1 <= size <= 1000:
            raise HTTPError(400, "bad request: pagesize must be 1..1000")
        token = q.get("token", "")
        if len(token) > 1000:
            raise HTTPError(400, "bad request: token too long")
        items = await self.store.catalog(token, size)
        mods = []
        for em, ev in items:
            try:
                mods.append({"module": modpath.unescape_path(em),
                             "version": modpath.unescape_version(ev)})
            except (modpath.InvalidPathError, modpath.InvalidVersionError):
                continue
        res: dict = {"modules": mods}
        if len(items) == size:
            res["next"] = f"{items[-1][0]}@{items[-1][1]}"
        return self.text(json.dumps(res), ctype="application/json")


def _read_file(path: str, limit: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(limit)


def _endpoint_label(request) -> str:
    return request.get("endpoint", "other")


def make_app(node: Node) -> web.Application:
    cfg = node.cfg

    @web.middleware
    async def mw(request: web.Request, handler):
        t0 = time.monotonic()
        status, nbytes = 500, 0
        try:
            if (cfg.basic_auth_user and request.path not in ("/healthz", "/readyz")
                    and not _auth_ok(request.headers.get("Authorization", ""), cfg)):
                raise HTTPError(401, "unauthorized")
            resp = await handler(request)
            status = resp.status
        except HTTPError as e:
            resp = web.Response(status=e.status, text=e.msg + "\n",
                                headers={"Cache-Control": e.cc})
            if e.status == 401:
                resp.headers["WWW-Authenticate"] = 'Basic realm="gomirror"'
            status = e.status
        except web.HTTPException as e:
            status = e.status
            raise
        except asyncio.CancelledError:
            status = 499
            raise
        except Exception:
            log.exception("internal error")
            resp = web.Response(status=500, text="internal error\n",
                                headers={"Cache-Control": CC_NOSTORE})
            status = 500
        finally:
            ep = _endpoint_label(request)
            node.metrics.requests.inc(ep, str(status))
            if status in (200, 206) and request.method == "GET":
                nbytes = request.get("bytes")
                if nbytes is None:
                    try:
                        nbytes = resp.content_length or 0  # type: ignore[possibly-undefined]
                    except Exception:  # noqa: BLE001
                        nbytes = 0
                node.metrics.bytes.inc(ep, amount=nbytes)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(json.dumps({
                    "ts": round(time.time(), 3), "remote": request.remote,
                    "method": request.method, "path": request.raw_path[:1024],
                    "status": status, "bytes": nbytes, "endpoint": ep,
                    "ms": round((time.monotonic() - t0) * 1000, 2),
                }))
        return resp

    app = web.Application(middlewares=[mw], client_max_size=1024)
    app.router.add_route("*", "/{tail:.*}", node.handle)
    app.on_startup.append(node.startup)
    app.on_cleanup.append(node.cleanup)
    return app


def _auth_ok(header: str, cfg: Config) -> bool:
    if not header.startswith("Basic "):
        return False
    try:
        user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return hmac.compare_digest(user.encode(), cfg.basic_auth_user.encode()) & hmac.compare_digest(
        pw.encode(), cfg.basic_auth_pass.encode())


async def serve(cfg: Config, store: Store) -> None:
    node = Node(cfg, store)
    if hasattr(store, "cleanup_tmp"):
        store.cleanup_tmp(older_than=0)
    app = make_app(node)
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           shutdown_timeout=float(cfg.shutdown_timeout))
    await runner.setup()
    sslctx = None
    if cfg.tls_cert_file:
        sslctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        sslctx.load_cert_chain(cfg.tls_cert_file, cfg.tls_key_file)
    site = web.TCPSite(runner, cfg.host or None, cfg.port, ssl_context=sslctx,
                       backlog=1024, reuse_address=True)
    await site.start()
    addrs = [s.getsockname() for s in site._server.sockets]
    lifecycle.info(json.dumps({"msg": "listening", "addresses": [list(a[:2]) for a in addrs],
                         "port": addrs[0][1], "tls": bool(sslctx), "storage": store.kind,
                         "version": __version__}))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    node.shutting_down = True
    lifecycle.info(json.dumps({"msg": "shutting down", "grace_seconds": cfg.shutdown_timeout}))
    await runner.cleanup()
    lifecycle.info(json.dumps({"msg": "stopped"}))
