"""The HTTP fetcher: GET a protocol path from the proxies of the GOPROXY chain over one
pooled keep-alive session, with the chain's fall-through rules, bounded retries with
backoff on 429/5xx and a circuit breaker per upstream."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

from .. import chain
from .errors import FetchError

RETRIES = 2  # after the first attempt, for 429 and 5xx answers
BACKOFF = 0.2  # seconds, doubled per retry


@dataclass
class Answer:
    body: bytes | None  # None: no proxy of the chain had it
    status: int  # 200, else the not-found status (404/410) the last proxy gave
    direct: bool  # the chain continues with `direct` after the proxies that had nothing


class HTTPFetcher:
    def __init__(self, goproxy: str, timeout: float, metrics=None):
        self.hops = chain.parse(goproxy)
        self.timeout = timeout
        self.metrics = metrics
        self.breakers = {h.url: chain.Breaker() for h in self.hops if h.kind == "proxy"}
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        # Bodies are stored and served byte for byte, so ask upstreams (an edge of the core
        # region gzips text) for them uncompressed instead of aiohttp's default gzip/deflate.
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout, connect=min(self.timeout, 10)),
            connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=60),
            auto_decompress=False,
            headers={"Accept-Encoding": "identity"},
        )

    async def close(self) -> None:
        if self.session:
            await self.session.close()

    def _count(self, hop: chain.Hop, result: str) -> None:
        if self.metrics:
            self.metrics.upstream.inc(hop.label, result)

    async def get(self, rel: str, limit: int) -> Answer:
        """GET rel (e.g. "golang.org/x/text/@v/list") from the chain."""
        status = 404
        for hop in self.hops:
            if hop.kind == "off":
                return Answer(None, status, False)
            if hop.kind == "direct":
                return Answer(None, status, True)
            if hop.kind == "file":
                try:
                    body = await asyncio.to_thread(_read_file, f"{hop.url}/{rel}", limit)
                    self._count(hop, "ok")
                    return Answer(body, 200, False)
                except OSError:
                    self._count(hop, "not_found")
                    continue
            try:
                got, st = await self._get_one(hop, rel, limit)
            except FetchError:
                if hop.any_error_falls_through:
                    continue
                raise
            if got is not None:
                return Answer(got, 200, False)
            status = st
        return Answer(None, status, False)

    async def _get_one(self, hop: chain.Hop, rel: str, limit: int) -> tuple[bytes | None, int]:
        """(body, 200) or (None, 404|410); FetchError for anything else."""
        br = self.breakers[hop.url]
        if not br.allow():
            self._count(hop, "circuit_open")
            raise FetchError(502, f"upstream {hop.label}: unreachable (circuit open)")
        url = f"{hop.url}/{rel}"
        for attempt in range(RETRIES + 1):
            try:
                async with self.session.get(url) as r:
                    if r.status == 200:
                        body = await _read_bounded(r, limit, hop.label)
                        br.success()
                        self._count(hop, "ok")
                        return body, 200
                    if r.status in (404, 410):
                        br.success()
                        self._count(hop, "not_found")
                        return None, r.status
                    retry = r.status == 429 or r.status >= 500
                    err = f"upstream {hop.label} answered {r.status}"
            except (aiohttp.ClientError, TimeoutError) as e:
                br.failure()
                self._count(hop, "unreachable")
                raise FetchError(504 if isinstance(e, TimeoutError) else 502,
                                 f"upstream {hop.label}: unreachable ({type(e).__name__})"
                                 ) from None
            if not retry or attempt == RETRIES:
                break
            await asyncio.sleep(BACKOFF * (2 ** attempt))
        if retry:
            br.failure()
        self._count(hop, "error")
        raise FetchError(502, err)

    async def probe(self, hop: chain.Hop) -> str | None:
        """None when the upstream answers HTTP at all, else why not (for readiness)."""
        try:
            async with self.session.get(hop.url + "/",
                                        timeout=aiohttp.ClientTimeout(total=5)) as r:
                await r.release()
                self.breakers[hop.url].success()
                return None
        except (aiohttp.ClientError, TimeoutError) as e:
            self.breakers[hop.url].failure()
            return f"{hop.label}: {type(e).__name__}"


async def _read_bounded(r: aiohttp.ClientResponse, limit: int, label: str) -> bytes:
    # StreamReader.read(n) returns what has arrived so far, not n bytes: read to the end,
    # bounded, or a body split across TCP segments is stored cut short.
    chunks, size = [], 0
    async for chunk in r.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise FetchError(502, f"upstream {label}: response larger than {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if r.content_length is not None and len(body) != r.content_length:
        raise FetchError(502, f"upstream {label}: response cut short")
    return body


def _read_file(path: str, limit: int) -> bytes:
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError("file larger than limit")
    return data
