#!/usr/bin/env python3
"""Benchmark report for gomirror-proxy (a report, not a test): `make bench-proxy`.

One invocation measures, in interleaved rounds (median of --rounds), for each graph (the
pinned gin workload of the hermetic origin and the larger bench-only origin filled by
`make origin-large`), with an empty client module cache:
  a. `go mod download all` straight from the origin, through an empty node, through a warm
     node, and from GOPROXY=file:// of the origin tree (the limit);
  b. the same with the origin's link capped by tbf inside a network namespace (root only),
     at each rate of --shaped-rates (a sweep: the warm node's gain over a capped link is
     bounded by how long the client itself takes to unpack, so it depends on the rate);
  c. the cold run with `UpstreamFetcher = "gocommand"` (what the HTTP fetcher bought);
Warm nodes are measured as proxy_node deploys them: behind their nginx front. Then store
hits (wrk: the node as deployed, vs nginx on the same files) and the node's peak RSS
(cold run of the largest graph, and 50 concurrent misses).
The result replaces the bench-proxy section of the report file (markdown).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
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

    def warm_node(self, workload: Path, upstream: str) -> Warm:
        """A node filled with WORKLOAD's graph, as proxy_node deploys it: behind its nginx
        front (hits from the store's files, misses to the node) when the front renders."""
        workdir = self.dir("warm-node")
        no_front = front.available()
        socket = None if no_front else str(workdir / "hit.sock")
        node = self.serve(servers.start_node(workdir, upstream, hit_log_socket=socket))
        store = workdir / "store"
        if no_front:
            warm = Warm(node, store, node.url, 1, f"the node's own port ({no_front})")
        else:
            fr, workers = front.start_front(self.dir("front"), store, node.url, socket)
            self.serve(fr)
            warm = Warm(node, store, fr.url, workers,
                        f"the role's nginx front ({front.TEMPLATE.name} with the role's "
                        f"defaults, {workers} workers) before the node")
        gorun.download_all(workload, warm.url)  # fills its store; not timed
        return warm


@dataclass
class Warm:
    node: servers.Server
    store: Path
    url: str  # what clients use: the front, else the node itself
    workers: int  # processes serving hits
    how: str


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


def hit_rows(bench: Bench, warm: Warm, a) -> dict:
    """wrk on each hit file: the node as deployed, its backend port, nginx on the same files."""
    for _, path, _ in hits.HIT_FILES:
        if not (warm.store / path.lstrip("/")).is_file():
            raise RuntimeError(f"hit file {path} is not in the warm node's store")
    static = bench.serve(servers.start_static_nginx(bench.dir("hit-nginx"), warm.store,
                                                    workers=warm.workers,
                                                    probe=hits.HIT_FILES[0][1]))
    rows = []
    for label, path, goal in hits.HIT_FILES:
        row = {"label": label, "goal": goal,
               "node": hits.wrk(warm.url + path, a.duration, a.connections),
               "nginx": hits.wrk(static.url + path, a.duration, a.connections)}
        if warm.url != warm.node.url:
            row["backend"] = hits.wrk(warm.node.url + path, a.duration, a.connections)
        rows.append(row)
    return {"rows": rows, "node_how": warm.how, "workers": warm.workers,
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
    kind, _, rate = case.partition("@")  # capped-link cases: "<kind>@<rate>"
    shaped = graph["shaped"][rate]
    if kind == "shaped_straight":
        return gorun.download_all(w, shaped["origin"])
    if kind == "shaped_node_cold":
        return bench.cold_node(w, shaped["origin"], None)
    if kind == "shaped_node_warm":
        return gorun.download_all(w, shaped["warm"].url)
    raise ValueError(case)


def shaped_plan(spec: str, names: list[str]) -> list[tuple[str, list[str]]]:
    """--shaped-rates "40mbit:all,10mbit:pinned" -> [(rate, graphs run at it)], limited to
    the graphs of this run."""
    plan = []
    for item in spec.split(","):
        rate, sep, graphs = item.partition(":")
        if not sep or not re.fullmatch(r"\d+(k|m|g)?bit", rate):
            sys.exit(f"--shaped-rates: {item!r} is not RATE:GRAPHS (e.g. 10mbit:pinned)")
        wanted = names if graphs == "all" else graphs.split("+")
        unknown = [w for w in wanted if w not in GRAPHS]
        if unknown:
            sys.exit(f"--shaped-rates: unknown graph {unknown[0]!r} "
                     f"(allowed: all, {', '.join(GRAPHS)})")
        run_here = [n for n in names if n in wanted]
        if run_here:
            plan.append((rate, run_here))
    return plan


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
        "shaped": {"how": "tbf rate RATE " + " ".join(shaping.TBF_AFTER_RATE)
                          + " on the origin's veth", "rates": {}},
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
    shaped_runs = [] if skip_shaped else shaped_plan(a.shaped_rates, names)
    for i, (rate, graphs) in enumerate(shaped_runs):
        link = stack.enter_context(shaping.shaped_link(rate, i))
        result["shaped"]["rates"][rate] = graphs
        for n in graphs:
            ns_origin = bench.serve(servers.start_static_nginx(
                bench.dir(f"shaped-origin-{n}-{rate}"), g[n]["tree"], workers=ORIGIN_WORKERS,
                listen=link.ns_addr, probe="/sumdb/sum.golang.org/latest", netns=link.netns))
            g[n].setdefault("shaped", {})[rate] = {"origin": ns_origin.url}
    for n in names:
        g[n]["warm"] = bench.warm_node(g[n]["workload"], g[n]["origin"])
        for shaped in g[n].get("shaped", {}).values():
            shaped["warm"] = bench.warm_node(g[n]["workload"], shaped["origin"])
    result["warm_how"] = g[names[0]]["warm"].how
    largest = names[-1]
    rss = result["memory"]["rows"]
    for rnd in range(a.rounds):
        for n in names:
            cases = ["straight", "node_cold", "node_warm", "file"]
            cases += ["node_cold_gocmd"] if gocmd else []
            for rate in g[n].get("shaped", {}):
                cases += [f"{k}@{rate}" for k in
                          ("shaped_straight", "shaped_node_cold", "shaped_node_warm")]
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
        result["hits"] = hit_rows(bench, g["pinned"]["warm"], a)
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
    ap.add_argument("--shaped-rates", default="40mbit:all,8mbit:pinned",
                    help="capped-link runs: comma-separated RATE:GRAPHS (tc rate units; "
                         "GRAPHS `all` or graph names joined by +)")
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
