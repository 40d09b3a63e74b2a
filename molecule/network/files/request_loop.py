#!/usr/bin/env python3
"""Bounded request loop against the mirror: GETs a fixed set of module URLs round-robin
until a stop file appears or the bounds are reached, then prints JSON counts.

    request_loop.py BASE_URL STOP_FILE MAX_REQUESTS MAX_SECONDS PATH...
"""

import json
import os
import sys
import time
import urllib.request

base, stop, max_requests, max_seconds, paths = (
    sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5:])
counts = {"requests": 0, "failures": 0, "errors": []}
deadline = time.monotonic() + max_seconds
while counts["requests"] < max_requests and time.monotonic() < deadline:
    if os.path.exists(stop):
        break
    url = base + paths[counts["requests"] % len(paths)]
    counts["requests"] += 1
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            resp.read()
            if resp.status != 200:
                raise OSError(f"status {resp.status}")
    except OSError as e:
        counts["failures"] += 1
        counts["errors"].append(f"{url}: {e}")
    time.sleep(0.05)
counts["errors"] = counts["errors"][:20]
print(json.dumps(counts))
