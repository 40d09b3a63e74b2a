# Copyright: gomirror project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure functions for the gomirror GeoIP DNS routing module.

Everything here is side-effect free and stdlib-only so it can be unit tested by
importing this file directly and reused by the providers:

* validate_topology()   -> normalised topology or RoutingError
* desired_route53()     -> list of wanted records (Route53 shape, provider neutral dicts)
* desired_health_checks()
* desired_rfc2136()     -> list of wanted RRsets for a plain authoritative server
* compute_changes()     -> create / update / delete plan between current and wanted
* owner_txt() / parse_owner_txt() -> external-dns style ownership registry
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re

HERITAGE = "gomirror"
MANAGED_TYPES = ("A", "AAAA", "TXT")
TTL_MIN = 1
TTL_MAX = 604800
DEFAULT_CANARY_MODULE = "golang.org/x/text"
DEFAULT_CANARY_VERSION = "v0.3.0"

_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
_SUBDIV_RE = re.compile(r"^([A-Z]{2})-([A-Z0-9]{1,3})$")


class RoutingError(ValueError):
    """Bad input; raised before anything is changed."""


# --------------------------------------------------------------------------- names
def fqdn(name):
    """Lower-case, absolute (trailing dot) DNS name."""
    name = (name or "").strip().lower()
    if not name:
        raise RoutingError("empty DNS name")
    return name if name.endswith(".") else name + "."


def in_zone(name, zone):
    name, zone = fqdn(name), fqdn(zone)
    return name == zone or name.endswith("." + zone)


def escape_module_path(path):
    """Go module path case-encoding used by GOPROXY URLs (upper case -> '!' + lower)."""
    out = []
    for ch in path:
        if "A" <= ch <= "Z":
            out.append("!" + ch.lower())
        else:
            out.append(ch)
    return "".join(out)


def canary_info_path(module, version):
    return f"/{escape_module_path(module)}/@v/{escape_module_path(version)}.info"


# --------------------------------------------------------------------------- ownership
def owner_txt(owner_id, resource):
    """The external-dns style ownership value stored next to each owned name."""
    return f"heritage={HERITAGE},{HERITAGE}/owner={owner_id},{HERITAGE}/resource={resource}"


def parse_owner_txt(value):
    """Parse an ownership TXT value (quotes allowed); None if it is not one of ours."""
    if value is None:
        return None
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        value = value[1:-1]
    value = value.replace('" "', "")
    fields = {}
    for part in value.split(","):
        if "=" not in part:
            return None
        key, _eq, val = part.partition("=")
        fields[key.strip()] = val.strip()
    if fields.get("heritage") != HERITAGE:
        return None
    owner = fields.get(f"{HERITAGE}/owner")
    resource = fields.get(f"{HERITAGE}/resource", "")
    if not owner:
        return None
    return {"owner": owner, "resource": resource}


def resource_id(service, kind, *parts):
    """Resource tag: '<service>/<kind>[/part...]' (service without trailing dot)."""
    return "/".join([fqdn(service).rstrip("."), kind] + [str(p) for p in parts])


def is_owned(txt_values, owner_id, service):
    """True when one of the TXT values marks the name as owned by owner_id for service."""
    svc = fqdn(service).rstrip(".")
    for val in txt_values or ():
        info = parse_owner_txt(val)
        if info and info["owner"] == owner_id and info["resource"].split("/", 1)[0] == svc:
            return True
    return False


def foreign_owner(txt_values, owner_id, service):
    """Return the description of another gomirror owner of a name, else None."""
    svc = fqdn(service).rstrip(".")
    for val in txt_values or ():
        info = parse_owner_txt(val)
        if info and not (info["owner"] == owner_id and info["resource"].split("/", 1)[0] == svc):
            return "{} ({})".format(info["owner"], info["resource"])
    return None


