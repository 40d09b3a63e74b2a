"""gomirror_geo_routing, provider=rfc2136, run as a real Ansible module against a real
BIND9 authoritative server on loopback (see conftest.bind_server)."""

import dns.message
import dns.query
import dns.rdatatype
import dns.tsig
import dns.update
import dns.zone
from gomirror_testlib import TSIG_SECRET, WRONG_SECRET, run_module, run_tasks


def query(b, name, rtype):
    msg = dns.message.make_query(name, rtype)
    resp = dns.query.tcp(msg, b["server"], port=b["port"], timeout=5)
    for rrset in resp.answer:
        if rrset.rdtype == dns.rdatatype.from_text(rtype):
            return sorted(r.to_text() for r in rrset)
    return []


def zone_dump(b):
    key = dns.tsig.Key(b["key_name"], TSIG_SECRET, "hmac-sha256")
    z = dns.zone.from_xfr(
        dns.query.xfr(
            b["server"],
            b["zone"],
            port=b["port"],
            keyring={key.name: key},
            keyname=key.name,
            relativize=False,
        ),
        relativize=False,
    )
    out = {}
    for name, node in z.nodes.items():
        for rds in node.rdatasets:
            out[(name.to_text(), dns.rdatatype.to_text(rds.rdtype))] = sorted(
                r.to_text() for r in rds
            )
    return out


def serial(b):
    return int(query(b, b["zone"], "SOA")[0].split()[2])


def log_text(b):
    return (b["dir"] / "named.log").read_text()


def args_for(b, service="goproxy", **over):
    args = {
        "provider": "rfc2136",
        "service": "{}.{}".format(service, b["zone"]),
        "zone": b["zone"],
        "owner_id": "ci",
        "default_region": "eu",
        "ttl": 120,
        "regions": [
            {
                "name": "eu",
                "endpoints": ["192.0.2.10", "192.0.2.11", "2001:db8::10"],
                "countries": ["DE"],
                "fallback": ["us"],
            },
            {
                "name": "us",
                "endpoints": ["198.51.100.10"],
                "countries": ["US"],
                "cidrs": ["10.1.0.0/16"],
                "fallback": ["eu"],
            },
        ],
        "rfc2136": {
            "server": b["server"],
            "port": b["port"],
            "key_name": b["key_name"],
            "key_secret": b["key_secret"],
        },
    }
    args.update(over)
    return args


def test_apply_check_idempotent_failover_and_cleanup(bind_server):
    b = bind_server
    args = args_for(b)
    svc = args["service"]
    s0 = serial(b)
    before = zone_dump(b)
    log_before = log_text(b)

    # check mode: changed, but no UPDATE sent (serial, records, server log unchanged)
    res = run_module("gomirror_geo_routing", args, check=True, diff=True)
    assert not res.get("failed"), res.get("msg")
    assert res["changed"] is True
    assert serial(b) == s0
    assert zone_dump(b) == before
    new_log = log_text(b)[len(log_before) :]
    assert "update" not in new_log.lower(), new_log
    assert res["diff"]["before"] == ""
    assert f"{svc}. A ttl=120 192.0.2.10 192.0.2.11" in res["diff"]["after"]

    # apply
    res = run_module("gomirror_geo_routing", args, diff=True)
    assert not res.get("failed"), res.get("msg")
    assert res["changed"] is True
    assert serial(b) > s0
    assert "updating zone" in log_text(b)[len(log_before) :]  # the log does show updates
    assert query(b, svc, "A") == ["192.0.2.10", "192.0.2.11"]
    assert query(b, svc, "AAAA") == ["2001:db8::10"]
    assert query(b, "eu." + svc, "A") == ["192.0.2.10", "192.0.2.11"]
    assert query(b, "us." + svc, "A") == ["198.51.100.10"]
    assert query(b, "us." + svc, "AAAA") == ["2001:db8::10"]  # v6 falls back to eu
    assert query(b, "eu." + svc, "TXT") == [
        f'"heritage=gomirror,gomirror/owner=ci,gomirror/resource={svc}/pool/eu"'
    ]
    assert query(b, svc, "TXT") == [
        f'"heritage=gomirror,gomirror/owner=ci,gomirror/resource={svc}/answer/eu"'
    ]
    assert res["routing"]["us"]["AAAA"]["chain"] == ["eu"]

    # idempotent: check and apply change nothing
    s1 = serial(b)
    for check in (True, False):
        res = run_module("gomirror_geo_routing", args, check=check, diff=True)
        assert not res.get("failed"), res.get("msg")
        assert res["changed"] is False, (res["created"], res["updated"], res["deleted"])
        assert res["diff"]["before"] == res["diff"]["after"]
    assert serial(b) == s1

    # eu endpoints fail their probes: eu clients (and the default answer) go to us
    failover = dict(
        args, rfc2136=dict(args["rfc2136"], unhealthy_endpoints=["192.0.2.10", "192.0.2.11"])
    )
    res = run_module("gomirror_geo_routing", failover)
    assert not res.get("failed"), res.get("msg")
    assert res["changed"] is True
    assert query(b, "eu." + svc, "A") == ["198.51.100.10"]
    assert query(b, svc, "A") == ["198.51.100.10"]
    assert res["routing"]["eu"]["A"]["serving_region"] == "us"
    assert query(b, "foreign." + b["zone"], "A") == ["203.0.113.77"]

    # drop region us: its names go away, foreign records stay
    smaller = dict(args, regions=[dict(args["regions"][0], fallback=[])])
    res = run_module("gomirror_geo_routing", smaller, diff=True)
    assert res["changed"] is True
    assert query(b, "us." + svc, "A") == []
    assert query(b, "us." + svc, "TXT") == []
    assert any(d.startswith(f"us.{svc}. A") for d in res["deleted"])
    assert query(b, svc, "A") == ["192.0.2.10", "192.0.2.11"]
    assert query(b, "foreign." + b["zone"], "A") == ["203.0.113.77"]
    assert query(b, "foreign." + b["zone"], "TXT") == ['"not ours"']

    # state=absent removes all owned names only
    res = run_module(
        "gomirror_geo_routing",
        {
            "provider": "rfc2136",
            "state": "absent",
            "service": svc,
            "zone": b["zone"],
            "owner_id": "ci",
            "rfc2136": args["rfc2136"],
        },
    )
    assert not res.get("failed"), res.get("msg")
    assert res["changed"] is True
    assert zone_dump(b).keys() - {(b["zone"] + ".", "SOA")} == before.keys() - {
        (b["zone"] + ".", "SOA")
    }


