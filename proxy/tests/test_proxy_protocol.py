"""The GOPROXY protocol as the go command uses it, beyond pinned versions: queries,
retracted versions, unknown modules in a chain, the checksum database's `supported`,
readiness by chain semantics, the not-found memory, waiters, credentials, verification."""

# pytest fixtures are imported from proxyhelpers (the repo's tests/ owns `conftest`)
# ruff: noqa: F401, F811

import asyncio
import json
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import aiohttp
import pytest

from proxyhelpers import (
    CACHE,
    GO,
    ORIGIN,
    ORIGIN_TREE,
    closed_port,
    go_env,
    http,
    nodes,
    origin,
)

pytestmark = pytest.mark.usefixtures("origin")

SUMMARY = json.loads((CACHE / "origin/summary.json").read_text())
ORIGIN_SUMDB = {"SumDBUpstreams": {"sum.golang.org": ORIGIN + "/sumdb/sum.golang.org"}}
ISATTY = "/github.com/mattn/go-isatty/@v/v0.0.19"


def semver_sorted(versions):
    from gomirror_proxy import modpath

    return sorted(versions, key=modpath.semver_key)


class TreeServer:
    """A loopback GOPROXY serving the origin's files, with `override` (path -> bytes, or
    None for 404) applied: an upstream that lacks or alters part of the tree."""

    def __init__(self, override: dict | None = None, missing_all: bool = False,
                 slow: dict | None = None):
        override = override or {}
        slow = slow or {}  # path -> bytes per second
        self.paths: list[str] = []
        paths = self.paths

        class H(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                path = self.path.replace("%21", "!")
                paths.append(path)
                f = ORIGIN_TREE / path.lstrip("/")
                if path in override:
                    body = override[path]
                elif missing_all or ".." in path or not f.is_file():
                    body = None
                else:
                    body = f.read_bytes()
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                rate = slow.get(path)
                step = rate // 10 if rate else len(body) or 1
                for i in range(0, len(body), step):
                    try:
                        self.wfile.write(body[i:i + step])
                    except OSError:
                        return  # the client went away
                    if rate:
                        time.sleep(0.1)

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.srv.server_port}"

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def tree_server():
    started = []

    def start(**kw):
        s = TreeServer(**kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.close()


def go_in_module(tmp: Path, goproxy: str, *args, timeout=120):
    proj = tmp / "proj"
    proj.mkdir(exist_ok=True)
    (proj / "go.mod").write_text("module example.com/client\n\ngo 1.21\n")
    return subprocess.run([GO, *args], cwd=proj, env=go_env(tmp, goproxy), capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("query", [SUMMARY["query"]["branch"], SUMMARY["query"]["commit"]])
def test_go_get_branch_and_commit_through_node(nodes, tmp_path, query):
    q = SUMMARY["query"]
    node = nodes()
    r = go_in_module(tmp_path, node.url, "get", f"{q['module']}@{query}")
    assert r.returncode == 0, r.stderr
    assert f"{q['module']} {q['version']}" in (tmp_path / "proj/go.mod").read_text()
    st, h, body = node.get(f"/{q['module']}/@v/{query}.info")
    assert st == 200 and json.loads(body)["Version"] == q["version"]
    assert h["Cache-Control"] == "public, max-age=2"  # a branch moves: ListCacheSeconds
    stored = sorted(p.name for p in (node.store / q["module"] / "@v").iterdir())
    assert f"{query}.info" not in stored  # never stored under the query's name
    assert f"{q['version']}.zip" in stored


def test_list_keeps_retracted_versions(nodes, tmp_path):
    rt = SUMMARY["retracting"]
    node = nodes()
    st, h, body = node.get(f"/{rt['module']}/@v/list")
    assert st == 200
    assert body.decode().split() == semver_sorted(rt["versions"])
    assert set(rt["retracted"]) <= set(body.decode().split())
    r = subprocess.run([GO, "list", "-m", "-versions", "-retracted", "-json", rt["module"]],
                       cwd=tmp_path, env=go_env(tmp_path, node.url, GOFLAGS=""),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Versions"] == semver_sorted(rt["versions"])
    st, _, body = node.get(f"/{rt['module']}/@latest")
    assert st == 404  # the origin has no @latest file: passed on, the go command uses list


def test_unknown_module_falls_through_the_chain(nodes, tmp_path, tree_server):
    empty = tree_server(missing_all=True)  # an upstream that knows no module at all
    node = nodes(upstream=empty.url)
    for path in ("/github.com/mattn/go-isatty/@v/list", ISATTY + ".info", ISATTY + ".mod",
                 ISATTY + ".zip", "/github.com/mattn/go-isatty/@latest"):
        st, h, body = node.get(path)
        assert st == 404, (path, st, body)
    r = go_in_module(tmp_path, f"{node.url},{ORIGIN}", "mod", "download", "-json",
                     "github.com/mattn/go-isatty@v0.0.19")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Version"] == "v0.0.19"
    asked = [line.get("path") for line in node.log_lines() if line.get("status") == 404]
    assert ISATTY + ".info" in asked and ISATTY + ".zip" in asked


def test_sumdb_supported_only_when_lookups_can_be_served(nodes):
    dead = f"http://127.0.0.1:{closed_port()}"
    down = nodes(extra={"SumDBUpstreams": {"sum.golang.org": dead}}, name="down")
    st, _, _ = down.get("/sumdb/sum.golang.org/supported")
    assert st == 404  # the go command then verifies directly instead of failing here
    up = nodes(name="up")
    st, h, body = up.get("/sumdb/sum.golang.org/supported")
    assert st == 200 and body == b""


def test_readiness_follows_chain_semantics(nodes):
    dead = f"http://127.0.0.1:{closed_port()}"
    comma = nodes(upstream=f"{dead},{ORIGIN}", name="comma", extra=ORIGIN_SUMDB)
    st, _, body = comma.get("/readyz")
    assert st == 503, body  # ',' falls through on 404/410 only: every miss would fail
    assert "unreachable" in json.loads(body)["checks"]["upstream"]
    pipe = nodes(upstream=f"{dead}|{ORIGIN}", name="pipe", extra=ORIGIN_SUMDB)
    st, _, body = pipe.get("/readyz")
    assert st == 200 and json.loads(body)["checks"]["upstream"] == f"ok: {ORIGIN}"
    assert pipe.get(ISATTY + ".mod")[0] == 200  # and misses really go to the second


def test_blackholed_upstream_costs_one_timeout_not_one_per_miss(nodes):
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)  # accepts connections (kernel backlog), never answers
    try:
        node = nodes(upstream=f"http://127.0.0.1:{hole.getsockname()[1]}|{ORIGIN}",
                     extra={"Timeout": 3, **ORIGIN_SUMDB})
        mods = ["/github.com/gin-gonic/gin/@v/v1.9.1.mod",
                "/github.com/mattn/go-isatty/@v/v0.0.19.mod",
                "/golang.org/x/text/@v/v0.10.0.mod",
                "/github.com/gin-contrib/sse/@v/v0.1.0.mod",
                "/github.com/modern-go/reflect2/@v/v1.0.2.mod"]
        took = []
        for m in mods:
            t0 = time.monotonic()
            assert node.get(m)[0] == 200, m
            took.append(time.monotonic() - t0)
        assert all(t >= 2.5 for t in took[:2]), took  # two timeouts open the breaker
        assert all(t < 1.5 for t in took[2:]), took
        assert node.metric("gomirror_proxy_upstream_requests_total",
                           upstream=f"http://127.0.0.1:{hole.getsockname()[1]}",
                           result="circuit_open") == 3
    finally:
        hole.close()


def test_not_found_is_remembered(nodes):
    # the go command's path (the HTTP path's: test_proxy_httpzip.py)
    node = nodes(extra={"NotFoundCacheSeconds": 60, "UpstreamFetcher": "gocommand"})
    missing = "/github.com/mattn/go-isatty/@v/v0.0.99.zip"
    st, _, body = node.get(missing)
    assert st == 404 and body.startswith(b"not found")
    assert node.metric("gomirror_proxy_go_runs_total", command="mod download") == 1
    st, _, _ = node.get(missing)
    assert st == 404
    assert node.metric("gomirror_proxy_go_runs_total", command="mod download") == 1
    assert node.metric("gomirror_proxy_not_found_cache_hits_total") == 1


def test_thirty_waiters_on_one_slow_fetch_do_not_block_other_misses(nodes, tmp_path):
    slow = tmp_path / "slow-go"
    slow.write_text(f'#!/bin/sh\ncase "$*" in *go-isatty*) sleep 8;; esac\nexec {GO} "$@"\n')
    slow.chmod(0o755)
    node = nodes(extra={"GoBinary": str(slow), "ProtocolWorkers": 2,
                        "UpstreamFetcher": "gocommand"})

    async def run():
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=90)) as s:
            async def get(path):
                async with s.get(node.url + path) as r:
                    await r.read()
                    return r.status, time.monotonic()

            waiters = [asyncio.ensure_future(get(ISATTY + ".zip")) for _ in range(30)]
            await asyncio.sleep(1)
            t0 = time.monotonic()
            other = await get("/github.com/gin-contrib/sse/@v/v0.1.0.zip")
            other_took = time.monotonic() - t0
            slow_done = await asyncio.gather(*waiters)
            return other, other_took, slow_done

    other, other_took, slow_done = asyncio.run(run())
    assert other[0] == 200
    assert other_took < 6, other_took  # finished while the slow fetch still ran
    assert all(st == 200 for st, _ in slow_done)
    assert other[1] < min(t for _, t in slow_done)
    assert node.metric("gomirror_proxy_go_runs_total", command="mod download") == 2


