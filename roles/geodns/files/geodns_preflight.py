#!/usr/bin/env python3
# Copyright: gomirror project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side preflight of the geodns role: validate the routing topology with the
same code the gomirror_geo_routing module and the checker use (gomirror_routing), plus
what only the role knows (zones, GeoIP networks, region keys).

    geodns_preflight.py MODULE_UTILS_DIR < params.json

Prints the normalised topology as JSON; on bad input prints one line naming the
variable to stderr and exits 2. TSIG secrets are never passed in (the role checks them
without logging them)."""

from __future__ import annotations

import ipaddress
import json
import re
import sys

REGION_KEYS = {"name", "endpoints", "countries", "subdivisions", "cidrs", "fallback"}
_LABEL = r"[a-z0-9_]([a-z0-9-]{0,61}[a-z0-9])?"
_LABELS = re.compile(rf"^(?=.{{1,253}}\.?$)({_LABEL}\.)*{_LABEL}\.?$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


class BadInputError(Exception):
    pass


def _variable_for(message):
    for prefix, var in (
        ("ttl", "geodns_ttl"),
        ("default_region", "geodns_default_region"),
        ("owner_id", "geodns_owner_id"),
        ("service", "geodns_service"),
    ):
        if message.startswith(prefix):
            return var
    return "geodns_regions"


def check_zones(zones, service):
    if not zones:
        raise BadInputError("geodns_zones: at least one zone is required")
    names = []
    for z in zones:
        if not isinstance(z, dict) or not z.get("name"):
            raise BadInputError(f"geodns_zones: entry {z!r} has no name")
        name = str(z["name"]).lower().rstrip(".")
        if not _LABELS.match(name):
            raise BadInputError(f"geodns_zones: {z['name']!r} is not a DNS name")
        if name in names:
            raise BadInputError(f"geodns_zones: zone {name!r} is listed twice")
        names.append(name)
        nss = z.get("nameservers") or []
        if not nss:
            raise BadInputError(f"geodns_zones: zone {name!r} needs at least one nameserver")
        for ns in nss:
            if not isinstance(ns, dict) or not ns.get("name"):
                raise BadInputError(f"geodns_zones: zone {name!r}: nameserver {ns!r} has no name")
            if ns.get("address") is not None:
                try:
                    ipaddress.ip_address(str(ns["address"]))
                except ValueError:
                    raise BadInputError(
                        f"geodns_zones: zone {name!r}: nameserver {ns['name']!r} address "
                        f"{ns['address']!r} is not an IP address"
                    ) from None
        if not isinstance(z.get("records") or [], list):
            raise BadInputError(
                f"geodns_zones: zone {name!r}: records must be a list of zone file lines"
            )
    svc = str(service or "").lower().rstrip(".")
    if not svc:
        raise BadInputError("geodns_service is required")
    below = [n for n in names if svc.endswith("." + n)]
    if not below:
        raise BadInputError(
            f"geodns_service {svc!r} is not a name below any zone of geodns_zones "
            f"({', '.join(names)})"
        )
    return max(below, key=len)


def check_geoip(networks, source):
    nets = []
    for item in networks or []:
        if not isinstance(item, dict) or "network" not in item or "country" not in item:
            raise BadInputError(f"geodns_geoip_networks: entry {item!r} needs network and country")
        try:
            net = ipaddress.ip_network(str(item["network"]).strip(), strict=True)
        except ValueError as exc:
            raise BadInputError(
                f"geodns_geoip_networks: {item['network']!r} is not a CIDR ({exc})"
            ) from None
        cc = str(item["country"]).strip().upper()
        if not _COUNTRY.match(cc):
            raise BadInputError(
                f"geodns_geoip_networks: {item['country']!r} is not an ISO 3166-1 alpha-2 code"
            )
        for other, occ in nets:
            if other.version == net.version and other.overlaps(net):
                raise BadInputError(f"geodns_geoip_networks: {net} ({cc}) overlaps {other} ({occ})")
        nets.append((net, cc))
    if source == "build" and not nets:
        raise BadInputError(
            "geodns_geoip_networks: geodns_geoip_source=build needs at least one network"
        )
    return [{"network": str(n), "country": c} for n, c in nets]


def main():
    sys.path.insert(0, sys.argv[1])
    import gomirror_routing as routing  # noqa: PLC0415 - path chosen at run time

    p = json.load(sys.stdin)
    try:
        zone = check_zones(p.get("zones"), p.get("service"))
        for reg in p.get("regions") or []:
            if not isinstance(reg, dict):
                raise BadInputError(f"geodns_regions: entry {reg!r} is not a dict")
            unknown = sorted(set(reg) - REGION_KEYS)
            if unknown:
                raise BadInputError(
                    "geodns_regions: region {!r} has unknown keys {} (known: {})".format(
                        reg.get("name"), unknown, ", ".join(sorted(REGION_KEYS))
                    )
                )
            if reg.get("subdivisions"):
                raise BadInputError(
                    f"geodns_regions: region {reg.get('name')!r}: subdivisions need a City "
                    "database; this role renders country and CIDR ACLs only"
                )
        try:
            topo = routing.validate_topology(
                {
                    "service": p.get("service"),
                    "zone": zone,
                    "ttl": p.get("ttl"),
                    "owner_id": p.get("owner_id"),
                    "default_region": p.get("default_region"),
                    "regions": p.get("regions"),
                    "health_check": {"enabled": False},
                }
            )
        except routing.RoutingError as exc:
            raise BadInputError(f"{_variable_for(str(exc))}: {exc}") from None
        geoip = check_geoip(p.get("geoip_networks"), p.get("geoip_source"))
    except BadInputError as exc:
        sys.stderr.write(f"{exc}\n")
        sys.exit(2)
    warnings = []
    if p.get("geoip_source") == "none":
        for reg in topo["regions"]:
            if reg["countries"] and not reg["cidrs"] and reg["name"] != topo["default_region"]:
                warnings.append(
                    f"region {reg['name']!r} lists countries but geodns_geoip_source is none: "
                    "only its TSIG key selects its view"
                )
    out = {"zone": zone, "topology": topo, "geoip_networks": geoip, "warnings": warnings}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
