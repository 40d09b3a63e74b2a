#!/usr/bin/env python3
"""Benchmark report for gomirror-proxy (a report, not a test): `make bench-proxy`.

One invocation measures, in interleaved rounds (median of --rounds), for each graph (the
pinned gin workload of the hermetic origin and the larger bench-only origin filled by
`make origin-large`), with an empty client module cache:
  a. `go mod download all` straight from the origin, through an empty node, through a warm
     node, and from GOPROXY=file:// of the origin tree (the limit);
  b. the same with the origin's link capped by tbf inside a network namespace (root only);
  c. the cold run with `UpstreamFetcher = "gocommand"` (what the HTTP fetcher bought);
then store hits (wrk: the node as deployed, with its nginx front, vs nginx on the same
files) and the node's peak RSS (cold run of the largest graph, and 50 concurrent misses).
The result replaces the bench-proxy section of the report file (markdown).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import front
import gorun
import hits
import report
import servers
import shaping

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("GOMIRROR_CACHE", REPO / ".cache"))
GRAPHS = {
    "pinned": (REPO / "harness/origin/workload/go.mod", CACHE / "origin/tree",
               "gin v1.9.1's graph (harness/origin/workload/go.mod)", "make origin"),
    "large": (REPO / "harness/origin/workload-large/go.mod", CACHE / "origin-large/tree",
              "client_golang, cobra, viper, zap, grpc, vault/api "
              "(harness/origin/workload-large/go.mod)", "make origin-large"),
}
ORIGIN_WORKERS = 2  # as the harness's origin nginx
CONCURRENT_MISSES = 50


def gocommand_fetcher_supported() -> bool:
    from gomirror_proxy.config import TOP_KEYS
    return "UpstreamFetcher" in TOP_KEYS


def machine() -> str:
    mem = next(int(line.split()[1]) for line in open("/proc/meminfo")  # noqa: SIM115
               if line.startswith("MemTotal:"))
    go = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True,
                        env=dict(os.environ, GOTOOLCHAIN="local")).stdout.strip()
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    return (f"{os.cpu_count()} cores (nproc), {mem / 1024 / 1024:.1f} GiB RAM, Linux "
            f"{platform.release()} {platform.machine()}, {go}, Python "
            f"{platform.python_version()}, {nginx.split(': ')[-1]}")


def rmtree(path: Path) -> None:
    subprocess.run(["chmod", "-R", "u+w", str(path)], check=False, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


class Bench:
    def __init__(self, tmp: Path, stack: ExitStack):
        self.tmp, self.stack, self.seq = tmp, stack, 0

    def dir(self, name: str) -> Path:
        self.seq += 1
        return self.tmp / f"{self.seq:03d}-{name}"

    def serve(self, server: servers.Server) -> servers.Server:
        self.stack.callback(server.stop)
        return server

    def cold_node(self, workload: Path, upstream: str, fetcher: str | None,
                  rss: list | None = None, label: str = "") -> float:
        """One `go mod download all` through a fresh node with an empty store."""
        workdir = self.dir("cold-node")
        node = servers.start_node(workdir, upstream, fetcher=fetcher)
        try:
            with gorun.RSSSampler(node.proc.pid) as sampler:
                seconds = gorun.download_all(workload, node.url)
        finally:
            node.stop()
            rmtree(workdir)
        if rss is not None:
            rss.append({"label": label, "self": sampler.peak_self, "tree": sampler.peak_tree,
                        "seconds": seconds})
        return seconds

    def warm_node(self, workload: Path, upstream: str, hit_log_socket: str | None = None
                  ) -> tuple[servers.Server, Path]:
        workdir = self.dir("warm-node")
        node = self.serve(servers.start_node(workdir, upstream, hit_log_socket=hit_log_socket))
        gorun.download_all(workload, node.url)  # fills its store; not timed
        return node, workdir / "store"


def concurrent_misses(bench: Bench, tree: Path, upstream: str) -> dict:
    """CONCURRENT_MISSES different versions' zips requested at once from an empty node."""
    zips = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*.zip")
                  if "sumdb" not in p.parts)[:CONCURRENT_MISSES]
    workdir = bench.dir("misses")
    node = servers.start_node(workdir, upstream)

    def get(rel: str) -> int:
        with urllib.request.urlopen(f"{node.url}/{rel}", timeout=300) as resp:
            while resp.read(1 << 20):
                pass
            return resp.status

    try:
        with gorun.RSSSampler(node.proc.pid) as sampler, \
                ThreadPoolExecutor(max_workers=len(zips)) as pool:
            t0 = time.monotonic()
            statuses = list(pool.map(get, zips))
            seconds = time.monotonic() - t0
    finally:
        node.stop()
        rmtree(workdir)
    if statuses.count(200) != len(zips):
        raise RuntimeError(f"concurrent misses: statuses {statuses}")
    return {"label": f"{len(zips)} concurrent misses (different versions' .zip)",
            "self": sampler.peak_self, "tree": sampler.peak_tree, "seconds": seconds}


