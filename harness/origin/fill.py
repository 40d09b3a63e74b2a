#!/usr/bin/env python3
"""Fill the hermetic module origin: a GOPROXY tree plus a pinned checksum database.

The origin stands in for the public upstream proxies in every test. It is filled on
the host (which reaches the Go module proxy this machine is configured with) and then
served, read-only, by nginx on loopback and inside the test networks.

Steps, each skipped when its output already matches the recipe:
1. `go mod download -json all` of the workload's go.mod into a persistent module
   cache (so refills do not download again), then copy the module files of
   cache/download into the origin tree (go's download layout is a GOPROXY tree).
2. Capture the checksum database: fetch every lookup record the tree needs, fetch
   `latest` ONCE and serve that same signed tree head with every record, then let a
   fresh `go` client download the workload through a recording server that forwards
   tile requests upstream and keeps them. Replays are then deterministic: a fresh
   client needs exactly the tiles of that one tree and verifies real signatures.

The upstream is read from `go env GOPROXY` at run time; no registry host is written
into this repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKLOAD = HERE / "workload" / "go.mod"
SUMDB_NAME = "sum.golang.org"
# Files of the module cache that are bookkeeping, not protocol.
SKIP_SUFFIXES = (".lock", ".ziphash", ".partial", ".tmp")


def log(msg: str) -> None:
    print(f"origin: {msg}", file=sys.stderr, flush=True)


def recipe_key() -> str:
    h = hashlib.sha256()
    h.update(WORKLOAD.read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:16]


def host_goproxy() -> str:
    return subprocess.run(
        ["go", "env", "GOPROXY"], check=True, capture_output=True, text=True
    ).stdout.strip()


def upstream_proxy() -> str:
    for entry in host_goproxy().replace("|", ",").split(","):
        if entry.startswith(("http://", "https://")):
            return entry.rstrip("/")
    sys.exit("origin: `go env GOPROXY` names no HTTP proxy to fill the origin from")


def go_env(modcache: Path, gopath: Path, goproxy: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GOMODCACHE=str(modcache),
        GOPATH=str(gopath),
        GOFLAGS="-mod=mod",
        GOTOOLCHAIN="local",
        GOSUMDB=SUMDB_NAME,
        GONOSUMDB="",
        GOPRIVATE="",
        GONOPROXY="",
        GOINSECURE="",
    )
    if goproxy:
        env["GOPROXY"] = goproxy
    return env


def download_workload(modcache: Path, goproxy: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="gomirror-workload-") as tmp:
        shutil.copy(WORKLOAD, Path(tmp) / "go.mod")
        gopath = Path(tmp) / "gopath"
        subprocess.run(
            ["go", "mod", "download", "-json", "all"],
            cwd=tmp,
            env=go_env(modcache, gopath, goproxy),
            check=True,
            stdout=subprocess.DEVNULL,
        )


def copy_tree(modcache: Path, tree: Path) -> int:
    src = modcache / "cache" / "download"
    count = 0
    for path in src.rglob("*"):
        rel = path.relative_to(src)
        if rel.parts[0] == "sumdb" or path.is_dir() or path.name.endswith(SKIP_SUFFIXES):
            continue
        dest = tree / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        count += 1
    return count


def module_versions(tree: Path) -> list[str]:
    """Every escaped `module@version` the tree holds a .mod for (the lookups needed)."""
    out = []
    for mod in tree.rglob("*.mod"):
        if mod.parent.name != "@v" or "sumdb" in mod.parts:
            continue
        escaped_module = mod.parent.parent.relative_to(tree).as_posix()
        out.append(f"{escaped_module}@{mod.name[: -len('.mod')]}")
    return sorted(out)


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as resp:
        return resp.read()


class Capture:
    """Pins one signed tree head and records the tiles a fresh client asks for."""

    def __init__(self, upstream: str, tree: Path):
        self.base = f"{upstream}/sumdb/{SUMDB_NAME}"
        self.tree = tree
        self.sumdb = tree / "sumdb" / SUMDB_NAME
        self.lock = threading.Lock()

    def capture_lookups(self, wanted: list[str]) -> None:
        records = {}
        for mv in wanted:
            body = fetch(f"{self.base}/lookup/{mv}")
            # A lookup answer is "<id>\n<go.sum lines>\n" then a blank line, then the
            # signed note of whatever tree head was current. Keep only the record.
            records[mv] = body[: body.index(b"\n\n") + 1]
        # `latest` is fetched after every record, so every record id is inside it.
        latest = fetch(f"{self.base}/latest")
        size = int(latest.split(b"\n")[1])
        for mv, record in records.items():
            record_id = int(record.split(b"\n", 1)[0])
            if record_id >= size:
                sys.exit(f"origin: lookup {mv} id {record_id} is outside tree {size}")
            dest = self.sumdb / "lookup" / mv
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(record + b"\n" + latest)
        (self.sumdb / "latest").write_bytes(latest)
        (self.sumdb / "supported").write_bytes(b"")
        log(f"pinned {SUMDB_NAME} at tree size {size}, {len(records)} lookups")

    def tile(self, rel: str) -> bytes:
        dest = self.sumdb / rel
        with self.lock:
            if not dest.exists():
                data = fetch(f"{self.base}/{rel}")
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
        return dest.read_bytes()


def record_tiles(capture: Capture) -> None:
    """Run a fresh go client through a recorder that serves the tree and keeps tiles."""
    tree = capture.tree
    prefix = f"/sumdb/{SUMDB_NAME}/"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet: the go client's errors are what matter
            pass

        def do_GET(self):  # noqa: N802 (http.server's naming)
            path = urllib.parse.unquote(self.path.split("?", 1)[0])
            try:
                if path.startswith(prefix + "tile/"):
                    body = capture.tile(path[len(prefix):])
                else:
                    target = (tree / path.lstrip("/")).resolve()
                    if tree.resolve() not in target.parents or not target.is_file():
                        raise FileNotFoundError(path)
                    body = target.read_bytes()
            except (FileNotFoundError, urllib.error.HTTPError):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with tempfile.TemporaryDirectory(prefix="gomirror-capture-") as tmp:
            download_workload(Path(tmp) / "modcache", f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
    tiles = sum(1 for p in (capture.sumdb / "tile").rglob("*") if p.is_file())
    log(f"recorded {tiles} tiles")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cache", type=Path, required=True, help="the harness cache dir")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()

    cache = args.cache.resolve()
    tree = cache / "origin" / "tree"
    stamp = cache / "origin" / "recipe"
    key = recipe_key()
    if not args.force and stamp.exists() and stamp.read_text().strip() == key:
        log(f"tree is current (recipe {key})")
        return 0

    upstream = upstream_proxy()
    modcache = cache / "gomodcache"
    log("downloading the workload graph")
    download_workload(modcache, host_goproxy())
    staging = cache / "origin" / "tree.new"
    shutil.rmtree(staging, ignore_errors=True)
    files = copy_tree(modcache, staging)
    log(f"{files} module files")
    capture = Capture(upstream, staging)
    capture.capture_lookups(module_versions(staging))
    record_tiles(capture)
    # Replace the served tree only once the new one is whole.
    shutil.rmtree(tree, ignore_errors=True)
    staging.rename(tree)
    stamp.write_text(key + "\n")
    summary = {"recipe": key, "module_versions": len(module_versions(tree))}
    (cache / "origin" / "summary.json").write_text(json.dumps(summary) + "\n")
    log(f"tree ready: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