def test_long_path_elements_are_not_found_not_errors(nodes):
    node = nodes()
    base = "/github.com/" + "a" * 200 + "/" + "b" * 200
    for path in (base + "/@v/v1.0.0.info", base + "/@v/v1.0.0.zip", base + "/@v/list",
                 base + "/@latest", "/github.com/x/@v/v1.0.0-" + "c" * 190 + ".mod"):
        st, _, body = node.get(path)
        assert st == 404, (path, st, body[:300])
    assert node.metric("gomirror_proxy_requests_total", endpoint="zip", status="500",
                       absent=0) == 0


def test_credentials_in_upstream_urls_never_leave_the_node(nodes):
    token = "tok3n-Sup3rSecret"  # noqa: S105 - a test credential that must never leak
    up = f"http://mirror:{token}@127.0.0.1:{closed_port()}"
    node = nodes(upstream=up, extra={"SumDBUpstreams": {
        "sum.golang.org": f"{up}/sumdb/sum.golang.org"}})
    bodies = []
    for path in (ISATTY + ".zip", ISATTY + ".mod", ISATTY + ".info",
                 "/github.com/mattn/go-isatty/@v/list", "/github.com/mattn/go-isatty/@latest",
                 "/github.com/mattn/go-isatty/@v/master.info",
                 "/sumdb/sum.golang.org/latest", "/readyz"):
        st, _, body = node.get(path)
        assert st == (503 if path == "/readyz" else 502), (path, st, body)
        bodies.append(body)
    assert b"127.0.0.1" in b"".join(bodies)  # the errors do say which upstream failed
    assert all(token.encode() not in b for b in bodies), bodies
    assert b"mirror:" not in b"".join(bodies)
    node.stop()
    assert token not in node.log.read_text()


