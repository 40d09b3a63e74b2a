"""The GOPROXY protocol over HTTP: routing, request validation, Cache-Control, error
mapping, BasicAuth, the access log. What happens on a miss is node.py's business."""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import os
import re
import time

from aiohttp import web

from . import modpath
from .config import Config
from .errors import CC_NOSTORE, HTTPError
from .fetch import FetchError
from .node import Node
from .ops import Ops, text
from .redact import redact
from .storage import StoreError, version_key

log = logging.getLogger("gomirror_proxy")
access_log = logging.getLogger("gomirror_proxy.access")

CC_IMMUTABLE = "public, max-age=31536000, immutable"
CC_IMMUTABLE_PRIVATE = "private, max-age=31536000, immutable"
CONTENT_TYPES = {
    "info": "application/json",
    "mod": "text/plain; charset=utf-8",
    "zip": "application/zip",
}
SMALL_FILE = 64 << 10
# A query in `@v/<query>.info` (branch, tag, commit, semver prefix) as the go command sends
# it: one path element of safe characters, never starting with a dot or dash.
QUERY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]{0,199}$")
OPS_PATHS = ("/healthz", "/readyz", "/version", "/metrics", "/catalog")
NO_AUTH_PATHS = ("/healthz", "/readyz")


def not_found(msg: str) -> HTTPError:
    return HTTPError(404, f"not found: {msg}")


