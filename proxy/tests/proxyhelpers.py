"""Helpers for the proxy tests: real nodes (subprocesses), the real go client, the origin."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache"
ORIGIN = os.environ.get("GOMIRROR_ORIGIN_URL", "http://127.0.0.1:18080").rstrip("/")
ORIGIN_LOG = Path(os.environ.get("GOMIRROR_ORIGIN_ACCESS_LOG", CACHE / "run/origin-access.log"))
ORIGIN_TREE = CACHE / "origin/tree"
WORKLOAD = REPO / "harness/origin/workload/go.mod"
GIT_LOG = CACHE / "run/git-access.log"
CA = CACHE / "pki/ca.crt"
NETRC = CACHE / "gitserver/netrc"
WITH_LAB_HOSTS = REPO / "harness/with-lab-hosts"
GO = shutil.which("go") or "go"


def http(url, *, method="GET", headers=None, timeout=60, data=None):
    """(status, headers, body) without raising on HTTP errors and without redirects."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def wait_for(pred, timeout=60.0, interval=0.05) -> bool:
    """Poll pred() until it is true (True) or timeout seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return False


def origin_up() -> bool:
    try:
        return http(ORIGIN + "/healthz", timeout=2)[0] == 200
    except OSError:
        return False


def lab_git_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.2", 443), timeout=2):
            return NETRC.exists() and CA.exists()
    except OSError:
        return False


@pytest.fixture(scope="session")
def origin():
    if not origin_up():
        if os.environ.get("GOMIRROR_REQUIRE_ORIGIN"):
            pytest.fail(f"origin {ORIGIN} is not up and GOMIRROR_REQUIRE_ORIGIN is set")
        pytest.skip(f"origin {ORIGIN} is not up (make origin-up)")
    return ORIGIN


@pytest.fixture(scope="session")
def lab_git(origin):
    if not lab_git_up():
        if os.environ.get("GOMIRROR_REQUIRE_ORIGIN"):
            pytest.fail("lab git server (127.0.0.2:443) is not up")
        pytest.skip("lab git server is not up")


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class LogTail:
    """New lines of an access log since creation."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def lines(self) -> list[str]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace").splitlines()


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


def write_config(path: Path, top: dict, tables: dict | None = None) -> Path:
    lines = [f"{k} = {toml_value(v)}" for k, v in top.items() if not isinstance(v, list)
             or not v or not isinstance(v[0], dict)]
    for k, v in top.items():
        if isinstance(v, list) and v and isinstance(v[0], dict):
            for item in v:
                lines.append(f"[[{k}]]")
                lines += [f"{ik} = {toml_value(iv)}" for ik, iv in item.items()]
    for name, tbl in (tables or {}).items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in tbl.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def proxy_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "gomirror-proxy"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "gomirror_proxy.cli"]


def paused_after_cmd(ext: str, seconds: float) -> list[str]:
    """A node command whose store pauses `seconds` after installing each version's `ext`
    file (zip, mod, info): faults are injected from the test side (faultnode.py), never
    through production code."""
    return [sys.executable, str(Path(__file__).with_name("faultnode.py")), ext, str(seconds)]


