"""The disk store on real files: hashed lock files that do not pile up, OS errors as
clear statuses, and the size bound that evicts the least recently served versions; the
S3 store's fetch locks against moto."""

# pytest fixtures are imported from other test modules (the repo's tests/ owns `conftest`)
# ruff: noqa: F401, F811

import asyncio
import contextlib
import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
from test_proxy_s3 import moto, s3client  # the moto server fixture, shared

from gomirror_proxy import modpath
from gomirror_proxy.config import ConfigError, S3Config, parse
from gomirror_proxy.metrics import Metrics
from gomirror_proxy.store import DiskStore, S3Store, StoreError, eviction, version_key
from proxyhelpers import ORIGIN_LOG, ORIGIN_TREE, LogTail, nodes, origin

MOD = "example.com/evict"
EM = modpath.escape_path(MOD)
LONG_EM = modpath.escape_path("example.com/" + "A" * 200)  # a 400-character element
LOCK_FILE = re.compile(r"^(v|list)-[0-9a-f]{64}\.lock$")


def run(coro):
    return asyncio.run(coro)


def version_files(tmp: Path, version: str, zip_bytes: int) -> dict[str, str]:
    """Source files of one version, as the fetcher hands them to put_version."""
    src = tmp / "src" / version
    src.mkdir(parents=True, exist_ok=True)
    (src / "z").write_bytes(version.encode().ljust(zip_bytes, b"z"))
    (src / "m").write_text(f"module {MOD}\n")
    (src / "i").write_text(json.dumps({"Version": version, "Time": "2024-01-01T00:00:00Z"}))
    return {"zip": str(src / "z"), "mod": str(src / "m"), "info": str(src / "i")}


def put(store: DiskStore, tmp: Path, version: str, zip_bytes: int = 2000) -> None:
    run(store.put_version(EM, version, version_files(tmp, version, zip_bytes)))


def listed(store: DiskStore) -> list[str]:
    return (Path(store.root) / EM / "@v/list").read_text().split()


def on_disk(store: DiskStore, version: str) -> set[str]:
    d = Path(store.root) / EM / "@v"
    return {ext for ext in ("zip", "mod", "info") if (d / f"{version}.{ext}").exists()}


def version_bytes(store: DiskStore) -> int:
    d = Path(store.root) / EM / "@v"
    return sum(p.stat().st_size for p in d.iterdir() if p.name != "list")


# --- lock files --------------------------------------------------------------------------

def test_lock_files_are_hashed_and_removed_after_50_versions(tmp_path):
    store = DiskStore(str(tmp_path / "store"))
    locks = Path(store.locks)

    async def fetch_all():
        for i in range(50):
            ev = f"v1.0.{i}"
            async with store.lock(LONG_EM, ev, ttl=5):
                names = os.listdir(locks)
                assert len(names) == 1 and LOCK_FILE.match(names[0]), names
            await store.put_version(EM, ev, version_files(tmp_path, ev, 10))

    run(fetch_all())
    assert os.listdir(locks) == [], "a lock file outlived its release"
    assert len(listed(store)) == 50


def test_unlinked_lock_files_still_exclude(tmp_path):
    """Holders unlink their lock file on release; a waiter that opened the old file must
    not think it holds the lock while a newcomer holds the new one."""
    store = DiskStore(str(tmp_path / "store"))
    inside, most = 0, 0
    async def one_of(s):
        nonlocal inside, most
        async with s.lock(EM, "v1.0.0", ttl=30):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.002)
            inside -= 1

    async def many():
        # two store objects on one root, as two processes would have
        other = DiskStore(store.root)
        await asyncio.gather(*(one_of(s) for s in [store, other] * 20))

    run(many())
    assert most == 1
    assert os.listdir(store.locks) == []


