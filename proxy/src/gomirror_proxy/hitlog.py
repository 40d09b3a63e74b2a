"""Hits the nginx front served straight from the disk store, reported to the node.

The front (roles/proxy_node, templates/front-nginx.conf.j2) serves stored `.info`, `.mod`
and `.zip` files without the node. So that the size bound still evicts the least recently
*served* versions, nginx writes one syslog datagram per such hit to a unix socket
(`access_log syslog:server=unix:<HitLogSocket>`); this module listens there and does what
a hit through the node does: `store.touch()` and the store hit counter, plus the front's
own counter. Datagrams are lossy by design: nginx sends them non-blocking and drops them
when the socket is full or absent, so the front never waits for the node.

One datagram is `<PRI>TIMESTAMP TAG: gmhit <uri> <body bytes>` (syslog with `nohostname`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat

from .store import parse_version_key

log = logging.getLogger("gomirror_proxy.hitlog")

MARKER = b"gmhit "
# Datagrams queued for the node before the kernel drops new ones (nginx does not block).
RECEIVE_BUFFER = 1 << 20


def parse(datagram: bytes) -> tuple[str, str, str, int] | None:
    """(escaped module, escaped version, ext, bytes) of one hit record; None if it is not one."""
    _, found, rest = datagram.partition(MARKER)
    if not found:
        return None
    parts = rest.strip().split(b" ")
    if len(parts) != 2 or not parts[1].isdigit():
        return None
    try:
        uri = parts[0].decode("ascii")
    except UnicodeDecodeError:
        return None
    if not uri.startswith("/"):
        return None
    key = uri[1:]
    v = parse_version_key(key)
    if v is None:
        return None
    return v[0], v[1], key.rpartition(".")[2], int(parts[1])


class HitLog(asyncio.DatagramProtocol):
    """Receives the front's hit records; every one is a hit as if the node had served it."""

    def __init__(self, store, metrics):
        self.store = store
        self.metrics = metrics
        self.bad = 0

    def datagram_received(self, data: bytes, addr) -> None:
        hit = parse(data)
        if hit is None:
            self.bad += 1
            if self.bad == 1 or self.bad % 1000 == 0:
                log.warning(json.dumps({"msg": "not a hit record on the hit log socket",
                                        "count": self.bad, "sample": data[:200].decode(
                                            "ascii", "replace")}))
            return
        em, ev, ext, nbytes = hit
        self.store.touch(em, ev)
        self.metrics.store.inc("hit")
        self.metrics.front_hits.inc(ext)
        self.metrics.bytes.inc(ext, amount=nbytes)


def _bind(path: str) -> socket.socket:
    # A socket left by a killed node is replaced; any other file there is an error.
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise OSError(f"HitLogSocket {path!r} exists and is not a socket")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.bind(path)
        # nginx's workers run as another user; a record can only reorder eviction and
        # count a hit, so any local writer is acceptable (the directory limits who that is).
        os.chmod(path, 0o666)  # noqa: S103  (see above)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def listen(path: str, store, metrics) -> tuple[asyncio.DatagramTransport, HitLog]:
    """Bind the hit log socket at path and receive on it until the transport is closed."""
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        lambda: HitLog(store, metrics), sock=_bind(path))
    return transport, proto


def close(path: str, transport: asyncio.DatagramTransport) -> None:
    transport.close()
    with contextlib.suppress(OSError):
        os.unlink(path)
