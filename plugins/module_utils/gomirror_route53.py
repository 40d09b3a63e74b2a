# Copyright: gomirror project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Route53 provider for gomirror_geo_routing (boto3)."""

from __future__ import annotations

import uuid

# Relative, so it resolves wherever this file is: ansible.module_utils.gomirror_routing
# from the repository (module_utils=./plugins/module_utils) and in the geodns checker's
# package shim on the DNS hosts, the collection's module_utils once installed.
from .gomirror_routing import (
    MANAGED_TYPES,
    compute_changes,
    conflicts,
    desired_health_checks,
    desired_route53,
    fqdn,
    health_check_config_changes,
    is_owned,
    parse_owner_txt,
    record_key,
    short_hash,
)

try:
    import boto3
    import botocore.exceptions

    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = exc

TAG_OWNER = "gomirror/owner"
TAG_SERVICE = "gomirror/service"
TAG_KEY = "gomirror/key"


class ProviderError(Exception):
    pass


def client(opts):
    kwargs = {"region_name": opts.get("aws_region") or "us-east-1"}
    if opts.get("endpoint_url"):
        kwargs["endpoint_url"] = opts["endpoint_url"]
    if opts.get("access_key"):
        kwargs["aws_access_key_id"] = opts["access_key"]
        kwargs["aws_secret_access_key"] = opts.get("secret_key")
        if opts.get("session_token"):
            kwargs["aws_session_token"] = opts["session_token"]
    session = boto3.session.Session(profile_name=opts.get("profile") or None)
    return session.client("route53", **kwargs)


def find_zone_id(cl, zone, zone_id=None):
    if zone_id:
        return zone_id.split("/")[-1]
    found = []
    for page in cl.get_paginator("list_hosted_zones").paginate():
        for hz in page["HostedZones"]:
            if fqdn(hz["Name"]) == fqdn(zone) and not hz.get("Config", {}).get("PrivateZone"):
                found.append(hz["Id"].split("/")[-1])
    if not found:
        raise ProviderError(f"no public Route53 hosted zone named {fqdn(zone)}")
    if len(found) > 1:
        raise ProviderError(
            "several hosted zones are named {} ({}); set route53.hosted_zone_id".format(
                fqdn(zone), ", ".join(found)
            )
        )
    return found[0]


def list_rrsets(cl, zone_id):
    out = []
    kwargs = {"HostedZoneId": zone_id}
    while True:
        resp = cl.list_resource_record_sets(**kwargs)
        out.extend(resp.get("ResourceRecordSets", []))
        if not resp.get("IsTruncated"):
            return out
        kwargs["StartRecordName"] = resp["NextRecordName"]
        kwargs["StartRecordType"] = resp["NextRecordType"]
        if resp.get("NextRecordIdentifier"):
            kwargs["StartRecordIdentifier"] = resp["NextRecordIdentifier"]


def _unescape(name):
    # Route53 returns '*' as \052 and other octal escapes.
    return name.replace("\\052", "*").replace("\\100", "@")


def normalize_rrset(rr, hc_id_to_key):
    geo = None
    if rr.get("GeoLocation"):
        g = rr["GeoLocation"]
        if g.get("CountryCode") and g.get("SubdivisionCode"):
            geo = "{}-{}".format(g["CountryCode"], g["SubdivisionCode"])
        else:
            geo = g.get("CountryCode") or ("continent:{}".format(g.get("ContinentCode")))
    alias = None
    if rr.get("AliasTarget"):
        alias = {
            "target": fqdn(_unescape(rr["AliasTarget"]["DNSName"])),
            "evaluate": bool(rr["AliasTarget"].get("EvaluateTargetHealth")),
        }
    hc = rr.get("HealthCheckId")
    if hc:
        hc = hc_id_to_key.get(hc, f"id:{hc}")
    return {
        "name": fqdn(_unescape(rr["Name"])),
        "type": rr["Type"],
        "set_id": rr.get("SetIdentifier"),
        "ttl": rr.get("TTL"),
        "values": sorted(v["Value"] for v in rr.get("ResourceRecords") or []),
        "alias": alias,
        "geo": geo,
        "failover": rr.get("Failover"),
        "multivalue": bool(rr.get("MultiValueAnswer")),
        "health_check": hc,
    }


def to_rrset(rec, zone_id, hc_key_to_id):
    rr = {"Name": rec["name"], "Type": rec["type"]}
    if rec.get("set_id"):
        rr["SetIdentifier"] = rec["set_id"]
    if rec.get("alias"):
        rr["AliasTarget"] = {
            "HostedZoneId": zone_id,
            "DNSName": rec["alias"]["target"],
            "EvaluateTargetHealth": bool(rec["alias"].get("evaluate")),
        }
    else:
        rr["TTL"] = rec["ttl"]
        rr["ResourceRecords"] = [{"Value": v} for v in rec["values"]]
    if rec.get("geo"):
        if rec["geo"] == "*":
            rr["GeoLocation"] = {"CountryCode": "*"}
        elif "-" in rec["geo"]:
            cc, sd = rec["geo"].split("-", 1)
            rr["GeoLocation"] = {"CountryCode": cc, "SubdivisionCode": sd}
        else:
            rr["GeoLocation"] = {"CountryCode": rec["geo"]}
    if rec.get("failover"):
        rr["Failover"] = rec["failover"]
    if rec.get("multivalue"):
        rr["MultiValueAnswer"] = True
    if rec.get("health_check"):
        rr["HealthCheckId"] = hc_key_to_id[rec["health_check"]]
    return rr