class Handler:
    def __init__(self, node: Node):
        self.node = node
        self.cfg = node.cfg
        self.ops = Ops(node)

    def short_cc(self) -> str:
        return f"public, max-age={self.cfg.list_cache_seconds}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise HTTPError(405, "method not allowed")
        try:
            path = modpath.decode_request_path(request.raw_path)
        except modpath.InvalidPathError as e:
            request["endpoint"] = "invalid"
            raise HTTPError(400, f"bad request: {e}") from None
        if path in OPS_PATHS:
            request["endpoint"] = path[1:]
            return await getattr(self.ops, path[1:])(request)
        if path.startswith("/sumdb/"):
            request["endpoint"] = "sumdb"
            body, ctype, cc = await self.node.sumdb.handle(path[len("/sumdb/"):])
            return text(body, ctype=ctype, cc=cc)
        return await self.module_request(request, path[1:])

    async def module_request(self, request, p: str):
        if p.endswith("/@latest"):
            request["endpoint"] = "latest"
            em, rest = p[: -len("/@latest")], "@latest"
        elif "/@v/" in p:
            em, _, rest = p.partition("/@v/")
        else:
            request["endpoint"] = "other"
            raise not_found("no such endpoint")
        try:
            module = modpath.unescape_path(em)
        except modpath.InvalidPathError as e:
            # Cannot be a module: 404, so a GOPROXY chain falls through to its next entry.
            request.setdefault("endpoint", "invalid")
            raise not_found(f"invalid module path: {e}") from None
        if self.node.excluded(module):
            raise HTTPError(403, f"forbidden: {module} is excluded by this mirror")
        if rest == "@latest":
            return await self.latest(request, module, em)
        if rest == "list":
            request["endpoint"] = "list"
            return await self.list(request, module, em)
        ev, dot, ext = rest.rpartition(".")
        if "/" in rest or not dot or ext not in CONTENT_TYPES:
            request["endpoint"] = "other"
            raise not_found("no such endpoint")
        request["endpoint"] = ext
        try:
            version = modpath.unescape_version(ev)
        except (modpath.InvalidVersionError, modpath.InvalidPathError) as e:
            request["endpoint"] = "invalid"
            raise not_found(str(e)) from None
        if not modpath.is_canonical(version):
            if ext == "info" and QUERY_RE.match(version):
                request["endpoint"] = "query"
                return await self.query(request, module, em, version)
            raise not_found(f"{module}@{version}: not a canonical version")
        try:
            modpath.check_version(module, version)
        except modpath.InvalidVersionError as e:
            raise not_found(f"{module}@{version}: {e}") from None
        return await self.version_file(request, module, em, version, ev, ext)

    async def version_file(self, request, module, em, version, ev, ext):
        node, store = self.node, self.node.store
        key = version_key(em, ev, ext)
        # Pinned from the existence check until the body is sent: eviction between the two
        # would turn a hit into a 404.
        with store.reading(em, ev):
            if ext == "mod":
                present = await store.stat(key) is not None
            else:
                present = await store.has_version(em, ev)
            if present:
                node.metrics.store.inc("hit")
                return await self.serve_file(request, em, ev, key, ext)
        node.metrics.store.inc("miss")
        mode, url = node.download_rule(module)
        if self.cfg.network_mode == "offline" or mode == "none":
            raise not_found(f"{module}@{version} is not stored")
        if mode in ("redirect", "async_redirect"):
            if mode == "async_redirect":
                node.fetch_background(module, em, version, ev)
            raise web.HTTPFound(
                f"{url}/{em}/@v/{ev}.{ext}", headers={"Cache-Control": "public, max-age=60"}
            )
        if mode == "async":
            node.fetch_background(module, em, version, ev)
            raise HTTPError(404, f"not found: {module}@{version}: fetch started, retry later",
                            cc=CC_NOSTORE)
        try:
            if ext == "mod":
                await node.ensure_mod(module, em, version, ev)
            elif ext == "info":
                early = await node.early_version_info(module, em, version, ev)
                if early is not None:
                    # Not yet stored (the zip is still being verified): no cache keeps it.
                    request["bytes"] = len(early)
                    return web.Response(body=early, headers={
                        "Cache-Control": CC_NOSTORE, "Content-Type": CONTENT_TYPES[ext]})
            else:
                await node.ensure_version(module, em, version, ev)
        except FetchError as e:
            msg = str(e)
            if e.status in (404, 410) and not msg.startswith("not found"):
                msg = f"not found: {msg}"
            raise HTTPError(e.status, msg) from None
        return await self.serve_file(request, em, ev, key, ext)

    async def serve_file(self, request, em: str, ev: str, key: str, ext: str):
        # Set here, not left to the middleware: a zip's response is prepared (its headers
        # sent) before the middleware sees it, and behind BasicAuth it must be private.
        cc = CC_IMMUTABLE if not self.cfg.basic_auth_user else CC_IMMUTABLE_PRIVATE
        headers = {"Cache-Control": cc, "Content-Type": CONTENT_TYPES[ext]}
        store = self.node.store
        store.touch(em, ev)
        with store.reading(em, ev):
            local = store.local_path(key)
            if local is not None:
                try:
                    size = os.stat(local).st_size
                    request["bytes"] = size
                    if size <= SMALL_FILE and ext != "zip":
                        # .info/.mod are tiny and page-cached: one read beats FileResponse's
                        # executor round trips; zips go out with sendfile.
                        with open(local, "rb") as f:  # noqa: ASYNC230
                            body = f.read()
                        return web.Response(body=body, headers=headers)
                except OSError:
                    raise not_found(f"{key}: not stored") from None
                # Sent while the version is pinned (FileResponse opens the file only when
                # it is prepared): a prepared response is returned as it is.
                resp = web.FileResponse(local, headers=headers)
                await resp.prepare(request)
                return resp
            size = await store.stat(key)
        request["bytes"] = size
        if size is None:
            raise not_found(f"{key}: not stored")
        resp = web.StreamResponse(headers=headers)
        resp.content_length = size
        await resp.prepare(request)
        if request.method != "HEAD":
            async for chunk in store.stream(key):
                await resp.write(chunk)
        await resp.write_eof()
        return resp

    async def redirect_if_unstored(self, module: str, em: str, rel: str):
        mode, url = self.node.download_rule(module)
        # The store is listed only where a redirect is possible: on S3 a listing of a
        # large module is several LIST requests, and the answer lists it again.
        if mode in ("redirect", "async_redirect") and self.cfg.network_mode != "offline" \
                and not await self.node.store.stored_versions(em):
            raise web.HTTPFound(f"{url}/{rel}", headers={"Cache-Control": "public, max-age=60"})

    async def list(self, request, module, em):
        await self.redirect_if_unstored(module, em, f"{em}/@v/list")
        versions = await self.node.versions(module, em)
        return text("".join(v + "\n" for v in versions), cc=self.short_cc())

    async def latest(self, request, module, em):
        await self.redirect_if_unstored(module, em, f"{em}/@latest")
        info = await self.node.latest(module, em)
        return text(json.dumps(info), ctype="application/json", cc=self.short_cc())

    async def query(self, request, module, em, query):
        """A non-canonical .info: the canonical version's .info, cached briefly (a branch
        moves), never stored under the query's name."""
        info = await self.node.query(module, em, query)
        ev = modpath.escape_version(info["Version"])
        stored = await self.node.store.read(version_key(em, ev, "info"))
        return text(stored or json.dumps(info), ctype="application/json", cc=self.short_cc())