# --------------------------------------------------------------------------- validation
def _ip(value, region):
    try:
        return ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise RoutingError(
            f"region {region!r}: endpoint {value!r} is not an IPv4/IPv6 address"
        ) from None


def validate_tsig_secret(secret, key_name=None):
    if secret is None:
        return None
    try:
        raw = base64.b64decode(str(secret).strip(), validate=True)
    except (binascii.Error, ValueError):
        raise RoutingError(
            "TSIG secret for key %r is not valid base64" % (key_name or "?")
        ) from None
    if not raw:
        raise RoutingError("TSIG secret for key %r is empty" % (key_name or "?"))
    return raw


def validate_topology(params):
    """Validate and normalise module parameters.

    Returns a dict: service, zone, ttl, owner_id, default_region, regions (ordered list of
    dicts with name, endpoints(list of str, v4 first then v6, sorted), countries,
    subdivisions, cidrs, fallback), health_check (dict or None).
    Raises RoutingError with a message naming the offending item.
    """
    service = fqdn(params.get("service"))
    zone = fqdn(params.get("zone"))
    if not in_zone(service, zone) or service == zone:
        raise RoutingError(f"service {service} is not a name below zone {zone}")
    ttl = params.get("ttl")
    ttl = 60 if ttl is None else ttl
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not TTL_MIN <= ttl <= TTL_MAX:
        raise RoutingError(f"ttl {ttl!r} out of range ({TTL_MIN}..{TTL_MAX})")
    owner_id = params.get("owner_id") or "default"
    if not re.match(r"^[A-Za-z0-9_.:-]{1,64}$", owner_id):
        raise RoutingError(
            f"owner_id {owner_id!r} must be 1-64 chars of letters, digits, '_', '.', ':', '-'"
        )

    raw_regions = params.get("regions") or []
    if not raw_regions:
        raise RoutingError("at least one region is required")
    regions = []
    names = []
    for reg in raw_regions:
        name = str(reg.get("name") or "").strip().lower()
        if not _LABEL_RE.match(name):
            raise RoutingError("region name {!r} is not a valid DNS label".format(reg.get("name")))
        if name in names:
            raise RoutingError(f"duplicate region name {name!r}")
        names.append(name)
        eps = reg.get("endpoints") or []
        if not eps:
            raise RoutingError(f"region {name!r} has no endpoints")
        ips = []
        for ep in eps:
            ip = _ip(ep, name)
            if ip in ips:
                raise RoutingError(f"region {name!r}: duplicate endpoint {ip}")
            ips.append(ip)
        ips.sort(key=lambda i: (i.version, i.packed))
        countries = []
        for cc in reg.get("countries") or []:
            cc = str(cc).strip().upper()
            if not _COUNTRY_RE.match(cc):
                raise RoutingError(f"region {name!r}: {cc!r} is not an ISO 3166-1 alpha-2 code")
            if cc not in countries:
                countries.append(cc)
        subdivisions = []
        for sd in reg.get("subdivisions") or []:
            sd = str(sd).strip().upper()
            if not _SUBDIV_RE.match(sd):
                raise RoutingError(
                    f"region {name!r}: subdivision {sd!r} must look like 'US-CA' (ISO 3166-2)"
                )
            if sd not in subdivisions:
                subdivisions.append(sd)
        cidrs = []
        for c in reg.get("cidrs") or []:
            try:
                net = ipaddress.ip_network(str(c).strip(), strict=True)
            except ValueError as exc:
                raise RoutingError(f"region {name!r}: invalid CIDR {c!r} ({exc})") from None
            cidrs.append(net)
        regions.append(
            {
                "name": name,
                "endpoints": [str(i) for i in ips],
                "countries": sorted(countries),
                "subdivisions": sorted(subdivisions),
                "cidrs": sorted(
                    cidrs, key=lambda n: (n.version, n.network_address.packed, n.prefixlen)
                ),
                "fallback": [str(f).strip().lower() for f in (reg.get("fallback") or [])],
            }
        )

    for reg in regions:
        seen = []
        for fb in reg["fallback"]:
            if fb not in names:
                raise RoutingError(
                    "region {!r}: unknown region {!r} in fallback list".format(reg["name"], fb)
                )
            if fb == reg["name"]:
                raise RoutingError(
                    "region {!r} lists itself in its fallback list".format(reg["name"])
                )
            if fb in seen:
                raise RoutingError(
                    "region {!r}: fallback {!r} listed twice".format(reg["name"], fb)
                )
            seen.append(fb)

    default_region = str(params.get("default_region") or "").strip().lower()
    if default_region not in names:
        raise RoutingError(
            "default_region {!r} is not one of the regions ({})".format(
                params.get("default_region"), ", ".join(names)
            )
        )

    # overlapping client matches between regions
    owners = {}
    for reg in regions:
        for cc in reg["countries"]:
            if cc in owners:
                raise RoutingError(
                    "country {} is matched by regions {!r} and {!r}".format(
                        cc, owners[cc], reg["name"]
                    )
                )
            owners[cc] = reg["name"]
    for reg in regions:
        for sd in reg["subdivisions"]:
            if sd in owners:
                raise RoutingError(
                    "subdivision {} is matched by regions {!r} and {!r}".format(
                        sd, owners[sd], reg["name"]
                    )
                )
            owners[sd] = reg["name"]
    all_nets = [(reg["name"], n) for reg in regions for n in reg["cidrs"]]
    for i, (ra, na) in enumerate(all_nets):
        for rb, nb in all_nets[i + 1 :]:
            if na.version == nb.version and na.overlaps(nb):
                if ra == rb:
                    raise RoutingError(f"region {ra!r}: CIDRs {na} and {nb} overlap")
                raise RoutingError(
                    f"overlapping CIDRs between regions {ra!r} ({na}) and {rb!r} ({nb})"
                )
    for reg in regions:
        reg["cidrs"] = [str(n) for n in reg["cidrs"]]

    hc = params.get("health_check") or {}
    health = None
    if hc.get("enabled", True):
        protocol = str(hc.get("protocol") or "HTTPS").upper()
        if protocol not in ("HTTP", "HTTPS"):
            raise RoutingError(f"health_check.protocol must be HTTP or HTTPS, got {protocol!r}")
        port = hc.get("port") or (443 if protocol == "HTTPS" else 80)
        if not 1 <= int(port) <= 65535:
            raise RoutingError(f"health_check.port {port!r} out of range")
        path = hc.get("path") or canary_info_path(
            hc.get("canary_module") or DEFAULT_CANARY_MODULE,
            hc.get("canary_version") or DEFAULT_CANARY_VERSION,
        )
        if not path.startswith("/") or len(path) > 255:
            raise RoutingError(f"health_check.path {path!r} must start with '/' (max 255 chars)")
        interval = int(hc.get("interval") or 30)
        if interval not in (10, 30):
            raise RoutingError("health_check.interval must be 10 or 30 seconds")
        threshold = int(hc.get("failure_threshold") or 3)
        if not 1 <= threshold <= 10:
            raise RoutingError(f"health_check.failure_threshold {threshold!r} out of range 1..10")
        health = {
            "protocol": protocol,
            "port": int(port),
            "path": path,
            "interval": interval,
            "failure_threshold": threshold,
            "host": fqdn(hc.get("host") or service).rstrip("."),
        }

    return {
        "service": service,
        "zone": zone,
        "ttl": ttl,
        "owner_id": owner_id,
        "default_region": default_region,
        "regions": regions,
        "health_check": health,
    }