def hit_rows(bench: Bench, node: servers.Server, store: Path, socket: str | None, a) -> dict:
    """wrk on each hit file: the node as deployed, its backend port, nginx on the same files."""
    for _, path, _ in hits.HIT_FILES:
        if not (store / path.lstrip("/")).is_file():
            raise RuntimeError(f"hit file {path} is not in the warm node's store")
    no_front = front.available() if socket else "the node was started without HitLogSocket"
    if no_front:
        url, workers = node.url, 1  # the node serves from one process
        how = f"the node's own port ({no_front})"
    else:
        fr, workers = front.start_front(bench.dir("front"), store, node.url, socket)
        bench.serve(fr)
        url = fr.url
        how = (f"the role's nginx front ({front.TEMPLATE.name} with the role's defaults, "
               f"{workers} workers) before the node")
    static = bench.serve(servers.start_static_nginx(bench.dir("hit-nginx"), store,
                                                    workers=workers,
                                                    probe=hits.HIT_FILES[0][1]))
    rows = []
    for label, path, goal in hits.HIT_FILES:
        row = {"label": label, "goal": goal,
               "node": hits.wrk(url + path, a.duration, a.connections),
               "nginx": hits.wrk(static.url + path, a.duration, a.connections)}
        if url != node.url:
            row["backend"] = hits.wrk(node.url + path, a.duration, a.connections)
        rows.append(row)
    return {"rows": rows, "node_how": how, "workers": workers,
            "connections": a.connections, "duration": a.duration}


def measure(bench: Bench, graph: dict, case: str, gocmd: str | None, rss: list | None,
            label: str) -> float:
    """Seconds of one timed `go mod download all` of GRAPH's workload for CASE."""
    w = graph["workload"]
    if case == "straight":
        return gorun.download_all(w, graph["origin"])
    if case == "node_cold":
        return bench.cold_node(w, graph["origin"], None, rss, label)
    if case == "node_warm":
        return gorun.download_all(w, graph["warm"].url)
    if case == "file":
        return gorun.download_all(w, f"file://{graph['tree']}")
    if case == "node_cold_gocmd":
        return bench.cold_node(w, graph["origin"], gocmd)
    if case == "shaped_straight":
        return gorun.download_all(w, graph["shaped_origin"])
    if case == "shaped_node_cold":
        return bench.cold_node(w, graph["shaped_origin"], None)
    if case == "shaped_node_warm":
        return gorun.download_all(w, graph["shaped_warm"].url)
    raise ValueError(case)


