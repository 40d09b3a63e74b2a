#!/usr/bin/python3
"""Warm a gomirror edge: fetch .info, .mod and .zip of module versions through it.

    gomirror-edge-warm BASE_URL [module@version ...] < go.sum (optional, "-" reads stdin)

A go.sum line "<module> <version> h1:..." warms .info, .mod and .zip; a line
"<module> <version>/go.mod h1:..." warms .info and .mod (what the go command needs).
Prints one JSON object: {"requested": n, "hit": n, "miss": n, "failed": [...]}.
Exits 1 when any fetch failed.
"""

import concurrent.futures
import json
import os
import re
import sys
import urllib.error
import urllib.request


def escape(path: str) -> str:
    """The GOPROXY case-encoding: an upper-case letter becomes '!' + its lower case."""
    return re.sub(r"[A-Z]", lambda m: "!" + m.group(0).lower(), path)


def targets(modules, gosum_text):
    wanted = {}
    for item in modules:
        mod, _at, ver = item.partition("@")
        if mod and ver:
            wanted[(mod, ver)] = ("info", "mod", "zip")
    for line in gosum_text.splitlines():
        fields = line.split()
        if len(fields) != 3:
            continue
        mod, ver = fields[0], fields[1]
        if ver.endswith("/go.mod"):
            wanted.setdefault((mod, ver[: -len("/go.mod")]), ("info", "mod"))
        else:
            wanted[(mod, ver)] = ("info", "mod", "zip")
    for (mod, ver), exts in sorted(wanted.items()):
        for ext in exts:
            yield f"/{escape(mod)}/@v/{escape(ver)}.{ext}"


def fetch(base, path, timeout):
    headers = {"User-Agent": "gomirror-edge-warm"}
    req = urllib.request.Request(base.rstrip("/") + path, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            while resp.read(1 << 20):
                pass
            return path, resp.status, resp.headers.get("X-Cache-Status", "")
    except urllib.error.HTTPError as err:
        return path, err.code, err.headers.get("X-Cache-Status", "")
    except OSError as err:
        return path, 0, str(err)


def main() -> int:
    base, args = sys.argv[1], sys.argv[2:]
    gosum = sys.stdin.read() if "-" in args else ""
    modules = [a for a in args if a != "-"]
    workers = int(os.environ.get("WARM_CONCURRENCY", "8"))
    timeout = float(os.environ.get("WARM_TIMEOUT", "300"))
    paths = list(targets(modules, gosum))
    result = {"requested": len(paths), "hit": 0, "miss": 0, "failed": []}
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for path, status, cache in pool.map(lambda p: fetch(base, p, timeout), paths):
            if status != 200:
                result["failed"].append({"path": path, "status": status, "detail": cache})
            elif cache == "HIT":
                result["hit"] += 1
            else:
                result["miss"] += 1
    print(json.dumps(result))
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
