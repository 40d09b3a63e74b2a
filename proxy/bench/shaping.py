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

# Explicit private /30s of the bench's own, one per capped link (host end .1, namespace .2).
SUBNET_PREFIX = "10.213"
# The burst must be at least the link's MTU (1500 on a veth) or nothing passes.
TBF_AFTER_RATE = ["burst", "32kbit", "latency", "400ms"]


def tbf(rate: str) -> list[str]:
    return ["rate", rate, *TBF_AFTER_RATE]


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
def shaped_link(rate: str, index: int = 0) -> Iterator[ShapedLink]:
    """A namespace whose origin end sends at most RATE (tc units, e.g. "10mbit"); INDEX
    picks the link's /30 (several links at once)."""
    tag = os.getpid() % 10000 * 10 + index
    netns, host_veth, ns_veth = f"gmbench{tag}", f"gmb{tag}h", f"gmb{tag}n"
    host_addr, ns_addr = f"{SUBNET_PREFIX}.{index}.1", f"{SUBNET_PREFIX}.{index}.2"
    _remove(netns, host_veth)
    try:
        _run("ip", "netns", "add", netns)
        _run("ip", "link", "add", host_veth, "type", "veth", "peer", "name", ns_veth)
        _run("ip", "link", "set", ns_veth, "netns", netns)
        _run("ip", "addr", "add", f"{host_addr}/30", "dev", host_veth)
        _run("ip", "link", "set", host_veth, "up")
        _run("ip", "-n", netns, "addr", "add", f"{ns_addr}/30", "dev", ns_veth)
        _run("ip", "-n", netns, "link", "set", ns_veth, "up")
        _run("ip", "-n", netns, "link", "set", "lo", "up")
        # Shape what the origin sends (the downloads), on the namespace's end.
        _run("ip", "netns", "exec", netns, "tc", "qdisc", "add", "dev", ns_veth, "root",
             "tbf", *tbf(rate))
        yield ShapedLink(netns, ns_addr, " ".join(["tbf", *tbf(rate)]))
    finally:
        _remove(netns, host_veth)
