"""The real go client through a node, against the hermetic origin on loopback."""

# pytest fixtures are imported from proxyhelpers (the repo's tests/ owns `conftest`)
# ruff: noqa: F401, F811

import hashlib
import json
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from proxyhelpers import (
    GO,
    ORIGIN_LOG,
    ORIGIN_TREE,
    LogTail,
    Node,
    closed_port,
    go_download_all,
    go_env,
    http,
    origin,
)

pytestmark = pytest.mark.usefixtures("origin")


@pytest.fixture(scope="module")
def filled(tmp_path_factory, origin):
    """A node that downloaded the whole pinned workload cold, and the client's result."""
    tmp = tmp_path_factory.mktemp("filled")
    tail = LogTail(ORIGIN_LOG)
    node = Node(tmp)
    rc, mods, err, _ = go_download_all(node.url)
    yield node, rc, mods, err, tail.lines()
    node.stop()


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_cold_download_with_default_sumdb_through_node(filled):
    node, rc, mods, err, origin_lines = filled
    assert rc == 0, err
    assert not [m for m in mods if m.get("Error")]
    paths = {m["Path"] for m in mods}
    for want in ("github.com/gin-gonic/gin", "github.com/BurntSushi/toml",
                 "github.com/dgrijalva/jwt-go", "github.com/chenzhuoyu/base64x",
                 "github.com/go-playground/validator/v10", "golang.org/x/text"):
        assert want in paths
    # The client verified against the default GOSUMDB through the node's sumdb proxy.
    reqs = [r for r in node.log_lines() if "path" in r]
    sumdb = [r["path"] for r in reqs if r["endpoint"] == "sumdb"]
    assert "/sumdb/sum.golang.org/supported" in sumdb
    assert any(p.startswith("/sumdb/sum.golang.org/lookup/github.com/gin-gonic/gin@v1.9.1")
               for p in sumdb)
    assert any("/tile/" in p for p in sumdb)
    assert all(r["status"] == 200 for r in reqs), [r for r in reqs if r["status"] != 200]
    # Stored in the module-cache download layout, byte-identical to the origin's files.
    for rel in ("github.com/!burnt!sushi/toml/@v/v1.3.2.zip",
                "github.com/dgrijalva/jwt-go/@v/v3.2.0+incompatible.zip",
                "github.com/go-playground/validator/v10/@v/v10.14.0.mod",
                "github.com/chenzhuoyu/base64x/@v/v0.0.0-20221115062448-fe3a3abad311.info"):
        assert sha(node.store / rel) == sha(ORIGIN_TREE / rel), rel
    assert "v1.9.1" in (node.store / "github.com/gin-gonic/gin/@v/list").read_text()
    assert (node.store / "sumdb/sum.golang.org/supported").exists()
    # metrics reflect it
    assert node.metric("gomirror_proxy_fetches_total", result="ok") >= 30
    assert node.metric("gomirror_proxy_bytes_served_total", endpoint="zip") > 1_000_000


def test_again_with_origin_unreachable(filled, tmp_path):
    node, rc, *_ = filled
    assert rc == 0
    dead = f"http://127.0.0.1:{closed_port()}"
    n2 = Node(tmp_path, upstream=dead, store=node.store,
              extra={"NetworkMode": "fallback"}, name="dead-upstream")
    try:
        t0 = time.monotonic()
        rc2, mods, err, _ = go_download_all(n2.url)
        assert rc2 == 0, err
        assert len(mods) == len(filled[2])
        assert time.monotonic() - t0 < 120
        st, _, body = n2.get("/github.com/gin-gonic/gin/@v/list")
        assert st == 200 and b"v1.9.1" in body
        st, _, body = n2.get("/github.com/gin-gonic/gin/@latest")
        assert st == 200 and json.loads(body)["Version"] == "v1.9.1"
        st, _, body = n2.get("/readyz")
        assert st == 503 and b"unreachable" in body
    finally:
        n2.stop()