def region_map(topo):
    return {r["name"]: r for r in topo["regions"]}


def family_endpoints(region, rtype):
    want = 4 if rtype == "A" else 6
    return [e for e in region["endpoints"] if ipaddress.ip_address(e).version == want]


def families(topo):
    out = []
    for rtype in ("A", "AAAA"):
        if any(family_endpoints(r, rtype) for r in topo["regions"]):
            out.append(rtype)
    return out


def region_chain(topo, region_name, rtype):
    """Ordered regions answering for region_name's clients for one address family:
    the region itself, then its fallback list, restricted to regions that have an
    endpoint of that family.  If that is empty the default region's chain is used, and
    if that is empty too, every region with such endpoints in declaration order."""
    regs = region_map(topo)
    reg = regs[region_name]
    chain = [n for n in [reg["name"]] + reg["fallback"] if family_endpoints(regs[n], rtype)]
    if chain:
        return chain
    if region_name != topo["default_region"]:
        return region_chain(topo, topo["default_region"], rtype)
    return [r["name"] for r in topo["regions"] if family_endpoints(r, rtype)]


def pool_name(topo, region_name):
    return "{}.{}".format(region_name, topo["service"])


# --------------------------------------------------------------------------- records
def _rec(name, rtype, **kw):
    rec = {
        "name": fqdn(name),
        "type": rtype,
        "set_id": kw.pop("set_id", None),
        "ttl": kw.pop("ttl", None),
        "values": sorted(kw.pop("values", []) or []),
        "alias": kw.pop("alias", None),
        "geo": kw.pop("geo", None),
        "failover": kw.pop("failover", None),
        "multivalue": kw.pop("multivalue", False),
        "health_check": kw.pop("health_check", None),
    }
    if kw:
        raise TypeError(f"unknown record fields {sorted(kw)}")
    return rec


