"""Store hits: wrk against the node as deployed and against nginx serving the same files."""

from __future__ import annotations

import re
import subprocess

# (label, the file's path in the pinned graph's store, its goal as a fraction of nginx)
HIT_FILES = [
    (".info (~50 B)", "/github.com/gin-gonic/gin/@v/v1.9.1.info", 0.5),
    (".mod (~1.3 KB)", "/github.com/gin-gonic/gin/@v/v1.9.1.mod", 0.5),
    (".zip (~5 MB)", "/github.com/go-playground/locales/@v/v0.14.1.zip", 0.9),
]


def wrk(url: str, duration: int, connections: int, threads: int = 2) -> dict:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p: str) -> str:
        m = re.search(rf"^\s+{p}%\s+(\S+)", out, re.M)
        return m.group(1) if m else "?"

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": rps, "p50": pct("50"), "p99": pct("99"),
            "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(0) if errors else ""}
