#!/usr/bin/env python3
"""Benchmark report for gomirror-proxy (a report, not a test): `make bench-proxy`.

Everything runs on loopback against the hermetic origin (real nginx):
  1. store hits: requests/s and p50/p99 latency (wrk) for an .info, a .mod and a ~5 MB .zip,
     through a node vs nginx serving the same store directory as static files;
  2. cold full-graph `go mod download all` (empty module cache) through a fresh node vs
     straight from the origin;
  3. warm: through the node that holds everything vs GOPROXY=file:// of its store.
The result replaces the "gomirror-proxy" section of the report file (markdown).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ORIGIN = os.environ.get("GOMIRROR_ORIGIN_URL", "http://127.0.0.1:18080").rstrip("/")
WORKLOAD = REPO / "harness/origin/workload/go.mod"
BEGIN, END = "<!-- bench-proxy:begin -->", "<!-- bench-proxy:end -->"
HITS = [
    ("info", "/github.com/gin-gonic/gin/@v/v1.9.1.info"),
    ("mod", "/github.com/gin-gonic/gin/@v/v1.9.1.mod"),
    ("zip (~5 MB)", "/github.com/go-playground/locales/@v/v0.14.1.zip"),
]


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def start_node(tmp: Path, store: Path, upstream: str) -> tuple[subprocess.Popen, str]:
    cfg = tmp / "node.toml"
    cfg.write_text(
        f'Port = "127.0.0.1:0"\nLogLevel = "warning"\nGoGetDir = "{tmp}/work"\n'
        f'GoBinaryEnvVars = ["GOPROXY={upstream}"]\n'
        f'SumDBUpstreams = {{ "sum.golang.org" = "{upstream}/sumdb/sum.golang.org" }}\n'
        f'[Storage.Disk]\nRootPath = "{store}"\n'
    )
    exe = Path(sys.executable).parent / "gomirror-proxy"
    log = tmp / "node.log"
    proc = subprocess.Popen([str(exe), "serve", "-c", str(cfg)], stdout=open(log, "wb"),  # noqa: SIM115
                            stderr=subprocess.STDOUT)
    deadline = time.time() + 20
    while time.time() < deadline:
        for line in log.read_text().splitlines():
            if '"listening"' in line:
                return proc, f"http://127.0.0.1:{json.loads(line)['port']}"
        if proc.poll() is not None:
            raise RuntimeError(log.read_text())
        time.sleep(0.05)
    raise RuntimeError("node did not start")


def start_nginx(tmp: Path, root: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    d = tmp / "nginx"
    d.mkdir()
    conf = d / "nginx.conf"
    conf.write_text(f"""