def record_key(rec):
    return (rec["name"], rec["type"], rec.get("set_id") or "")


def record_text(rec):
    """Stable one-line rendering for diffs and return values."""
    parts = [rec["name"], rec["type"]]
    if rec.get("set_id"):
        parts.append("[{}]".format(rec["set_id"]))
    if rec.get("geo"):
        parts.append("geo={}".format(rec["geo"]))
    if rec.get("failover"):
        parts.append("failover={}".format(rec["failover"]))
    if rec.get("multivalue"):
        parts.append("multivalue")
    if rec.get("ttl") is not None:
        parts.append("ttl={}".format(rec["ttl"]))
    if rec.get("alias"):
        parts.append(
            "alias={}{}".format(
                rec["alias"]["target"], " (evaluate-health)" if rec["alias"].get("evaluate") else ""
            )
        )
    if rec.get("health_check"):
        parts.append("health_check={}".format(rec["health_check"]))
    if rec.get("values"):
        parts.append(" ".join(rec["values"]))
    return " ".join(parts)


def _txt(topo, resource):
    return '"{}"'.format(owner_txt(topo["owner_id"], resource))


def health_check_key(region_name, endpoint):
    return f"{region_name}/{endpoint}"


def desired_health_checks(topo):
    """Wanted Route53 health checks keyed by '<region>/<endpoint>'."""
    hc = topo["health_check"]
    if not hc:
        return {}
    out = {}
    for reg in topo["regions"]:
        for ep in reg["endpoints"]:
            key = health_check_key(reg["name"], ep)
            out[key] = {
                "key": key,
                "region": reg["name"],
                "endpoint": ep,
                "type": hc["protocol"],
                "port": hc["port"],
                "path": hc["path"],
                "host": hc["host"],
                "interval": hc["interval"],
                "failure_threshold": hc["failure_threshold"],
                "name": health_check_name(topo, reg["name"], ep, hc),
            }
    return out


def health_check_name(topo, region_name, endpoint, hc):
    """Human-readable Name tag; includes the path so checks differing only by path are
    never mistaken for each other."""
    service = topo["service"].rstrip(".")
    url = f"{hc['protocol'].lower()}://{hc['host']}:{hc['port']}{hc['path']}"
    name = f"gomirror {service} {region_name} {endpoint} {url}"
    return name[:255]


