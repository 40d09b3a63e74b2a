"""The S3 backend against moto in server mode (a real HTTP S3 endpoint on loopback)."""

# pytest fixtures are imported from proxyhelpers (the repo's tests/ owns `conftest`)
# ruff: noqa: F401, F811

import asyncio
import hashlib
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import boto3
import pytest

from proxyhelpers import (
    ORIGIN_LOG,
    ORIGIN_TREE,
    LogTail,
    closed_port,
    go_download_all,
    http,
    nodes,
    origin,
)

BUCKET = "gomirror-test"


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    port = closed_port()
    exe = Path(sys.executable).parent / "moto_server"
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if http(url + "/moto-api/", timeout=2)[0] < 500:
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("moto_server did not start: " + log.read_text())
    yield url
    proc.terminate()
    proc.wait(10)


def s3client(url):
    return boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")  # noqa: S106 - moto


def s3_tables(url, bucket):
    return {"Storage.S3": {"Bucket": bucket, "Endpoint": url, "Region": "us-east-1",
                           "Key": "test", "Secret": "test", "ForcePathStyle": True}}


GOMOD = """module example.com/s3client

go 1.20

require (
\tgithub.com/BurntSushi/toml v1.3.2
\tgithub.com/dgrijalva/jwt-go v3.2.0+incompatible
\tgithub.com/go-playground/assert/v2 v2.2.0
\tgithub.com/modern-go/reflect2 v1.0.2
)
"""


def test_s3_store_download_and_layout(origin, moto, nodes):
    s3 = s3client(moto)
    s3.create_bucket(Bucket=BUCKET)
    node = nodes(extra={"StorageType": "s3"}, tables=s3_tables(moto, BUCKET))
    rc, mods, err, _ = go_download_all(node.url, GOMOD)
    assert rc == 0, err + node.log.read_text()[-2000:]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, MaxKeys=1000)["Contents"]}
    for rel in ("github.com/!burnt!sushi/toml/@v/v1.3.2.zip",
                "github.com/!burnt!sushi/toml/@v/v1.3.2.info",
                "github.com/!burnt!sushi/toml/@v/list",
                "github.com/dgrijalva/jwt-go/@v/v3.2.0+incompatible.mod",
                "sumdb/sum.golang.org/supported"):
        assert rel in keys, rel
    body = s3.get_object(Bucket=BUCKET, Key="github.com/!burnt!sushi/toml/@v/v1.3.2.zip")
    assert body["Body"].read() == (ORIGIN_TREE / "github.com/!burnt!sushi/toml/@v/"
                                   "v1.3.2.zip").read_bytes()
    assert not [k for k in keys if k.startswith(".locks/")], "locks must be released"
    st, h, data = node.get("/github.com/!burnt!sushi/toml/@v/v1.3.2.zip")
    assert st == 200 and int(h["Content-Length"]) == len(data)
    st, _, data = node.get("/catalog?pagesize=100")
    assert st == 200 and b"github.com/BurntSushi/toml" in data
    assert node.get("/readyz")[0] == 200


def test_s3_single_flight_across_nodes(origin, moto, nodes):
    s3 = s3client(moto)
    s3.create_bucket(Bucket=BUCKET + "-sf")
    a = nodes(extra={"StorageType": "s3"}, tables=s3_tables(moto, BUCKET + "-sf"), name="a")
    b = nodes(extra={"StorageType": "s3"}, tables=s3_tables(moto, BUCKET + "-sf"), name="b")
    path = "/golang.org/x/text/@v/v0.10.0.zip"
    tail = LogTail(ORIGIN_LOG)

    async def burst():
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=180)) as s:
            async def one(url):
                async with s.get(url + path) as r:
                    return r.status, hashlib.sha256(await r.read()).hexdigest()
            return await asyncio.gather(*(one(n.url) for n in [a, b] * 20))

    res = asyncio.run(burst())
    want = hashlib.sha256((ORIGIN_TREE / path[1:]).read_bytes()).hexdigest()
    assert res == [(200, want)] * 40
    assert len([line for line in tail.lines() if f'"GET {path} ' in line]) == 1
    fetched = (a.metric("gomirror_proxy_fetches_total", result="ok", absent=0)
               + b.metric("gomirror_proxy_fetches_total", result="ok", absent=0))
    assert fetched == 1


def test_s3_bucket_missing_not_ready(moto, nodes):
    node = nodes(extra={"StorageType": "s3", "NetworkMode": "offline"},
                 tables=s3_tables(moto, "no-such-bucket"))
    st, _, body = node.get("/readyz")
    assert st == 503 and b"store" in body


def _concurrency_seen(store, calls: int) -> int:
    """The most S3 calls the store had in flight at once while running `calls` stats at
    once. Every call waits 0.1 s at the client (botocore's before-call event) before it
    goes out, so calls that may run together do overlap."""
    import threading

    lock, state = threading.Lock(), {"now": 0, "max": 0}

    def before(**_kw):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.1)

    def after(**_kw):
        with lock:
            state["now"] -= 1

    store.s3.meta.events.register("before-call.s3.HeadObject", before)
    store.s3.meta.events.register("after-call.s3.HeadObject", after)

    async def run():
        await asyncio.gather(*(store.stat(f"probe/{i}") for i in range(calls)))

    asyncio.run(run())
    return state["max"]


@pytest.mark.parametrize("limit", [4, 32])
def test_s3_calls_run_on_their_own_bounded_pool(moto, limit):
    """S3 calls do not queue behind asyncio's default executor (min(32, cores + 4)
    threads: 6 on 2 cores): MaxConcurrency of them run at once, and never more."""
    from gomirror_proxy.config import S3Config
    from gomirror_proxy.store.s3 import S3Store

    s3client(moto).create_bucket(Bucket="gomirror-pool")
    store = S3Store(S3Config(bucket="gomirror-pool", endpoint=moto, key="test",
                             secret="test", force_path_style=True,  # noqa: S106 - moto
                             max_concurrency=limit))
    assert _concurrency_seen(store, 48) == limit


def test_s3_max_concurrency_is_checked():
    from gomirror_proxy.config import ConfigError, parse

    with pytest.raises(ConfigError, match=r"Storage\.S3\.MaxConcurrency.*1\.\.512"):
        parse({"StorageType": "s3", "Storage": {"S3": {"Bucket": "b", "MaxConcurrency": 0}}},
              check_paths=False)
