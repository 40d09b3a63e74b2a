"""Stores of many versions written quickly, and S3 requests counted per operation: what the
storage conformance suite and proxy/bench/store_requests.py measure the node's S3Store on."""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from gomirror_proxy import modpath
from gomirror_proxy.store import FILES, list_body, version_key


def layout(modules: dict[str, int]) -> dict[str, list[str]]:
    """{module path: its versions} for {module path: how many}: v1.<i // 100>.<i % 100>,
    so versions cross minor lines and semver order differs from key order (v1.10.0 sorts
    after v1.9.99 as a version, before v1.2.0 as a key)."""
    return {m: [f"v1.{i // 100}.{i % 100}" for i in range(n)] for m, n in modules.items()}


def version_objects(modules: dict[str, list[str]]) -> dict[str, bytes]:
    """Every key of a store holding these versions, as put_version leaves them: tiny .zip,
    .mod and .info per version, and each module's `list`."""
    out: dict[str, bytes] = {}
    for mod, versions in modules.items():
        em = modpath.escape_path(mod)
        for v in versions:
            ev = modpath.escape_version(v)
            body = {"zip": f"zip of {mod}@{v}".encode(), "mod": f"module {mod}\n".encode(),
                    "info": json.dumps({"Version": v, "Time": "2024-01-01T00:00:00Z"}).encode()}
            for ext in FILES:
                out[version_key(em, ev, ext)] = body[ext]
        out[f"{em}/@v/list"] = list_body(versions)
    return out


def put_objects(client, bucket: str, objects: dict[str, bytes], workers: int = 32) -> None:
    """PUT every object, `workers` at a time (the client's pool should hold as many)."""
    def put(item):
        client.put_object(Bucket=bucket, Key=item[0], Body=item[1])

    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(put, objects.items()):
            pass


class S3Requests:
    """S3 requests a boto3 client sends, by operation (botocore's before-send event fires
    once per HTTP request, retries and multipart parts included)."""

    def __init__(self, client):
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        client.meta.events.register("before-send.s3", self._sent)

    def _sent(self, event_name: str, **_kw):
        with self._lock:
            self.counts[event_name.rsplit(".", 1)[-1]] += 1

    @contextlib.contextmanager
    def counting(self):
        """Yields a Counter that holds, once the block ends, the requests sent inside it."""
        seen: Counter[str] = Counter()
        with self._lock:
            before = Counter(self.counts)
        yield seen
        with self._lock:
            seen.update(self.counts - before)