def health_check_config_changes(want, have):
    """Return (mutable_changes, needs_replace) comparing a wanted and current health check
    (both in the normalised shape of desired_health_checks())."""
    immutable = ("type", "interval", "endpoint")
    mutable = ("port", "path", "host", "failure_threshold")
    replace = any(want[k] != have.get(k) for k in immutable)
    changes = {k: want[k] for k in mutable if want[k] != have.get(k)}
    return changes, replace


def chain_records(topo, region_name, rtype):
    """Failover alias chain for one region and family.

    Returns (head_name, records).  A chain [r0, r1, ..., rn] becomes
    fo0.<r0>.<service>: PRIMARY -> pool r0, SECONDARY -> fo1.<r0>.<service>
    ...
    fo<n-1>.<r0>.<service>: PRIMARY -> pool r<n-1>, SECONDARY -> pool rn
    so Route53 walks down the list until a pool with a healthy endpoint is found.
    A chain of a single region has no failover records: head is the pool itself.
    """
    chain = region_chain(topo, region_name, rtype)
    if len(chain) == 1:
        return fqdn(pool_name(topo, chain[0])), []
    recs = []
    last = len(chain) - 2
    for k in range(last + 1):
        name = f"fo{k}.{region_name}.{topo['service']}"
        nxt = (
            f"fo{k + 1}.{region_name}.{topo['service']}" if k < last else pool_name(topo, chain[-1])
        )
        recs.append(
            _rec(
                name,
                rtype,
                set_id=f"fo{k}.{region_name}-primary-{rtype.lower()}",
                failover="PRIMARY",
                alias={"target": fqdn(pool_name(topo, chain[k])), "evaluate": True},
            )
        )
        recs.append(
            _rec(
                name,
                rtype,
                set_id=f"fo{k}.{region_name}-secondary-{rtype.lower()}",
                failover="SECONDARY",
                alias={"target": fqdn(nxt), "evaluate": True},
            )
        )
    return fqdn("fo0.{}.{}".format(region_name, topo["service"])), recs


def desired_route53(topo):
    """All records wanted in a Route53 hosted zone (see docs/dns-routing.md).

    * pools: <region>.<service> A/AAAA, multivalue answer, one record per endpoint,
      each with its health check;
    * failover chains: fo<k>.<region>.<service> (see chain_records);
    * geolocation records at <service>: one per country / subdivision of each region
      plus the mandatory default location '*' for the default region, all alias records
      pointing at the region's chain head;
    * an ownership TXT at every owned name.
    """
    for reg in topo["regions"]:
        if reg["cidrs"]:
            raise RoutingError(
                "region {!r}: CIDR client matching is not supported by the route53 provider "
                "(Route53 CIDR collections are not implemented here; use countries/"
                "subdivisions or the rfc2136 provider)".format(reg["name"])
            )
    regs = region_map(topo)
    hcs = topo["health_check"]
    recs = []
    txt_names = {}
    svc = topo["service"]
    for reg in topo["regions"]:
        pname = pool_name(topo, reg["name"])
        txt_names[fqdn(pname)] = resource_id(svc, "pool", reg["name"])
        for rtype in ("A", "AAAA"):
            for ep in family_endpoints(reg, rtype):
                recs.append(
                    _rec(
                        pname,
                        rtype,
                        set_id="{}-{}".format(reg["name"], ep),
                        ttl=topo["ttl"],
                        values=[ep],
                        multivalue=True,
                        health_check=health_check_key(reg["name"], ep) if hcs else None,
                    )
                )
    routed = [r["name"] for r in topo["regions"] if r["countries"] or r["subdivisions"]]
    if topo["default_region"] not in routed:
        routed.append(topo["default_region"])
    txt_names[fqdn(svc)] = resource_id(svc, "geo")
    for rtype in families(topo):
        heads = {}
        for rname in routed:
            head, crecs = chain_records(topo, rname, rtype)
            heads[rname] = head
            for c in crecs:
                txt_names.setdefault(c["name"], resource_id(svc, "failover", rname))
            recs.extend(crecs)
        for rname in routed:
            reg = regs[rname]
            locs = reg["countries"] + reg["subdivisions"]
            for loc in locs:
                recs.append(
                    _rec(
                        svc,
                        rtype,
                        set_id=f"geo-{rname}-{loc}-{rtype.lower()}",
                        geo=loc,
                        alias={"target": heads[rname], "evaluate": True},
                    )
                )
        recs.append(
            _rec(
                svc,
                rtype,
                set_id=f"geo-default-{rtype.lower()}",
                geo="*",
                alias={"target": heads[topo["default_region"]], "evaluate": True},
            )
        )
    for name, res in sorted(txt_names.items()):
        recs.append(_rec(name, "TXT", ttl=topo["ttl"], values=[_txt(topo, res)]))
    return sorted(recs, key=record_key)