def make_app(node: Node) -> web.Application:
    cfg = node.cfg
    protocol = Handler(node)

    @web.middleware
    async def mw(request: web.Request, handler):
        t0 = time.monotonic()
        status, resp = 500, None
        try:
            if (cfg.basic_auth_user and request.path not in NO_AUTH_PATHS
                    and not auth_ok(request.headers.get("Authorization", ""), cfg)):
                raise HTTPError(401, "unauthorized")
            resp = await handler(request)
        except (HTTPError, StoreError, FetchError) as e:
            resp = error_response(e)
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
        finally:
            if resp is not None:
                status = resp.status
                if cfg.basic_auth_user and request.path not in NO_AUTH_PATHS:
                    # Behind BasicAuth no shared cache may keep an answer.
                    cc = resp.headers.get("Cache-Control", "")
                    if cc.startswith("public"):
                        resp.headers["Cache-Control"] = "private" + cc[len("public"):]
            log_request(node, request, status, resp, t0)
        return resp

    app = web.Application(middlewares=[mw], client_max_size=1024)
    app.router.add_route("*", "/{tail:.*}", protocol.handle)
    app.on_startup.append(node.startup)
    app.on_cleanup.append(node.cleanup)
    return app


def error_response(e) -> web.Response:
    status = e.status
    msg = redact(getattr(e, "msg", None) or str(e))
    cc = getattr(e, "cc", None) or ("public, max-age=10" if status < 500 else CC_NOSTORE)
    resp = web.Response(status=status, text=msg + "\n", headers={"Cache-Control": cc})
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Basic realm="gomirror"'
    return resp


def log_request(node: Node, request: web.Request, status: int, resp, t0: float) -> None:
    ep = request.get("endpoint", "other")
    node.metrics.requests.inc(ep, str(status))
    nbytes = 0
    if status in (200, 206) and request.method == "GET":
        nbytes = request.get("bytes")
        if nbytes is None:
            nbytes = (resp.content_length if resp is not None else 0) or 0
        node.metrics.bytes.inc(ep, amount=nbytes)
    if access_log.isEnabledFor(logging.INFO):
        line = {
            "ts": round(time.time(), 3), "remote": request.remote,
            "method": request.method, "path": redact(request.raw_path[:1024]),
            "status": status, "bytes": nbytes, "endpoint": ep,
            "ms": round((time.monotonic() - t0) * 1000, 2),
        }
        # Behind the node's nginx front (and an edge) `remote` is the front: who asked is
        # in X-Forwarded-For. Logged beside `remote`, never instead of it (a client can
        # send the header itself).
        forwarded = request.headers.get("X-Forwarded-For")
        if forwarded:
            line["forwarded_for"] = forwarded[:256]
        access_log.info(json.dumps(line))


def auth_ok(header: str, cfg: Config) -> bool:
    if not header.startswith("Basic "):
        return False
    try:
        user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return hmac.compare_digest(user.encode(), cfg.basic_auth_user.encode()) & hmac.compare_digest(
        pw.encode(), cfg.basic_auth_pass.encode())