user root;
worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on; tcp_nopush on; keepalive_timeout 65; keepalive_requests 100000;
  client_body_temp_path {d}/cb; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f;
  uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;
  server {{ listen 127.0.0.1:{port}; root {root}; default_type application/octet-stream; }}
}}
""")
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-g", "daemon off;"])
    url = f"http://127.0.0.1:{port}"
    wait_http(url + HITS[0][1])
    return proc, url


def wrk(url: str, duration: int, conns: int) -> dict:
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{duration}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p: str) -> str:
        m = re.search(rf"^\s+{p}%\s+(\S+)", out, re.M)
        return m.group(1) if m else "?"

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p50": pct("50"), "p99": pct("99"),
            "errors": int(non2xx.group(1)) if non2xx else 0}


def go_download_all(goproxy: str, runs: int = 1) -> list[float]:
    times = []
    for _ in range(runs):
        tmp = Path(tempfile.mkdtemp(prefix="bench-go-"))
        try:
            (tmp / "p").mkdir()
            shutil.copy(WORKLOAD, tmp / "p/go.mod")
            env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
            env.update(GOPROXY=goproxy, GOMODCACHE=str(tmp / "mc"), GOPATH=str(tmp / "gp"),
                       GOCACHE=str(tmp / "gc"), GOFLAGS="-mod=mod -modcacherw",
                       GOTOOLCHAIN="local", GOTELEMETRY="off", GOENV="off")
            t0 = time.monotonic()
            r = subprocess.run(["go", "mod", "download", "all"], cwd=tmp / "p", env=env,
                               capture_output=True, text=True)
            dt = time.monotonic() - t0
            if r.returncode != 0:
                raise RuntimeError(f"go mod download via {goproxy} failed: {r.stderr}")
            times.append(dt)
        finally:
            subprocess.run(["chmod", "-R", "u+w", str(tmp)], check=False)
            shutil.rmtree(tmp, ignore_errors=True)
    return times


def fmt_s(ts: list[float]) -> str:
    med = statistics.median(ts)
    return f"{med:.2f} s" + (f" (median of {len(ts)})" if len(ts) > 1 else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--report", default=str(REPO / "docs/benchmarks.md"))
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3, help="runs of each go mod download")
    a = ap.parse_args()
    wait_http(ORIGIN + "/healthz", 5)
    tmp = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    procs: list[subprocess.Popen] = []
    try:
        store = tmp / "store"
        # cold: a fresh node (empty store) per run vs the origin directly
        cold_node = []
        for i in range(a.runs):
            run_dir = tmp / f"cold{i}"
            run_dir.mkdir()
            p, url = start_node(run_dir, run_dir / "store", ORIGIN)
            try:
                cold_node += go_download_all(url)
            finally:
                p.send_signal(signal.SIGTERM)
                p.wait(30)
        cold_origin = go_download_all(ORIGIN, a.runs)
        # warm: the node that holds the graph vs file:// of its store
        p, node_url = start_node(tmp, store, ORIGIN)
        procs.append(p)
        go_download_all(node_url)  # fill
        warm_node = go_download_all(node_url, a.runs)
        warm_file = go_download_all(f"file://{store}", a.runs)
        # store hits: node vs nginx on the same directory
        ng, ng_url = start_nginx(tmp, store)
        procs.append(ng)
        rows = []
        for name, path in HITS:
            n = wrk(node_url + path, a.duration, a.connections)
            s = wrk(ng_url + path, a.duration, a.connections)
            rows.append((name, n, s))
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM if p.args[0] != "nginx" else signal.SIGQUIT)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
        subprocess.run(["chmod", "-R", "u+w", str(tmp)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)

    cpu = os.cpu_count()
    lines = [
        BEGIN,
        "## gomirror-proxy",
        "",
        f"Generated by `make bench-proxy` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        f", {platform.machine()}, {cpu} cores, Python {platform.python_version()}). Loopback "
        "only; the node, nginx, wrk and the go client share the same cores, so absolute "
        "numbers are a lower bound. Node access log off (LogLevel = \"warning\").",
        "",
        f"### Store hits (wrk -t2 -c{a.connections} -d{a.duration}s)",
        "",
        "| file | node req/s | node p50 | node p99 | nginx req/s | nginx p50 | nginx p99 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, n, s in rows:
        lines.append(f"| {name} | {n['rps']:.0f} | {n['p50']} | {n['p99']} | {s['rps']:.0f} "
                     f"| {s['p50']} | {s['p99']} |")
    lines += [
        "",
        "### Full graph of the pinned workload (`go mod download all`, empty module cache)",
        "",
        "| case | through the node | reference |",
        "| --- | ---: | ---: |",
        f"| cold (node store empty) vs straight from the origin | {fmt_s(cold_node)} "
        f"| {fmt_s(cold_origin)} |",
        f"| warm (node holds everything) vs GOPROXY=file:// of its store | {fmt_s(warm_node)} "
        f"| {fmt_s(warm_file)} |",
        "",
        "Cold through the node includes one `go mod download` run per module version on the "
        "node (as Athens does), its checksum-database verification, and the client's own.",
        END,
    ]
    section = "\n".join(lines) + "\n"
    report = Path(a.report)
    old = report.read_text() if report.exists() else "# Benchmarks\n\n"
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + section + old[old.index(END) + len(END) + 1 :]
    else:
        new = old.rstrip("\n") + "\n\n" + section
    report.write_text(new)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
