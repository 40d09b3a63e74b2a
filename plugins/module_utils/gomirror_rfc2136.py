# Copyright: gomirror project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RFC 2136 (dynamic update, TSIG) provider for gomirror_geo_routing (dnspython)."""

from __future__ import annotations

# Relative, so it resolves wherever this file is: ansible.module_utils.gomirror_routing
# from the repository (module_utils=./plugins/module_utils) and in the geodns checker's
# package shim on the DNS hosts, the collection's module_utils once installed.
from .gomirror_routing import (
    MANAGED_TYPES,
    compute_changes,
    conflicts,
    desired_rfc2136,
    fqdn,
    is_owned,
    parse_owner_txt,
)

try:
    import dns.exception
    import dns.message
    import dns.name
    import dns.query
    import dns.rcode
    import dns.rdata
    import dns.rdataclass
    import dns.rdatatype
    import dns.rrset
    import dns.tsig
    import dns.update
    import dns.zone

    HAS_DNSPYTHON = True
    DNSPYTHON_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module
    HAS_DNSPYTHON = False
    DNSPYTHON_IMPORT_ERROR = exc

ALGORITHMS = {
    "hmac-md5": "HMAC-MD5.SIG-ALG.REG.INT.",
    "hmac-sha1": "hmac-sha1.",
    "hmac-sha224": "hmac-sha224.",
    "hmac-sha256": "hmac-sha256.",
    "hmac-sha384": "hmac-sha384.",
    "hmac-sha512": "hmac-sha512.",
}

_TSIG_ERRORS = (
    "PeerBadKey",
    "PeerBadSignature",
    "PeerBadTime",
    "PeerBadTruncation",
    "BadSignature",
    "BadTime",
    "BadAlgorithm",
    "PeerError",
)


class ProviderError(Exception):
    pass


class Conn:
    def __init__(self, opts):
        self.server = opts["server"]
        self.port = int(opts.get("port") or 53)
        self.timeout = float(opts.get("timeout") or 10)
        self.protocol = opts.get("protocol") or "tcp"
        self.key_name = opts.get("key_name")
        self.keyring = None
        if self.key_name:
            key = dns.tsig.Key(
                dns.name.from_text(self.key_name),
                opts["key_secret"],
                ALGORITHMS[opts.get("key_algorithm") or "hmac-sha256"],
            )
            self.keyring = {key.name: key}

    def _sign(self, msg):
        if self.keyring:
            key = next(iter(self.keyring.values()))
            msg.use_tsig(key)
        return msg

    def _tsig_failure(self, exc, what):
        if type(exc).__name__ in _TSIG_ERRORS or isinstance(exc, dns.tsig.BadSignature):
            return ProviderError(
                f"TSIG key {self.key_name!r} was rejected by {self.server}:{self.port} "
                f"during {what} ({type(exc).__name__}: {exc}); nothing was changed"
            )
        return None

    def send(self, msg, what):
        try:
            if self.protocol == "udp":
                return dns.query.udp(msg, self.server, port=self.port, timeout=self.timeout)
            return dns.query.tcp(msg, self.server, port=self.port, timeout=self.timeout)
        except Exception as exc:  # dns errors are many; map TSIG ones to a clear message
            tsig = self._tsig_failure(exc, what)
            if tsig:
                raise tsig from None
            raise ProviderError(
                f"{what} to {self.server}:{self.port} failed: {type(exc).__name__}: {exc}"
            ) from None

    def read_zone(self, zone):
        """AXFR the zone (TSIG-signed when a key is given): {(name, type): (ttl, [values])}"""
        try:
            z = dns.zone.from_xfr(
                dns.query.xfr(
                    self.server,
                    zone,
                    port=self.port,
                    timeout=self.timeout,
                    lifetime=self.timeout * 3,
                    keyring=self.keyring,
                    keyname=self.key_name,
                    relativize=False,
                ),
                relativize=False,
            )
        except Exception as exc:
            tsig = self._tsig_failure(exc, "zone transfer")
            if tsig:
                raise tsig from None
            rcode_msg = str(exc)
            if "NOTAUTH" in rcode_msg and self.key_name:
                raise ProviderError(
                    f"TSIG key {self.key_name!r} was rejected by {self.server}:{self.port} "
                    f"during zone transfer ({rcode_msg}); nothing was changed"
                ) from None
            raise ProviderError(
                f"zone transfer of {zone} from {self.server}:{self.port} failed: "
                f"{type(exc).__name__}: {exc} (the key must be allowed to AXFR the zone)"
            ) from None
        out = {}
        for name, node in z.nodes.items():
            for rds in node.rdatasets:
                rtype = dns.rdatatype.to_text(rds.rdtype)
                out[(name.to_text().lower(), rtype)] = (rds.ttl, sorted(r.to_text() for r in rds))
        return out


