"""Storage conformance: the S3 contract the node relies on, and the node's S3Store on it, against
every S3 implementation the project can start here: SeaweedFS (`weed mini`) and moto (server
mode), both real HTTP on loopback.

Raw boto3 where the server's contract is the point (conditional PUT atomicity, ranges, HEAD),
the node's own S3Store where its behaviour is (lock, put_version/read/stream/stat, listing and
the catalog past 1,000 objects, S3 requests per operation), and a running node for `@v/list`,
`@latest` and `/catalog` over HTTP. The same operations on a 10,000-version store, with
request counts and times, are proxy/bench/store_requests.py's.
"""

# pytest fixtures are imported from helper modules (the repo's tests/ owns `conftest`)
# ruff: noqa: F401, F811

import asyncio
import hashlib
import json
import math
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError
from s3load import S3Requests, layout, put_objects, version_objects
from s3servers import moto_threaded, seaweedfs

from gomirror_proxy import modpath
from gomirror_proxy.store import S3Store, version_key
from proxyhelpers import nodes

SERVERS = {"seaweedfs": "seaweedfs", "moto": "moto_threaded"}  # param id: fixture
PRECONDITION = {"PreconditionFailed", "ConditionalRequestConflict"}  # 412, or 409 under a race
LIST_PAGE = 1000  # what one ListObjectsV2 returns at most (S3's MaxKeys default)

BIG = "example.com/conformance/big"
BIG_VERSIONS = 1001  # past one LIST page of .info files alone: Athens #1801/#2037
# Around BIG in key order: one before it, one with upper case (escaped `!c`), and one after
# `sumdb/` (the catalog must read past the checksum database's objects, not stop there).
SMALL = ("example.com/conformance/a-first", "github.com/Conformance/Upper",
         "golang.org/x/conformance", "zgo.at/conformance")
SMALL_VERSIONS = 25
# Versions whose keys hold `+` (a classic S3 pitfall: `+` read as a space) and a pseudo-version
# (stored and in the catalog, never in `list`).
PLUS = "github.com/conformance/plus"
PLUS_VERSIONS = ["v2.0.0+incompatible", "v3.2.0+incompatible",
                 "v0.0.0-20221115062448-fe3a3abad311"]
# Stored objects that are not versions: the catalog skips them, listings must not trip on them.
NOT_VERSIONS = {".locks/v-" + "0" * 64: b'{"expires": 0}',
                "sumdb/sum.golang.org/latest": b"go.sum database tree\n",
                "sumdb/sum.golang.org/tile/8/0/000": b"tile"}


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(scope="module", params=list(SERVERS))
def s3(request):
    """Each test of this file runs once on SeaweedFS and once on moto."""
    return request.getfixturevalue(SERVERS[request.param])


def new_bucket(s3, what: str) -> str:
    """A fresh bucket (a DNS-label name: SeaweedFS refuses others)."""
    name = f"gomirror-{what}-{uuid.uuid4().hex[:8]}".lower().replace("_", "-")[:63]
    s3.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def bucket(s3, request):
    return new_bucket(s3, request.node.originalname.removeprefix("test_")[:40])


def stores(s3, bucket: str, n: int) -> list[S3Store]:
    """N S3Stores on one bucket, each with its own client and pool: N nodes, as S3 sees them."""
    return [S3Store(s3.s3config(bucket)) for _ in range(n)]