def effective_region(topo, region_name, rtype, unhealthy):
    """First region in region_name's chain with a healthy endpoint of the family, and its
    healthy endpoints.  If nothing in the chain is healthy, fail open: the chain head with
    all of its endpoints."""
    regs = region_map(topo)
    chain = region_chain(topo, region_name, rtype)
    for rname in chain:
        healthy = [e for e in family_endpoints(regs[rname], rtype) if e not in unhealthy]
        if healthy:
            return rname, healthy
    if not chain:
        return None, []
    return chain[0], family_endpoints(regs[chain[0]], rtype)


def desired_rfc2136(topo, answer_region=None, unhealthy_endpoints=()):
    """RRsets wanted on a self-hosted authoritative server (one zone copy / view).

    * <region>.<service> A/AAAA for every region: the endpoints answering that region's
      clients right now (its own healthy endpoints, else the first fallback region with
      healthy endpoints);
    * <service> A/AAAA: the same for answer_region (default: default_region). A BIND view
      per region sets answer_region to its region;
    * an ownership TXT next to each of those names.
    """
    unhealthy = set()
    for e in unhealthy_endpoints or ():
        unhealthy.add(str(_ip(e, "unhealthy_endpoints")))
    answer_region = (answer_region or topo["default_region"]).lower()
    regs = region_map(topo)
    if answer_region not in regs:
        raise RoutingError(f"answer_region {answer_region!r} is not one of the regions")
    recs = []
    svc = topo["service"]
    targets = [
        (pool_name(topo, r["name"]), r["name"], resource_id(svc, "pool", r["name"]))
        for r in topo["regions"]
    ]
    targets.append((svc, answer_region, resource_id(svc, "answer", answer_region)))
    for name, rname, res in targets:
        for rtype in families(topo):
            _src, eps = effective_region(topo, rname, rtype, unhealthy)
            if eps:
                recs.append(_rec(name, rtype, ttl=topo["ttl"], values=eps))
        recs.append(_rec(name, "TXT", ttl=topo["ttl"], values=[_txt(topo, res)]))
    return sorted(recs, key=record_key)


def routing_summary(topo, unhealthy_endpoints=()):
    """Which region actually answers for each region (per family) - returned to users."""
    out = {}
    unhealthy = set(str(ipaddress.ip_address(e)) for e in unhealthy_endpoints or ())
    for reg in topo["regions"]:
        out[reg["name"]] = {}
        for rtype in families(topo):
            src, eps = effective_region(topo, reg["name"], rtype, unhealthy)
            out[reg["name"]][rtype] = {
                "chain": region_chain(topo, reg["name"], rtype),
                "serving_region": src,
                "endpoints": eps,
            }
    return out


# --------------------------------------------------------------------------- diff
def _comparable(rec):
    r = dict(rec)
    r["values"] = sorted(r.get("values") or [])
    return r


