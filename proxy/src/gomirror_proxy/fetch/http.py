"""The HTTP fetcher: GET a protocol path from the proxies of the GOPROXY chain over one
pooled keep-alive session, with the chain's fall-through rules, bounded retries with
backoff on 429/5xx and a circuit breaker per upstream. Bodies go into memory (`get`) or
are streamed into a file (`get_file`, for zips), bounded while they arrive; both share
one chain walk."""

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
    body: bytes | None  # None: no proxy of the chain had it (get_file: always None)
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
        """GET rel (e.g. "golang.org/x/text/@v/list") from the chain, into memory."""
        sink = _BytesSink(limit)
        a = await self._walk(rel, sink)
        return Answer(sink.body() if a.status == 200 else None, a.status, a.direct)

    async def get_file(self, rel: str, dest: str, limit: int, too_large: FetchError,
                       timeout: float | None = None) -> Answer:
        """GET rel from the chain, streamed into the file dest (a whole zip never sits in
        memory); more than limit bytes raises too_large as soon as they arrive (a declared
        Content-Length above limit before any byte is read). Answer.body is None: the data
        is in dest when status is 200. timeout replaces the session's total timeout for
        this request (large files take longer than metadata)."""
        with _FileSink(dest, limit, too_large) as sink:
            return await self._walk(rel, sink, timeout)

    async def _walk(self, rel: str, sink: _Sink, timeout: float | None = None) -> Answer:
        """The chain walk every GET shares: `,` falls through on 404/410, `|` on any error,
        `direct`/`off` end it. Answer.body stays None: the sink holds the data."""
        status = 404
        for hop in self.hops:
            if hop.kind == "off":
                return Answer(None, status, False)
            if hop.kind == "direct":
                return Answer(None, status, True)
            if hop.kind == "file":
                try:
                    await asyncio.to_thread(sink.copy_from, f"{hop.url}/{rel}")
                    self._count(hop, "ok")
                    return Answer(None, 200, False)
                except OSError:
                    self._count(hop, "not_found")
                    continue
            try:
                st = await self._get_one(hop, rel, sink, timeout)
            except FetchError:
                if hop.any_error_falls_through:
                    continue
                raise
            if st == 200:
                return Answer(None, 200, False)
            status = st
        return Answer(None, status, False)

    async def _get_one(self, hop: chain.Hop, rel: str, sink: _Sink,
                       timeout: float | None) -> int:
        """200 (the body is in sink) or 404|410; FetchError for anything else."""
        br = self.breakers[hop.url]
        if not br.allow():
            self._count(hop, "circuit_open")
            raise FetchError(502, f"upstream {hop.label}: unreachable (circuit open)")
        url = f"{hop.url}/{rel}"
        kw = {}
        if timeout is not None:
            # A stalled transfer still fails after the session's timeout without data.
            kw["timeout"] = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 10),
                                                  sock_read=self.timeout)
        for attempt in range(RETRIES + 1):
            try:
                async with self.session.get(url, **kw) as r:
                    if r.status == 200:
                        sink.reset()
                        await _read_into(r, sink, hop.label)
                        br.success()
                        self._count(hop, "ok")
                        return 200
                    if r.status in (404, 410):
                        br.success()
                        self._count(hop, "not_found")
                        return r.status
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


class _Sink:
    """Where a response body goes, bounded: memory (_BytesSink) or a file (_FileSink)."""

    def reset(self) -> None:
        """Start over (a retried request, the next hop)."""

    def write(self, chunk: bytes, label: str = "") -> None: ...

    def size(self) -> int: ...

    def finish(self) -> None:
        """The whole body has arrived."""

    def check_declared(self, length: int | None, label: str) -> None: ...

    def copy_from(self, path: str) -> None:
        """Fill the sink from a local file (a file:// hop); OSError when absent."""


class _BytesSink(_Sink):
    def __init__(self, limit: int):
        self.limit = limit
        self.chunks: list[bytes] = []
        self.n = 0

    def _too_large(self, label: str) -> FetchError:
        return FetchError(502, f"upstream {label}: response larger than {self.limit} bytes")

    def reset(self) -> None:
        self.chunks, self.n = [], 0

    def check_declared(self, length: int | None, label: str) -> None:
        if length is not None and length > self.limit:
            raise self._too_large(label)

    def write(self, chunk: bytes, label: str = "") -> None:
        self.n += len(chunk)
        if self.n > self.limit:
            raise self._too_large(label)
        self.chunks.append(chunk)

    def size(self) -> int:
        return self.n

    def body(self) -> bytes:
        return b"".join(self.chunks)

    def copy_from(self, path: str) -> None:
        self.reset()
        self.chunks = [_read_file(path, self.limit)]
        self.n = len(self.chunks[0])


class _FileSink(_Sink):
    """A response body streamed to a file. Writes go straight to the page cache from the
    event loop (64 KiB at a time, microseconds each); the store makes the file durable
    when it installs it."""

    def __init__(self, path: str, limit: int, too_large: FetchError):
        self.path, self.limit, self.too_large = path, limit, too_large
        self.f = open(path, "wb")  # noqa: SIM115 - closed by __exit__
        self.n = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()

    def reset(self) -> None:
        self.f.seek(0)
        self.f.truncate()
        self.n = 0

    def check_declared(self, length: int | None, label: str) -> None:
        if length is not None and length > self.limit:
            raise self.too_large

    def write(self, chunk: bytes, label: str = "") -> None:
        self.n += len(chunk)
        if self.n > self.limit:
            raise self.too_large
        self.f.write(chunk)

    def size(self) -> int:
        return self.n

    def copy_from(self, path: str) -> None:
        with open(path, "rb") as src:
            self.reset()
            while chunk := src.read(1 << 20):
                self.write(chunk)
        self.finish()

    def finish(self) -> None:
        self.f.flush()


async def _read_into(r: aiohttp.ClientResponse, sink: _Sink, label: str) -> None:
    # StreamReader.read(n) returns what has arrived so far, not n bytes: read to the end,
    # bounded, or a body split across TCP segments is stored cut short.
    sink.check_declared(r.content_length, label)
    async for chunk in r.content.iter_chunked(1 << 16):
        sink.write(chunk, label)
    if r.content_length is not None and sink.size() != r.content_length:
        raise FetchError(502, f"upstream {label}: response cut short")
    sink.finish()


def _read_file(path: str, limit: int) -> bytes:
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError("file larger than limit")
    return data
