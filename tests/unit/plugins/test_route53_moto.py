"""gomirror_geo_routing, provider=route53, run as a real Ansible module against a moto
server (the only stand-in allowed).  Write calls are counted with moto's request
recorder."""

import itertools
import json
import urllib.request

import boto3
import pytest
from gomirror_testlib import run_module

_counter = itertools.count()


def _post(endpoint, path):
    req = urllib.request.Request(endpoint + path, data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read().decode()


def _get(endpoint, path):
    with urllib.request.urlopen(endpoint + path, timeout=10) as resp:
        return resp.read().decode()


class Recorder:
    def __init__(self, endpoint):
        self.endpoint = endpoint

    def reset(self):
        _post(self.endpoint, "/moto-api/recorder/reset-recording")
        _post(self.endpoint, "/moto-api/recorder/start-recording")

    def write_calls(self):
        """Route53 API calls that change state (everything but GET and the POST that
        lists tags of several resources)."""
        out = []
        for line in _get(self.endpoint, "/moto-api/recorder/download-recording").splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            url = entry["url"].split("?")[0]
            if entry["method"] == "GET":
                continue
            if entry["method"] == "POST" and url.rstrip("/").endswith("/tags/healthcheck"):
                continue
            out.append("{} {}".format(entry["method"], url))
        return out


@pytest.fixture
def r53(moto_endpoint):
    cl = boto3.client(
        "route53",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto accepts any key
    )
    n = next(_counter)
    zone = f"mirror{n}.example.com"
    zid = cl.create_hosted_zone(Name=zone, CallerReference=f"z{n}")["HostedZone"]["Id"]
    zid = zid.split("/")[-1]
    # a record owned by nobody, in the same zone, must survive everything
    cl.change_resource_record_sets(
        HostedZoneId=zid,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": f"www.{zone}.",
                        "Type": "A",
                        "TTL": 300,
                        "ResourceRecords": [{"Value": "203.0.113.99"}],
                    },
                },
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": f"legacy.goproxy.{zone}.",
                        "Type": "A",
                        "TTL": 300,
                        "ResourceRecords": [{"Value": "203.0.113.98"}],
                    },
                },
            ]
        },
    )
    rec = Recorder(moto_endpoint)
    return {"client": cl, "zone": zone, "zone_id": zid, "endpoint": moto_endpoint, "recorder": rec}


def args_for(r53, **over):
    zone = r53["zone"]
    args = {
        "provider": "route53",
        "service": "goproxy." + zone,
        "zone": zone,
        "owner_id": "ci",
        "default_region": "eu",
        "ttl": 60,
        "regions": [
            {
                "name": "eu",
                "endpoints": ["192.0.2.10", "2001:db8::10"],
                "countries": ["DE", "FR"],
                "fallback": ["us"],
            },
            {
                "name": "us",
                "endpoints": ["198.51.100.10"],
                "countries": ["US"],
                "subdivisions": ["US-CA"],
                "fallback": ["ap", "eu"],
            },
            {"name": "ap", "endpoints": ["203.0.113.5"], "countries": ["JP"]},
        ],
        "health_check": {"protocol": "HTTPS", "interval": 30, "failure_threshold": 3},
        "route53": {
            "endpoint_url": r53["endpoint"],
            "access_key": "testing",
            "secret_key": "testing",
        },
    }
    args.update(over)
    return args


def zone_records(r53):
    out = {}
    for rr in r53["client"].list_resource_record_sets(HostedZoneId=r53["zone_id"])[
        "ResourceRecordSets"
    ]:
        out[(rr["Name"].rstrip("."), rr["Type"], rr.get("SetIdentifier"))] = rr
    return out


def owned_health_checks(r53, service):
    cl = r53["client"]
    out = {}
    for hc in cl.list_health_checks()["HealthChecks"]:
        tags = {
            t["Key"]: t["Value"]
            for t in cl.list_tags_for_resource(ResourceType="healthcheck", ResourceId=hc["Id"])[
                "ResourceTagSet"
            ]["Tags"]
        }
        if tags.get("gomirror/service") == service:
            out[tags["gomirror/key"]] = (hc, tags)
    return out