def compute_changes(current, desired):
    """Plan between current owned records and desired records.

    Both are lists of record dicts (see _rec).  Returns dict with create, update
    (list of {"before", "after"}), delete, unchanged - each sorted by record key."""
    cur = {record_key(r): _comparable(r) for r in current}
    want = {record_key(r): _comparable(r) for r in desired}
    create, update, delete, unchanged = [], [], [], []
    for key in sorted(want):
        if key not in cur:
            create.append(want[key])
        elif cur[key] != want[key]:
            update.append({"before": cur[key], "after": want[key]})
        else:
            unchanged.append(want[key])
    for key in sorted(cur):
        if key not in want:
            delete.append(cur[key])
    return {"create": create, "update": update, "delete": delete, "unchanged": unchanged}


def diff_text(records):
    """Sorted text block used for Ansible's diff before/after."""
    lines = sorted(record_text(r) for r in records)
    return "\n".join(lines) + ("\n" if lines else "")


def plan_changed(plan):
    return bool(plan["create"] or plan["update"] or plan["delete"])


def conflicts(wanted_names, current_by_name, owner_id, service):
    """Names we want that carry A/AAAA/TXT records we do not own.

    current_by_name: {name: {"txt": [values], "types": set(rtypes)}} for names present
    in the zone.  Returns list of human-readable conflict messages."""
    out = []
    for name in sorted(wanted_names):
        info = current_by_name.get(name)
        if not info:
            continue
        if is_owned(info.get("txt"), owner_id, service):
            continue
        other = foreign_owner(info.get("txt"), owner_id, service)
        managed = sorted(t for t in info.get("types", ()) if t in MANAGED_TYPES)
        if other:
            out.append(f"{name} is owned by another gomirror owner {other}")
        elif managed:
            out.append(
                "{} already has {} records not owned by {!r} (no ownership TXT); refusing "
                "to touch them".format(name, "/".join(managed), owner_id)
            )
    return out


def short_hash(*parts):
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- role inputs
# What the geodns role takes besides the topology (zones, GeoIP networks), checked with the
# same label and country rules as the topology itself. Errors name the role variable.
GEODNS_REGION_KEYS = ("name", "endpoints", "countries", "subdivisions", "cidrs", "fallback")
_GEODNS_VARIABLES = (
    ("ttl", "geodns_ttl"),
    ("default_region", "geodns_default_region"),
    ("owner_id", "geodns_owner_id"),
    ("service", "geodns_service"),
)


def is_dns_name(name):
    """A host or zone name: labels of the topology's label rule, at most 253 characters."""
    name = str(name or "").strip().lower().rstrip(".")
    return 0 < len(name) <= 253 and all(_LABEL_RE.match(label) for label in name.split("."))


def geodns_zone(zones, service):
    """Validate geodns_zones; the zone geodns_service is in (the longest that contains it)."""
    if not zones:
        raise RoutingError("geodns_zones: at least one zone is required")
    names = []
    for z in zones:
        if not isinstance(z, dict) or not z.get("name"):
            raise RoutingError(f"geodns_zones: entry {z!r} has no name")
        name = str(z["name"]).lower().rstrip(".")
        if not is_dns_name(name):
            raise RoutingError(f"geodns_zones: {z['name']!r} is not a DNS name")
        if name in names:
            raise RoutingError(f"geodns_zones: zone {name!r} is listed twice")
        names.append(name)
        nss = z.get("nameservers") or []
        if not nss:
            raise RoutingError(f"geodns_zones: zone {name!r} needs at least one nameserver")
        for ns in nss:
            if not isinstance(ns, dict) or not ns.get("name"):
                raise RoutingError(f"geodns_zones: zone {name!r}: nameserver {ns!r} has no name")
            if ns.get("address") is not None:
                try:
                    ipaddress.ip_address(str(ns["address"]))
                except ValueError:
                    raise RoutingError(
                        f"geodns_zones: zone {name!r}: nameserver {ns['name']!r} address "
                        f"{ns['address']!r} is not an IP address"
                    ) from None
        if not isinstance(z.get("records") or [], list):
            raise RoutingError(f"geodns_zones: zone {name!r}: records must be a list of zone "
                               "file lines")
    svc = str(service or "").lower().rstrip(".")
    if not svc:
        raise RoutingError("geodns_service is required")
    below = [n for n in names if svc.endswith("." + n)]
    if not below:
        raise RoutingError(
            f"geodns_service {svc!r} is not a name below any zone of geodns_zones "
            f"({', '.join(names)})"
        )
    return max(below, key=len)


