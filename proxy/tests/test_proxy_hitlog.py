"""The nginx front of roles/proxy_node in front of a real node: hits from the disk store at
nginx speed, everything else through the node, hits reported back over the hit log.

The front's nginx.conf is rendered from the role's own template and defaults (only paths,
ports and the worker user are the test's), so these tests prove the deployed config."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import jinja2
import pytest
import yaml

from proxyhelpers import REPO, closed_port, http, nodes, origin, wait_for  # noqa: F401

ROLE = REPO / "roles/proxy_node"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
REQUESTS = "gomirror_proxy_requests_total"
FRONT_HITS = "gomirror_proxy_front_hits_total"

# Three small versions of the hermetic origin (zips of 12.4 KB, 12.5 KB and 8.5 KB).
DIFFLIB = "github.com/pmezard/go-difflib"
OLD, NEW = "v1.0.0", "v1.0.1-0.20181226105442-5d4384ee4fb2"
SSE, SSE_V = "github.com/gin-contrib/sse", "v0.1.0"

pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed")


def render_front(tmp: Path, *, store: Path, port: int, backend: int, socket: str,
                 **overrides) -> Path:
    """The role's front-nginx.conf.j2 with the role's defaults, as Ansible renders it."""
    values = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    values.update({
        "ansible_managed": "rendered by test_proxy_hitlog.py",
        "proxy_node_listen_address": "127.0.0.1",
        "proxy_node_port": port,
        "proxy_node_backend_port": backend,
        "proxy_node_storage_disk_root": str(store),
        # The role's internals (vars/main.yml) that name host paths and the worker user.
        "_proxy_node_front_user": "root",
        "_proxy_node_front_pid": str(tmp / "nginx.pid"),
        "_proxy_node_front_error_log": str(tmp / "error.log"),
        "_proxy_node_front_temp_dir": str(tmp),
        "_proxy_node_front_htpasswd": str(tmp / "htpasswd"),
        "_proxy_node_front_hit_log_socket": socket,
        "_proxy_node_front_tls_cert": str(tmp / "tls.crt"),
        "_proxy_node_front_tls_key": str(tmp / "tls.key"),
    })
    values.update(overrides)
    # Ansible's template module: trim_blocks on, undefined variables are errors; nginx.conf
    # is not HTML, so no autoescaping.
    env = jinja2.Environment(trim_blocks=True, undefined=jinja2.StrictUndefined,  # noqa: S701
                             keep_trailing_newline=True)
    text = env.from_string((ROLE / "templates/front-nginx.conf.j2").read_text()).render(values)
    if values["proxy_node_basic_auth_user"]:
        htpasswd = env.from_string((ROLE / "templates/front-htpasswd.j2").read_text())
        (tmp / "htpasswd").write_text(htpasswd.render(values))
    conf = tmp / "nginx.conf"
    conf.write_text(text)
    return conf


class Front:
    """nginx on loopback running a rendered front config, in the foreground."""

    def __init__(self, conf: Path, port: int):
        test = subprocess.run([NGINX, "-t", "-q", "-c", str(conf)], capture_output=True,
                              text=True)
        assert test.returncode == 0, test.stderr
        self.proc = subprocess.Popen([NGINX, "-c", str(conf), "-g", "daemon off;"],
                                     stderr=subprocess.PIPE)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 10
        while time.time() < deadline:
            assert self.proc.poll() is None, self.proc.stderr.read().decode()
            try:
                http(self.url + "/healthz", timeout=2)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    def get(self, path: str, **kw):
        return http(self.url + path, **kw)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def front_env(tmp_path, nodes, origin):  # noqa: F811
    """start(**template overrides, node_extra=...) -> (front, node)."""
    started = []
    sockdir = Path(tempfile.mkdtemp(prefix="gmhit-"))  # short: a socket path is <= 107 bytes

    def start(node_extra=None, **overrides):
        front_port, backend = closed_port(), closed_port()
        socket = str(sockdir / "hit.sock")
        extra = {"Port": f"127.0.0.1:{backend}", "HitLogSocket": socket}
        extra.update(node_extra or {})
        d = tmp_path / "front"
        d.mkdir()
        store = tmp_path / "store"
        node = nodes(extra=extra, store=store, tables={"Storage.Disk": {
            "RootPath": str(store), **overrides.pop("disk", {})}})
        conf = render_front(d, store=node.store, port=front_port, backend=node.port,
                            socket=socket, **overrides)
        front = Front(conf, front_port)
        started.append(front)
        return front, node

    yield start
    for f in started:
        f.stop()
    shutil.rmtree(sockdir, ignore_errors=True)


def vpath(module: str, version: str, ext: str) -> str:
    return f"/{module}/@v/{version}.{ext}"


def wait_metric(node, name: str, want: float, **labels) -> float:
    """The hit log is asynchronous (a datagram): wait briefly for the count to arrive."""
    deadline = time.time() + 5
    while True:
        got = node.metric(name, absent=0, **labels)
        if got >= want or time.time() > deadline:
            return got
        time.sleep(0.05)


def node_requests(node, endpoint: str, status: str = "200") -> float:
    return node.metric(REQUESTS, absent=0, endpoint=endpoint, status=status)


def node_total_requests(node) -> float:
    """Every request the node answered, except the /metrics reads of the test itself."""
    body = node.get("/metrics")[2].decode()
    return sum(float(line.split()[-1]) for line in body.splitlines()
               if line.startswith(REQUESTS + "{") and 'endpoint="metrics"' not in line)


def test_a_hit_is_served_by_nginx_with_the_nodes_bytes_and_headers(front_env):
    front, node = front_env()
    # The miss goes to the node, which fetches the version and answers.
    before = node_requests(node, "zip")
    status, _, zip_body = front.get(vpath(DIFFLIB, OLD, "zip"))
    assert status == 200
    assert node_requests(node, "zip") == before + 1
    assert node.metric("gomirror_proxy_store_lookups_total", absent=0, result="miss") >= 1

    for ext in ("info", "mod", "zip"):
        p = vpath(DIFFLIB, OLD, ext)
        n_before = node_requests(node, ext)
        hits_before = node.metric(FRONT_HITS, absent=0, endpoint=ext)
        fs, fh, fb = front.get(p)
        assert node_requests(node, ext) == n_before, f"{ext}: the node answered a hit"
        ns, nh, nb = node.get(p)  # the node's own answer, on its backend port
        assert (fs, fb) == (ns, nb) == (200, (Path(node.store) / p[1:]).read_bytes())
        for h in ("Content-Type", "Cache-Control", "Content-Length"):
            assert fh[h] == nh[h], f"{ext}: {h}: front {fh[h]!r}, node {nh[h]!r}"
        # HEAD: same headers, no body.
        hs, hh, hb = front.get(p, method="HEAD")
        assert (hs, hb, hh["Content-Length"], hh["Cache-Control"]) == (
            200, b"", nh["Content-Length"], nh["Cache-Control"])
        # Both answers reached the node over the hit log, as front hits.
        assert wait_metric(node, FRONT_HITS, hits_before + 2, endpoint=ext) == hits_before + 2
    assert hashlib.sha256(fb).digest() == hashlib.sha256(zip_body).digest()

    # Served by nginx alone: with the node stopped the stored zip still answers.
    node.stop()
    status, _, body = front.get(vpath(DIFFLIB, OLD, "zip"))
    assert (status, body) == (200, zip_body)
    assert front.get(vpath(SSE, SSE_V, "zip"))[0] == 502  # a miss needs the node


def test_a_miss_goes_to_the_node_and_the_next_request_is_a_front_hit(front_env):
    front, node = front_env()
    p = vpath(SSE, SSE_V, "info")
    status, headers, _ = front.get(p)
    assert status == 200
    assert node_requests(node, "info") == 1
    # Answered as soon as the upstream's .info arrived: until its zip is verified and the
    # version stored, nothing may keep that answer.
    if not (Path(node.store) / p[1:]).exists():
        assert headers["Cache-Control"] == "no-store"
    assert wait_for((Path(node.store) / p[1:]).exists, 30)
    status, headers, body = front.get(p)
    assert status == 200
    assert node_requests(node, "info") == 1
    assert body == (Path(node.store) / p[1:]).read_bytes()


def test_the_node_logs_who_the_front_forwarded_a_miss_for(front_env):
    front, node = front_env()
    assert front.get(vpath(DIFFLIB, OLD, "zip"), headers={"X-Forwarded-For": "192.0.2.7"})[0] \
        == 200
    lines = [r for r in node.log_lines() if r.get("endpoint") == "zip"]
    assert lines and lines[-1]["remote"] == "127.0.0.1"
    # The front appends the address it saw (this test's loopback) to what it was given.
    assert lines[-1]["forwarded_for"] == "192.0.2.7, 127.0.0.1"


def test_info_without_its_zip_goes_to_the_node(front_env):
    front, node = front_env()
    assert front.get(vpath(DIFFLIB, OLD, "zip"))[0] == 200  # stored whole
    # A .info whose .zip is absent (a seed's listed-only version, a half-evicted one).
    store = Path(node.store) / DIFFLIB / "@v"
    (store / "v1.0.0.zip").rename(store / "moved-away.zip")
    n = node_requests(node, "info")
    front.get(vpath(DIFFLIB, OLD, "info"))
    assert node_requests(node, "info") == n + 1


def test_list_latest_lookups_and_partial_tiles_are_never_static(front_env):
    front, node = front_env()
    assert front.get(vpath(DIFFLIB, NEW, "zip"))[0] == 200
    listed = Path(node.store) / DIFFLIB / "@v/list"
    assert listed.exists()  # a file the front could serve, and must not
    for path, endpoint in ((f"/{DIFFLIB}/@v/list", "list"), (f"/{DIFFLIB}/@latest", "latest"),
                           (f"/{DIFFLIB}/@v/master.info", "query"),
                           ("/sumdb/sum.golang.org/latest", "sumdb"),
                           (f"/sumdb/sum.golang.org/lookup/{DIFFLIB}@{NEW}", "sumdb")):
        before = sum(node.metric(REQUESTS, absent=0, endpoint=endpoint, status=s)
                     for s in ("200", "404", "410", "502"))
        status, headers, _ = front.get(path)
        after = sum(node.metric(REQUESTS, absent=0, endpoint=endpoint, status=s)
                    for s in ("200", "404", "410", "502"))
        assert after == before + 1, f"{path} ({status}) did not reach the node"
    # Partial tiles stored by the node stay the node's (they change with every tree head).
    partial = sorted((Path(node.store) / "sumdb/sum.golang.org").rglob("*.p/*"))
    if partial:
        sub = partial[0].relative_to(node.store).as_posix()
        before = node.metric(REQUESTS, absent=0, endpoint="sumdb", status="200")
        front.get("/" + sub)
        assert node.metric(REQUESTS, absent=0, endpoint="sumdb", status="200") == before + 1
    # A full tile: the first request goes to the node (it verifies and stores it), the
    # next ones are the front's.
    sub = "/sumdb/sum.golang.org/tile/8/2/000"
    assert front.get(sub)[0] == 200
    assert (Path(node.store) / sub[1:]).is_file()
    before = node.metric(REQUESTS, absent=0, endpoint="sumdb", status="200")
    fs, fh, fb = front.get(sub)
    assert node.metric(REQUESTS, absent=0, endpoint="sumdb", status="200") == before
    ns, nh, nb = node.get(sub)
    assert (fs, fb, fh["Cache-Control"], fh["Content-Type"]) == (
        ns, nb, nh["Cache-Control"], nh["Content-Type"])
    assert node.metric(REQUESTS, absent=0, endpoint="sumdb", status="200") == before + 1


def test_traversal_hidden_files_and_other_methods_never_reach_the_store(front_env):
    front, node = front_env()
    assert front.get(vpath(DIFFLIB, OLD, "zip"))[0] == 200
    root = Path(node.store)
    secret = b"not for clients\n"
    for hidden in (".hidden/@v/v1.0.0.zip", ".tmp/x/@v/v1.0.0.zip", ".locks/@v/v1.0.0.mod",
                   f"{DIFFLIB}/@v/.v1.0.0.zip"):
        (root / hidden).parent.mkdir(parents=True, exist_ok=True)
        (root / hidden).write_bytes(secret)
    zip_body = (root / DIFFLIB / "@v" / f"{OLD}.zip").read_bytes()
    for path in ("/.hidden/@v/v1.0.0.zip", "/.tmp/x/@v/v1.0.0.zip", "/.locks/@v/v1.0.0.mod",
                 f"/{DIFFLIB}/@v/.v1.0.0.zip",
                 f"/{DIFFLIB}/@v/../../../../.hidden/@v/v1.0.0.zip",
                 f"/x/../{DIFFLIB}/@v/{OLD}.zip",  # nginx would normalise this to a hit
                 f"/{DIFFLIB}//@v/{OLD}.zip"):
        before = node_total_requests(node)
        status, headers, body = front.get(path)
        assert body != secret and body != zip_body, path
        assert status in (400, 404), f"{path}: {status}"
        assert node_total_requests(node) == before + 1, f"{path} did not reach the node"
    # Above the root: nginx refuses it itself.
    status, _, body = front.get("/%2e%2e/%2e%2e/etc/passwd")
    assert status == 400 and b"root:" not in body
    # Percent-encoding is the node's to decode (here it names the stored zip).
    before = node_total_requests(node)
    assert front.get(f"/{DIFFLIB}/@v/%76{OLD[1:]}.zip")[2] == zip_body
    assert node_total_requests(node) == before + 1
    # Only GET and HEAD are static: anything else is the node's 405.
    before = node_total_requests(node)
    status, headers, _ = front.get(vpath(DIFFLIB, OLD, "zip"), method="POST", data=b"")
    assert status == 405
    assert node_total_requests(node) == before + 1


def test_the_hit_log_keeps_least_recently_served_order(front_env):
    """Bound the store so a third version evicts one: without the front's hit reaching
    store.touch(), the oldest-written version would go; with it, the one not served."""
    # OLD + NEW (~25 KB) fit; + SSE (~8.5 KB) is over 30 KB, and one eviction is enough.
    front, node = front_env(disk={"MaxBytes": 30000})
    v = Path(node.store)
    assert front.get(vpath(DIFFLIB, OLD, "zip"))[0] == 200
    assert front.get(vpath(DIFFLIB, NEW, "zip"))[0] == 200
    # OLD is now the least recently served; a front hit makes it the most recent.
    hits = node.metric(FRONT_HITS, absent=0, endpoint="zip")
    n = node_requests(node, "zip")
    assert front.get(vpath(DIFFLIB, OLD, "zip"))[0] == 200
    assert node_requests(node, "zip") == n
    assert wait_metric(node, FRONT_HITS, hits + 1, endpoint="zip") == hits + 1
    assert front.get(vpath(SSE, SSE_V, "zip"))[0] == 200  # written through the node
    assert node.metric("gomirror_proxy_store_evictions_total") == 1
    assert (v / DIFFLIB / "@v" / f"{OLD}.info").exists(), "the front-served version was evicted"
    assert not (v / DIFFLIB / "@v" / f"{NEW}.info").exists()


def test_basic_auth_is_enforced_by_the_front_with_the_nodes_answers(front_env):
    user, password = "gomirror", "s3cret pass"
    front, node = front_env(
        node_extra={"BasicAuthUser": user, "BasicAuthPass": password},
        proxy_node_basic_auth_user=user, proxy_node_basic_auth_password=password)
    auth = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    wrong = {"Authorization": "Basic " + base64.b64encode(f"{user}:nope".encode()).decode()}
    p = vpath(DIFFLIB, OLD, "zip")
    assert front.get(p, headers=auth)[0] == 200  # the miss, through the node
    fs, fh, fb = front.get(p, headers=auth)
    ns, nh, nb = node.get(p, headers=auth)
    assert (fs, fb) == (ns, nb)
    assert fh["Cache-Control"] == nh["Cache-Control"] == "private, max-age=31536000, immutable"
    for headers in ({}, wrong):
        status, h, body = front.get(p, headers=headers)
        ns, nh, nbody = node.get(p, headers=headers)
        assert (status, body) == (ns, nbody) == (401, b"unauthorized\n")
        assert h.get_all("WWW-Authenticate") == nh.get_all("WWW-Authenticate")
        assert h["Cache-Control"] == nh["Cache-Control"]
    assert front.get("/healthz")[0] == 200  # the node's unauthenticated endpoints stay so
    # The authenticated hit is nginx's own: it still answers with the node stopped, and a
    # refused one is never served from the store.
    node.stop()
    status, h, body = front.get(p, headers=auth)
    assert (status, body, h["Cache-Control"]) == (200, fb, fh["Cache-Control"])
    assert front.get(p, headers=wrong)[0] == 502


@pytest.mark.parametrize("overrides", [
    {"proxy_node_storage_type": "s3"},
    {"proxy_node_exclude_patterns": ["github.com/pmezard/*"]},
], ids=["s3", "exclusions"])
def test_without_a_servable_store_the_front_passes_everything(tmp_path, overrides):
    """S3 has no files to send; exclusions are the node's to apply (403 even when stored)."""
    conf = render_front(tmp_path, store=tmp_path, port=closed_port(), backend=closed_port(),
                        socket=str(tmp_path / "s"), **overrides)
    text = conf.read_text()
    test = subprocess.run([NGINX, "-t", "-q", "-c", str(conf)], capture_output=True, text=True)
    assert test.returncode == 0, test.stderr
    assert "try_files" not in text and "/@v/" not in text and "syslog:" not in text
    assert "proxy_pass http://gomirror_node;" in text