def test_check_apply_idempotent_and_cleanup(r53):
    rec = r53["recorder"]
    args = args_for(r53)
    svc = args["service"]
    before = zone_records(r53)

    # 1. check mode: reports the change, writes nothing
    rec.reset()
    res = run_module("gomirror_geo_routing", args, check=True, diff=True)
    assert not res.get("failed"), res.get("msg")
    assert res["changed"] is True
    assert rec.write_calls() == []
    assert zone_records(r53) == before
    assert owned_health_checks(r53, svc) == {}
    assert res["diff"]["before"] == ""
    assert f"{svc}. A [geo-default-a] geo=* alias=fo0.eu.{svc}." in res["diff"]["after"]
    assert res["health_checks"]["eu/192.0.2.10"]["action"] == "created"
    assert res["health_checks"]["eu/192.0.2.10"]["id"] is None

    # 2. apply
    rec.reset()
    res = run_module("gomirror_geo_routing", args, diff=True)
    assert not res.get("failed"), res.get("msg")
    assert res["changed"] is True
    assert rec.write_calls(), "apply made no write call"
    assert res["deleted"] == []
    assert len(res["created"]) == len(res["records"])
    lines = res["diff"]["after"].splitlines()
    assert lines == sorted(lines)
    recs = zone_records(r53)
    geo = recs[(svc, "A", "geo-us-US-CA-a")]
    assert geo["GeoLocation"] == {"CountryCode": "US", "SubdivisionCode": "CA"}
    assert geo["AliasTarget"]["DNSName"].rstrip(".") == "fo0.us." + svc
    assert recs[(svc, "A", "geo-default-a")]["GeoLocation"] == {"CountryCode": "*"}
    primary = recs[("fo0.eu." + svc, "A", "fo0.eu-primary-a")]
    assert primary["Failover"] == "PRIMARY"
    assert primary["AliasTarget"]["EvaluateTargetHealth"] is True
    pool = recs[("eu." + svc, "A", "eu-192.0.2.10")]
    assert pool["MultiValueAnswer"] is True
    hcs = owned_health_checks(r53, svc)
    assert set(hcs) == {"eu/192.0.2.10", "eu/2001:db8::10", "us/198.51.100.10", "ap/203.0.113.5"}
    hc, tags = hcs["eu/192.0.2.10"]
    assert pool["HealthCheckId"] == hc["Id"] == res["health_checks"]["eu/192.0.2.10"]["id"]
    assert hc["HealthCheckConfig"]["ResourcePath"] == "/golang.org/x/text/@v/v0.3.0.info"
    assert hc["CallerReference"].startswith("gomirror-")
    assert tags["Name"] == (
        f"gomirror {svc} eu 192.0.2.10 https://{svc}:443/golang.org/x/text/@v/v0.3.0.info"
    )
    txt = recs[(svc, "TXT", None)]["ResourceRecords"][0]["Value"]
    assert txt == f'"heritage=gomirror,gomirror/owner=ci,gomirror/resource={svc}/geo"'

    # 3. idempotent check and apply: nothing to do, no write call
    for check in (True, False):
        rec.reset()
        res = run_module("gomirror_geo_routing", args, check=check, diff=True)
        assert not res.get("failed"), res.get("msg")
        assert res["changed"] is False, (res["created"], res["updated"], res["deleted"])
        assert rec.write_calls() == []
        assert res["diff"]["before"] == res["diff"]["after"]

    # 4. drop region ap, change the check path: stale owned records and checks go,
    #    foreign records stay
    args2 = args_for(
        r53, regions=args["regions"][:2], health_check={"path": "/rsc.io/quote/@v/v1.5.2.info"}
    )
    args2["regions"][1] = dict(args2["regions"][1], fallback=["eu"])
    res = run_module("gomirror_geo_routing", args2, diff=True)
    assert not res.get("failed"), res.get("msg")
    assert res["changed"] is True
    assert any(d.startswith(f"ap.{svc}. A") for d in res["deleted"])
    assert any(d.startswith(f"fo1.us.{svc}. A") for d in res["deleted"])
    assert any(d.startswith(f"{svc}. A [geo-ap-JP-a]") for d in res["deleted"])
    recs = zone_records(r53)
    assert ("ap." + svc, "A", "ap-203.0.113.5") not in recs
    assert ("ap." + svc, "TXT", None) not in recs
    assert ("www." + r53["zone"], "A", None) in recs
    assert ("legacy." + svc, "A", None) in recs
    hcs = owned_health_checks(r53, svc)
    assert set(hcs) == {"eu/192.0.2.10", "eu/2001:db8::10", "us/198.51.100.10"}
    assert (
        hcs["eu/192.0.2.10"][0]["HealthCheckConfig"]["ResourcePath"]
        == "/rsc.io/quote/@v/v1.5.2.info"
    )
    assert hcs["eu/192.0.2.10"][1]["Name"].endswith("/rsc.io/quote/@v/v1.5.2.info")
    assert res["health_checks"]["eu/192.0.2.10"]["action"] == "updated"
    assert len(res["health_checks_deleted"]) == 1
    rec.reset()
    res = run_module("gomirror_geo_routing", args2)
    assert res["changed"] is False and rec.write_calls() == []

    # 5. state=absent removes everything owned, nothing else
    res = run_module(
        "gomirror_geo_routing",
        {
            "provider": "route53",
            "state": "absent",
            "service": svc,
            "zone": r53["zone"],
            "owner_id": "ci",
            "route53": args["route53"],
        },
    )
    assert not res.get("failed"), res.get("msg")
    assert res["changed"] is True
    left = zone_records(r53)
    assert sorted(k[:2] for k in left) == sorted(
        [
            (r53["zone"], "NS"),
            (r53["zone"], "SOA"),
            ("www." + r53["zone"], "A"),
            ("legacy." + svc, "A"),
        ]
    )
    assert owned_health_checks(r53, svc) == {}


