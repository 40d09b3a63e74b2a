#!/usr/bin/env python3
"""Fill the hermetic module origin: a GOPROXY tree plus a pinned checksum database.

The origin stands in for the public upstream proxies in every test. It is filled on
the host (which reaches the Go module proxy this machine is configured with) and then
served, read-only, by nginx on loopback and inside the test networks.

Steps, each skipped when its output already matches the recipe:
1. `go mod download -json all` of the workload's go.mod into a persistent module
   cache (so refills do not download again), then copy the module files of
   cache/download into the origin tree (go's download layout is a GOPROXY tree).
2. Protocol cases beyond the pinned graph, into the same module cache: every listed
   version of a module whose newest go.mod retracts some of them, the upstream's
   answers to a branch and a commit query (stored at the paths the go command asks)
   with the pseudo-version they resolve to, and one `golang.org/toolchain` release
   for GOTOOLCHAIN switches. Their versions are what the upstream answers at fill
   time; `summary.json` records them and tests read them from there.
3. Capture the checksum database: fetch every lookup record the tree needs, fetch
   `latest` ONCE and serve that same signed tree head with every record, then let a
   fresh `go` client download the workload (and list every extra version) through a
   recording server that forwards tile requests upstream and keeps them. Replays are
   then deterministic: a fresh client needs exactly the tiles of that one tree and
   verifies real signatures.

With `--workload GO.MOD --out DIR --graph-only` the same steps (without the protocol
cases of step 2) fill another origin from another workload: the benchmark's larger graph
(`harness/origin/workload-large/go.mod` into `.cache/origin-large/`).

The upstream is read from `go env GOPROXY` at run time; no registry host is written
into this repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKLOAD = HERE / "workload" / "go.mod"
SUMDB_NAME = "sum.golang.org"
LOOKUP_WORKERS = 8
# Files of the module cache that are bookkeeping, not protocol.
SKIP_SUFFIXES = (".lock", ".ziphash", ".partial", ".tmp")

# A small module whose newest go.mod retracts versions its list still names.
RETRACTING_MODULE = "github.com/gabriel-vasile/mimetype"
# An archived module (its branch no longer moves) whose branch and commit queries are kept.
QUERY_MODULE = "github.com/pmezard/go-difflib"
QUERY_BRANCH = "master"
# What QUERY_BRANCH resolved to when an upstream last answered the query (the module is
# archived: the branch no longer moves). Used when the machine's upstream refuses branch
# and commit queries (some mirrors serve canonical versions only): the origin then
# answers the queries as a proxy does, with the .info of the version they resolve to.
QUERY_BRANCH_VERSION = "v1.0.1-0.20181226105442-5d4384ee4fb2"
# One Go release other than the machine's, fetched by `GOTOOLCHAIN=<it> go ...` through a proxy.
TOOLCHAIN_GO = "go1.26.9"
TOOLCHAIN_MODULE = "golang.org/toolchain"
# The commit part of a pseudo-version (vX.0.0-T-R, vX.Y.Z-pre.0.T-R, vX.Y.Z-0.T-R).
PSEUDO_REVISION = re.compile(r"[-.]\d{14}-([0-9a-f]{12})(?:\+incompatible)?$")


def log(msg: str) -> None:
    print(f"origin: {msg}", file=sys.stderr, flush=True)


def recipe_key(workload: Path, graph_only: bool) -> str:
    h = hashlib.sha256()
    h.update(workload.read_bytes())
    h.update(Path(__file__).read_bytes())
    if graph_only:  # the main origin's key stays the hash of its workload and this file
        h.update(b"graph-only")
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


def escape_path(path: str) -> str:
    """The GOPROXY protocol's case encoding: an upper-case letter becomes `!` + lower."""
    return "".join(f"!{c.lower()}" if c.isupper() else c for c in path)


def go_json(args: list[str], modcache: Path, goproxy: str | None) -> list[dict]:
    """Run `go ARGS` outside any module; return the JSON objects it prints, in order."""
    with tempfile.TemporaryDirectory(prefix="gomirror-fill-") as tmp:
        out = subprocess.run(
            ["go", *args],
            cwd=tmp,
            env=go_env(modcache, Path(tmp) / "gopath", goproxy),
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        ).stdout
    decoder, objects, pos = json.JSONDecoder(), [], 0
    while pos < len(out):
        if out[pos].isspace():
            pos += 1
            continue
        obj, pos = decoder.raw_decode(out, pos)
        objects.append(obj)
    return objects