def run(a, tmp: Path, stack: ExitStack) -> dict:
    bench = Bench(tmp, stack)
    names = a.graphs.split(",")
    for n in names:
        if n not in GRAPHS:
            sys.exit(f"--graphs: unknown graph {n!r} (allowed: {', '.join(GRAPHS)})")
        if not (GRAPHS[n][1] / "sumdb/sum.golang.org/latest").is_file():
            sys.exit(f"bench-proxy: the {n} origin {GRAPHS[n][1]} is not filled; "
                     f"run `{GRAPHS[n][3]}`")
    gocmd = "gocommand" if gocommand_fetcher_supported() else None
    skip_shaped = "--no-shaped was given" if a.no_shaped else shaping.unavailable_reason()
    result: dict = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(), "rounds": a.rounds, "graphs": {},
        "shaped": {"how": "tbf " + " ".join(shaping.TBF) + " on the origin's veth"},
        "gocmd_note": "same as default (this build has no UpstreamFetcher key: its node "
                      "fetches with the go command)",
        "memory": {"rows": []}, "hits": {},
    }
    g = {}
    for n in names:
        workload, tree, desc, _ = GRAPHS[n]
        origin = bench.serve(servers.start_static_nginx(
            bench.dir(f"origin-{n}"), tree, workers=ORIGIN_WORKERS,
            probe="/sumdb/sum.golang.org/latest"))
        g[n] = {"workload": workload, "tree": tree, "origin": origin.url, "times": {}}
        result["graphs"][n] = {"desc": desc, "times": g[n]["times"]}
    if skip_shaped:
        result["shaped"]["skipped"] = skip_shaped
        print(f"bench-proxy: capped-link runs skipped: {skip_shaped}", file=sys.stderr)
    else:
        link = stack.enter_context(shaping.shaped_link())
        for n in names:
            ns_origin = bench.serve(servers.start_static_nginx(
                bench.dir(f"shaped-origin-{n}"), g[n]["tree"], workers=ORIGIN_WORKERS,
                listen=link.ns_addr, probe="/sumdb/sum.golang.org/latest", netns=link.netns))
            g[n]["shaped_origin"] = ns_origin.url
    # The pinned graph's warm node also serves the hits: as deployed, with its front's socket.
    hit_socket = str(tmp / "hit.sock") if "pinned" in g and not front.available() else None
    for n in names:
        g[n]["warm"], g[n]["warm_store"] = bench.warm_node(
            g[n]["workload"], g[n]["origin"], hit_socket if n == "pinned" else None)
        if not skip_shaped:
            g[n]["shaped_warm"], _ = bench.warm_node(g[n]["workload"], g[n]["shaped_origin"])
    largest = names[-1]
    rss = result["memory"]["rows"]
    cases = ["straight", "node_cold", "node_warm", "file"]
    cases += ["node_cold_gocmd"] if gocmd else []
    cases += [] if skip_shaped else ["shaped_straight", "shaped_node_cold", "shaped_node_warm"]
    for rnd in range(a.rounds):
        for n in names:
            for case in cases:
                label = f"cold `go mod download all` of the {n} graph, round {rnd + 1}"
                rss_rows = rss if n == largest and case == "node_cold" else None
                seconds = measure(bench, g[n], case, gocmd, rss_rows, label)
                g[n]["times"].setdefault(case, []).append(seconds)
                print(f"bench-proxy: round {rnd + 1} {n} {case}: {seconds:.2f} s",
                      file=sys.stderr, flush=True)
    rss.append(concurrent_misses(bench, g[largest]["tree"], g[largest]["origin"]))
    result["memory"]["note"] = (f"Rounds' cold runs are of the {largest} graph; the "
                                "concurrent misses go to a fresh node in front of its origin.")
    if "pinned" in g:
        result["hits"] = hit_rows(bench, g["pinned"]["warm"], g["pinned"]["warm_store"],
                                  hit_socket, a)
    else:
        result["hits"] = {"skipped": "the hit files are in the pinned graph, which was not run"}
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--report", default=str(REPO / "docs/benchmarks.md"))
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    ap.add_argument("--graphs", default="pinned,large",
                    help=f"comma-separated, from: {', '.join(GRAPHS)}")
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections")
    ap.add_argument("--no-shaped", action="store_true", help="skip the capped-link runs")
    a = ap.parse_args()
    if a.rounds < 1:
        sys.exit("--rounds must be at least 1")
    # SIGTERM/SIGINT unwind through the finally blocks: servers stop, the namespace goes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    try:
        with ExitStack() as stack:
            result = run(a, tmp, stack)
    finally:
        rmtree(tmp)
    section = report.render(result)
    report.write_section(Path(a.report), section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
