"""Operations endpoints: /healthz, /readyz, /version, /metrics, /catalog."""

from __future__ import annotations

import json
import os
import time

from aiohttp import web

from . import __version__, modpath
from .errors import CC_NOSTORE, HTTPError
from .redact import redact

READY_CACHE_SECONDS = 2.0


def text(body, ctype="text/plain; charset=utf-8", cc=CC_NOSTORE, status=200) -> web.Response:
    if isinstance(body, str):
        body = body.encode()
    return web.Response(body=body, status=status,
                        headers={"Content-Type": ctype, "Cache-Control": cc})


class Ops:
    def __init__(self, node):
        self.node = node
        self._ready_cache: tuple[float, bool, dict] | None = None

    async def upstream_ready(self) -> tuple[bool, str]:
        """Whether a miss can succeed, by the chain's rules: a dead proxy followed by ','
        fails every miss (',' falls through on 404/410 only); '|' tries the next."""
        node = self.node
        if node.cfg.network_mode == "offline":
            return True, "offline mode"
        http = node.fetcher.http
        failures: list[str] = []
        for hop in http.hops:
            if hop.kind == "off":
                return (not failures), "GOPROXY off: store only"
            if hop.kind == "direct":
                return True, "direct" + (f" (after {', '.join(failures)})" if failures else "")
            if hop.kind == "file":
                if os.path.isdir(hop.url):
                    return True, f"ok: file://{hop.url}"
                failures.append(f"file://{hop.url}: missing")
                continue
            if http.breakers[hop.url].is_open:
                why = f"{hop.label}: circuit open"
            else:
                why = await http.probe(hop)
            if why is None:
                return True, f"ok: {hop.label}"
            failures.append(why)
            if not hop.any_error_falls_through:
                return False, ("unreachable: " + ", ".join(failures)
                               + " (',' falls through on 404/410 only)")
        return False, "unreachable: " + ", ".join(failures)

    async def readiness(self) -> tuple[bool, dict]:
        now = time.monotonic()
        if self._ready_cache and self._ready_cache[0] > now:
            return self._ready_cache[1], self._ready_cache[2]
        checks: dict[str, str] = {}
        ok = True
        try:
            await self.node.store.check_writable()
            checks["store"] = "ok"
        except Exception as e:  # noqa: BLE001 - any failure means not ready
            ok, checks["store"] = False, f"not writable: {e}"
        up_ok, checks["upstream"] = await self.upstream_ready()
        ok = ok and up_ok
        checks = {k: redact(v) for k, v in checks.items()}
        self._ready_cache = (now + READY_CACHE_SECONDS, ok, checks)
        return ok, checks

    async def healthz(self, request):
        return text("ok\n")

    async def readyz(self, request):
        ok, checks = await self.readiness()
        if self.node.shutting_down:
            ok, checks = False, {**checks, "shutdown": "shutting down"}
        return text(json.dumps({"ready": ok, "checks": checks}), ctype="application/json",
                    status=200 if ok else 503)

    async def version(self, request):
        return text(json.dumps({"name": "gomirror-proxy", "version": __version__,
                                "storage": self.node.store.kind}), ctype="application/json")

    async def metrics(self, request):
        return text(self.node.metrics.render(), ctype="text/plain; version=0.0.4; charset=utf-8")

    async def catalog(self, request):
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
        items = await self.node.store.catalog(token, size)
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
        return text(json.dumps(res), ctype="application/json")
