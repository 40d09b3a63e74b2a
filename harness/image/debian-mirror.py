#!/usr/bin/env python3
"""Print the Debian mirror this machine's apt uses for bookworm (read at run time,
so no mirror host is written into the repository)."""
import glob
import re
import sys
from pathlib import Path

suite = sys.argv[1] if len(sys.argv) > 1 else "bookworm"
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for block in Path(path).read_text().split("\n\n"):
        fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", block, re.M))
        if suite in fields.get("Suites", "").split() and fields.get("URIs", "").startswith("http"):
            print(fields["URIs"].split()[0].rstrip("/"))
            sys.exit(0)
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        continue
    for line in lines:
        m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(http\S+)\s+(\S+)\s", line)
        if m and m.group(2) == suite:
            print(m.group(1).rstrip("/"))
            sys.exit(0)
sys.exit(f"debian-mirror: no http mirror for {suite} in the apt sources")
