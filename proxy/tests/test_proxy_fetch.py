"""Fetch on miss: single flight, crash safety, hostile input, download and network modes."""

# pytest fixtures are imported from proxyhelpers (the repo's tests/ owns `conftest`)
# ruff: noqa: F401, F811

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import aiohttp
import pytest

from proxyhelpers import (
    GO,
    ORIGIN,
    ORIGIN_LOG,
    ORIGIN_TREE,
    LogTail,
    closed_port,
    http,
    nodes,
    origin,
    paused_after_cmd,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("origin")

TEXT_ZIP = "/golang.org/x/text/@v/v0.10.0.zip"


def origin_hits(lines, needle):
    return [line for line in lines if f'"GET {needle} ' in line]


def test_100_concurrent_requests_one_fetch(nodes):
    node = nodes()
    tail = LogTail(ORIGIN_LOG)

    async def burst():
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=200),
            timeout=aiohttp.ClientTimeout(total=120),
        ) as s:
            async def one():
                async with s.get(node.url + TEXT_ZIP) as r:
                    return r.status, hashlib.sha256(await r.read()).hexdigest()
            return await asyncio.gather(*(one() for _ in range(100)))

    results = asyncio.run(burst())
    want = hashlib.sha256((ORIGIN_TREE / TEXT_ZIP[1:]).read_bytes()).hexdigest()
    assert results == [(200, want)] * 100
    assert len(origin_hits(tail.lines(), TEXT_ZIP)) == 1
    assert node.metric("gomirror_proxy_fetches_total", result="ok") == 1
    assert node.metric("gomirror_proxy_fetch_duration_seconds_count") == 1


@pytest.mark.parametrize("point", ["zip", "mod"])
def test_sigkill_during_fetch_leaves_no_half_version(nodes, tmp_path, point):
    """SIGKILL right after the store installed the version's .zip (or .mod)."""
    store = tmp_path / "store"
    node = nodes(store=store, cmd=paused_after_cmd(point, 60))
    base = store / "github.com/mattn/go-isatty/@v"
    marker = base / f"v0.0.19.{point}"
    def client():
        with contextlib.suppress(OSError):
            http(node.url + "/github.com/mattn/go-isatty/@v/v0.0.19.zip", timeout=90)

    t = threading.Thread(target=client, daemon=True)
    t.start()
    assert wait_for(marker.exists, 60), node.log.read_text()
    node.stop(9)  # SIGKILL mid-write
    assert not (base / "v0.0.19.info").exists(), "a killed writer left a complete-looking version"
    assert not (base / "list").exists() or "v0.0.19" not in (base / "list").read_text()
    # the dead node's scratch space, removed by the next start (the checksum database's
    # verified tree head, gomirror-proxy-state, is kept across restarts on purpose)
    workdirs = [p for p in (node.dir / "work").iterdir() if p.name != "gomirror-proxy-state"]
    assert workdirs
    # The next node (same store) completes the version.
    n2 = nodes(store=store, name="after-crash", extra={"GoGetDir": str(node.dir / "work")})
    st, _, _ = n2.get("/github.com/mattn/go-isatty/@v/v0.0.19.zip")  # waits for the whole
    assert st == 200
    st, _, body = n2.get("/github.com/mattn/go-isatty/@v/v0.0.19.info")
    assert st == 200 and json.loads(body)["Version"] == "v0.0.19"
    for ext in ("info", "mod", "zip"):
        rel = f"github.com/mattn/go-isatty/@v/v0.0.19.{ext}"
        assert (store / rel).read_bytes() == (ORIGIN_TREE / rel).read_bytes()
    assert "v0.0.19" in (base / "list").read_text().split()
    assert not [p for p in workdirs if p.exists()]
    assert not any((store / ".tmp").iterdir())