def test_store_replica_usable_with_goproxy_file(filled):
    """The store is servable as-is: GOPROXY=file:// with the default checksum database."""
    node, rc, *_ = filled
    assert rc == 0
    rc2, mods, err, _ = go_download_all(f"file://{node.store}")
    assert rc2 == 0, err


def test_protocol_answers_and_headers(filled):
    node, rc, *_ = filled
    st, h, body = node.get("/github.com/!burnt!sushi/toml/@v/v1.3.2.info")
    assert st == 200 and json.loads(body)["Version"] == "v1.3.2"
    assert "immutable" in h["Cache-Control"] and h["Content-Type"] == "application/json"
    # go itself percent-encodes '!' in requests
    st, _, _ = node.get("/github.com/%21burnt%21sushi/toml/@v/v1.3.2.mod")
    assert st == 200
    st, h, body = node.get("/github.com/!burnt!sushi/toml/@v/list")
    assert st == 200 and "v1.3.2" in body.decode().split()
    assert "max-age=2" in h["Cache-Control"]
    st, h, body = node.get("/github.com/chenzhuoyu/base64x/@v/list")
    assert st == 200 and "v0.0.0-" not in body.decode()  # pseudo-versions never listed
    st, h, body = node.get("/github.com/dgrijalva/jwt-go/@latest")
    assert st == 200 and json.loads(body)["Version"] == "v3.2.0+incompatible"
    st, h, _ = node.get("/github.com/gin-gonic/gin/@v/v0.0.1.info")
    assert st == 404 and h["Cache-Control"] == "public, max-age=10"
    zip_rel = "github.com/go-playground/validator/v10/@v/v10.14.0.zip"
    st, h, body = node.get("/" + zip_rel, method="HEAD")
    assert st == 200 and h["Content-Type"] == "application/zip"
    assert body == b"" and int(h["Content-Length"]) == (ORIGIN_TREE / zip_rel).stat().st_size
    # operations
    assert node.get("/healthz")[0] == 200
    st, _, body = node.get("/readyz")
    assert st == 200 and json.loads(body)["ready"] is True
    assert json.loads(node.get("/version")[2])["name"] == "gomirror-proxy"
    st, _, body = node.get("/catalog?pagesize=5")
    page = json.loads(body)
    assert st == 200 and len(page["modules"]) == 5 and page["next"]
    assert set(page["modules"][0]) == {"module", "version"}
    seen = [(m["module"], m["version"]) for m in page["modules"]]
    token = page["next"]
    while token:
        page = json.loads(node.get(f"/catalog?pagesize=7&token={quote(token)}")[2])
        seen += [(m["module"], m["version"]) for m in page["modules"]]
        token = page.get("next")
    assert len(seen) == len(set(seen)) == 36
    assert ("github.com/BurntSushi/toml", "v1.3.2") in seen
    st, _, body = node.get("/metrics")
    text = body.decode()
    for name in ("gomirror_proxy_requests_total{endpoint=\"zip\",status=\"200\"}",
                 "gomirror_proxy_store_lookups_total{result=\"hit\"}",
                 "gomirror_proxy_fetch_duration_seconds_count",
                 "gomirror_proxy_fetches_in_flight", "gomirror_proxy_bytes_served_total"):
        assert name in text
    assert node.get("/catalog?pagesize=0")[0] == 400
    assert node.get("/sumdb/sum.golang.org/latest")[0] == 200
    assert node.get("/sumdb/other.example.org/supported")[0] == 404


def test_go_list_versions_through_node(filled, tmp_path):
    node, *_ = filled
    r = subprocess.run([GO, "list", "-m", "-versions", "-json", "github.com/gin-gonic/gin"],
                       cwd=tmp_path, env=go_env(tmp_path, node.url, GOFLAGS=""),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "v1.9.1" in json.loads(r.stdout)["Versions"]