def test_two_services_with_checks_differing_only_by_path(r53):
    a = args_for(
        r53,
        regions=[{"name": "eu", "endpoints": ["192.0.2.10"]}],
        health_check={"path": "/a.example/m/@v/v1.0.0.info"},
    )
    b = args_for(
        r53,
        service="goproxy2." + r53["zone"],
        regions=[{"name": "eu", "endpoints": ["192.0.2.10"]}],
        health_check={"path": "/b.example/m/@v/v1.0.0.info"},
    )
    for args in (a, b):
        res = run_module("gomirror_geo_routing", args)
        assert not res.get("failed"), res.get("msg")
        assert res["changed"] is True
    ha = owned_health_checks(r53, a["service"])["eu/192.0.2.10"]
    hb = owned_health_checks(r53, b["service"])["eu/192.0.2.10"]
    assert ha[0]["Id"] != hb[0]["Id"]
    assert ha[1]["Name"] != hb[1]["Name"]
    r53["recorder"].reset()
    res = run_module("gomirror_geo_routing", a)
    assert res["changed"] is False
    assert r53["recorder"].write_calls() == []
    assert owned_health_checks(r53, b["service"])["eu/192.0.2.10"][0]["Id"] == hb[0]["Id"]

    # the check type cannot be updated in place: replaced, record re-pointed, old deleted
    a_http = dict(a, health_check=dict(a["health_check"], protocol="HTTP"))
    res = run_module("gomirror_geo_routing", a_http, diff=True)
    assert not res.get("failed"), res.get("msg")
    assert res["changed"] is True
    assert res["health_checks"]["eu/192.0.2.10"]["action"] == "replaced"
    assert res["health_checks_deleted"] == [ha[0]["Id"]]
    new = owned_health_checks(r53, a["service"])["eu/192.0.2.10"][0]
    assert new["Id"] != ha[0]["Id"]
    assert new["HealthCheckConfig"]["Type"] == "HTTP"
    assert new["HealthCheckConfig"]["Port"] == 80
    pool = zone_records(r53)[("eu." + a["service"], "A", "eu-192.0.2.10")]
    assert pool["HealthCheckId"] == new["Id"]
    ids = {h["Id"] for h in r53["client"].list_health_checks()["HealthChecks"]}
    assert ha[0]["Id"] not in ids and hb[0]["Id"] in ids
    assert run_module("gomirror_geo_routing", a_http)["changed"] is False


def test_foreign_records_block_and_bad_input_changes_nothing(r53):
    cl = r53["client"]
    zone = r53["zone"]
    cl.change_resource_record_sets(
        HostedZoneId=r53["zone_id"],
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": f"eu.goproxy.{zone}.",
                        "Type": "A",
                        "TTL": 300,
                        "ResourceRecords": [{"Value": "203.0.113.1"}],
                    },
                }
            ]
        },
    )
    before = zone_records(r53)
    rec = r53["recorder"]
    rec.reset()
    res = run_module("gomirror_geo_routing", args_for(r53))
    assert res.get("failed")
    assert f"eu.goproxy.{zone}. already has A records not owned by 'ci'" in res["msg"]
    assert rec.write_calls() == []
    assert zone_records(r53) == before

    bad = args_for(r53)
    bad["regions"][0]["cidrs"] = ["10.0.0.0/8"]
    res = run_module("gomirror_geo_routing", bad)
    assert res.get("failed")
    assert "CIDR client matching is not supported by the route53 provider" in res["msg"]
    bad = args_for(r53)
    bad["regions"][0]["fallback"] = ["mars"]
    res = run_module("gomirror_geo_routing", bad)
    assert res.get("failed")
    assert "unknown region 'mars' in fallback list" in res["msg"]
    assert rec.write_calls() == []
    assert zone_records(r53) == before