def test_wrong_tsig_key_fails_clearly_and_changes_nothing(bind_server):
    b = bind_server
    s0 = serial(b)
    before = zone_dump(b)
    wrong = args_for(b, service="wrongkey")
    wrong["rfc2136"]["key_secret"] = WRONG_SECRET
    unknown = args_for(b, service="wrongkey")
    unknown["rfc2136"]["key_name"] = "no-such-key"
    results = run_tasks("gomirror_geo_routing", [wrong, dict(wrong, _check_mode=True), unknown])
    for res in results[:2]:
        assert res.get("failed")
        assert "TSIG key 'gomirror-key' was rejected" in res["msg"]
        assert "nothing was changed" in res["msg"]
        assert WRONG_SECRET not in str(res)
    assert results[2].get("failed")
    assert "TSIG key 'no-such-key' was rejected" in results[2]["msg"]
    assert serial(b) == s0
    assert zone_dump(b) == before


def test_bad_input_fails_before_contacting_server(bind_server):
    b = bind_server
    s0 = serial(b)
    cases = []
    a = args_for(b)
    a["rfc2136"]["key_secret"] = "not base64 !!"  # noqa: S105
    cases.append((a, "TSIG secret for key 'gomirror-key' is not valid base64"))
    a = args_for(b)
    a["regions"][1]["cidrs"] = ["10.0.0.0/8"]
    a["regions"][0]["cidrs"] = ["10.1.2.0/24"]
    cases.append((a, "overlapping CIDRs between regions 'eu' (10.1.2.0/24) and 'us'"))
    a = args_for(b, ttl=0)
    cases.append((a, "ttl 0 out of range"))
    a = args_for(b)
    a["regions"][0]["endpoints"] = ["mirror-eu.example.com"]
    cases.append((a, "endpoint 'mirror-eu.example.com' is not an IPv4/IPv6 address"))
    a = args_for(b)
    a["regions"][1]["name"] = "eu"
    cases.append((a, "duplicate region name 'eu'"))
    a = args_for(b)
    a["rfc2136"]["answer_region"] = "mars"
    cases.append((a, "answer_region 'mars' is not one of the regions"))
    a = args_for(b)
    del a["rfc2136"]["key_secret"]
    cases.append((a, "parameters are required together: key_name, key_secret"))
    results = run_tasks("gomirror_geo_routing", [c[0] for c in cases])
    for (_args, msg), res in zip(cases, results, strict=True):
        assert res.get("failed"), msg
        assert msg in res["msg"]
    assert serial(b) == s0


def test_refuses_names_it_does_not_own(bind_server):
    b = bind_server
    key = dns.tsig.Key(b["key_name"], TSIG_SECRET, "hmac-sha256")
    upd = dns.update.UpdateMessage(b["zone"])
    upd.add("eu.taken", 300, "A", "203.0.113.50")
    upd.use_tsig(key)
    dns.query.tcp(upd, b["server"], port=b["port"], timeout=5)
    s0 = serial(b)
    res = run_module("gomirror_geo_routing", args_for(b, service="taken"))
    assert res.get("failed")
    assert "eu.taken.{}. already has A records not owned by 'ci'".format(b["zone"]) in res["msg"]
    assert serial(b) == s0
    assert query(b, "taken." + b["zone"], "A") == []
    # another owner's records are off limits too
    ok = run_module("gomirror_geo_routing", args_for(b, service="shared", owner_id="team-a"))
    assert ok["changed"] is True
    res = run_module("gomirror_geo_routing", args_for(b, service="shared", owner_id="team-b"))
    assert res.get("failed")
    assert "is owned by another gomirror owner team-a" in res["msg"]
