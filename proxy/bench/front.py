"""The node as `proxy_node` deploys it for hits: its nginx front, rendered from the role.

The role's front-nginx.conf.j2 is rendered with the role's defaults the way Ansible's template
module does, by the renderer of proxy/tests/test_proxy_hitlog.py (which proves that config in
front of a real node); only host paths, ports and the worker user are the bench's. Without
the template (or a node without HitLogSocket) hits are measured on the node's own port and
the report says so.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import servers

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "roles/proxy_node/templates/front-nginx.conf.j2"


def available() -> str | None:
    """Why no front can be rendered here, or None when it can."""
    from gomirror_proxy.config import TOP_KEYS
    if not TEMPLATE.is_file():
        return f"{TEMPLATE.relative_to(REPO)} does not exist"
    if "HitLogSocket" not in TOP_KEYS:
        return "this node has no HitLogSocket key"
    return None


def _render(workdir: Path, store: Path, port: int, backend: int, socket: str) -> tuple[Path, int]:
    """The rendered nginx.conf and its worker count ("auto" is one per core)."""
    # One renderer of the role's template outside Ansible: the front's own test's.
    sys.path.insert(0, str(REPO / "proxy/tests"))
    from test_proxy_hitlog import render_front

    conf = render_front(workdir, store=store, port=port, backend=backend, socket=socket)
    workers = re.search(r"^worker_processes\s+(\S+);", conf.read_text(), re.M).group(1)
    return conf, os.cpu_count() if workers == "auto" else int(workers)


def start_front(workdir: Path, store: Path, backend_url: str, socket: str
                ) -> tuple[servers.Server, int]:
    """The rendered front on a free loopback port before the node at BACKEND_URL; the
    server and its nginx worker count."""
    workdir.mkdir(parents=True)
    port = servers.free_port()
    conf, workers = _render(workdir, store, port, int(backend_url.rsplit(":", 1)[1]), socket)
    check = subprocess.run(["nginx", "-t", "-q", "-c", str(conf)], capture_output=True,
                           text=True)
    if check.returncode != 0:
        raise RuntimeError(f"the rendered front does not pass nginx -t: {check.stderr}")
    return servers.start_nginx_conf(conf, f"http://127.0.0.1:{port}", "/healthz"), workers