def read_health_checks(cl, owner_id, service):
    """Owned health checks keyed by '<region>/<endpoint>' (normalised shape)."""
    checks = []
    marker = None
    while True:
        kwargs = {"Marker": marker} if marker else {}
        resp = cl.list_health_checks(**kwargs)
        checks.extend(resp.get("HealthChecks", []))
        if not resp.get("IsTruncated"):
            break
        marker = resp["NextMarker"]
    by_id = {c["Id"]: c for c in checks}
    ids = list(by_id)
    owned = {}
    dupes = []
    svc = fqdn(service).rstrip(".")
    for i in range(0, len(ids), 10):
        resp = cl.list_tags_for_resources(ResourceType="healthcheck", ResourceIds=ids[i : i + 10])
        for ts in resp.get("ResourceTagSets", []):
            tags = {t["Key"]: t["Value"] for t in ts.get("Tags", [])}
            if tags.get(TAG_OWNER) != owner_id or tags.get(TAG_SERVICE) != svc:
                continue
            hc = by_id[ts["ResourceId"]]
            cfg = hc["HealthCheckConfig"]
            key = tags.get(TAG_KEY)
            item = {
                "id": hc["Id"],
                "key": key,
                "version": hc.get("HealthCheckVersion", 1),
                "endpoint": cfg.get("IPAddress"),
                "type": cfg.get("Type"),
                "port": cfg.get("Port"),
                "path": cfg.get("ResourcePath"),
                "host": cfg.get("FullyQualifiedDomainName"),
                "interval": cfg.get("RequestInterval"),
                "failure_threshold": cfg.get("FailureThreshold"),
                "name": tags.get("Name"),
            }
            if key in owned:
                dupes.append(item)
            else:
                owned[key] = item
    return owned, dupes


def _hc_config(want):
    cfg = {
        "IPAddress": want["endpoint"],
        "Port": want["port"],
        "Type": want["type"],
        "ResourcePath": want["path"],
        "FullyQualifiedDomainName": want["host"],
        "RequestInterval": want["interval"],
        "FailureThreshold": want["failure_threshold"],
    }
    if want["type"] == "HTTPS":
        cfg["EnableSNI"] = True
    return cfg


def _hc_tags(want, owner_id, service):
    return [
        {"Key": "Name", "Value": want["name"]},
        {"Key": TAG_OWNER, "Value": owner_id},
        {"Key": TAG_SERVICE, "Value": fqdn(service).rstrip(".")},
        {"Key": TAG_KEY, "Value": want["key"]},
        {"Key": "heritage", "Value": "gomirror"},
    ]


def _tier(rec, by_name):
    """Dependency depth: pools 0, an alias one more than its target."""
    depth = 0
    seen = set()
    cur = rec
    while cur and cur.get("alias") and cur["name"] not in seen:
        seen.add(cur["name"])
        depth += 1
        cur = by_name.get((cur["alias"]["target"], cur["type"]))
    return depth


def plan_health_checks(wanted, owned, dupes):
    create, update, replace, delete = [], [], [], []
    for key in sorted(wanted):
        want = wanted[key]
        have = owned.get(key)
        if not have:
            create.append(want)
            continue
        changes, needs_replace = health_check_config_changes(want, have)
        if needs_replace:
            replace.append({"before": have, "after": want})
        elif changes or have.get("name") != want["name"]:
            update.append({"before": have, "after": want, "changes": changes})
    for key in sorted(owned):
        if key not in wanted:
            delete.append(owned[key])
    delete.extend(dupes)
    return {"create": create, "update": update, "replace": replace, "delete": delete}


