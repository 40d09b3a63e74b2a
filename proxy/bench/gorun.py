"""What the benchmark times and samples: a client's `go mod download all`, a process's RSS."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path


def download_all(workload: Path, goproxy: str) -> float:
    """Seconds of `go mod download all` of WORKLOAD with an empty module cache via GOPROXY.

    The client verifies against the checksum database the proxy serves (GOSUMDB is the
    default database, reached through GOPROXY's /sumdb/; GONOSUMDB and friends empty)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-go-"))
    try:
        (tmp / "p").mkdir()
        shutil.copy(workload, tmp / "p/go.mod")
        env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
        env.update(GOPROXY=goproxy, GOSUMDB="sum.golang.org", GONOSUMDB="", GOPRIVATE="",
                   GONOPROXY="", GOINSECURE="", GOMODCACHE=str(tmp / "mc"),
                   GOPATH=str(tmp / "gp"), GOCACHE=str(tmp / "gc"),
                   GOFLAGS="-mod=mod -modcacherw", GOTOOLCHAIN="local", GOTELEMETRY="off",
                   GOENV="off")
        t0 = time.monotonic()
        r = subprocess.run(["go", "mod", "download", "all"], cwd=tmp / "p", env=env,
                           capture_output=True, text=True)
        elapsed = time.monotonic() - t0
        if r.returncode != 0:
            raise RuntimeError(f"go mod download all via {goproxy} failed:\n{r.stderr[-4000:]}")
        return elapsed
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _children_of(pid: int) -> list[int]:
    """Direct children of pid, from /proc/<pid>/task/<tid>/children (one small read per
    thread, not a scan of every process: the sampler must not cost the run it measures)."""
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return out


def _status_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class RSSSampler:
    """Peak RSS of a process and of its descendants (the go commands it runs).

    `peak_self` is the kernel's own high-water mark of the process (VmHWM, exact);
    `peak_tree` the largest sum over the process and its descendants seen at one sample,
    every 50 ms."""

    INTERVAL = 0.05

    def __init__(self, pid: int):
        self.pid = pid
        self.peak_self = self.peak_tree = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            todo, total = [self.pid], 0
            while todo:
                pid = todo.pop()
                total += _status_kib(pid, "VmRSS")
                todo += _children_of(pid)
            self.peak_tree = max(self.peak_tree, total)
            self.peak_self = max(self.peak_self, _status_kib(self.pid, "VmHWM"))
            self._stop.wait(self.INTERVAL)

    def __enter__(self) -> RSSSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
