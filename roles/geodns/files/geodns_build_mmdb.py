#!/usr/bin/env python3
# Copyright: gomirror project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build a MaxMind-format country database from CIDR -> country pairs (mmdb-writer),
for BIND's `geoip country XX` ACLs when no commercial database is supplied (labs,
private address plans).

    geodns_build_mmdb.py OUT.mmdb < [{"network": "172.28.61.0/24", "country": "CN"}, ...]

Keeps MaxMind's record layout ({"country": {"iso_code": ...}}) and a database_type
containing "Country", as GeoLite2-Country has. The file is deterministic (build_epoch
fixed) so an unchanged list never rewrites the host's copy. Writes only when the bytes
differ; prints "changed" or "unchanged"."""

from __future__ import annotations

import json
import os
import sys
import tempfile

from mmdb_writer import MMDBWriter
from netaddr import IPSet


class _Deterministic(MMDBWriter):
    # a fixed, non-zero epoch (libmaxminddb rejects 0): 2024-01-01T00:00:00Z
    epoch = 1704067200

    def _build_meta(self):
        meta = super()._build_meta()
        meta["build_epoch"] = self.epoch
        return meta


def main():
    out = sys.argv[1]
    networks = json.load(sys.stdin)
    writer = _Deterministic(
        ip_version=6,
        ipv4_compatible=True,
        database_type="GeoLite2-Country",
        languages=["en"],
        description="gomirror geodns: country database built from inventory CIDRs",
    )
    for item in sorted(networks, key=lambda i: (i["network"], i["country"])):
        writer.insert_network(IPSet([item["network"]]), {"country": {"iso_code": item["country"]}})
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(out)), suffix=".mmdb")
    os.close(fd)
    try:
        writer.to_db_file(tmp)
        with open(tmp, "rb") as fh:
            new = fh.read()
        try:
            with open(out, "rb") as fh:
                old = fh.read()
        except FileNotFoundError:
            old = None
        if old == new:
            print("unchanged")
            return
        os.replace(tmp, out)
        tmp = None
        print("changed")
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)


if __name__ == "__main__":
    main()
