"""The rfc2136 design end to end: BIND with one view per region (each with its own zone
copy and TSIG key), the module run once per view with answer_region, and clients
routed by view (here by source address, as a GeoIP ACL would)."""

import base64
import shutil
import tempfile
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest
from gomirror_testlib import ZONE_TEMPLATE, free_port, named_server, run_tasks

ZONE = "mirror.example.test"
SERVICE = "goproxy." + ZONE
KEYS = {
    "eu": base64.b64encode(b"eu-view-update-key-for-gomirror!").decode(),
    "us": base64.b64encode(b"us-view-update-key-for-gomirror!").decode(),
}
# where each region's clients come from (a GeoIP / CIDR ACL in production)
CLIENT_SOURCE = {"eu": "127.0.0.1", "us": "127.0.0.2"}


@pytest.fixture(scope="module")
def views_server():
    tmp = Path(tempfile.mkdtemp(prefix="gomirror-views-"))
    port = free_port()
    for region in KEYS:
        (tmp / f"db.{region}").write_text(ZONE_TEMPLATE.format(zone=ZONE))
    keys = "".join(
        f'key "upd-{r}" {{ algorithm hmac-sha256; secret "{s}"; }};\n' for r, s in KEYS.items()
    )
    conf = f"""
options {{
    directory "{tmp}";
    pid-file "{tmp}/named.pid";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
}};
controls {{ }};
{keys}
view "us" {{
    match-clients {{ !key upd-eu; key upd-us; 127.0.0.2; }};
    zone "{ZONE}" {{
        type primary; file "{tmp}/db.us";
        update-policy {{ grant upd-us zonesub ANY; }};
        allow-transfer {{ key upd-us; }};
    }};
}};
view "eu" {{
    match-clients {{ !key upd-us; any; }};
    zone "{ZONE}" {{
        type primary; file "{tmp}/db.eu";
        update-policy {{ grant upd-eu zonesub ANY; }};
        allow-transfer {{ key upd-eu; }};
    }};
}};
"""
    try:
        with named_server(tmp, conf, port):
            yield {"server": "127.0.0.1", "port": port}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def answer(srv, region, name, rtype="A"):
    msg = dns.message.make_query(name, rtype)
    resp = dns.query.tcp(
        msg, srv["server"], port=srv["port"], timeout=5, source=CLIENT_SOURCE[region]
    )
    for rrset in resp.answer:
        if rrset.rdtype == dns.rdatatype.from_text(rtype):
            return sorted(r.to_text() for r in rrset)
    return []


def view_tasks(srv, unhealthy=()):
    base = {
        "provider": "rfc2136",
        "service": SERVICE,
        "zone": ZONE,
        "owner_id": "geodns",
        "default_region": "eu",
        "ttl": 30,
        "regions": [
            {
                "name": "eu",
                "endpoints": ["192.0.2.10", "192.0.2.11"],
                "countries": ["DE"],
                "fallback": ["us"],
            },
            {
                "name": "us",
                "endpoints": ["198.51.100.10"],
                "cidrs": ["127.0.0.2/32"],
                "fallback": ["eu"],
            },
        ],
    }
    return [
        dict(
            base,
            rfc2136={
                "server": srv["server"],
                "port": srv["port"],
                "key_name": f"upd-{region}",
                "key_secret": KEYS[region],
                "answer_region": region,
                "unhealthy_endpoints": list(unhealthy),
            },
        )
        for region in KEYS
    ]


def test_one_view_per_region_routing_and_failover(views_server):
    srv = views_server
    results = run_tasks("gomirror_geo_routing", view_tasks(srv))
    for res in results:
        assert not res.get("failed"), res.get("msg")
        assert res["changed"] is True
    # routing: each region's clients see their region's endpoints at the service name
    assert answer(srv, "eu", SERVICE) == ["192.0.2.10", "192.0.2.11"]
    assert answer(srv, "us", SERVICE) == ["198.51.100.10"]
    # per-region names exist in every view
    for region in KEYS:
        assert answer(srv, region, "us." + SERVICE) == ["198.51.100.10"]
        assert answer(srv, region, "eu." + SERVICE) == ["192.0.2.10", "192.0.2.11"]

    # idempotent per view
    for res in run_tasks("gomirror_geo_routing", view_tasks(srv)):
        assert res["changed"] is False

    # us fails its probe: us clients fail over to eu, eu clients are unaffected
    results = run_tasks("gomirror_geo_routing", view_tasks(srv, ["198.51.100.10"]))
    assert [r["changed"] for r in results] == [True, True]
    assert answer(srv, "us", SERVICE) == ["192.0.2.10", "192.0.2.11"]
    assert answer(srv, "eu", SERVICE) == ["192.0.2.10", "192.0.2.11"]
    assert answer(srv, "eu", "us." + SERVICE) == ["192.0.2.10", "192.0.2.11"]

    # recovery
    run_tasks("gomirror_geo_routing", view_tasks(srv))
    assert answer(srv, "us", SERVICE) == ["198.51.100.10"]
