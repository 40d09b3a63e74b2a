"""The GOPROXY chain, parsed once: the one implementation the node uses for every
upstream request (HTTP fetches, readiness, the default DownloadURL).

`a,b` falls through to b only when a answers 404/410; `a|b` on any error. `direct` means
"the origin VCS through the go command"; `off` ends the chain with "not allowed".
Each HTTP upstream has a circuit breaker so a blackholed upstream costs one timeout, not
one per miss.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from .redact import redact


@dataclass(frozen=True)
class Hop:
    kind: str  # "proxy" (http/https), "file", "direct" or "off"
    url: str  # without trailing "/" ("" for direct/off)
    any_error_falls_through: bool  # the separator after this hop is '|'

    @property
    def label(self) -> str:
        return redact(self.url) if self.url else self.kind


def parse(goproxy: str) -> list[Hop]:
    parts = re.split(r"([,|])", goproxy)
    hops = []
    for i in range(0, len(parts), 2):
        item = parts[i].strip()
        if not item:
            continue
        sep = parts[i + 1] if i + 1 < len(parts) else ","
        if item in ("direct", "off"):
            hops.append(Hop(item, "", sep == "|"))
        elif item.startswith("file://"):
            hops.append(Hop("file", item[len("file://"):].rstrip("/"), sep == "|"))
        else:
            hops.append(Hop("proxy", item.rstrip("/"), sep == "|"))
    return hops


def proxy_urls(goproxy: str) -> list[str]:
    """The HTTP(S) proxies of the chain, in order."""
    return [h.url for h in parse(goproxy) if h.kind == "proxy"]


def ends_in_direct(goproxy: str) -> bool:
    for h in parse(goproxy):
        if h.kind in ("direct", "off"):
            return h.kind == "direct"
    return False


class Breaker:
    """Open after `threshold` consecutive transport failures; while open, requests to the
    upstream fail at once; after `cooldown` seconds one request is let through (half open)."""

    def __init__(self, threshold: int = 2, cooldown: float = 15.0):
        self.threshold, self.cooldown = threshold, cooldown
        self.failures = 0
        self.open_until = 0.0

    def allow(self) -> bool:
        now = time.monotonic()
        if self.failures < self.threshold:
            return True
        if now >= self.open_until:
            self.open_until = now + self.cooldown  # one trial; others still fail fast
            return True
        return False

    @property
    def is_open(self) -> bool:
        return self.failures >= self.threshold and time.monotonic() < self.open_until

    def success(self) -> None:
        self.failures, self.open_until = 0, 0.0

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.open_until = time.monotonic() + self.cooldown