def test_unheld_lock_files_are_swept_at_start(tmp_path):
    store = DiskStore(str(tmp_path / "store"))
    locks = Path(store.locks)
    (locks / "v-github.com%old%module@v1.0.0.lock").write_text("")  # the old naming
    (locks / ("v-" + "0" * 64 + ".lock")).write_text("")  # a killed process's
    held = subprocess.Popen(  # another live process holds this one
        ["flock", str(locks / "held.lock"), "sleep", "30"])
    try:
        deadline = time.monotonic() + 10
        while not (locks / "held.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        store.cleanup_tmp()
        assert os.listdir(locks) == ["held.lock"]
    finally:
        held.kill()
        held.wait()


# --- OS errors -----------------------------------------------------------------------------

def test_names_too_long_for_the_file_system_cannot_exist_here(tmp_path):
    store = DiskStore(str(tmp_path / "store"))
    long_ev = modpath.escape_version("v1.0.0-" + "A" * 190)
    for em, ev in ((LONG_EM, "v1.0.0"), (EM, long_ev)):
        for call in (store.has_version(em, ev),
                     store.stat(version_key(em, ev, "mod")),
                     store.read(version_key(em, ev, "info")),
                     store.put_version(em, ev, version_files(tmp_path, "v", 1))):
            with pytest.raises(StoreError) as e:
                run(call)
            assert e.value.status == 404 and "cannot exist here" in e.value.msg
            assert str(tmp_path) not in e.value.msg  # never the store's own directory
    async def locked():
        async with store.lock(LONG_EM, long_ev, ttl=5):
            return True
    assert run(locked())  # the lock name is a hash whatever the path's length


@pytest.fixture
def tiny_fs(tmp_path):
    """A 2 MiB tmpfs: a real file system that really fills up."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(fs: Path, leave: int = 0) -> None:
    """Fill the file system up to `leave` free bytes."""
    st = os.statvfs(fs)
    free = st.f_bavail * st.f_frsize
    with open(fs / "filler", "wb") as f, contextlib.suppress(OSError):
        f.write(b"\0" * max(free - leave, 0))


def test_a_full_disk_refuses_writes_with_507_and_keeps_serving(tmp_path, tiny_fs):
    store = DiskStore(str(tiny_fs / "store"))
    put(store, tmp_path, "v1.0.0", zip_bytes=1000)
    fill(tiny_fs, leave=64 << 10)
    with pytest.raises(StoreError) as e:
        put(store, tmp_path, "v1.1.0", zip_bytes=1 << 20)
    assert e.value.status == 507 and "full" in e.value.msg
    assert on_disk(store, "v1.1.0") <= {"mod"}, "a refused version left its zip behind"
    assert os.listdir(store.tmp) == []
    assert listed(store) == ["v1.0.0"]
    # hits are still served
    assert run(store.has_version(EM, "v1.0.0"))
    assert json.loads(run(store.read(version_key(EM, "v1.0.0", "info"))))["Version"] == "v1.0.0"
    with pytest.raises(StoreError) as e:
        run(store.write(version_key(EM, "v1.2.0", "mod"), b"x" * (1 << 20)))
    assert e.value.status == 507


def test_a_read_only_store_answers_503_on_writes(tmp_path, tiny_fs):
    store = DiskStore(str(tiny_fs / "store"))
    put(store, tmp_path, "v1.0.0")
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
    try:
        with pytest.raises(StoreError) as e:
            put(store, tmp_path, "v1.1.0")
        assert e.value.status == 503 and "Read-only" in e.value.msg
        assert run(store.read(version_key(EM, "v1.0.0", "mod"))) == f"module {MOD}\n".encode()
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(tiny_fs)], check=True)


# --- size bound and eviction -------------------------------------------------------------

def bounded(tmp_path, max_bytes, percent=50, name="store"):
    store = DiskStore(str(tmp_path / name), max_bytes=max_bytes, evict_to_percent=percent)
    metrics = Metrics()
    store.bind_metrics(metrics)
    return store, metrics


def metric(metrics: Metrics, name: str) -> float:
    for line in metrics.render().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no series {name}")


def test_eviction_removes_the_least_recently_served_whole_versions(tmp_path):
    store, metrics = bounded(tmp_path, max_bytes=12_000, percent=55)
    (Path(store.root) / "sumdb/sum.golang.org").mkdir(parents=True)
    (Path(store.root) / "sumdb/sum.golang.org/latest").write_text("tree head")
    for v in ("v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0", "v1.4.0"):
        put(store, tmp_path, v)  # ~2.1 kB each: 10.6 kB, under the bound
    assert metric(metrics, "gomirror_proxy_store_evictions_total") == 0
    assert metric(metrics, "gomirror_proxy_store_bytes") == version_bytes(store)
    store.touch(EM, "v1.0.0")  # served: now the most recent
    store.touch(EM, "v1.2.0")
    put(store, tmp_path, "v1.5.0")  # 12.5 kB > 12 kB: evict down to 6.6 kB
    gone = [v for v in ("v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0", "v1.4.0", "v1.5.0")
            if not on_disk(store, v)]
    # least recently served first: 1.1, 1.3, 1.4 (never served), then 1.0, 1.2 remain
    assert gone == ["v1.1.0", "v1.3.0", "v1.4.0"]
    for v in ("v1.0.0", "v1.2.0", "v1.5.0"):
        assert on_disk(store, v) == {"zip", "mod", "info"}, v  # whole versions or nothing
    assert listed(store) == ["v1.0.0", "v1.2.0", "v1.5.0"]
    assert (Path(store.root) / "sumdb/sum.golang.org/latest").read_text() == "tree head"
    assert metric(metrics, "gomirror_proxy_store_evictions_total") == 3
    assert metric(metrics, "gomirror_proxy_store_bytes") == version_bytes(store) <= 6_600
    evicted = metric(metrics, "gomirror_proxy_store_evicted_bytes_total")
    assert evicted == 3 * (2000 + len(f"module {MOD}\n") + len(json.dumps(
        {"Version": "v1.1.0", "Time": "2024-01-01T00:00:00Z"})))


def test_eviction_removes_info_first(tmp_path, monkeypatch):
    store, _ = bounded(tmp_path, max_bytes=5_000, percent=10)
    put(store, tmp_path, "v1.0.0")
    put(store, tmp_path, "v1.1.0")
    removed = []
    real_unlink = os.unlink

    def recording_unlink(path, *a, **kw):
        removed.append(os.path.basename(path))
        return real_unlink(path, *a, **kw)

    monkeypatch.setattr(eviction.os, "unlink", recording_unlink)
    put(store, tmp_path, "v1.2.0")
    version_files_removed = [n for n in removed if n.startswith("v1.")]
    assert version_files_removed[:3] == ["v1.0.0.info", "v1.0.0.zip", "v1.0.0.mod"]


def test_recency_is_seeded_from_mtimes_when_the_store_opens(tmp_path):
    store, _ = bounded(tmp_path, max_bytes=100_000)
    for v in ("v1.0.0", "v1.1.0", "v1.2.0"):
        put(store, tmp_path, v)
    d = Path(store.root) / EM / "@v"
    for age, v in ((300, "v1.1.0"), (200, "v1.2.0"), (100, "v1.0.0")):
        for p in d.glob(v + ".*"):
            os.utime(p, (time.time() - age, time.time() - age))
    reopened, metrics = bounded(tmp_path, max_bytes=7_000, percent=60)
    assert metric(metrics, "gomirror_proxy_store_bytes") == version_bytes(reopened)
    put(reopened, tmp_path, "v1.3.0")
    assert not on_disk(reopened, "v1.1.0") and not on_disk(reopened, "v1.2.0")
    assert on_disk(reopened, "v1.0.0") == {"zip", "mod", "info"}


def test_versions_being_written_or_read_are_never_evicted(tmp_path):
    store, _ = bounded(tmp_path, max_bytes=8_000, percent=10)
    for v in ("v1.0.0", "v1.1.0", "v1.2.0"):
        put(store, tmp_path, v)
    other_process = DiskStore(store.root)  # its own open files: flock excludes it from us

    async def over_bound_while_held():
        async with other_process.lock(EM, "v1.0.0", ttl=5):  # v1.0.0 is being (re)written
            with store.reading(EM, "v1.1.0"):  # v1.1.0 is being served
                await store.put_version(EM, "v1.3.0", version_files(tmp_path, "v1.3.0", 2000))

    run(over_bound_while_held())
    assert on_disk(store, "v1.0.0") == {"zip", "mod", "info"}
    assert on_disk(store, "v1.1.0") == {"zip", "mod", "info"}
    assert not on_disk(store, "v1.2.0")
    assert on_disk(store, "v1.3.0") == {"zip", "mod", "info"}  # the version just written


def test_concurrent_readers_never_see_half_a_version(tmp_path):
    """Readers pin a version from the .info check until the zip is open; writers keep the
    store over its bound so eviction runs all the time."""
    store, metrics = bounded(tmp_path, max_bytes=30_000, percent=50)
    size = 5000
    expected = {f"v1.0.{i}": f"v1.0.{i}".encode().ljust(size, b"z") for i in range(40)}
    published = []  # versions written so far (list.append is atomic)
    for v in list(expected)[:4]:
        put(store, tmp_path, v, zip_bytes=size)
        published.append(v)
    stop = threading.Event()
    errors, served, misses = [], [0], [0]

    def reader():
        while not stop.is_set():
            for v in published[:]:
                with store.reading(EM, v):
                    if not run(store.has_version(EM, v)):
                        misses[0] += 1  # evicted: a miss (the node refetches), never half
                        continue
                    path = store.local_path(version_key(EM, v, "zip"))
                    if path is None:
                        errors.append(f"{v}: .info present but no zip")
                        continue
                    f = open(path, "rb")  # noqa: SIM115 - opened inside the pin
                with f:
                    time.sleep(0.001)  # the read goes on after the pin, as with sendfile
                    body = f.read()
                if body != expected[v]:
                    errors.append(f"{v}: {len(body)} bytes")
                served[0] += 1

    threads = [threading.Thread(target=reader) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        for v in list(expected)[4:]:
            put(store, tmp_path, v, zip_bytes=size)
            published.append(v)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert errors == []
    assert served[0] > 0 and misses[0] > 0  # readers met evicted versions too
    assert metric(metrics, "gomirror_proxy_store_evictions_total") > 20
    assert version_bytes(store) <= 30_000
    for v in expected:
        assert on_disk(store, v) in (set(), {"zip", "mod", "info"}), v


def test_an_unbounded_store_keeps_everything(tmp_path):
    store = DiskStore(str(tmp_path / "store"))
    assert store.bound is None
    for i in range(5):
        put(store, tmp_path, f"v1.0.{i}", zip_bytes=50_000)
    assert len(listed(store)) == 5


@pytest.mark.parametrize(("disk", "key", "msg"), [
    ({"MaxBytes": -1}, "Storage.Disk.MaxBytes", "-1 is out of range (allowed: >= 0)"),
    ({"MaxBytes": "1G"}, "Storage.Disk.MaxBytes", "must be an integer, not str '1G'"),
    ({"EvictToPercent": 100}, "Storage.Disk.EvictToPercent",
     "100 is out of range (allowed: 1..99)"),
    ({"MaxSize": 1}, "Storage.Disk.MaxSize",
     "unknown key (allowed: EvictToPercent, MaxBytes, RootPath)"),
])
def test_size_bound_config_errors_name_the_key(tmp_path, disk, key, msg):
    data = {"Storage": {"Disk": {"RootPath": str(tmp_path), **disk}}}
    with pytest.raises(ConfigError) as e:
        parse(data, check_paths=False)
    assert e.value.key == key and msg in str(e.value)


def test_size_bound_config(tmp_path):
    c = parse({"Storage": {"Disk": {"RootPath": str(tmp_path), "MaxBytes": 10 << 30,
                                    "EvictToPercent": 80}}}, check_paths=False)
    assert (c.disk_max_bytes, c.disk_evict_to_percent) == (10 << 30, 80)
    c = parse({"Storage": {"Disk": {"RootPath": str(tmp_path)}}}, check_paths=False)
    assert (c.disk_max_bytes, c.disk_evict_to_percent) == (0, 90)


# --- S3 fetch locks (moto server: a real S3 endpoint on loopback) ----------------------------

def test_s3_lock_of_a_killed_node_is_taken_over_once_after_expiry(moto):
    bucket = "gomirror-locks"
    client = s3client(moto)
    client.create_bucket(Bucket=bucket)
    cfg = S3Config(bucket=bucket)
    killed, a, b = (S3Store(cfg, client=s3client(moto)) for _ in range(3))

    def lock_objects():
        return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]

    async def scenario():
        dead = killed.lock(LONG_EM, "v1.0.0", ttl=2)
        await dead.__aenter__()  # and never released: its node was killed
        keys = lock_objects()
        assert len(keys) == 1 and re.fullmatch(r"\.locks/v-[0-9a-f]{64}", keys[0]), keys
        t0 = time.monotonic()
        holders, inside, most = [], 0, 0

        async def take(store, name):
            nonlocal inside, most
            async with store.lock(LONG_EM, "v1.0.0", ttl=2):
                holders.append((name, time.monotonic() - t0))
                inside += 1
                most = max(most, inside)
                await asyncio.sleep(0.5)
                if name == holders[0][0]:
                    # the killed node wakes up late and releases: not the new holder's lock
                    await dead.__aexit__(None, None, None)
                    assert lock_objects() == keys
                inside -= 1

        await asyncio.gather(take(a, "a"), take(b, "b"))
        return holders, most

    holders, most = run(scenario())
    assert most == 1, "two waiters took over the same expired lock"
    assert sorted(name for name, _ in holders) == ["a", "b"]
    assert 1.5 <= holders[0][1] < 6, holders  # only after the dead holder's lease ran out
    assert lock_objects() == []


def test_s3_failures_are_store_errors(moto):
    store = S3Store(S3Config(bucket="no-such-bucket"), client=s3client(moto))
    # (a HEAD on a missing bucket is a bare 404: stat says "not stored", rightly)
    for call in (store.read(version_key(EM, "v1.0.0", "info")),
                 store.write(version_key(EM, "v1.0.0", "mod"), b"x")):
        with pytest.raises(StoreError) as e:
            run(call)
        assert e.value.status == 503 and "NoSuchBucket" in e.value.msg
        assert moto not in e.value.msg


# --- through a running node (its real handler) ----------------------------------------------

def go_runs(node) -> float:
    body = node.get("/metrics")[2].decode()
    return sum(float(line.split()[-1]) for line in body.splitlines()
               if line.startswith("gomirror_proxy_go_runs_total{"))


def test_a_200_character_path_element_is_404_without_a_fetch(origin, nodes):
    node = nodes()
    tail = LogTail(ORIGIN_LOG)
    long_version = modpath.escape_version("v1.0.0-" + "A" * 190)
    paths = [f"/{LONG_EM}/@v/v1.0.0.{ext}" for ext in ("info", "mod", "zip")]
    paths.append(f"/github.com/x/y/@v/{long_version}.info")
    for path in paths:
        st, h, body = node.get(path)
        assert st == 404, (path, st, body[:300])
        assert b"cannot exist here" in body, body[:300]
    for path in (f"/{LONG_EM}/@v/list", f"/{LONG_EM}/@latest"):
        st, _, body = node.get(path)
        assert st == 404, (path, st, body[:300])
    assert go_runs(node) == 0
    assert [line for line in tail.lines() if "AAAA" in line or "!a!a" in line] == []
    st, _, body = node.get(f"/sumdb/sum.golang.org/lookup/{LONG_EM}@v1.0.0")
    assert st == 404, (st, body[:300])  # the checksum database does not know it either
    assert os.listdir(node.store / ".locks") == []
    assert node.metric("gomirror_proxy_requests_total", endpoint="info", status="404") == 2


def test_a_full_store_answers_507_and_keeps_serving_hits(origin, nodes, tiny_fs):
    node = nodes(store=tiny_fs / "store")
    small = "/github.com/mattn/go-isatty/@v/v0.0.19.zip"
    want = (ORIGIN_TREE / small[1:]).read_bytes()
    assert node.get(small)[0] == 200
    big = "/golang.org/x/text/@v/v0.10.0.zip"  # 8.6 MB: does not fit in 2 MiB
    st, h, body = node.get(big)
    assert st == 507, (st, body[:300])
    assert b"full" in body and h["Cache-Control"] == "no-store"
    assert not (tiny_fs / "store/golang.org/x/text/@v/v0.10.0.zip").exists()
    assert os.listdir(tiny_fs / "store/.tmp") == []
    st, _, body = node.get(small)
    assert st == 200 and body == want
    assert node.metric("gomirror_proxy_requests_total", endpoint="zip", status="507") == 1
    assert node.metric("gomirror_proxy_requests_total", absent=0, endpoint="zip",
                       status="500") == 0


def test_a_bounded_node_evicts_the_least_recently_served_version(origin, nodes, tmp_path):
    """MaxBytes 80 000, down to 90 %: A, B, C fetched, A served again, D fetched: B and C
    (not served since they were written) go, A and D stay; a later request fetches B again."""
    a = "github.com/mattn/go-isatty/@v/v0.0.19"  # ~9 kB
    b = "github.com/modern-go/reflect2/@v/v1.0.2"  # ~25 kB
    c = "github.com/gin-contrib/sse/@v/v0.1.0"  # ~9 kB
    d = "github.com/davecgh/go-spew/@v/v1.1.1"  # ~61 kB
    store = tmp_path / "bounded-store"
    node = nodes(store=store, tables={"Storage.Disk": {
        "RootPath": str(store), "MaxBytes": 80_000, "EvictToPercent": 90}})

    def size(v):
        return sum((store / f"{v}.{ext}").stat().st_size for ext in ("info", "mod", "zip"))

    for v in (a, b, c):
        assert node.get(f"/{v}.zip")[0] == 200, v
    sizes = {v: size(v) for v in (a, b, c)}
    assert node.metric("gomirror_proxy_store_bytes") == sum(sizes.values())
    assert node.get(f"/{a}.info")[0] == 200  # A served: more recent than B and C
    assert node.get(f"/{d}.zip")[0] == 200
    for v in (b, c):
        assert not [ext for ext in ("info", "mod", "zip") if (store / f"{v}.{ext}").exists()], v
        listed_versions = (store / os.path.dirname(v) / "list").read_text().split()
        assert os.path.basename(v) not in listed_versions
    assert node.metric("gomirror_proxy_store_evictions_total") == 2
    assert node.metric("gomirror_proxy_store_evicted_bytes_total") == sizes[b] + sizes[c]
    assert node.metric("gomirror_proxy_store_bytes") == sizes[a] + size(d) <= 80_000
    st, _, body = node.get(f"/{b}.info")  # evicted: a miss, fetched again
    assert st == 200 and json.loads(body)["Version"] == "v1.0.2"