def _records_from_zone(zdata, owner_id, service):
    by_name = {}
    for (name, rtype), (_ttl, values) in zdata.items():
        info = by_name.setdefault(name, {"txt": [], "types": set()})
        info["types"].add(rtype)
        if rtype == "TXT":
            info["txt"].extend(values)
    owned = {n for n, i in by_name.items() if is_owned(i["txt"], owner_id, service)}
    current = []
    for (name, rtype), (ttl, values) in sorted(zdata.items()):
        if name not in owned or rtype not in MANAGED_TYPES:
            continue
        if rtype == "TXT":
            values = [v for v in values if parse_owner_txt(v)]
        current.append(
            {
                "name": name,
                "type": rtype,
                "set_id": None,
                "ttl": ttl,
                "values": sorted(values),
                "alias": None,
                "geo": None,
                "failover": None,
                "multivalue": False,
                "health_check": None,
            }
        )
    return by_name, owned, current


def build_update(zone, plan, zdata, by_name, owned):
    """Build the RFC 2136 UPDATE message (unsigned; the caller signs it).

    Prerequisites: every touched name we already own must still have exactly the TXT
    RRset we read (nobody changed ownership meanwhile); every touched name we do not
    own yet must not have A/AAAA/TXT records."""
    upd = dns.update.UpdateMessage(zone)
    touched = sorted(
        {r["name"] for r in plan["create"] + plan["delete"]}
        | {u["after"]["name"] for u in plan["update"]}
    )
    for name in touched:
        if name in owned:
            # value-dependent prerequisite (RFC 2136 2.4.2, TTL 0): the whole TXT RRset
            # is still exactly what we read
            _ttl, values = zdata[(name, "TXT")]
            upd.present(name, *[dns.rdata.from_text("IN", "TXT", v) for v in values])
        else:
            for rtype in MANAGED_TYPES:
                upd.absent(name, rtype)

    def _apply(rec, action):
        if rec["type"] == "TXT":
            for v in rec["values"]:
                rd = dns.rdata.from_text("IN", "TXT", v)
                if action == "delete":
                    upd.delete(rec["name"], rd)
                else:
                    upd.add(rec["name"], rec["ttl"], rd)
        elif action == "delete":
            upd.delete(rec["name"], rec["type"])
        else:
            upd.replace(rec["name"], rec["ttl"], rec["type"], *rec["values"])

    for rec in plan["delete"]:
        _apply(rec, "delete")
    for u in plan["update"]:
        if u["after"]["type"] == "TXT":
            _apply(u["before"], "delete")
        _apply(u["after"], "add")
    for rec in plan["create"]:
        _apply(rec, "add")
    return upd


def reconcile(conn, topo, opts, check_mode, state="present"):
    zone = topo["zone"]
    zdata = conn.read_zone(zone)
    if state == "present":
        desired = desired_rfc2136(
            topo, opts.get("answer_region"), opts.get("unhealthy_endpoints") or ()
        )
    else:
        desired = []
    by_name, owned, current = _records_from_zone(zdata, topo["owner_id"], topo["service"])
    problems = conflicts({r["name"] for r in desired}, by_name, topo["owner_id"], topo["service"])
    if problems:
        raise ProviderError("; ".join(problems))
    plan = compute_changes(current, desired)
    changed = bool(plan["create"] or plan["update"] or plan["delete"])
    serial = None
    soa = zdata.get((fqdn(zone), "SOA"))
    if soa:
        serial = int(soa[1][0].split()[2])
    result = {
        "changed": changed,
        "plan": plan,
        "current": current,
        "desired": desired,
        "serial_before": serial,
    }
    if check_mode or not changed:
        return result
    upd = build_update(zone, plan, zdata, by_name, owned)
    conn._sign(upd)
    resp = conn.send(upd, "dynamic update")
    rcode = resp.rcode()
    if rcode != dns.rcode.NOERROR:
        text = dns.rcode.to_text(rcode)
        if rcode in (dns.rcode.NXRRSET, dns.rcode.YXRRSET, dns.rcode.NXDOMAIN, dns.rcode.YXDOMAIN):
            raise ProviderError(
                f"update prerequisites failed ({text}): the zone changed since it was read; "
                "nothing was changed, re-run"
            )
        if rcode == dns.rcode.NOTAUTH:
            raise ProviderError(
                f"server refused the update signed with TSIG key {conn.key_name!r} (NOTAUTH)"
            )
        raise ProviderError(f"dynamic update failed with rcode {text}")
    return result
