"""gomirror_probe (module_utils) and gomirror_proxy_probe (module) against a real HTTP
server on loopback serving a GOPROXY file tree with a real module zip.  The h1: hash
is cross-checked with the go command itself (go mod download -json, file:// GOPROXY)."""

import io
import json
import os
import shutil
import subprocess
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from gomirror_testlib import REPO, free_port, run_tasks
from module_utils import gomirror_probe as gp

MODULE = "example.com/GoMirror/canary"
ESCAPED = "example.com/!go!mirror/canary"
VERSION = "v1.0.0"
GOMOD = b"module example.com/GoMirror/canary\n\ngo 1.21\n"
FILES = {
    "go.mod": GOMOD,
    "canary.go": b'package canary\n\n// Hello is the canary.\nconst Hello = "hello"\n',
    "LICENSE": b"Public domain canary for gomirror probe tests.\n",
    "internal/data/x.txt": b"some data\n" * 50,
    "README.md": b"# canary\n",
}


def make_zip(files=FILES, module=MODULE, version=VERSION):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(f"{module}@{version}/{name}", data)
    return buf.getvalue()


@pytest.fixture(scope="module")
def proxy_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("goproxy")
    vdir = root / ESCAPED / "@v"
    vdir.mkdir(parents=True)
    (vdir / "list").write_text(VERSION + "\n")
    (vdir / (VERSION + ".info")).write_text(
        json.dumps({"Version": VERSION, "Time": "2024-01-02T03:04:05Z"})
    )
    (vdir / (VERSION + ".mod")).write_bytes(GOMOD)
    (vdir / (VERSION + ".zip")).write_bytes(make_zip())
    # a version whose zip is served with wrong content
    (vdir / "v1.0.1.info").write_text(json.dumps({"Version": "v1.0.1"}))
    (vdir / "v1.0.1.mod").write_bytes(GOMOD)
    (vdir / "v1.0.1.zip").write_bytes(
        make_zip(dict(FILES, **{"canary.go": b"tampered\n"}), version="v1.0.1")
    )
    # a proxy answering .info for another version (a broken cache key)
    (vdir / "v1.0.2.info").write_text(json.dumps({"Version": "v1.0.0"}))
    (vdir / "v1.0.3.info").write_text("<html>not json</html>")
    return root


