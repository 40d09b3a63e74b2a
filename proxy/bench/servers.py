"""The processes a benchmark run stands on: static nginx servers and gomirror-proxy nodes.

Every server listens on a free port (loopback, or an address inside a network namespace the
bench made) and is stopped by `stop()`; nothing outlives the run.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    # nginx finishes the requests it has on SIGQUIT; the node drains on SIGTERM.
    stop_signal: int = signal.SIGTERM

    def stop(self) -> None:
        stop(self.proc, self.stop_signal)


def start_static_nginx(workdir: Path, root: Path, *, workers: int, listen: str = "127.0.0.1",
                       probe: str = "/", netns: str | None = None) -> Server:
    """nginx serving ROOT as static files (the origin's shape: a GOPROXY tree), keepalive on.

    `probe` is a path under ROOT that answers 200 once nginx is up; `netns` runs nginx
    inside that network namespace (for the shaped link)."""
    # Inside a fresh namespace of the bench's own every port is free; pick one from loopback.
    port = free_port()
    workdir.mkdir(parents=True)
    conf = workdir / "nginx.conf"
    conf.write_text(f"""
user root;
worker_processes {workers};
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on; tcp_nopush on; keepalive_timeout 65; keepalive_requests 100000;
  client_body_temp_path {workdir}/cb; proxy_temp_path {workdir}/p;
  fastcgi_temp_path {workdir}/f; uwsgi_temp_path {workdir}/u; scgi_temp_path {workdir}/s;
  server {{ listen {listen}:{port}; root {root}; default_type application/octet-stream; }}
}}
""")
    return start_nginx_conf(conf, f"http://{listen}:{port}", probe, netns)


def start_nginx_conf(conf: Path, url: str, probe: str, netns: str | None = None) -> Server:
    """nginx in the foreground with CONF, once URL + PROBE answers."""
    cmd = ["nginx", "-c", str(conf), "-g", "daemon off;"]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    proc = subprocess.Popen(cmd)
    try:
        wait_http(url + probe)
    except RuntimeError:
        stop(proc, signal.SIGQUIT)
        raise
    return Server(proc, url, signal.SIGQUIT)


def start_node(workdir: Path, upstream: str, *, fetcher: str | None = None,
               hit_log_socket: str | None = None) -> Server:
    """A gomirror-proxy node with an empty disk store under WORKDIR in front of UPSTREAM.

    `fetcher` is written as `UpstreamFetcher` (e.g. "gocommand"); None leaves the node's
    default fetcher. `hit_log_socket` is the socket its nginx front reports hits to. The
    access log is off (LogLevel warning), as in the hit benchmark."""
    workdir.mkdir(parents=True)
    lines = [
        'Port = "127.0.0.1:0"',
        'LogLevel = "warning"',
        f'GoGetDir = "{workdir}/work"',
        f'GoBinaryEnvVars = ["GOPROXY={upstream}"]',
        f'SumDBUpstreams = {{ "sum.golang.org" = "{upstream}/sumdb/sum.golang.org" }}',
    ]
    if fetcher is not None:
        lines.append(f'UpstreamFetcher = "{fetcher}"')
    if hit_log_socket is not None:
        lines.append(f'HitLogSocket = "{hit_log_socket}"')
    lines += ["[Storage.Disk]", f'RootPath = "{workdir}/store"']
    cfg = workdir / "node.toml"
    cfg.write_text("\n".join(lines) + "\n")
    exe = Path(sys.executable).parent / "gomirror-proxy"
    log = workdir / "node.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(exe), "serve", "-c", str(cfg)], stdout=out,
                                stderr=subprocess.STDOUT)
    deadline = time.time() + 20
    while time.time() < deadline:
        for line in log.read_text().splitlines():
            if '"listening"' in line:
                return Server(proc, f"http://127.0.0.1:{json.loads(line)['port']}")
        if proc.poll() is not None:
            raise RuntimeError(f"node exited: {log.read_text()}")
        time.sleep(0.05)
    stop(proc)
    raise RuntimeError(f"node did not start: {log.read_text()}")
