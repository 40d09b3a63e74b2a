"""A small Prometheus text-format registry (no client library needed)."""

from __future__ import annotations

import threading

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


def _labels(names, values) -> str:
    if not names:
        return ""
    esc = (str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for v in values)
    return "{" + ",".join(f'{n}="{v}"' for n, v in zip(names, esc, strict=True)) + "}"


class Counter:
    kind = "counter"

    def __init__(self, name, help_, labels=()):
        self.name, self.help, self.labelnames = name, help_, tuple(labels)
        self.values: dict[tuple, float] = {}
        self.lock = threading.Lock()

    def inc(self, *labels, amount: float = 1) -> None:
        with self.lock:
            self.values[labels] = self.values.get(labels, 0) + amount

    def get(self, *labels) -> float:
        return self.values.get(labels, 0)

    def render(self):
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} {self.kind}"
        if not self.labelnames and not self.values:
            yield f"{self.name} 0"
        for k, v in sorted(self.values.items()):
            yield f"{self.name}{_labels(self.labelnames, k)} {v:g}"


class Gauge(Counter):
    kind = "gauge"

    def dec(self, *labels) -> None:
        self.inc(*labels, amount=-1)

    def set(self, value: float, *labels) -> None:
        with self.lock:
            self.values[labels] = value


class Histogram:
    def __init__(self, name, help_):
        self.name, self.help = name, help_
        self.counts = [0] * len(BUCKETS)
        self.sum = 0.0
        self.count = 0
        self.lock = threading.Lock()

    def observe(self, v: float) -> None:
        with self.lock:
            self.sum += v
            self.count += 1
            for i, b in enumerate(BUCKETS):
                if v <= b:
                    self.counts[i] += 1

    def render(self):
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for b, c in zip(BUCKETS, self.counts, strict=True):
            yield f'{self.name}_bucket{{le="{b:g}"}} {c}'
        yield f'{self.name}_bucket{{le="+Inf"}} {self.count}'
        yield f"{self.name}_sum {self.sum:g}"
        yield f"{self.name}_count {self.count}"


class Metrics:
    def __init__(self):
        self.requests = Counter(
            "gomirror_proxy_requests_total", "HTTP requests by endpoint and status",
            ("endpoint", "status"),
        )
        self.store = Counter(
            "gomirror_proxy_store_lookups_total", "Store lookups for module files by result",
            ("result",),
        )
        self.fetches = Counter(
            "gomirror_proxy_fetches_total", "Upstream fetches (go mod download) by result",
            ("result",),
        )
        self.fetch_seconds = Histogram(
            "gomirror_proxy_fetch_duration_seconds", "Duration of go mod download runs"
        )
        self.inflight = Gauge("gomirror_proxy_fetches_in_flight", "go processes running now")
        self.bytes = Counter(
            "gomirror_proxy_bytes_served_total", "Response body bytes by endpoint", ("endpoint",)
        )
        self.front_hits = Counter(
            "gomirror_proxy_front_hits_total",
            "Store hits the nginx front served without the node (hit log), by endpoint",
            ("endpoint",),
        )
        self.sumdb = Counter(
            "gomirror_proxy_sumdb_requests_total", "Checksum-DB proxy requests by cache result",
            ("result",),
        )

        self.go_runs = Counter(
            "gomirror_proxy_go_runs_total", "go command runs by subcommand", ("command",)
        )
        self.upstream = Counter(
            "gomirror_proxy_upstream_requests_total",
            "HTTP requests to the GOPROXY chain's proxies by upstream and result",
            ("upstream", "result"),
        )
        self.not_found_hits = Counter(
            "gomirror_proxy_not_found_cache_hits_total",
            "Misses answered from the not-found memory (no upstream work)",
        )
        self.verification_failures = Counter(
            "gomirror_proxy_verification_failures_total",
            "Upstream data refused by checksum-database verification, by kind", ("kind",),
        )
        # The disk store's size bound ([Storage.Disk] MaxBytes); tracked only when set.
        self.store_bytes = Gauge(
            "gomirror_proxy_store_bytes", "Bytes of module version files in the store"
        )
        self.store_evictions = Counter(
            "gomirror_proxy_store_evictions_total", "Versions evicted by the store's size bound"
        )
        self.store_evicted_bytes = Counter(
            "gomirror_proxy_store_evicted_bytes_total", "Bytes evicted by the store's size bound"
        )

    def render(self) -> str:
        lines = []
        for m in (self.requests, self.store, self.fetches, self.fetch_seconds, self.inflight,
                  self.bytes, self.front_hits, self.sumdb, self.go_runs, self.upstream,
                  self.not_found_hits, self.verification_failures, self.store_bytes,
                  self.store_evictions, self.store_evicted_bytes):
            lines.extend(m.render())
        return "\n".join(lines) + "\n"