def test_an_altered_go_mod_is_refused(nodes, tree_server):
    rel = "/github.com/gin-gonic/gin/@v/v1.9.1.mod"
    good = (ORIGIN_TREE / rel.lstrip("/")).read_bytes()
    bad = tree_server(override={rel: good[: len(good) // 2]})
    node = nodes(upstream=bad.url, extra=ORIGIN_SUMDB)
    st, _, body = node.get(rel)
    assert st == 502 and b"refused" in body, body
    assert not (node.store / rel.lstrip("/")).exists()
    assert node.metric("gomirror_proxy_verification_failures_total", kind="mismatch") == 1
    # the untouched files of the same upstream are verified and stored
    assert node.get("/github.com/mattn/go-isatty/@v/v0.0.19.mod")[0] == 200


def test_only_verified_sumdb_data_is_stored(nodes, tree_server):
    db = "/sumdb/sum.golang.org"
    full, forged = f"{db}/tile/8/2/000", f"{db}/tile/8/0/065"
    other_size = f"{db}/tile/8/2/004.p/50"  # a partial tile of a tree the node never verified
    up = tree_server(override={
        forged: bytes(len((ORIGIN_TREE / forged.lstrip("/")).read_bytes())),
        other_size: b"\x01" * (50 * 32),
    })
    node = nodes(upstream=up.url, extra={"SumDBUpstreams": {"sum.golang.org": up.url + db}})
    store = node.store
    assert node.get(f"{db}/lookup/github.com/gin-gonic/gin@v1.9.1")[0] == 200
    assert (store / f"{db[1:]}/lookup/github.com/gin-gonic/gin@v1.9.1").is_file()
    tree = (store / f"{db[1:]}/latest").read_text().splitlines()
    assert tree[:2] == ["go.sum database tree", "72585446"]  # the proved lookup's tree
    # the stored tree's own partial tile is kept (a file:// replica needs it)
    partial = f"{db}/tile/8/2/004.p/83"
    for path in (full, partial):
        st, h, body = node.get(path)
        assert st == 200 and body == (ORIGIN_TREE / path.lstrip("/")).read_bytes()
        assert (store / path.lstrip("/")).read_bytes() == body, path
    st, h, _ = node.get(partial)
    assert h["Cache-Control"] == "public, max-age=60"
    # forged and foreign data is forwarded (the client verifies it too), never stored
    for path in (forged, other_size):
        assert node.get(path)[0] == 200
        assert not (store / path.lstrip("/")).exists(), path
    assert node.metric("gomirror_proxy_verification_failures_total", kind="tile") == 1


def test_max_zip_size_stops_the_download_while_it_streams(nodes, tree_server):
    rel = "/golang.org/x/text/@v/v0.10.0.zip"  # 8.6 MB, sent at 2 MB/s: 4 s in all
    up = tree_server(slow={rel: 2 << 20})
    node = nodes(upstream=up.url, extra={"MaxZipSize": 1 << 20, **ORIGIN_SUMDB})
    t0 = time.monotonic()
    st, _, body = node.get(rel)
    took = time.monotonic() - t0
    assert st == 404 and b"zip too large" in body and b"MaxZipSize" in body, body
    assert took < 3, took  # stopped at about 1 MB, not after the whole zip
    assert not (node.store / rel.lstrip("/")).exists()
    assert not (node.store / rel.lstrip("/").replace(".zip", ".info")).exists()