def raw_get(port: int, raw_path: str) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(f"GET {raw_path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[-1]


# (raw request path, the one right status). 400 only for what is malformed as HTTP (a
# byte that cannot be in a request path: NUL, non-ASCII, backslash, a bad query
# parameter); anything that merely cannot be a module or version is 404, so a GOPROXY
# chain falls through to its next entry. None of these may reach the upstream.
HOSTILE = [
    ("/github.com/gin-gonic/gin/@v/../../../../canary.info", 404),
    ("/github.com/gin-gonic/gin/@v/..%2f..%2f..%2f..%2fcanary.info", 404),
    ("/%2e%2e/%2e%2e/outside/canary.example/x/@v/v1.0.0.info", 404),
    ("/..%2foutside%2fcanary.example/x/@v/v1.0.0.info", 404),
    ("/canary.example/x/@v/..%2f..%2f..%2f..%2foutside%2fcanary.example%2fx%2f@v%2fv1.0.0.info",
     404),
    ("/github.com/gin-gonic/gin/@v/v1.9.1%00.info", 400),
    ("/github.com/gin-gonic/gin%00/@v/v1.9.1.info", 400),
    ("/github.com/Gin-Gonic/gin/@v/v1.9.1.info", 404),
    ("/github.com/gin-gonic/gin/@v/v1.9.1-RC1.info", 404),
    ("/" + "a" * 3000 + ".com/x/@v/v1.0.0.info", 404),
    ("/github.com/x/@v/v" + "1" * 300 + ".0.0.info", 404),
    ("/github.com/gin-gonic/gin/@v/master.zip", 404),
    ("/github.com/gin-gonic/gin/@v/v2.0.0.info", 404),
    ("/github.com/gin-gonic/gin/@v/v1.0.0+incompatible.mod", 404),
    ("/github.com/gin-gonic/gin/@v/v1.9.1+build.zip", 404),
    ("/github.com/go-playground/validator/v10/@v/v9.0.0.info", 404),
    ("/github.com/gin-gonic/gin/@v/v1.9.1.exe", 404),
    ("/github.com/gin-gonic/gin/@v/v1.9.1.info/../../x", 404),
    ("/github.com/gin-gonic/gin/@v/-rf.info", 404),
    ("/github.com/gin-gonic/gin/@v/.hidden.info", 404),
    ("/.tmp/x/@v/v1.0.0.info", 404),
    ("/.locks/@v/list", 404),
    ("/github.com/.git/@v/list", 404),
    ("/github.com/gin-gonic/gin/@v/%ff.info", 400),
    ("/github.com/gin-gonic/gin\\..\\..\\canary/@v/list", 400),
    ("/github.com/x/v1/@v/list", 404),
    ("/gopkg.in/yaml.v3-x/@v/list", 404),
    ("/nodot/x/@v/list", 404),
    ("/github.com/con/x/@latest", 404),
    ("/github.com//gin/@latest", 404),
    ("/sumdb/sum.golang.org/../../../canary.info", 404),
    ("/sumdb/sum.golang.org/lookup/..%2f..%2fcanary@v1.0.0", 404),
    ("/sumdb/sum.golang.org/tile/8/0/../../../../canary.info", 404),
    ("/sumdb/sum.golang.org/tile/8/0/x001/../../../canary", 404),
    ("/sumdb/..%2f..%2fcanary/latest", 404),
    ("/catalog?pagesize=-1", 400),
    ("/catalog?pagesize=abc", 400),
]


def test_hostile_paths(nodes, tmp_path):
    outside = tmp_path / "outside/canary.example/x/@v"
    outside.mkdir(parents=True)
    canaries = [tmp_path / "canary.info", outside / "v1.0.0.info", tmp_path / "canary"]
    for c in canaries:
        c.write_text('{"Version":"CANARY"}')
    # atime tells whether a file was read (when the file system records it)
    for c in canaries:
        os.utime(c, (1_000_000, 1_000_000))
    probe = tmp_path / "probe"
    probe.write_text("x")
    os.utime(probe, (1_000_000, 1_000_000))
    probe.read_text()
    atime_works = probe.stat().st_atime > 1_000_000
    node = nodes(store=tmp_path / "node/store")
    before = sorted(p for p in tmp_path.rglob("*") if "node" not in p.parts)
    tail = LogTail(ORIGIN_LOG)
    for raw, want in HOSTILE:
        st, body = raw_get(node.port, raw)
        assert st == want, (raw, st, body[:200])
        assert b"CANARY" not in body and b"root:" not in body, raw
    assert tail.lines() == [], "hostile input reached the upstream"
    after = sorted(p for p in tmp_path.rglob("*") if "node" not in p.parts)
    assert before == after, "something was created outside the store"
    if atime_works:
        for c in canaries:
            assert c.stat().st_atime == 1_000_000, f"{c} was read"
    # the store holds nothing but internal dirs and the sumdb marker
    stored = [p for p in (tmp_path / "node/store").rglob("*") if p.is_file()]
    assert all(".locks" in p.parts or "sumdb" in p.parts for p in stored), stored
    assert node.metric("gomirror_proxy_requests_total", endpoint="invalid", status="500",
                       absent=0) == 0
    assert "500" not in node.get("/metrics")[2].decode().split("status=\"")[-1][:3]


def test_download_modes_and_exclusion(nodes, tmp_path):
    node = nodes(extra={
        "DownloadMode": "sync",
        "ExcludePatterns": ["github.com/pmezard/*"],
        "DownloadRules": [
            {"Pattern": "github.com/BurntSushi/*", "Mode": "none"},
            {"Pattern": "github.com/dgrijalva/*", "Mode": "redirect", "DownloadURL": ORIGIN},
            {"Pattern": "github.com/gin-contrib/*", "Mode": "async_redirect"},
            {"Pattern": "github.com/go-playground/assert", "Mode": "async"},
        ],
    })
    store = node.store
    tail = LogTail(ORIGIN_LOG)
    # none: never fetched
    st, *_ = node.get("/github.com/!burnt!sushi/toml/@v/v1.3.2.info")
    assert st == 404
    assert not origin_hits(tail.lines(), "/github.com/%21burnt%21sushi/toml/@v/v1.3.2.info")
    assert not (store / "github.com/!burnt!sushi").exists()
    # redirect: to DownloadURL, nothing stored
    st, h, _ = node.get("/github.com/dgrijalva/jwt-go/@v/v3.2.0+incompatible.zip")
    assert st == 302
    assert h["Location"] == f"{ORIGIN}/github.com/dgrijalva/jwt-go/@v/v3.2.0+incompatible.zip"
    time.sleep(0.5)
    assert not (store / "github.com/dgrijalva").exists()
    # async_redirect: redirect now (default DownloadURL = first upstream), stored soon
    st, h, _ = node.get("/github.com/gin-contrib/sse/@v/v0.1.0.zip")
    assert st == 302 and h["Location"].startswith(ORIGIN + "/github.com/gin-contrib/sse/")
    assert wait_for((store / "github.com/gin-contrib/sse/@v/v0.1.0.info").exists, 60)
    assert node.get("/github.com/gin-contrib/sse/@v/v0.1.0.zip")[0] == 200
    # async: 404 now, fetched in the background
    st, h, _ = node.get("/github.com/go-playground/assert/v2/@v/v2.2.0.info")
    assert st == 404 and h["Cache-Control"] == "no-store"
    assert wait_for(lambda: node.get("/github.com/go-playground/assert/v2/@v/v2.2.0.info")[0]
                    == 200, 60)
    # sync (default)
    assert node.get("/github.com/mattn/go-isatty/@v/v0.0.19.mod")[0] == 200
    # excluded
    st, _, body = node.get("/github.com/pmezard/go-difflib/@v/v1.0.0.info")
    assert st == 403 and b"excluded" in body
    assert node.get("/github.com/pmezard/go-difflib/@v/list")[0] == 403
    assert not origin_hits(tail.lines(), "/github.com/pmezard/go-difflib/@v/v1.0.0.info")


def seed_store(store: Path, rel_dir: str):
    shutil.copytree(ORIGIN_TREE / rel_dir, store / rel_dir)


def fake_version(store: Path, rel_dir: str, src: str, version: str):
    d = store / rel_dir / "@v"
    for ext in ("zip", "mod"):
        shutil.copy(d / f"{src}.{ext}", d / f"{version}.{ext}")
    (d / f"{version}.info").write_text(json.dumps({"Version": version,
                                                   "Time": "2020-01-01T00:00:00Z"}))


def test_network_modes(nodes, tmp_path):
    toml = "github.com/!burnt!sushi/toml"
    store = tmp_path / "shared-store"
    seed_store(store, toml)
    fake_version(store, toml, "v1.3.2", "v1.0.0")  # stored only, not upstream
    dead = f"http://127.0.0.1:{closed_port()}"

    # offline: only the store, no traffic upstream at all
    tail = LogTail(ORIGIN_LOG)
    off = nodes(store=store, extra={"NetworkMode": "offline"}, name="offline")
    assert off.get(f"/{toml}/@v/list")[2].decode().split() == ["v1.0.0", "v1.3.2"]
    assert json.loads(off.get(f"/{toml}/@latest")[2])["Version"] == "v1.3.2"
    assert off.get(f"/{toml}/@v/v1.3.2.zip")[0] == 200
    assert off.get("/github.com/mattn/go-isatty/@v/v0.0.19.info")[0] == 404
    # nothing stored, no upstream asked: not found, so a GOPROXY chain falls through
    assert off.get("/github.com/mattn/go-isatty/@v/list")[0] == 404
    st, _, body = off.get("/readyz")
    assert st == 200 and b"offline" in body
    assert tail.lines() == []

    # strict, upstream up: upstream's answer merged with the store
    strict = nodes(store=store, extra={"NetworkMode": "strict"}, name="strict")
    st, _, body = strict.get(f"/{toml}/@v/list")
    assert st == 200 and body.decode().split() == ["v1.0.0", "v1.3.2"]
    assert json.loads(strict.get(f"/{toml}/@latest")[2])["Version"] == "v1.3.2"
    # strict, upstream down: an error, not a silent partial answer
    sdead = nodes(store=store, upstream=dead, extra={"NetworkMode": "strict"}, name="sdead")
    assert sdead.get(f"/{toml}/@v/list")[0] == 502
    assert sdead.get(f"/{toml}/@latest")[0] == 502
    assert sdead.get(f"/{toml}/@v/v1.3.2.info")[0] == 200  # stored files still served
    # fallback, upstream down: the stored answer
    fb = nodes(store=store, upstream=dead, extra={"NetworkMode": "fallback"}, name="fallback")
    st, _, body = fb.get(f"/{toml}/@v/list")
    assert st == 200 and body.decode().split() == ["v1.0.0", "v1.3.2"]
    assert json.loads(fb.get(f"/{toml}/@latest")[2])["Version"] == "v1.3.2"
    assert fb.get("/github.com/mattn/go-isatty/@v/v0.0.19.info")[0] == 502


def test_graceful_shutdown_finishes_inflight(nodes, tmp_path):
    node = nodes(cmd=paused_after_cmd("mod", 2), extra={"ShutdownTimeout": 30})
    result = {}

    def get():
        result["r"] = http(node.url + "/github.com/modern-go/reflect2/@v/v1.0.2.zip", timeout=60)

    t = threading.Thread(target=get)
    t.start()
    assert wait_for((node.store / "github.com/modern-go/reflect2/@v/v1.0.2.mod").exists, 60)
    rc = node.stop()  # SIGTERM
    t.join(30)
    assert rc == 0
    assert result["r"][0] == 200
    assert (node.store / "github.com/modern-go/reflect2/@v/v1.0.2.info").exists()
    assert any(r.get("msg") == "stopped" for r in node.log_lines())


def test_sigkill_while_go_runs_kills_go_and_leaves_nothing(nodes, tmp_path):
    """The node dies while its go command runs: the go process dies with it (parent-death
    signal), nothing lands in the store, and the next node fetches the version."""
    pidfile = tmp_path / "go.pid"
    wrapper = tmp_path / "go-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho $$ > {pidfile}\nsleep 30\nexec {GO} "$@"\n')
    wrapper.chmod(0o755)
    store = tmp_path / "store"
    node = nodes(store=store, extra={"GoBinary": str(wrapper), "UpstreamFetcher": "gocommand"})

    def client():
        with contextlib.suppress(OSError):
            http(node.url + "/github.com/modern-go/concurrent/@v/"
                 "v0.0.0-20180306012644-bacd9c7ef1dd.zip", timeout=90)

    threading.Thread(target=client, daemon=True).start()
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 30)
    go_pid = int(pidfile.read_text())
    node.stop(9)

    def gone():
        try:
            stat = Path(f"/proc/{go_pid}/stat").read_text()
        except FileNotFoundError:
            return True
        return stat.split(") ", 1)[1].startswith("Z")

    assert wait_for(gone, 10), "the go process outlived its killed node"
    assert not (store / "github.com/modern-go").exists()
    n2 = nodes(store=store, name="after-crash")
    st, _, _ = n2.get("/github.com/modern-go/concurrent/@v/v0.0.0-20180306012644-bacd9c7ef1dd.zip")
    assert st == 200