@pytest.mark.parametrize("value, message", [
    ("hit.sock", "must be an absolute path"),
    ("/" + "x" * 120, "longer than 107 bytes"),
    (7, "must be a string"),
])
def test_a_bad_hit_log_socket_is_refused_naming_the_key(value, message):
    from gomirror_proxy.config import ConfigError, parse

    with pytest.raises(ConfigError, match=message) as e:
        parse({"HitLogSocket": value, "Storage": {"Disk": {"RootPath": "/srv/store"}}},
              check_paths=False)
    assert e.value.key == "HitLogSocket"


def test_hit_records_are_parsed_and_anything_else_is_ignored():
    from gomirror_proxy.hitlog import parse

    rec = (b"<190>Dec  2 01:00:00 gomirror_front: "
           b"gmhit /github.com/!burnt!sushi/toml/@v/v1.3.2.zip 1234")
    assert parse(rec) == ("github.com/!burnt!sushi/toml", "v1.3.2", "zip", 1234)
    for bad in (b"<190>Dec  2 01:00:00 x: gmhit /a/@v/list 5", b"gmhit /sumdb/x/@v/v1.0.0.zip 1",
                b"gmhit /a/@v/v1.0.0.zip", b"hello", b"gmhit /a/@v/v1.0.0.zip 1 2"):
        assert parse(bad) is None, bad
