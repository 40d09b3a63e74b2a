"""Parse `weed shell` volume.list output (stdin) into JSON on stdout:
{"<data node>": {"<volume id>": {"collection", "replication", "file_count"}}}."""

from __future__ import annotations

import json
import re
import sys

NODE = re.compile(r"^\s*DataNode (\S+) [a-z]+\(")
VOLUME = re.compile(
    r"^\s*volume Id:(\d+), Size:\d+, ReplicaPlacement:(\d{3}), Collection:([^,]*),"
    r".*FileCount:(\d+),"
)


def parse(text):
    nodes, node = {}, None
    for line in text.splitlines():
        if m := NODE.match(line):
            node = nodes.setdefault(m.group(1), {})
        elif (m := VOLUME.match(line)) and node is not None:
            node[m.group(1)] = {"replication": m.group(2), "collection": m.group(3),
                                "file_count": int(m.group(4))}
    return nodes


if __name__ == "__main__":
    print(json.dumps(parse(sys.stdin.read())))