class Node:
    """A gomirror-proxy serve subprocess on an ephemeral loopback port."""

    def __init__(self, tmp: Path, upstream: str | None = None, store: Path | None = None,
                 extra: dict | None = None, tables: dict | None = None, env: dict | None = None,
                 wrap: list[str] | None = None, name: str = "node",
                 cmd: list[str] | None = None):
        self.dir = tmp / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.store = store or (self.dir / "store")
        up = upstream if upstream is not None else ORIGIN
        top = {
            "Port": "127.0.0.1:0",
            "GoBinaryEnvVars": [f"GOPROXY={up}"],
            "SumDBUpstreams": {"sum.golang.org": f"{up}/sumdb/sum.golang.org"},
            "GoGetDir": str(self.dir / "work"),
            "Timeout": 120,
            "ListCacheSeconds": 2,
            "LogLevel": "info",
        }
        top.update(extra or {})
        tbls = {"Storage.Disk": {"RootPath": str(self.store)}}
        if tables is not None:
            tbls = tables
        self.config = write_config(self.dir / "config.toml", top, tbls)
        self.log = self.dir / "node.log"
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(
            [*(wrap or []), *(cmd or proxy_cmd()), "serve", "-c", str(self.config)],
            stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, env=e,  # noqa: SIM115
            start_new_session=True,  # a wrapper (with-lab-hosts) is not the node: signal the group
        )
        self.port = self._wait_listening()
        self.url = f"http://127.0.0.1:{self.port}"

    def _wait_listening(self) -> int:
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node exited {self.proc.returncode}: {self.log.read_text()}")
            for line in self.log.read_text(errors="replace").splitlines():
                if '"listening"' in line:
                    return json.loads(line)["port"]
            time.sleep(0.05)
        raise RuntimeError("node did not start: " + self.log.read_text())

    def get(self, path: str, **kw):
        return http(self.url + path, **kw)

    def log_lines(self) -> list[dict]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def metric(self, name: str, absent: float | None = None, **labels) -> float:
        """The value of one series. A metric name the node does not export always fails
        (a typo must not read as 0); a series not seen yet fails unless `absent` gives
        the value that means "never happened"."""
        body = self.get("/metrics")[2].decode()
        family = name.removesuffix("_count").removesuffix("_sum").removesuffix("_bucket")
        assert f"# TYPE {family} " in body, f"{family} is not exported:\n{body}"
        want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
                       if labels else "")
        for line in body.splitlines():
            if line.startswith(want + " "):
                return float(line.split()[-1])
        assert absent is not None, f"no series {want} in /metrics:\n{body}"
        return absent

    def stop(self, sig=signal.SIGTERM, timeout=30) -> int:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # whatever is left of the group (a wrapper's child) goes too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.returncode


@pytest.fixture
def nodes(tmp_path):
    started: list[Node] = []

    def start(**kw) -> Node:
        kw.setdefault("name", f"node{len(started)}")
        n = Node(tmp_path, **kw)
        started.append(n)
        return n

    yield start
    for n in started:
        n.stop(signal.SIGKILL if n.proc.poll() is None else signal.SIGTERM)


def go_env(tmp: Path, goproxy: str, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env.update({
        "GOPROXY": goproxy, "GOMODCACHE": str(tmp / "modcache"), "GOPATH": str(tmp / "gopath"),
        "GOCACHE": str(tmp / "gocache"), "GOFLAGS": "-mod=mod -modcacherw",
        "GOTOOLCHAIN": "local", "GOTELEMETRY": "off", "GOENV": "off", "GONOSUMDB": "",
        "GOPRIVATE": "", "GONOPROXY": "",
    })
    env.update(extra)
    return env


def go_download_all(goproxy: str, gomod_text: str | None = None, timeout=240, **extra):
    """Fresh temp dir with only go.mod, empty module cache: `go mod download all`."""
    tmp = Path(tempfile.mkdtemp(prefix="goclient-"))
    try:
        (tmp / "proj").mkdir()
        (tmp / "proj/go.mod").write_text(gomod_text or WORKLOAD.read_text())
        r = subprocess.run([GO, "mod", "download", "-json", "all"], cwd=tmp / "proj",
                           env=go_env(tmp, goproxy, **extra), capture_output=True, text=True,
                           timeout=timeout)
        mods = []
        dec = json.JSONDecoder()
        s, i = r.stdout, 0
        while i < len(s):
            while i < len(s) and s[i].isspace():
                i += 1
            if i >= len(s):
                break
            obj, i = dec.raw_decode(s, i)
            mods.append(obj)
        gosum = (tmp / "proj/go.sum").read_text() if (tmp / "proj/go.sum").exists() else ""
        return r.returncode, mods, r.stderr, gosum
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(tmp)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