def _split_body_upstream(body: bytes, pause: float = 0.3):
    """An HTTP upstream on loopback that sends headers and the first half of the body,
    pauses, then sends the rest: what a loaded network does to any response."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                half = len(body) // 2
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                             % len(body) + body[:half])
                time.sleep(pause)
                conn.sendall(body[half:])

    threading.Thread(target=serve, daemon=True).start()
    return srv


def test_a_go_mod_split_across_segments_is_stored_whole(nodes):
    gomod = (ORIGIN_TREE / "github.com/gin-gonic/gin/@v/v1.9.1.mod").read_bytes()
    srv = _split_body_upstream(gomod)
    try:
        # the checksum database stays the origin's: the go.mod is verified against it
        node = nodes(upstream=f"http://127.0.0.1:{srv.getsockname()[1]}", extra={
            "SumDBUpstreams": {"sum.golang.org": ORIGIN + "/sumdb/sum.golang.org"}})
        status, _headers, body = http(node.url + "/github.com/gin-gonic/gin/@v/v1.9.1.mod")
    finally:
        srv.close()
    assert status == 200
    assert body == gomod
    assert (node.store / "github.com/gin-gonic/gin/@v/v1.9.1.mod").read_bytes() == gomod


def test_an_upstream_that_gzips_text_is_stored_uncompressed(nodes, tmp_path):
    """A regional node's upstream is the core region's edge, which gzips text for clients
    that accept it; the node must store and serve the bytes themselves."""
    import gzip
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    lookup = "/sumdb/sum.golang.org/lookup/github.com/!burnt!sushi/toml@v1.3.2"
    record = (ORIGIN_TREE / lookup.lstrip("/")).read_bytes()

    class Gzipping(BaseHTTPRequestHandler):
        """The origin's files (what the node verifies the lookup with), gzipped."""

        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            f = ORIGIN_TREE / self.path.lstrip("/").replace("%21", "!")
            if ".." in self.path or not f.is_file():
                self.send_response(404)
                self.end_headers()
                return
            body = f.read_bytes()
            if "gzip" in self.headers.get("Accept-Encoding", ""):
                body = gzip.compress(body)
                self.send_response(200)
                self.send_header("Content-Encoding", "gzip")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Gzipping)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        up = f"http://127.0.0.1:{srv.server_port}"
        node = nodes(upstream=up)
        status, _headers, body = http(node.url + lookup)
    finally:
        srv.shutdown()
    assert status == 200
    assert body == record