def geodns_geoip_networks(networks, source):
    """Validate geodns_geoip_networks: CIDRs with ISO 3166-1 country codes, none overlapping."""
    nets = []
    for item in networks or []:
        if not isinstance(item, dict) or "network" not in item or "country" not in item:
            raise RoutingError(f"geodns_geoip_networks: entry {item!r} needs network and country")
        try:
            net = ipaddress.ip_network(str(item["network"]).strip(), strict=True)
        except ValueError as exc:
            raise RoutingError(
                f"geodns_geoip_networks: {item['network']!r} is not a CIDR ({exc})"
            ) from None
        cc = str(item["country"]).strip().upper()
        if not _COUNTRY_RE.match(cc):
            raise RoutingError(f"geodns_geoip_networks: {item['country']!r} is not an ISO "
                               "3166-1 alpha-2 code")
        for other, occ in nets:
            if other.version == net.version and other.overlaps(net):
                raise RoutingError(f"geodns_geoip_networks: {net} ({cc}) overlaps {other} ({occ})")
        nets.append((net, cc))
    if source == "build" and not nets:
        raise RoutingError("geodns_geoip_networks: geodns_geoip_source=build needs at least one "
                           "network")
    return [{"network": str(n), "country": c} for n, c in nets]


def geodns_inputs(params):
    """The geodns role's preflight: {zone, topology, geoip_networks, warnings}, or
    RoutingError whose message starts with the role variable at fault."""
    zone = geodns_zone(params.get("zones"), params.get("service"))
    for reg in params.get("regions") or []:
        if not isinstance(reg, dict):
            raise RoutingError(f"geodns_regions: entry {reg!r} is not a dict")
        unknown = sorted(set(reg) - set(GEODNS_REGION_KEYS))
        if unknown:
            raise RoutingError(
                f"geodns_regions: region {reg.get('name')!r} has unknown keys {unknown} "
                f"(known: {', '.join(sorted(GEODNS_REGION_KEYS))})"
            )
        if reg.get("subdivisions"):
            raise RoutingError(
                f"geodns_regions: region {reg.get('name')!r}: subdivisions need a City database; "
                "this role renders country and CIDR ACLs only"
            )
    try:
        topo = validate_topology(
            {
                "service": params.get("service"),
                "zone": zone,
                "ttl": params.get("ttl"),
                "owner_id": params.get("owner_id"),
                "default_region": params.get("default_region"),
                "regions": params.get("regions"),
                "health_check": {"enabled": False},
            }
        )
    except RoutingError as exc:
        message = str(exc)
        variable = next(
            (v for prefix, v in _GEODNS_VARIABLES if message.startswith(prefix)), "geodns_regions"
        )
        raise RoutingError(f"{variable}: {message}") from None
    geoip = geodns_geoip_networks(params.get("geoip_networks"), params.get("geoip_source"))
    warnings = []
    if params.get("geoip_source") == "none":
        for reg in topo["regions"]:
            if reg["countries"] and not reg["cidrs"] and reg["name"] != topo["default_region"]:
                warnings.append(
                    f"region {reg['name']!r} lists countries but geodns_geoip_source is none: "
                    "only its TSIG key selects its view"
                )
    return {"zone": zone, "topology": topo, "geoip_networks": geoip, "warnings": warnings}
