"""Several nodes, one store: gomirror-proxy nodes sharing one bucket on a real SeaweedFS
(the core region's production shape). Single flight across nodes through the store's
conditional-PUT lock, a lock left by a killed node expiring, and what a node answers while
its store is unreachable."""

# pytest fixtures are imported from their modules (the repo's tests/ owns `conftest`)
# ruff: noqa: F401, F811

from __future__ import annotations

import contextlib
import signal
import threading
import time
import uuid

import pytest
from s3servers import SeaweedFS, seaweedfs, seaweedfs_binary
from upstreams import upstream

from proxyhelpers import ORIGIN, ORIGIN_TREE, nodes, origin, wait_for

pytestmark = pytest.mark.usefixtures("origin")

ORIGIN_SUMDB = {"SumDBUpstreams": {"sum.golang.org": ORIGIN + "/sumdb/sum.golang.org"}}
VERSION = "/github.com/modern-go/reflect2/@v/v1.0.2"
ZIP = VERSION + ".zip"


def origin_file(rel: str) -> bytes:
    return (ORIGIN_TREE / rel.lstrip("/")).read_bytes()


def new_bucket(endpoint) -> str:
    name = f"gomirror-{uuid.uuid4().hex[:12]}"
    endpoint.client().create_bucket(Bucket=name)
    return name


def keys(endpoint, bucket: str, prefix: str = "") -> list[str]:
    pages = endpoint.client().get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def core_node(nodes, endpoint, bucket: str, up, name: str, **extra):
    return nodes(upstream=up.url, tables=endpoint.tables(bucket), name=name,
                 extra={**ORIGIN_SUMDB, "StorageType": "s3", **extra})


def test_concurrent_misses_over_two_nodes_on_one_bucket_fetch_the_version_once(
        nodes, upstream, seaweedfs):
    bucket = new_bucket(seaweedfs)
    want = origin_file(ZIP)
    up = upstream(slow={ZIP: len(want) // 2})  # ~2 s on the wire: every request overlaps it
    a = core_node(nodes, seaweedfs, bucket, up, "core-a")
    b = core_node(nodes, seaweedfs, bucket, up, "core-b")
    results: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def get(node):
        st, _, body = node.get(ZIP, timeout=120)
        with lock:
            results.append((st, body))

    threads = [threading.Thread(target=get, args=(a if i % 2 else b,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 20
    assert all(st == 200 and body == want for st, body in results), \
        [st for st, _ in results]
    assert up.asked(ZIP) == 1, "more than one node fetched the version"
    assert up.asked(VERSION + ".info") == 1
    fetched = a.metric("gomirror_proxy_fetches_total", absent=0, result="ok") \
        + b.metric("gomirror_proxy_fetches_total", absent=0, result="ok")
    peer = a.metric("gomirror_proxy_fetches_total", absent=0, result="peer") \
        + b.metric("gomirror_proxy_fetches_total", absent=0, result="peer")
    assert (fetched, peer) == (1, 1)  # one fetched it, the other found it stored
    assert keys(seaweedfs, bucket, ".locks/") == []  # released


def test_a_lock_left_by_a_killed_node_expires_and_another_node_completes_the_version(
        nodes, upstream, seaweedfs):
    bucket = new_bucket(seaweedfs)
    want = origin_file(ZIP)
    stalled = upstream(slow={ZIP: max(len(want) // 60, 10)})  # a minute: killed long before
    healthy = upstream()
    ttl = 4
    a = core_node(nodes, seaweedfs, bucket, stalled, "core-a", LockTTL=ttl)
    b = core_node(nodes, seaweedfs, bucket, healthy, "core-b", LockTTL=ttl)
    def doomed_client():
        with contextlib.suppress(OSError):  # its node is killed mid-request
            a.get(ZIP, timeout=120)

    threading.Thread(target=doomed_client, daemon=True).start()
    assert wait_for(lambda: stalled.asked(ZIP) == 1, 30)  # a holds the lock, mid-transfer
    assert len(keys(seaweedfs, bucket, ".locks/")) == 1
    a.stop(signal.SIGKILL)
    t0 = time.monotonic()
    st, _, body = b.get(ZIP, timeout=120)
    took = time.monotonic() - t0
    assert st == 200 and body == want
    assert took < ttl + 10, f"waited {took:.1f} s for a dead node's lock (LockTTL {ttl})"
    assert healthy.asked(ZIP) == 1
    # Nothing half-written by the killed node is served: the stored version is whole.
    stored = set(keys(seaweedfs, bucket, VERSION.lstrip("/")))
    assert {VERSION.lstrip("/") + ext for ext in (".info", ".mod", ".zip")} <= stored
    assert keys(seaweedfs, bucket, ".locks/") == []


def test_a_node_whose_store_is_down_answers_5xx_never_404_and_recovers_without_restart(
        nodes, upstream, tmp_path):
    # A SeaweedFS of its own: this test stops it and starts it again on the same ports
    # and data directory.
    weed = seaweedfs_binary()
    if not weed.is_file():
        pytest.fail(f"{weed} is not installed (make seaweedfs)")
    server = SeaweedFS(weed, tmp_path / "weed")
    try:
        bucket = new_bucket(server.endpoint)
        node = core_node(nodes, server.endpoint, bucket, upstream(), "core")
        assert node.get(ZIP)[0] == 200  # stored whole
        assert wait_for(lambda: node.get("/readyz")[0] == 200, 10)
        server.stop()
        # Stored files it cannot read now: 5xx, which no edge caches as "not found", and a
        # miss cannot be stored either.
        for path in (VERSION + ".info", VERSION + ".mod", ZIP,
                     "/github.com/modern-go/reflect2/@v/list",
                     "/github.com/pmezard/go-difflib/@v/v1.0.0.zip"):
            st, h, body = node.get(path, timeout=60)
            assert 500 <= st <= 599, (path, st, body)
            assert h["Cache-Control"] == "no-store", (path, h)
        assert wait_for(lambda: node.get("/readyz")[0] == 503, 10)
        assert b"store" in node.get("/readyz")[2]
        server.restart()
        assert wait_for(lambda: node.get(ZIP, timeout=30)[0] == 200, 60)
        assert node.get(ZIP)[2] == origin_file(ZIP)  # nothing lost
        assert wait_for(lambda: node.get("/readyz")[0] == 200, 10)
    finally:
        server.stop()
