"""S3 servers the storage tests start on loopback, each a real HTTP S3 endpoint on free ports:
SeaweedFS (`weed mini`: master, volume server, filer and S3 gateway in one process; the
pinned binary `make seaweedfs` installs) and moto in server mode (ThreadedMotoServer).

Fixtures: `seaweedfs` and `moto_threaded` (session-scoped S3Endpoints). SeaweedFS missing
fails the run when GOMIRROR_REQUIRE_ORIGIN is set (make test, CI) and skips otherwise.
The benchmark proxy/bench/store_requests.py starts the same servers through SeaweedFS and
MotoServer below.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("GOMIRROR_CACHE", REPO / ".cache"))
SEAWEEDFS_SCRIPT = REPO / "harness/seaweedfs.sh"
# weed's gRPC port of a component defaults to its HTTP port + 10000, and in 4.48 `weed mini`'s
# maintenance worker dials the admin server there whatever -admin.port.grpc says: every
# component gets a port P with P + GRPC_OFFSET free too, and its gRPC port set to that.
GRPC_OFFSET = 10000
WEED_COMPONENTS = ("master", "volume", "filer", "s3", "admin")


@dataclass(frozen=True)
class S3Endpoint:
    """Where an S3 server answers and the credentials it accepts."""

    name: str
    url: str
    key: str
    secret: str
    region: str = "us-east-1"

    def client(self, **config):
        """A boto3 client; `config` goes to botocore's Config (e.g. retries, pool size)."""
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.url, region_name=self.region,
                            aws_access_key_id=self.key, aws_secret_access_key=self.secret,
                            config=Config(s3={"addressing_style": "path"}, **config))

    def s3config(self, bucket: str, **kw):
        """The node's S3Config for a bucket on this server (path-style, as the node's
        ForcePathStyle = true)."""
        from gomirror_proxy.config import S3Config

        return S3Config(bucket=bucket, endpoint=self.url, region=self.region, key=self.key,
                        secret=self.secret, force_path_style=True, **kw)

    def tables(self, bucket: str) -> dict:
        """The [Storage.S3] table of a node's config.toml for a bucket on this server."""
        return {"Storage.S3": {"Bucket": bucket, "Endpoint": self.url, "Region": self.region,
                               "Key": self.key, "Secret": self.secret, "ForcePathStyle": True}}


def seaweedfs_binary() -> Path:
    """Where harness/seaweedfs.sh installs the pinned `weed` (the version is read from the
    script, so the two never disagree)."""
    m = re.search(r"^version=(\S+)$", SEAWEEDFS_SCRIPT.read_text(), re.M)
    if m is None:
        raise RuntimeError(f"{SEAWEEDFS_SCRIPT} has no `version=` line")
    return CACHE / "seaweedfs" / m[1] / "weed"


def _port_with_grpc_twin() -> int:
    """A free loopback port P < 55536 whose P + GRPC_OFFSET is free as well."""
    for _ in range(200):
        with socket.socket() as s, socket.socket() as twin:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if port + GRPC_OFFSET > 65535:
                continue
            try:
                twin.bind(("127.0.0.1", port + GRPC_OFFSET))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port P with P + 10000 free")


class SeaweedFS:
    """`weed mini` on loopback under DIR, with one S3 identity (random secret), stopped by
    stop(). Only the S3 gateway's endpoint is used; WebDAV, the admin UI, the Iceberg and
    Lance catalogs and telemetry are off."""

    def __init__(self, weed: Path, workdir: Path, timeout: float = 90):
        self.workdir = workdir
        data = workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        key, secret = "gomirror", secrets.token_hex(16)
        identities = {"identities": [{
            "name": "gomirror", "credentials": [{"accessKey": key, "secretKey": secret}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
        (workdir / "s3.json").write_text(json.dumps(identities))
        ports = {c: _port_with_grpc_twin() for c in WEED_COMPONENTS}
        args = [str(weed), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-master.telemetry=false", f"-s3.config={workdir / 's3.json'}",
                f"-filer.localSocket={workdir / 'filer.sock'}",
                f"-s3.localSocket={workdir / 's3.sock'}"]
        for c, p in ports.items():
            args += [f"-{c}.port={p}", f"-{c}.port.grpc={p + GRPC_OFFSET}"]
        self.log = workdir / "weed.log"
        self.proc = subprocess.Popen(args, stdout=open(self.log, "wb"),  # noqa: SIM115
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.endpoint = S3Endpoint("seaweedfs", f"http://127.0.0.1:{ports['s3']}", key, secret)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        """Until a probe object can be written and read back (the gateway answers before
        the filer and a volume are ready to take writes)."""
        client = self.endpoint.client(retries={"max_attempts": 1},
                                      connect_timeout=2, read_timeout=10)
        deadline, last = time.monotonic() + timeout, "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited {self.proc.returncode}: {self.log_tail()}")
            try:
                with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                    client.create_bucket(Bucket="gomirror-ready")
                client.put_object(Bucket="gomirror-ready", Key="probe", Body=b"ready")
                back = client.get_object(Bucket="gomirror-ready", Key="probe")["Body"].read()
                if back == b"ready":
                    client.delete_object(Bucket="gomirror-ready", Key="probe")
                    client.delete_bucket(Bucket="gomirror-ready")
                    return
            except Exception as e:  # noqa: BLE001 - any failure means "not yet"
                last = f"{type(e).__name__}: {e}"
            time.sleep(0.3)
        raise RuntimeError(f"SeaweedFS S3 not ready after {timeout:.0f} s ({last}): "
                           + self.log_tail())

    def log_tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:]

    def restart(self, timeout: float = 90) -> None:
        """Start the stopped server again: the same command line, so the same ports, data
        directory and credentials (a store coming back after an outage)."""
        if self.proc.poll() is None:
            raise RuntimeError("SeaweedFS.restart: the server is still running")
        self.proc = subprocess.Popen(self.proc.args, stdout=open(self.log, "ab"),  # noqa: SIM115
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready(timeout)

    def stop(self, timeout: float = 3) -> None:
        """SIGTERM, SIGKILL after `timeout`: weed stops its components in order, but after
        a few buckets' writes its volume server can take longer than 10 s to stop (seen in
        4.48), and a test's store is thrown away anyway."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class MotoServer:
    """moto's ThreadedMotoServer on a free loopback port: real HTTP, in this process."""

    def __init__(self):
        from moto.server import ThreadedMotoServer

        # its werkzeug request log (one line per request) says nothing a test reads
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = S3Endpoint("moto", f"http://{host}:{port}", "test", "test")

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    weed = seaweedfs_binary()
    if not weed.is_file():
        why = f"{weed} is not installed (make seaweedfs)"
        if os.environ.get("GOMIRROR_REQUIRE_ORIGIN"):
            pytest.fail(why + " and GOMIRROR_REQUIRE_ORIGIN is set")
        pytest.skip(why)
    server = SeaweedFS(weed, tmp_path_factory.mktemp("seaweedfs"))
    yield server.endpoint
    server.stop()


@pytest.fixture(scope="session")
def moto_threaded():
    server = MotoServer()
    yield server.endpoint
    server.stop()
