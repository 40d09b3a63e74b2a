"""A capped link to an origin: a network namespace of the bench's own, a veth pair, tbf.

The origin's nginx runs inside the namespace at NS_ADDR; the node and the go client on the
host reach it over the veth pair, whose namespace end is shaped with a token bucket
(`netem` is not available on these kernels, so there is no added delay). The namespace and
both veth ends are removed on every exit path.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

# An explicit private /30 of the bench's own (host end .1, namespace end .2).
SUBNET_PREFIX = "10.213.0"
HOST_ADDR = f"{SUBNET_PREFIX}.1"
NS_ADDR = f"{SUBNET_PREFIX}.2"
# ~5 MB/s; the burst must be at least the link's MTU (1500 on a veth) or nothing passes.
TBF = ["rate", "40mbit", "burst", "32kbit", "latency", "400ms"]


@dataclass
class ShapedLink:
    netns: str
    ns_addr: str
    tbf: str


def unavailable_reason() -> str | None:
    """Why the shaped runs cannot happen here, or None when they can."""
    if os.geteuid() != 0:
        return "not root: creating a network namespace needs CAP_NET_ADMIN"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"`{tool}` (iproute2) is not installed"
    return None


def _run(*cmd: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")


def _remove(netns: str, host_veth: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True,
                          text=True).stdout.split()
    for pid in pids:  # only what the bench started inside its own namespace
        with suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", netns], capture_output=True)
    # Deleting the namespace destroys its veth end and so the pair; this is for a half setup.
    subprocess.run(["ip", "link", "del", host_veth], capture_output=True)


@contextmanager
def shaped_link() -> Iterator[ShapedLink]:
    tag = os.getpid() % 100000
    netns, host_veth, ns_veth = f"gmbench{tag}", f"gmb{tag}h", f"gmb{tag}n"
    _remove(netns, host_veth)
    try:
        _run("ip", "netns", "add", netns)
        _run("ip", "link", "add", host_veth, "type", "veth", "peer", "name", ns_veth)
        _run("ip", "link", "set", ns_veth, "netns", netns)
        _run("ip", "addr", "add", f"{HOST_ADDR}/30", "dev", host_veth)
        _run("ip", "link", "set", host_veth, "up")
        _run("ip", "-n", netns, "addr", "add", f"{NS_ADDR}/30", "dev", ns_veth)
        _run("ip", "-n", netns, "link", "set", ns_veth, "up")
        _run("ip", "-n", netns, "link", "set", "lo", "up")
        # Shape what the origin sends (the downloads), on the namespace's end.
        _run("ip", "netns", "exec", netns, "tc", "qdisc", "add", "dev", ns_veth, "root",
             "tbf", *TBF)
        yield ShapedLink(netns, NS_ADDR, " ".join(["tbf", *TBF]))
    finally:
        _remove(netns, host_veth)
