"""Orchestration: what the node does on a miss. Policy (DownloadRules, ExcludePatterns,
NetworkMode), single flight per version, the ProtocolWorkers bound, background fetches,
the whole-version path (HTTP and in-process verification, else the go command),
upstream lists and queries, the not-found memory. HTTP lives in handler.py, fetching in
fetch/, storage in storage.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time

from . import modpath
from .config import Config, match_glob
from .errors import HTTPError
from .fetch import Fetcher, FetchError, InfoMismatchError
from .metrics import Metrics
from .storage import LockBusyError, Store, version_key
from .sumdbproxy import SumDBProxy
from .ttlcache import TTLCache
from .verify import ZipCheckError, inspect_zip

log = logging.getLogger("gomirror_proxy")

LIST_MEMORY = 10000  # upstream lists / query answers held in memory
# The go command's bound on a module's uncompressed contents (x/mod/zip MaxZipFile);
# MaxZipSize bounds the zip file itself, while it streams.
ZIP_CONTENTS_LIMIT = 500 << 20


class Node:
    def __init__(self, cfg: Config, store: Store):
        self.cfg = cfg
        self.store = store
        self.metrics = Metrics()
        store.bind_metrics(self.metrics)
        self.fetcher = Fetcher(cfg, self.metrics)
        self.sumdb = SumDBProxy(cfg, store, self.metrics)
        self.inflight: dict[tuple[str, str], asyncio.Future] = {}
        # (em, ev) -> the upstream's checked .info while its whole version is fetched:
        # what a cold .info request is answered with before the zip is verified.
        self.early_info: dict[tuple[str, str], asyncio.Future] = {}
        self.answers = TTLCache(LIST_MEMORY)  # upstream lists, @latest, query answers
        self.not_found = TTLCache(cfg.not_found_cache_entries)
        self.proto_sem = asyncio.Semaphore(cfg.protocol_workers)
        self.bg: set[asyncio.Task] = set()
        self.shutting_down = False

    # --- lifecycle ----------------------------------------------------------------
    async def startup(self, _app=None):
        # A replica of the store is then usable with GOPROXY=file:// and the default GOSUMDB.
        for name in self.cfg.sumdbs:
            key = f"sumdb/{name}/supported"
            with contextlib.suppress(Exception):
                if await self.store.stat(key) is None:
                    await self.store.write(key, b"")
        await self.fetcher.start()
        await self.sumdb.start(self.fetcher.http.session)

    async def cleanup(self, _app=None):
        for t in list(self.bg):
            t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self.bg, return_exceptions=True)
        await self.fetcher.close()

    # --- policy -------------------------------------------------------------------
    def download_rule(self, module: str) -> tuple[str, str]:
        mode, url = self.cfg.download_mode, self.cfg.download_url
        for r in self.cfg.download_rules:
            if match_glob([r.pattern], module):
                mode, url = r.mode, r.download_url
                break
        if mode in ("redirect", "async_redirect") and self.fetcher.is_private(module):
            # never hand a private module path to a (public) redirect target
            mode = "sync" if mode == "redirect" else "async"
        return mode, url

    def excluded(self, module: str) -> bool:
        return match_glob(self.cfg.exclude_patterns, module)

    def no_sum(self, module: str) -> bool:
        return match_glob(self.cfg.no_sum_patterns + self.cfg.private_patterns, module)

    def uses_upstream(self, module: str) -> bool:
        return self.cfg.network_mode != "offline" and self.download_rule(module)[0] != "none"

    # --- single flight ---------------------------------------------------------------
    async def single_flight(self, key, start):
        """Run start() once for every concurrent caller with this key, holding one
        ProtocolWorkers slot for the work (not one per waiter), and give each caller its
        result (shielded: a caller going away cancels nobody else's) or a 504 after
        Timeout."""
        fut = self.inflight.get(key)
        if fut is None:
            async def run():
                async with self.proto_sem:
                    return await start()

            fut = asyncio.ensure_future(run())
            self.inflight[key] = fut
            fut.add_done_callback(lambda _f: self.inflight.pop(key, None))
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.cfg.timeout + 30)
        except TimeoutError:
            raise FetchError(504, "the fetch is still running; retry later") from None

    def _remembered(self, key):
        err = self.not_found.get(key)
        if err is not None:
            self.metrics.not_found_hits.inc()
            raise FetchError(*err)

    def _remember(self, key, e: FetchError) -> None:
        if e.status in (404, 410):
            self.not_found.put(key, (e.status, str(e)), self.cfg.not_found_cache_seconds)

    # --- versions -----------------------------------------------------------------------
    async def ensure_version(self, module: str, em: str, version: str, ev: str) -> None:
        self._remembered((em, ev))
        await self.single_flight((em, ev), lambda: self._fetch(module, em, version, ev))

    async def early_version_info(self, module: str, em: str, version: str,
                                 ev: str) -> bytes | None:
        """A cold .info: the upstream's .info as soon as it is fetched and names this
        version, while the rest of the version is fetched and verified (the go command
        asks for every .info of its build list before the first zip, so waiting for each
        whole version here would serialise them all). None when the whole version is
        stored first (serve it from the store); FetchError when the fetch fails first.
        Nothing is stored early: the version enters the store whole and verified."""
        key = (em, ev)
        self._remembered(key)
        early = self.early_info.get(key)
        if early is None:
            early = self.early_info[key] = asyncio.get_running_loop().create_future()
        flight = asyncio.ensure_future(
            self.single_flight(key, lambda: self._fetch(module, em, version, ev)))
        try:
            await asyncio.wait({flight, early}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not flight.done():
                flight.cancel()  # only this wait: single_flight shields the fetch itself
        if flight.done() and not flight.cancelled():
            if self.early_info.get(key) is early and not early.done():
                del self.early_info[key]  # made after the flight had cleaned up
            flight.result()  # raises the fetch's error
            return None
        return early.result()

    async def _fetch(self, module, em, version, ev):
        try:
            return await self._fetch_whole(module, em, version, ev)
        finally:
            self.early_info.pop((em, ev), None)

    async def _fetch_whole(self, module, em, version, ev):
        try:
            async with self.store.lock(em, ev, self.cfg.lock_ttl):
                if await self.store.has_version(em, ev):
                    self.metrics.fetches.inc("peer")  # another process/node stored it
                    return
                async with self.fetcher.tempdir() as tmp:
                    files = None
                    if self.fetches_over_http(module):
                        files = await self._fetch_http(module, em, version, ev, tmp)
                    if files is None:
                        info = await self.fetcher.version(module, version, tmp)
                        files = {"info": info["Info"], "mod": info["GoMod"], "zip": info["Zip"]}
                    await self.store.put_version(em, ev, files)
        except FetchError as e:
            self.metrics.fetches.inc("error")
            self._remember((em, ev), e)
            log.warning(json.dumps({"msg": "fetch failed", "module": module, "version": version,
                                    "status": e.status, "error": str(e)[:500]}))
            raise
        except LockBusyError:
            self.metrics.fetches.inc("error")
            raise FetchError(504, "another fetch of this version is still running") from None
        self.metrics.fetches.inc("ok")
        self.answers.pop(("list", em))
        log.info(json.dumps({"msg": "fetched", "module": module, "version": version}))

    def fetches_over_http(self, module: str) -> bool:
        """Whether a whole version of module is tried over HTTP first: UpstreamFetcher =
        "http", not private (credentials live with the go command), and verifiable in
        process (NoSumPatterns, or a verifier key for the first SumDB)."""
        return (self.cfg.upstream_fetcher == "http" and not self.fetcher.is_private(module)
                and (self.no_sum(module) or self.sumdb.can_verify()))

    async def _fetch_http(self, module, em, version, ev, tmp) -> dict | None:
        """The version's files over HTTP into tmp, verified: {"info", "mod", "zip"} paths,
        or None when only `direct` can have them (then the go command fetches). Nothing
        refused gets past this: .info names the version, the zip obeys the go command's
        rules and holds the .mod as its go.mod, and both h1 hashes are the checksum
        database's (skipped for NoSumPatterns/PrivatePatterns only)."""
        what = f"{module}@{version}"
        t0 = time.monotonic()
        try:
            info = await self.fetcher.version_info(module, em, version, ev)
        except InfoMismatchError as e:
            raise self._refused(module, version, "info", str(e)) from None
        if info is None:
            return None
        early = self.early_info.get((em, ev))
        if early is not None and not early.done():
            early.set_result(info)
        zip_path = os.path.join(tmp, "zip")
        stored_mod = await self.store.read(version_key(em, ev, "mod"))

        async def mod():  # a stored .mod was verified when it was stored
            return stored_mod if stored_mod is not None else \
                await self.fetcher.gomod(module, em, ev)

        async def want():
            return None if self.no_sum(module) else \
                await self.sumdb.lookup_hashes(module, version)

        try:
            body, have_zip, hashes = await _all(
                mod(), self.fetcher.zip_file(module, em, ev, zip_path), want())
            if body is None or not have_zip:
                return None
            try:  # one read of the zip: the go command's rules and its h1 hash
                facts = await asyncio.to_thread(inspect_zip, zip_path, module, version,
                                                max_size=ZIP_CONTENTS_LIMIT, gomod=body)
            except ZipCheckError as e:
                raise self._refused(module, version, "zip_check",
                                    f"{what}: invalid module zip: {e}") from None
            if not self.no_sum(module):
                if hashes is None:  # the verifier went away: never store unverified data
                    return None
                await self.sumdb.check_hashes(module, version, hashes, mod=body,
                                              zip_hash=facts.h1)
        except HTTPError as e:  # from the checksum database: counted and logged there
            raise FetchError(e.status, e.msg) from None
        files = {"info": os.path.join(tmp, "info"), "mod": os.path.join(tmp, "mod"),
                 "zip": zip_path}
        await asyncio.to_thread(_write_files, {files["info"]: info, files["mod"]: body})
        self.metrics.fetch_seconds.observe(time.monotonic() - t0)
        return files

    def _refused(self, module: str, version: str, kind: str, msg: str) -> FetchError:
        self.metrics.verification_failures.inc(kind)
        log.warning(json.dumps({"msg": "verification failed", "module": module,
                                "version": version, "kind": kind, "error": msg[:500]}))
        return FetchError(502, msg)

    async def ensure_mod(self, module, em, version, ev) -> None:
        """A go.mod alone (the module graph needs only that): over HTTP, verified against
        the checksum database before it is stored (NoSumPatterns are exempt); for private
        modules, chains that reach direct, and when the node cannot verify in process,
        what the go command fetched and verified."""
        self._remembered((em, ev + ".mod"))
        await self.single_flight((em, ev + ".mod"),
                                 lambda: self._fetch_mod(module, em, version, ev))

    async def _fetch_mod(self, module, em, version, ev):
        try:
            body = await self.fetcher.gomod(module, em, ev)  # None: private or only direct
            if (body is not None and not self.no_sum(module)
                    and not await self.sumdb.verify_mod(module, version, body)):
                body = None
            if body is None:
                body = await self.fetcher.gomod_from_go(module, version)
        except FetchError as e:
            self.metrics.fetches.inc("error")
            self._remember((em, ev + ".mod"), e)
            raise
        self.metrics.fetches.inc("ok_mod")
        await self.store.write(version_key(em, ev, "mod"), body)

    def fetch_background(self, module, em, version, ev) -> None:
        # Bounded: past this many pending fetches a miss just answers "retry later".
        if len(self.bg) >= self.cfg.go_get_workers * 64:
            return

        async def run():
            with contextlib.suppress(FetchError, asyncio.CancelledError):
                await self.ensure_version(module, em, version, ev)

        t = asyncio.ensure_future(run())
        self.bg.add(t)
        t.add_done_callback(self.bg.discard)

    # --- lists, @latest, queries ------------------------------------------------------------
    async def _upstream(self, key, start):
        """An upstream answer that changes over time: memory for ListCacheSeconds, not-found
        memory, single flight."""
        hit = self.answers.get(key)
        if hit is not None:
            return hit
        self._remembered(key)

        async def fetch():
            try:
                v = await start()
            except FetchError as e:
                self._remember(key, e)
                raise
            self.answers.put(key, v, self.cfg.list_cache_seconds)
            return v

        return await self.single_flight(key, fetch)

    async def stored_releases(self, em: str) -> list[str]:
        stored = await self.store.stored_versions(em)
        return [v for v in stored if not modpath.is_pseudo(v)]

    async def versions(self, module: str, em: str) -> list[str]:
        """The @v/list answer: upstream's list (retracted versions included) merged with
        the stored versions, no pseudo-versions, semver order."""
        stored = await self.stored_releases(em)
        if self.uses_upstream(module):
            try:
                up = await self._upstream(("list", em), lambda: self.fetcher.list(module, em))
            except FetchError as e:
                if not stored or (e.status not in (404, 410)
                                  and self.cfg.network_mode == "strict"):
                    raise HTTPError(e.status, str(e)) from None
                up = []
            merged = {v for v in up if not modpath.is_pseudo(v)} | set(stored)
            return sorted(merged, key=modpath.semver_key)
        if not stored:
            raise HTTPError(404, f"not found: {module}: no stored versions")
        return sorted(set(stored), key=modpath.semver_key)

    async def latest(self, module: str, em: str) -> dict:
        # Listed first, once: a path the store cannot hold is refused before any upstream
        # is asked, and the fallback below needs the listing anyway.
        stored = await self.store.stored_versions(em)
        if self.uses_upstream(module):
            try:
                return await self._upstream(
                    ("latest", em), lambda: self.fetcher.info_query(module, em, "latest"))
            except FetchError as e:
                if e.status not in (404, 410) and self.cfg.network_mode == "strict":
                    raise HTTPError(e.status, str(e)) from None
                err = e
        else:
            err = FetchError(404, f"not found: {module}: no stored versions")
        info = await self.stored_latest(em, stored)
        if info is None:
            raise HTTPError(err.status, str(err))
        return info

    async def stored_latest(self, em: str, stored: list[str]) -> dict | None:
        """The .info of the highest stored release (else pseudo-version) of em, given
        its stored versions."""
        stored = sorted(stored, key=modpath.semver_key)
        rel = [v for v in stored if not modpath.is_pseudo(v)] or stored
        if not rel:
            return None
        best = rel[-1]
        raw = await self.store.read(version_key(em, modpath.escape_version(best), "info"))
        try:
            info = json.loads(raw or b"{}")
            out = {"Version": info["Version"]}
            if info.get("Time"):
                out["Time"] = info["Time"]
            return out
        except (ValueError, KeyError):
            return {"Version": best}

    async def query(self, module: str, em: str, query: str) -> dict:
        """What a non-canonical .info request (branch, commit, v1.2) resolves to. Never
        stored under the query's name."""
        if not self.uses_upstream(module):
            raise HTTPError(404, f"not found: {module}@{query}: queries need an upstream")
        try:
            return await self._upstream(("query", em, query),
                                        lambda: self.fetcher.info_query(module, em, query))
        except FetchError as e:
            raise HTTPError(e.status, str(e)) from None


async def _all(*aws):
    """gather(), but the first failure cancels the others and waits for them (a zip
    still streaming into the temporary directory is closed before that goes)."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _write_files(files: dict[str, bytes]) -> None:
    for path, body in files.items():
        with open(path, "wb") as f:
            f.write(body)
