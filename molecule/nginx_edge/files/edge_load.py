#!/usr/bin/python3
"""Load helper for the nginx_edge scenario (runs on the client container).

    edge_load.py burst URL N            N simultaneous GETs of one URL
    edge_load.py loop BASE N SECONDS PATH...   N GETs cycling over the paths, spread over
                                        about SECONDS, 4 at a time

Prints JSON: {"total", "failures": [...], "statuses": {code: n}, "cache": {status: n},
"sizes": [distinct body sizes], "max_seconds"}. A failure is a connection error or a 5xx.
"""

import collections
import concurrent.futures
import json
import sys
import threading
import time
import urllib.error
import urllib.request


def get(url):
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            size = 0
            while chunk := resp.read(1 << 20):
                size += len(chunk)
            cache = resp.headers.get("X-Cache-Status", "-")
            return resp.status, cache, size, time.monotonic() - t0, ""
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("X-Cache-Status", "-"), 0, time.monotonic() - t0, ""
    except OSError as err:
        return 0, "-", 0, time.monotonic() - t0, str(err)


def report(url_results):
    out = {"total": 0, "failures": [], "statuses": collections.Counter(),
           "cache": collections.Counter(), "sizes": set(), "max_seconds": 0.0}
    for url, (status, cache, size, secs, err) in url_results:
        out["total"] += 1
        out["statuses"][str(status)] += 1
        out["cache"][cache] += 1
        if status == 200:
            out["sizes"].add(size)
        out["max_seconds"] = max(out["max_seconds"], round(secs, 3))
        if status == 0 or status >= 500:
            out["failures"].append({"url": url, "status": status, "error": err})
    out["sizes"] = sorted(out["sizes"])
    print(json.dumps(out))


def main():
    mode = sys.argv[1]
    if mode == "burst":
        url, n = sys.argv[2], int(sys.argv[3])
        barrier = threading.Barrier(n)

        def one(_):
            barrier.wait()
            return url, get(url)

        with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
            report(list(pool.map(one, range(n))))
    elif mode == "loop":
        base, n, seconds, paths = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5:]
        pause = seconds / n * 4

        def one(i):
            path = paths[i % len(paths)].replace("{i}", str(i))
            time.sleep(pause)
            return base + path, get(base + path)

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            report(list(pool.map(one, range(n))))


if __name__ == "__main__":
    main()