@pytest.fixture(scope="module")
def go_sum(proxy_tree, tmp_path_factory):
    """The h1: hash the go command computes for our zip."""
    go = shutil.which("go")
    if not go:
        pytest.skip("go command not on PATH")
    work = tmp_path_factory.mktemp("gowork")
    env = dict(
        os.environ,
        GOPROXY=f"file://{proxy_tree}",
        GONOSUMDB="*",
        GOFLAGS="-mod=mod",
        GOMODCACHE=str(work / "modcache"),
        GOPATH=str(work / "gopath"),
        GOTOOLCHAIN="local",
        GOTELEMETRY="off",
        GOCACHE=str(work / "gocache"),
    )
    try:
        proc = subprocess.run(
            [go, "mod", "download", "-json", f"{MODULE}@{VERSION}"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        info = json.loads(proc.stdout)
        yield info["Sum"]
    finally:
        subprocess.run(
            [go, "clean", "-modcache"],
            cwd=work,
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )


class Handler(SimpleHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server API
        srv = self.server
        srv.requests.append(self.path)
        if srv.fail_next > 0:
            srv.fail_next -= 1
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def proxy_url(proxy_tree):
    port = free_port()

    def handler(*a, **kw):
        return Handler(*a, directory=str(proxy_tree), **kw)

    srv = ThreadingHTTPServer(("127.0.0.1", port), handler)
    srv.requests = []
    srv.fail_next = 0
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{port}", srv
    srv.shutdown()
    srv.server_close()


# --------------------------------------------------------------------------- dirhash
def test_h1_matches_go_command(go_sum):
    assert go_sum.startswith("h1:")
    assert gp.dirhash_h1_zip(make_zip()) == go_sum


def test_h1_matches_go_module_cache_ziphash():
    """Every zip the go command put in the project's module cache, with its .ziphash."""
    roots = [REPO / ".cache" / "gomodcache" / "cache" / "download"]
    pairs = []
    for root in roots:
        if root.is_dir():
            pairs += [
                (z, z.with_suffix(".ziphash"))
                for z in sorted(root.rglob("*.zip"))
                if z.with_suffix(".ziphash").exists()
            ]
    if not pairs:
        pytest.skip("no go module cache with .ziphash files")
    for zpath, hpath in pairs[:8]:
        assert gp.dirhash_h1_zip(str(zpath)) == hpath.read_text().strip(), zpath


def test_h1_independent_of_zip_order_and_sensitive_to_content():
    files = list(FILES.items())
    a = gp.dirhash_h1_files(files)
    b = gp.dirhash_h1_files(list(reversed(files)))
    assert a == b
    assert gp.dirhash_h1_files(files[:-1]) != a
    with pytest.raises(ValueError, match="newline"):
        gp.dirhash_h1_files([("a\nb", b"")])


@pytest.mark.parametrize(
    ("base", "module", "version", "info"),
    [
        ("http://p/", "golang.org/x/text", "v0.3.0", "http://p/golang.org/x/text/@v/v0.3.0.info"),
        ("http://p", MODULE, "v1.0.0-RC1", f"http://p/{ESCAPED}/@v/v1.0.0-!r!c1.info"),
    ],
)
def test_module_urls(base, module, version, info):
    assert gp.module_urls(base, module, version)["info"] == info


# --------------------------------------------------------------------------- probe()
def test_probe_healthy_with_zip_hash(proxy_url, go_sum):
    url, _srv = proxy_url
    res = gp.probe(url, MODULE, VERSION, timeout=5, expected_h1=go_sum)
    assert res["healthy"] is True, res["failure_reason"]
    assert res["statuses"] == {"info": 200, "mod": 200, "zip": 200}
    assert set(res["latency_ms"]) == {"info", "mod", "zip"}
    assert all(v >= 0 for v in res["latency_ms"].values())
    assert res["h1"] == go_sum


@pytest.mark.parametrize(
    ("version", "kwargs", "reason"),
    [
        ("v9.9.9", {}, "info: HTTP 404 (expected 200)"),
        ("v1.0.1", {"expected_h1": "h1:AAAA"}, "zip: hash mismatch: got h1:"),
        ("v1.0.2", {}, "info: Version is 'v1.0.0', expected 'v1.0.2'"),
        ("v1.0.3", {}, "info: not JSON"),
        ("v1.0.0", {"expected_status": [204]}, "info: HTTP 200 (expected 204)"),
    ],
)
def test_probe_unhealthy(proxy_url, version, kwargs, reason):
    url, _srv = proxy_url
    res = gp.probe(url, MODULE, version, timeout=5, **kwargs)
    assert res["healthy"] is False
    assert res["failure_reason"].startswith(reason), res["failure_reason"]


def test_probe_retries_then_succeeds(proxy_url):
    url, srv = proxy_url
    srv.fail_next = 2
    res = gp.probe(url, MODULE, VERSION, timeout=5, retries=2, retry_delay=0.01)
    assert res["healthy"] is True
    assert res["steps"][0]["attempts"] == 3
    srv.fail_next = 2
    res = gp.probe(url, MODULE, VERSION, timeout=5, retries=1, retry_delay=0.01)
    assert res["healthy"] is False
    assert res["statuses"]["info"] == 503
    assert res["failure_reason"] == "info: HTTP 503 (expected 200)"
    srv.fail_next = 0


def test_probe_connection_refused():
    res = gp.probe(f"http://127.0.0.1:{free_port()}", MODULE, VERSION, timeout=2)
    assert res["healthy"] is False
    assert res["statuses"] == {"info": None}
    assert "ConnectionRefusedError" in res["failure_reason"]


# --------------------------------------------------------------------------- module
def test_module_via_ansible(proxy_url, go_sum):
    url, _srv = proxy_url
    results = run_tasks(
        "gomirror_proxy_probe",
        [
            {"url": url, "module": MODULE, "version": VERSION, "expected_h1": go_sum, "timeout": 5},
            {"url": url, "module": MODULE, "version": "v1.0.1", "expected_h1": go_sum},
            {"url": url, "module": MODULE, "version": "v9.9.9", "fail_on_unhealthy": True},
            {"url": "ftp://x", "module": MODULE},
        ],
        check=True,
    )
    ok, bad_hash, missing, bad_url = results
    assert ok["changed"] is False and ok["healthy"] is True
    assert ok["h1"] == go_sum
    assert ok["statuses"] == {"info": 200, "mod": 200, "zip": 200}
    assert bad_hash["changed"] is False and bad_hash["healthy"] is False
    assert bad_hash["failure_reason"].startswith("zip: hash mismatch: got h1:")
    assert not bad_hash.get("failed")
    assert missing["failed"] is True
    assert "is unhealthy: info: HTTP 404 (expected 200)" in missing["msg"]
    assert bad_url["failed"] is True and "url must start with http" in bad_url["msg"]