def go_output(*args: str) -> str:
    env = dict(os.environ, GOTOOLCHAIN="local")
    return subprocess.run(
        ["go", *args], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


def download_workload(workload: Path, modcache: Path, goproxy: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="gomirror-workload-") as tmp:
        shutil.copy(workload, Path(tmp) / "go.mod")
        gopath = Path(tmp) / "gopath"
        subprocess.run(
            ["go", "mod", "download", "-json", "all"],
            cwd=tmp,
            env=go_env(modcache, gopath, goproxy),
            check=True,
            stdout=subprocess.DEVNULL,
        )


def fetch_retracting(upstream: str, modcache: Path, goproxy: str) -> dict:
    """Every version the upstream lists (.info/.mod), zips of the newest and newest retracted."""
    module = RETRACTING_MODULE
    listed = fetch(f"{upstream}/{escape_path(module)}/@v/list").decode().split()
    [latest] = go_json(["list", "-m", "-json", f"{module}@latest"], modcache, goproxy)
    infos = go_json(
        ["list", "-m", "-retracted", "-json", *(f"{module}@{v}" for v in listed)],
        modcache,
        goproxy,
    )
    retracted = [info["Version"] for info in infos if info.get("Retracted")]
    if not retracted:
        sys.exit(f"origin: {module}@{latest['Version']} retracts no listed version; "
                 "RETRACTING_MODULE needs one that does")
    zips = [latest["Version"], retracted[-1]]
    go_json(["mod", "download", "-json", *(f"{module}@{v}" for v in zips)], modcache, goproxy)
    return {"module": module, "latest": latest["Version"], "versions": listed,
            "retracted": retracted, "zips": zips}


def fetch_queries(upstream: str, modcache: Path, goproxy: str) -> tuple[dict, dict[str, bytes]]:
    """The upstream's answers to a branch and a commit query, and the version they name."""
    module = QUERY_MODULE
    base = f"{upstream}/{escape_path(module)}/@v"
    try:
        branch_answer = fetch(f"{base}/{QUERY_BRANCH}.info")
    except urllib.error.HTTPError as e:
        if e.code not in (403, 404, 410):
            raise
        log(f"the upstream refuses the query {module}@{QUERY_BRANCH} ({e.code}); "
            f"answering it with {QUERY_BRANCH_VERSION}, its recorded resolution")
        branch_answer = fetch(f"{base}/{QUERY_BRANCH_VERSION}.info")
    branch_info = json.loads(branch_answer)
    canonical = branch_info["Version"]
    match = PSEUDO_REVISION.search(canonical)
    revision = (branch_info.get("Origin") or {}).get("Hash", "")[:12] or (
        match.group(1) if match else ""
    )
    if not revision:
        sys.exit(f"origin: {module}@{QUERY_BRANCH} is {canonical}, which names no commit")
    try:
        commit_answer = fetch(f"{base}/{revision}.info")
    except urllib.error.HTTPError as e:
        if e.code not in (403, 404, 410):
            raise
        commit_answer = branch_answer  # a commit query answers the same .info
    if json.loads(commit_answer)["Version"] != canonical:
        sys.exit(f"origin: {module}@{revision} does not resolve to {canonical}")
    go_json(["mod", "download", "-json", f"{module}@{canonical}"], modcache, goproxy)
    case = {"module": module, "branch": QUERY_BRANCH, "commit": revision, "version": canonical}
    return case, {f"{QUERY_BRANCH}.info": branch_answer, f"{revision}.info": commit_answer}


def fetch_toolchain(modcache: Path, goproxy: str) -> dict:
    local = go_output("env", "GOVERSION")
    if local == TOOLCHAIN_GO:
        sys.exit(f"origin: TOOLCHAIN_GO {TOOLCHAIN_GO} is this machine's own Go; "
                 "a switch needs another release")
    goos, goarch = go_output("env", "GOOS", "GOARCH").split()
    version = f"v0.0.1-{TOOLCHAIN_GO}.{goos}-{goarch}"
    [info] = go_json(["mod", "download", "-json", f"{TOOLCHAIN_MODULE}@{version}"],
                     modcache, goproxy)
    return {"go": TOOLCHAIN_GO, "module": TOOLCHAIN_MODULE, "version": version,
            "zip_bytes": Path(info["Zip"]).stat().st_size}


def extra_module_versions(cases: dict) -> list[str]:
    """`module@version` of every case version, for the tile recorder to verify."""
    if not cases:
        return []
    retracting, query, toolchain = cases["retracting"], cases["query"], cases["toolchain"]
    return [
        *(f"{retracting['module']}@{v}" for v in retracting["versions"]),
        f"{query['module']}@{query['version']}",
        f"{toolchain['module']}@{toolchain['version']}",
    ]


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

    def record(self, mv: str) -> bytes:
        body = fetch(f"{self.base}/lookup/{mv}")
        # A lookup answer is "<id>\n<go.sum lines>\n" then a blank line, then the
        # signed note of whatever tree head was current. Keep only the record.
        return body[: body.index(b"\n\n") + 1]

    def capture_lookups(self, wanted: list[str]) -> None:
        # In parallel: one round trip each, and there are dozens.
        with ThreadPoolExecutor(max_workers=LOOKUP_WORKERS) as pool:
            records = dict(zip(wanted, pool.map(self.record, wanted), strict=True))
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
        if not dest.exists():
            # The go client asks for tiles in parallel: fetch without a lock; a tile's
            # bytes never change, so two writers of one tile write the same file.
            data = fetch(f"{self.base}/{rel}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            partial = dest.with_name(f"{dest.name}.{threading.get_ident()}.partial")
            partial.write_bytes(data)
            partial.replace(dest)
        return dest.read_bytes()


def record_tiles(capture: Capture, workload: Path, extra: list[str]) -> None:
    """Run fresh go clients through a recorder that serves the tree and keeps tiles."""
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
        recorder = f"http://127.0.0.1:{server.server_port}"
        with tempfile.TemporaryDirectory(prefix="gomirror-capture-") as tmp:
            download_workload(workload, Path(tmp) / "modcache", recorder)
            # Listing a version fetches and verifies its go.mod: the same record, hence
            # the same tiles, as its zip (the toolchain's too), without copying 70 MB.
            if extra:
                go_json(["list", "-m", "-json", *extra], Path(tmp) / "modcache", recorder)
    finally:
        server.shutdown()
    tiles = sum(1 for p in (capture.sumdb / "tile").rglob("*") if p.is_file())
    log(f"recorded {tiles} tiles")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cache", type=Path, required=True, help="the harness cache dir")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--workload", type=Path, default=WORKLOAD,
                        help="the go.mod whose graph fills the origin (default: %(default)s)")
    parser.add_argument("--out", type=Path,
                        help="the origin directory (tree/, recipe, summary.json); "
                             "default: CACHE/origin")
    parser.add_argument("--modcache", type=Path,
                        help="the persistent module cache to download into; "
                             "default: CACHE/gomodcache")
    parser.add_argument("--graph-only", action="store_true",
                        help="only the workload's graph and its checksum-database records, "
                             "without the protocol cases (retractions, queries, toolchain)")
    args = parser.parse_args()

    cache = args.cache.resolve()
    workload = args.workload.resolve()
    if not workload.is_file():
        sys.exit(f"origin: --workload {args.workload} is not a file (a go.mod is expected)")
    out = (args.out or cache / "origin").resolve()
    # Every go.mod the module cache holds is copied into the tree: one cache per origin.
    modcache = (args.modcache or cache / "gomodcache").resolve()
    tree = out / "tree"
    stamp = out / "recipe"
    key = recipe_key(workload, args.graph_only)
    if not args.force and stamp.exists() and stamp.read_text().strip() == key:
        log(f"tree is current (recipe {key})")
        return 0

    upstream = upstream_proxy()
    goproxy = host_goproxy()
    log(f"downloading the workload graph of {workload}")
    download_workload(workload, modcache, goproxy)
    cases, query_answers, query_dir = {}, {}, None
    if not args.graph_only:
        log("fetching the protocol cases (retractions, queries, toolchain)")
        query, query_answers = fetch_queries(upstream, modcache, goproxy)
        cases = {
            "retracting": fetch_retracting(upstream, modcache, goproxy),
            "query": query,
            "toolchain": fetch_toolchain(modcache, goproxy),
        }
        query_dir = escape_path(query["module"])
    out.mkdir(parents=True, exist_ok=True)
    staging = out / "tree.new"
    shutil.rmtree(staging, ignore_errors=True)
    files = copy_tree(modcache, staging)
    for name, answer in query_answers.items():
        (staging / query_dir / "@v" / name).write_bytes(answer)
    log(f"{files} module files, {len(query_answers)} query answers")
    capture = Capture(upstream, staging)
    capture.capture_lookups(module_versions(staging))
    record_tiles(capture, workload, extra_module_versions(cases))
    # Replace the served tree only once the new one is whole.
    shutil.rmtree(tree, ignore_errors=True)
    staging.rename(tree)
    stamp.write_text(key + "\n")
    summary = {"recipe": key, "module_versions": len(module_versions(tree)), **cases}
    (out / "summary.json").write_text(json.dumps(summary) + "\n")
    zips = [z.stat().st_size for z in tree.rglob("*.zip") if "sumdb" not in z.parts]
    log(f"tree ready: recipe {key}, {summary['module_versions']} module versions, "
        f"{len(zips)} zips ({sum(zips) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
