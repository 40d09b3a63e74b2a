"""S3 requests and time per store operation of the node's S3Store, on stores of 1,000 and
10,000 versions, on SeaweedFS and moto (a report, not a test):

    python proxy/bench/store_requests.py [--sizes 1000 10000] [--servers seaweedfs moto]
                                         [--report docs/benchmarks.md]

Each size is a fresh bucket laid out as put_version leaves it (.zip, .mod, .info per version,
`list` per module): half the versions in one module, the rest in modules of 50. Requests are
counted per operation with botocore's before-send event on the store's own client; times are
medians of repeated calls. `@v/list` and a whole `/catalog` walk are also timed through a
running node (NetworkMode offline: answered from the store alone). The conformance suite
(proxy/tests/test_storage_conformance.py) asserts the request bounds on a 1,104-version store;
this script is where the 10,000-version figures come from. Without --report it only prints.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "proxy/tests"))  # the servers and loaders the suite uses

import report  # noqa: E402
from s3load import S3Requests, layout, put_objects, version_objects  # noqa: E402
from s3servers import MotoServer, SeaweedFS, seaweedfs_binary  # noqa: E402

from gomirror_proxy import modpath  # noqa: E402
from gomirror_proxy.store import S3Store  # noqa: E402
from proxyhelpers import Node  # noqa: E402

BEGIN, END = "<!-- store-requests:begin -->", "<!-- store-requests:end -->"
BIG = "example.com/bench/big"
SMALL_SIZE = 50


def versions_for(size: int) -> dict[str, list[str]]:
    big = size // 2
    small = {f"example.com/bench/m{i:04d}": SMALL_SIZE for i in range((size - big) // SMALL_SIZE)}
    return layout({BIG: big, **small})


def version_files(tmp: Path, v: str) -> dict[str, str]:
    d = tmp / v
    d.mkdir(parents=True)
    (d / "zip").write_bytes(b"zip of " + v.encode())
    (d / "mod").write_text(f"module {BIG}\n")
    (d / "info").write_text(json.dumps({"Version": v}))
    return {ext: str(d / ext) for ext in ("zip", "mod", "info")}


def measure(store: S3Store, requests: S3Requests, name: str, make_call, repeat: int) -> dict:
    """Requests per call (the same every call, else the spread) and the median time."""
    counts, times = [], []
    for i in range(repeat):
        with requests.counting() as sent:
            t0 = time.perf_counter()
            asyncio.run(make_call(i))
            times.append(time.perf_counter() - t0)
        counts.append(dict(sent))
    same = all(c == counts[0] for c in counts)
    return {"op": name, "requests": counts[0] if same else counts,
            "median_ms": statistics.median(times) * 1000, "calls": repeat}


def catalog_walk(store: S3Store):
    async def walk(_i):
        token, n = "", 0
        while True:
            items = await store.catalog(token, 1000)
            n += len(items)
            if len(items) < 1000:
                return n
            token = f"{items[-1][0]}@{items[-1][1]}"
    return walk


def node_timings(endpoint, bucket: str, workdir: Path, repeat: int) -> list[dict]:
    """Median times of `@v/list` of the big module and of a whole `/catalog` walk, over HTTP
    through a node on the bucket."""
    node = Node(workdir, extra={"StorageType": "s3", "NetworkMode": "offline",
                                "LogLevel": "warning"},
                tables=endpoint.tables(bucket), name="node")

    def get_ok(path: str) -> bytes:
        st, _, body = node.get(path)
        if st != 200:
            raise RuntimeError(f"{path}: {st} {body[:200]!r}")
        return body

    def list_big():
        get_ok(f"/{modpath.escape_path(BIG)}/@v/list")

    def walk_catalog():
        token = ""
        while "next" in (page := json.loads(get_ok(f"/catalog?pagesize=1000&token={token}"))):
            token = page["next"]

    def median_ms(fn) -> float:
        ts = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts) * 1000

    try:
        return [{"op": f"node: GET {BIG}/@v/list", "requests": "-",
                 "median_ms": median_ms(list_big), "calls": repeat},
                {"op": "node: every /catalog page (pagesize 1000)", "requests": "-",
                 "median_ms": median_ms(walk_catalog), "calls": repeat}]
    finally:
        node.stop()


def bench(endpoint, size: int, workdir: Path, repeat: int) -> dict:
    bucket = f"gomirror-bench-{size}-{uuid.uuid4().hex[:6]}"
    client = endpoint.client(max_pool_connections=32)
    client.create_bucket(Bucket=bucket)
    versions = versions_for(size)
    objects = version_objects(versions)
    t0 = time.monotonic()
    put_objects(client, bucket, objects, workers=32)
    fill_s = time.monotonic() - t0
    store = S3Store(endpoint.s3config(bucket))
    requests = S3Requests(store.s3)
    em_big = modpath.escape_path(BIG)
    small = next(m for m in versions if m != BIG)
    em_small = modpath.escape_path(small)
    big_versions = versions[BIG]
    tmp = Path(tempfile.mkdtemp(dir=workdir))
    rows = [
        measure(store, requests, "has_version (stored)",
                lambda i: store.has_version(em_big, big_versions[i * 7 % len(big_versions)]),
                repeat * 4),
        measure(store, requests, "has_version (not stored)",
                lambda i: store.has_version(em_big, f"v9.{i}.0"), repeat * 4),
        measure(store, requests, f"stored_versions of the big module ({len(big_versions)})",
                lambda _i: store.stored_versions(em_big), repeat),
        measure(store, requests, f"stored_versions of a module of {SMALL_SIZE}",
                lambda _i: store.stored_versions(em_small), repeat),
        measure(store, requests, "catalog, first page (1000)",
                lambda _i: store.catalog("", 1000), repeat),
        measure(store, requests, "catalog, every page", catalog_walk(store), repeat),
        *node_timings(endpoint, bucket, workdir / f"node-{bucket}", repeat),
        measure(store, requests, "put_version of one more version of the big module",
                lambda i: store.put_version(em_big, f"v2.0.{i}",
                                            version_files(tmp, f"v2.0.{i}")), repeat),
    ]
    store.pool.shutdown()
    return {"server": endpoint.name, "versions": size, "keys": len(objects),
            "fill_s": fill_s, "rows": rows}


def requests_text(r) -> str:
    if isinstance(r, str):
        return r
    if isinstance(r, list):
        return "varied: " + "; ".join(requests_text(x) for x in r)
    return ", ".join(f"{n} {op}" for op, n in sorted(r.items())) or "none"


def render_result(r: dict) -> list[str]:
    out = [f"### {r['server']}: {r['versions']} versions ({r['keys']} keys, written in "
           f"{r['fill_s']:.0f} s by 32 concurrent PUTs)",
           "",
           "| operation | S3 requests per call | median | calls |",
           "| --- | --- | ---: | ---: |"]
    out += [f"| {row['op']} | {requests_text(row['requests'])} | {row['median_ms']:.1f} ms "
            f"| {row['calls']} |" for row in r["rows"]]
    return [*out, ""]


SERVER_TEXT = {"seaweedfs": "SeaweedFS 4.48 (`weed mini`, one process)",
               "moto": "moto (ThreadedMotoServer, in the bench's process)"}


def render(results: list[dict], command: str, load: float) -> str:
    servers = " and ".join(SERVER_TEXT[n] for n in dict.fromkeys(r["server"] for r in results))
    out = [BEGIN, "## S3 store: requests per operation",
           "",
           f"Generated by `{command}` on {time.strftime('%Y-%m-%d')}. Machine: "
           f"{platform.node()} ({os.cpu_count()} CPUs, load average {load:.1f} at the start). "
           f"The node's S3Store (proxy/src/gomirror_proxy/store/s3.py) on {servers}, on "
           "loopback. Requests: every HTTP request the store's boto3 client sent (botocore's "
           "before-send), per call; they do not depend on the server or the machine. Times: "
           "medians. Store layout as put_version leaves it (.zip, .mod, .info per version, "
           f"`list` per module); half the versions in {BIG}, the rest in modules of "
           f"{SMALL_SIZE}.",
           ""]
    for r in results:
        out += render_result(r)
    out.append(END)
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--servers", nargs="+", default=["seaweedfs", "moto"],
                    choices=["seaweedfs", "moto"])
    ap.add_argument("--repeat", type=int, default=5, help="calls per measured operation")
    ap.add_argument("--report", help="markdown file whose store-requests section to replace")
    a = ap.parse_args()
    if any(s < 100 for s in a.sizes):
        ap.error("--sizes: each at least 100 (half in one module, the rest in modules of 50)")
    results, load = [], os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="store-requests-") as work:
        for name in a.servers:
            workdir = Path(work) / name
            workdir.mkdir()
            if name == "seaweedfs":
                weed = seaweedfs_binary()
                if not weed.is_file():
                    sys.exit(f"{weed} is not installed: run `make seaweedfs`")
                server = SeaweedFS(weed, workdir)
            else:
                server = MotoServer()
            try:
                for size in a.sizes:
                    r = bench(server.endpoint, size, workdir, a.repeat)
                    results.append(r)
                    print("\n".join(render_result(r)), flush=True)
            finally:
                server.stop()
    command = "python proxy/bench/store_requests.py " + " ".join(sys.argv[1:])
    if a.report:
        report.write_section(Path(a.report), render(results, command.strip(), load), BEGIN, END)


if __name__ == "__main__":
    main()