def reconcile(cl, topo, opts, check_mode, state="present"):
    """Read, plan and (unless check_mode) apply.  Returns a result dict."""
    try:
        zone_id = find_zone_id(cl, topo["zone"], opts.get("hosted_zone_id"))
        rrsets = list_rrsets(cl, zone_id)
        owned_hcs, dupes = read_health_checks(cl, topo["owner_id"], topo["service"])
    except botocore.exceptions.ClientError as exc:
        raise ProviderError(f"Route53 read failed: {exc}") from None

    if state == "present":
        desired = desired_route53(topo)
        wanted_hcs = desired_health_checks(topo)
    else:
        desired, wanted_hcs = [], {}

    # which names does this owner/service own?
    by_name = {}
    for rr in rrsets:
        name = fqdn(_unescape(rr["Name"]))
        info = by_name.setdefault(name, {"txt": [], "types": set()})
        info["types"].add(rr["Type"])
        if rr["Type"] == "TXT":
            info["txt"].extend(v["Value"] for v in rr.get("ResourceRecords") or [])
    owned_names = {
        n for n, i in by_name.items() if is_owned(i["txt"], topo["owner_id"], topo["service"])
    }
    wanted_names = {r["name"] for r in desired}
    problems = conflicts(wanted_names, by_name, topo["owner_id"], topo["service"])
    if problems:
        raise ProviderError("; ".join(problems))

    hc_id_to_key = {h["id"]: k for k, h in owned_hcs.items()}
    raw_current = {}
    current = []
    for rr in rrsets:
        rec = normalize_rrset(rr, hc_id_to_key)
        if rec["name"] in owned_names and rec["type"] in MANAGED_TYPES:
            if rec["type"] == "TXT" and not any(parse_owner_txt(v) for v in rec["values"]):
                continue
            current.append(rec)
            raw_current[record_key(rec)] = rr

    hc_plan = plan_health_checks(wanted_hcs, owned_hcs, dupes)
    plan = compute_changes(current, desired)
    changed = bool(
        plan["create"]
        or plan["update"]
        or plan["delete"]
        or hc_plan["create"]
        or hc_plan["update"]
        or hc_plan["replace"]
        or hc_plan["delete"]
    )
    # health check replacement changes the id a record refers to: the record key stays
    # the same, so mark those records as updated
    replaced = {r["after"]["key"] for r in hc_plan["replace"]}
    result = {
        "changed": changed,
        "zone_id": zone_id,
        "plan": plan,
        "hc_plan": hc_plan,
        "current": current,
        "desired": desired,
    }
    if check_mode or not changed:
        result["health_check_ids"] = {k: h["id"] for k, h in owned_hcs.items()}
        return result

    try:
        key_to_id = {k: h["id"] for k, h in owned_hcs.items()}
        for want in hc_plan["create"] + [r["after"] for r in hc_plan["replace"]]:
            ref = "gomirror-{}-{}".format(
                short_hash(topo["owner_id"], topo["service"], want["key"]),
                uuid.uuid4().hex[:16],
            )
            resp = cl.create_health_check(CallerReference=ref, HealthCheckConfig=_hc_config(want))
            hid = resp["HealthCheck"]["Id"]
            cl.change_tags_for_resource(
                ResourceType="healthcheck",
                ResourceId=hid,
                AddTags=_hc_tags(want, topo["owner_id"], topo["service"]),
            )
            key_to_id[want["key"]] = hid
        for upd in hc_plan["update"]:
            want, have = upd["after"], upd["before"]
            kwargs = {"HealthCheckId": have["id"], "HealthCheckVersion": have["version"]}
            if "port" in upd["changes"]:
                kwargs["Port"] = want["port"]
            if "path" in upd["changes"]:
                kwargs["ResourcePath"] = want["path"]
            if "host" in upd["changes"]:
                kwargs["FullyQualifiedDomainName"] = want["host"]
            if "failure_threshold" in upd["changes"]:
                kwargs["FailureThreshold"] = want["failure_threshold"]
            if len(kwargs) > 2:
                cl.update_health_check(**kwargs)
            cl.change_tags_for_resource(
                ResourceType="healthcheck",
                ResourceId=have["id"],
                AddTags=_hc_tags(want, topo["owner_id"], topo["service"]),
            )

        want_by_name = {(r["name"], r["type"]): r for r in desired}
        upserts = plan["create"] + [u["after"] for u in plan["update"]]
        upserts += [r for r in plan["unchanged"] if r.get("health_check") in replaced]
        upserts.sort(key=lambda r: (_tier(r, want_by_name), record_key(r)))
        if upserts:
            cl.change_resource_record_sets(
                HostedZoneId=zone_id,
                ChangeBatch={
                    "Comment": "gomirror_geo_routing {}".format(topo["service"]),
                    "Changes": [
                        {"Action": "UPSERT", "ResourceRecordSet": to_rrset(r, zone_id, key_to_id)}
                        for r in upserts
                    ],
                },
            )
        cur_by_name = {(r["name"], r["type"]): r for r in current}
        deletes = sorted(plan["delete"], key=lambda r: (-_tier(r, cur_by_name), record_key(r)))
        if deletes:
            cl.change_resource_record_sets(
                HostedZoneId=zone_id,
                ChangeBatch={
                    "Comment": "gomirror_geo_routing {} (cleanup)".format(topo["service"]),
                    "Changes": [
                        {"Action": "DELETE", "ResourceRecordSet": raw_current[record_key(r)]}
                        for r in deletes
                    ],
                },
            )
        for old in hc_plan["delete"] + [r["before"] for r in hc_plan["replace"]]:
            cl.delete_health_check(HealthCheckId=old["id"])
            if key_to_id.get(old["key"]) == old["id"]:
                key_to_id.pop(old["key"])
    except botocore.exceptions.ClientError as exc:
        raise ProviderError(f"Route53 change failed: {exc}") from None
    result["health_check_ids"] = key_to_id
    return result