def lock_objects(s3, bucket: str) -> dict[str, bytes]:
    c = s3.client()
    listed = c.list_objects_v2(Bucket=bucket, Prefix=".locks/").get("Contents", [])
    keys = [o["Key"] for o in listed]
    return {k: c.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


# --- conditional PUT: the primitive the node's lock stands on ---------------------------------

def test_conditional_put_on_one_key_has_exactly_one_winner(s3, bucket):
    writers = 32
    client = s3.client(max_pool_connections=writers, retries={"max_attempts": 1})
    start = threading.Barrier(writers)

    def put(i: int):
        start.wait()  # all 32 go out together
        t0 = time.monotonic()
        try:
            client.put_object(Bucket=bucket, Key="race", Body=f"writer {i}".encode(),
                              IfNoneMatch="*")
            status, code = 200, ""
        except ClientError as e:
            status = e.response["ResponseMetadata"]["HTTPStatusCode"]
            code = e.response["Error"]["Code"]
        return i, status, code, time.monotonic() - t0

    with ThreadPoolExecutor(writers) as pool:
        results = list(pool.map(put, range(writers)))
    winners = [i for i, status, _, _ in results if 200 <= status < 300]
    assert len(winners) == 1, results
    losers = {code for _, status, code, _ in results if status >= 300}
    assert losers <= PRECONDITION, results
    # (SeaweedFS 4.48 queues racing conditional PUTs on a key: the last loser's 412 comes
    # seconds later; moto answers at once. Reported, not asserted.)
    print(f"{s3.name}: 32 racing conditional PUTs: slowest answer after "
          f"{max(r[3] for r in results):.2f} s")
    body = client.get_object(Bucket=bucket, Key="race")["Body"].read()
    assert body == f"writer {winners[0]}".encode(), "the stored object is not the winner's"


# --- the node's lock (S3Store.lock): one holder, expiry, conditional release --------------------

EM = modpath.escape_path("example.com/conformance/locked")


def test_lock_has_one_holder_among_concurrent_lockers(s3, bucket):
    lockers = stores(s3, bucket, 6)
    state = {"inside": 0, "most": 0, "order": [], "held_as": []}

    async def take(i: int, store: S3Store):
        async with store.lock(EM, "v1.0.0", ttl=30):
            state["inside"] += 1
            state["most"] = max(state["most"], state["inside"])
            state["order"].append(i)
            state["held_as"].append(await asyncio.to_thread(lock_objects, s3, bucket))
            await asyncio.sleep(0.2)
            state["inside"] -= 1

    async def all_at_once():
        await asyncio.gather(*(take(i, st) for i, st in enumerate(lockers)))

    run(all_at_once())
    assert state["most"] == 1, "two lockers held the lock at once"
    assert sorted(state["order"]) == list(range(6)), state["order"]
    for held in state["held_as"]:  # one lock object while held, its lease running
        assert len(held) == 1, held
        assert json.loads(next(iter(held.values())))["expires"] > time.time()
    assert lock_objects(s3, bucket) == {}, "a released lock was left behind"


def test_expired_lock_is_taken_over_by_exactly_one_waiter(s3, bucket):
    dead, *waiters = stores(s3, bucket, 5)
    state = {"inside": 0, "most": 0, "entered": []}

    async def take(i: int, store: S3Store, t0: float):
        async with store.lock(EM, "v1.0.0", ttl=10):
            state["inside"] += 1
            state["most"] = max(state["most"], state["inside"])
            state["entered"].append((i, time.monotonic() - t0))
            await asyncio.sleep(0.3)
            state["inside"] -= 1

    async def scenario():
        killed = dead.lock(EM, "v1.0.0", ttl=2)
        await killed.__aenter__()  # and never released: its node was killed
        t0 = time.monotonic()
        await asyncio.gather(*(take(i, st, t0) for i, st in enumerate(waiters)))

    run(scenario())
    assert state["most"] == 1, "two waiters took over the same expired lock"
    assert sorted(i for i, _ in state["entered"]) == list(range(len(waiters)))
    first = min(t for _, t in state["entered"])
    assert 1.5 <= first < 6, f"taken over after {first:.1f} s: the lease was 2 s"
    assert lock_objects(s3, bucket) == {}


def test_slow_holder_never_deletes_its_successors_lock(s3, bucket):
    slow, successor, third = stores(s3, bucket, 3)
    seen = {}

    async def scenario():
        slow_lock = slow.lock(EM, "v1.0.0", ttl=1)
        await slow_lock.__aenter__()
        seen["slow"] = await asyncio.to_thread(lock_objects, s3, bucket)
        await asyncio.sleep(1.3)  # its lease ran out while it still works
        async with successor.lock(EM, "v1.0.0", ttl=30):
            seen["successor"] = await asyncio.to_thread(lock_objects, s3, bucket)
            await slow_lock.__aexit__(None, None, None)  # the slow holder finishes, releases
            seen["after_slow_release"] = await asyncio.to_thread(lock_objects, s3, bucket)
            entered = asyncio.Event()

            async def third_locker():
                async with third.lock(EM, "v1.0.0", ttl=30):
                    entered.set()

            waiting = asyncio.create_task(third_locker())
            await asyncio.sleep(1.0)
            seen["third_entered_while_held"] = entered.is_set()
        await asyncio.wait_for(waiting, 10)
        seen["third_entered_after"] = entered.is_set()

    run(scenario())
    assert seen["successor"].keys() == seen["slow"].keys()
    assert seen["successor"] != seen["slow"], "the successor's lease is not in the lock object"
    assert seen["after_slow_release"] == seen["successor"], "the slow holder deleted the lock"
    assert not seen["third_entered_while_held"], "the lock no longer excluded anyone"
    assert seen["third_entered_after"]
    assert lock_objects(s3, bucket) == {}


def test_a_lock_whose_creating_put_lost_its_answer_is_known_as_ours(s3, bucket):
    # A conditional PUT created the lock object but its answer never arrived: the retry
    # (botocore's, or the lock loop's next attempt) then fails its own condition. The object
    # carries the acquisition's token, so the node holds the lock at once instead of waiting
    # out its own lease, and everyone else is still kept out.
    mine, other = stores(s3, bucket, 2)
    key = mine._lock_key(EM, "v1.0.0")
    created = mine._try_lock(key, 30, "a" * 32)
    assert created
    assert mine._try_lock(key, 30, "a" * 32) == created  # the retry after a lost answer
    assert other._try_lock(key, 30, "b" * 32) is None
    assert mine._try_lock(key, 30, "c" * 32) is None  # another acquisition of the same node
    assert len(lock_objects(s3, bucket)) == 1


# --- read after write: put_version, then read/stream/stat; multipart, ranges, HEAD ------------

ZIP_BYTES = 20 << 20  # past boto3's 8 MiB multipart threshold: three parts of 8, 8, 4 MiB
PART = 8 << 20


def test_version_reads_back_after_write_with_a_multipart_zip(s3, bucket, tmp_path):
    em, ev = modpath.escape_path("example.com/conformance/Raw"), "v1.2.3"
    content = {"zip": os.urandom(ZIP_BYTES), "mod": b"module example.com/conformance/Raw\n",
               "info": json.dumps({"Version": ev, "Time": "2024-05-01T00:00:00Z"}).encode()}
    files = {}
    for ext, data in content.items():
        (tmp_path / ext).write_bytes(data)
        files[ext] = str(tmp_path / ext)
    (store,) = stores(s3, bucket, 1)
    requests = S3Requests(store.s3)

    async def write_then_read():
        with requests.counting() as put:
            await store.put_version(em, ev, files)
        got = {ext: await store.read(version_key(em, ev, ext)) for ext in ("mod", "info")}
        got["zip"] = b"".join([c async for c in store.stream(version_key(em, ev, "zip"))])
        sizes = {ext: await store.stat(version_key(em, ev, ext)) for ext in content}
        return (put, got, sizes, await store.has_version(em, ev),
                await store.stored_versions(em), await store.read(f"{em}/@v/list"))

    put, got, sizes, has, stored, listed = run(write_then_read())
    assert put == {"CreateMultipartUpload": 1, "UploadPart": 3, "CompleteMultipartUpload": 1,
                   "PutObject": 3, "ListObjectsV2": 1, "HeadObject": 1}, put
    # (.mod, .info and list PUT, the zip in parts; list's ETag, then its conditional rewrite)
    for ext in content:
        assert hashlib.sha256(got[ext]).digest() == hashlib.sha256(content[ext]).digest(), ext
        assert sizes[ext] == len(content[ext]), ext
    assert has and stored == [ev] and listed == b"v1.2.3\n"

    client = s3.client()
    key = version_key(em, ev, "zip")
    head = client.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == ZIP_BYTES
    assert head["ETag"].strip('"').endswith("-3"), f"not stored as 3 parts: {head['ETag']}"
    zipped = content["zip"]
    for rng, lo, hi in (("bytes=0-99", 0, 99),
                        (f"bytes={PART - 50}-{PART + 49}", PART - 50, PART + 49),  # across parts
                        ("bytes=-100", ZIP_BYTES - 100, ZIP_BYTES - 1),
                        (f"bytes={ZIP_BYTES - 10}-", ZIP_BYTES - 10, ZIP_BYTES - 1)):
        r = client.get_object(Bucket=bucket, Key=key, Range=rng)
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 206, rng
        assert r["ContentRange"] == f"bytes {lo}-{hi}/{ZIP_BYTES}", rng
        assert r["Body"].read() == zipped[lo:hi + 1], rng
    with pytest.raises(ClientError) as past_end:
        client.get_object(Bucket=bucket, Key=key, Range=f"bytes={ZIP_BYTES}-")
    assert past_end.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    with pytest.raises(ClientError) as missing:
        client.head_object(Bucket=bucket, Key=version_key(em, "v9.9.9", "zip"))
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_two_nodes_storing_versions_at_once_both_end_up_in_list(s3, bucket, tmp_path):
    # Forced interleaving: node a lists the module, node b then stores another version and
    # rewrites `list`, then a writes its (older) listing. a's rewrite must not drop b's version.
    a, b = stores(s3, bucket, 2)
    em = modpath.escape_path("example.com/conformance/race")
    files = {}
    for ext, data in (("zip", b"zip"), ("mod", b"module example.com/conformance/race\n"),
                      ("info", b'{"Version":"v"}')):
        (tmp_path / ext).write_bytes(data)
        files[ext] = str(tmp_path / ext)
    listed, go_on = threading.Event(), threading.Event()
    list_module = a._stored_versions_sync

    def slow_listing(module):
        out = list_module(module)
        listed.set()
        go_on.wait(30)
        return out

    a._stored_versions_sync = slow_listing
    writer = threading.Thread(target=run, args=(a.put_version(em, "v1.0.0", files),))
    writer.start()
    assert listed.wait(30)
    run(b.put_version(em, "v1.1.0", files))
    assert run(b.read(f"{em}/@v/list")) == b"v1.0.0\nv1.1.0\n"
    go_on.set()
    writer.join(60)
    assert not writer.is_alive()
    assert run(a.read(f"{em}/@v/list")) == b"v1.0.0\nv1.1.0\n"


# --- a store past 1,000 objects: listing, existence, the catalog, S3 requests per operation ----

@pytest.fixture(scope="module")
def filled(s3):
    """(bucket, {module: versions}, every key) of a store holding BIG with 1,001 versions, the
    SMALL modules and PLUS, as put_version leaves them, plus NOT_VERSIONS."""
    versions = {**layout({BIG: BIG_VERSIONS, **dict.fromkeys(SMALL, SMALL_VERSIONS)}),
                PLUS: PLUS_VERSIONS}
    objects = {**version_objects(versions), **NOT_VERSIONS}
    name = new_bucket(s3, "filled")
    t0 = time.monotonic()
    put_objects(s3.client(max_pool_connections=32), name, objects, workers=32)
    print(f"{s3.name}: {len(objects)} objects written in {time.monotonic() - t0:.1f} s")
    return name, versions, set(objects)


def test_stored_versions_past_1000_cost_one_list_per_1000_keys(s3, filled):
    bucket, versions, keys = filled
    (store,) = stores(s3, bucket, 1)
    requests = S3Requests(store.s3)
    for mod, want in versions.items():
        em = modpath.escape_path(mod)
        with requests.counting() as sent:
            got = run(store.stored_versions(em))
        assert sorted(got, key=modpath.semver_key) == sorted(want, key=modpath.semver_key), mod
        in_dir = sum(k.startswith(f"{em}/@v/") for k in keys)
        assert sent == {"ListObjectsV2": math.ceil(in_dir / LIST_PAGE)}, (mod, in_dir, sent)
        print(f"{s3.name}: stored_versions({mod}): {len(got)} versions, {in_dir} keys, "
              f"{sent['ListObjectsV2']} LIST")


def test_has_version_is_one_head_request(s3, filled):
    bucket, versions, _ = filled
    (store,) = stores(s3, bucket, 1)
    requests = S3Requests(store.s3)
    for mod, ev, want in ((BIG, versions[BIG][-1], True), (BIG, versions[BIG][500], True),
                          (PLUS, "v3.2.0+incompatible", True), (BIG, "v9.9.9", False),
                          ("example.com/not/stored", "v1.0.0", False)):
        em = modpath.escape_path(mod)
        with requests.counting() as sent:
            assert run(store.has_version(em, modpath.escape_version(ev))) is want, (mod, ev)
        assert sent == {"HeadObject": 1}, (mod, ev, sent)  # (Athens' Exists: three HEADs)


def test_catalog_pages_across_1000_return_every_version_once(s3, filled):
    bucket, versions, keys = filled
    (store,) = stores(s3, bucket, 1)
    requests = S3Requests(store.s3)
    seen, pages, lists, token = [], [], 0, ""
    while True:
        with requests.counting() as sent:
            items = run(store.catalog(token, LIST_PAGE))
        assert set(sent) <= {"ListObjectsV2"}, sent
        lists += sent["ListObjectsV2"]
        pages.append(len(items))
        seen += items
        if len(items) < LIST_PAGE:
            break
        token = f"{items[-1][0]}@{items[-1][1]}"  # what /catalog hands out as `next`
    want = [(modpath.escape_path(m), modpath.escape_version(v))
            for m, vs in versions.items() for v in vs]
    assert len(seen) == len(set(seen)), "a version was listed twice"
    assert set(seen) == set(want)
    assert pages == [LIST_PAGE, len(want) - LIST_PAGE], pages
    # every key is listed once; each page after the first may start inside a LIST page
    assert lists <= math.ceil(len(keys) / LIST_PAGE) + len(pages) - 1, lists
    print(f"{s3.name}: catalog of {len(want)} versions ({len(keys)} keys): pages {pages}, "
          f"{lists} LIST")


def test_node_lists_and_catalogs_past_1000_over_http(s3, filled, nodes):
    bucket, versions, _ = filled
    node = nodes(extra={"StorageType": "s3", "NetworkMode": "offline"}, tables=s3.tables(bucket))
    st, _, body = node.get(f"/{modpath.escape_path(BIG)}/@v/list")
    assert st == 200, body
    assert body.decode().split() == sorted(versions[BIG], key=modpath.semver_key)
    st, _, body = node.get(f"/{modpath.escape_path(BIG)}/@latest")
    assert st == 200 and json.loads(body)["Version"] == "v1.10.0", body  # after v1.9.99
    st, _, body = node.get(f"/{PLUS}/@v/list")
    assert st == 200 and body == b"v2.0.0+incompatible\nv3.2.0+incompatible\n", body
    st, _, body = node.get(f"/{PLUS}/@v/v3.2.0+incompatible.info")
    assert st == 200 and json.loads(body)["Version"] == "v3.2.0+incompatible", body
    seen, token = [], ""
    while True:
        st, _, body = node.get(f"/catalog?pagesize=1000&token={token}")
        assert st == 200, body
        page = json.loads(body)
        seen += [(m["module"], m["version"]) for m in page["modules"]]
        if "next" not in page:
            break
        token = page["next"]
    assert sorted(seen) == sorted((m, v) for m, vs in versions.items() for v in vs)
