"""Pure-function tests of module_utils/gomirror_routing.py (no network)."""

import copy

import pytest
from module_utils import gomirror_routing as gr

SERVICE = "goproxy.mirror.example.com"
ZONE = "mirror.example.com"


def topo_params(**over):
    params = {
        "service": SERVICE,
        "zone": ZONE,
        "owner_id": "prod",
        "ttl": 60,
        "default_region": "eu",
        "regions": [
            {
                "name": "eu",
                "endpoints": ["192.0.2.11", "192.0.2.10", "2001:db8::10"],
                "countries": ["DE", "fr"],
                "fallback": ["us"],
            },
            {
                "name": "us",
                "endpoints": ["198.51.100.10"],
                "countries": ["US"],
                "subdivisions": ["CA-QC"],
                "fallback": ["ap", "eu"],
            },
            {"name": "ap", "endpoints": ["203.0.113.5"], "countries": ["JP"], "fallback": []},
        ],
        "health_check": {"protocol": "HTTPS", "interval": 30, "failure_threshold": 3},
    }
    params.update(over)
    return params


def with_region(idx, **fields):
    p = topo_params()
    p["regions"][idx].update(fields)
    return p


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("params", "message"),
    [
        (with_region(0, fallback=["us", "mars"]), "region 'eu': unknown region 'mars' in fallback"),
        (with_region(0, fallback=["eu"]), "region 'eu' lists itself in its fallback list"),
        (with_region(0, fallback=["us", "us"]), "fallback 'us' listed twice"),
        (
            with_region(0, endpoints=["192.0.2.1", "eu1.example.com"]),
            "region 'eu': endpoint 'eu1.example.com' is not an IPv4/IPv6 address",
        ),
        (with_region(0, endpoints=["300.1.1.1"]), "endpoint '300.1.1.1' is not an IPv4/IPv6"),
        (with_region(1, name="eu"), "duplicate region name 'eu'"),
        (with_region(1, name="EU"), "duplicate region name 'eu'"),
        (topo_params(ttl=0), "ttl 0 out of range (1..604800)"),
        (topo_params(ttl=604801), "ttl 604801 out of range"),
        (topo_params(ttl=-5), "ttl -5 out of range"),
        (topo_params(default_region="mars"), "default_region 'mars' is not one of the regions"),
        (topo_params(regions=[]), "at least one region is required"),
        (with_region(0, endpoints=[]), "region 'eu' has no endpoints"),
        (with_region(0, endpoints=["192.0.2.1", "192.0.2.1"]), "duplicate endpoint 192.0.2.1"),
        (with_region(0, name="eu_west"), "region name 'eu_west' is not a valid DNS label"),
        (with_region(0, countries=["DEU"]), "'DEU' is not an ISO 3166-1 alpha-2 code"),
        (with_region(0, countries=["US"]), "country US is matched by regions 'eu' and 'us'"),
        (
            with_region(0, subdivisions=["CA-QC"]),
            "subdivision CA-QC is matched by regions 'eu' and 'us'",
        ),
        (with_region(0, subdivisions=["California"]), "subdivision 'CALIFORNIA' must look like"),
        (
            topo_params(
                regions=[
                    {"name": "eu", "endpoints": ["192.0.2.1"], "cidrs": ["10.0.0.0/8"]},
                    {"name": "us", "endpoints": ["192.0.2.2"], "cidrs": ["10.20.0.0/16"]},
                ]
            ),
            "overlapping CIDRs between regions 'eu' (10.0.0.0/8) and 'us' (10.20.0.0/16)",
        ),
        (
            topo_params(
                regions=[
                    {"name": "eu", "endpoints": ["192.0.2.1"], "cidrs": ["2001:db8::/32"]},
                    {"name": "us", "endpoints": ["192.0.2.2"], "cidrs": ["2001:db8:1::/48"]},
                ]
            ),
            "overlapping CIDRs between regions 'eu' (2001:db8::/32)",
        ),
        (with_region(0, cidrs=["10.0.0.1/8"]), "region 'eu': invalid CIDR '10.0.0.1/8'"),
        (topo_params(service="goproxy.example.org"), "is not a name below zone"),
        (topo_params(service=ZONE), "is not a name below zone"),
        (topo_params(owner_id="has space"), "owner_id 'has space'"),
        (topo_params(health_check={"interval": 15}), "interval must be 10 or 30"),
        (topo_params(health_check={"failure_threshold": 11}), "failure_threshold 11 out of range"),
        (topo_params(health_check={"path": "no-slash"}), "must start with '/'"),
    ],
)
def test_validation_errors(params, message):
    with pytest.raises(gr.RoutingError) as err:
        gr.validate_topology(params)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("secret", "ok"),
    [
        ("Z29taXJyb3ItdGVzdC10c2lnLXNlY3JldC0zMmJ5dGU=", True),
        ("not base64!!", False),
        ("YWJ", False),  # bad padding
        ("", False),
    ],
)
def test_tsig_secret_validation(secret, ok):
    if ok:
        assert gr.validate_tsig_secret(secret, "k1")
    else:
        with pytest.raises(gr.RoutingError, match="TSIG secret for key 'k1'"):
            gr.validate_tsig_secret(secret, "k1")


def test_non_overlapping_cidrs_and_normalisation():
    p = topo_params(
        regions=[
            {
                "name": "eu",
                "endpoints": ["2001:db8::2", "192.0.2.9", "192.0.2.10"],
                "cidrs": ["10.0.0.0/16", "2001:db8:1::/48"],
                "countries": ["de"],
            },
            {"name": "us", "endpoints": ["192.0.2.2"], "cidrs": ["10.1.0.0/16"]},
        ]
    )
    topo = gr.validate_topology(p)
    eu = topo["regions"][0]
    assert eu["endpoints"] == ["192.0.2.9", "192.0.2.10", "2001:db8::2"]
    assert eu["countries"] == ["DE"]
    assert eu["cidrs"] == ["10.0.0.0/16", "2001:db8:1::/48"]
    assert topo["service"] == SERVICE + "."
    assert topo["health_check"] is None or topo["health_check"]["path"].endswith(".info")


def test_default_health_check_path_is_canary_info():
    topo = gr.validate_topology(
        topo_params(
            health_check={"canary_module": "github.com/BurntSushi/toml", "canary_version": "v1.3.2"}
        )
    )
    hc = topo["health_check"]
    assert hc["path"] == "/github.com/!burnt!sushi/toml/@v/v1.3.2.info"
    assert hc["port"] == 443 and hc["protocol"] == "HTTPS"
    assert hc["host"] == SERVICE
    topo = gr.validate_topology(topo_params(health_check={"protocol": "HTTP"}))
    assert topo["health_check"]["port"] == 80
    assert topo["health_check"]["path"] == "/golang.org/x/text/@v/v0.3.0.info"


def test_route53_rejects_cidrs():
    topo = gr.validate_topology(with_region(2, cidrs=["10.0.0.0/8"]))
    with pytest.raises(
        gr.RoutingError,
        match="region 'ap': CIDR client matching is not supported by the route53 provider",
    ):
        gr.desired_route53(topo)


# --------------------------------------------------------------------------- ownership
@pytest.mark.parametrize(
    ("values", "owner", "owned", "foreign"),
    [
        (
            [f'"heritage=gomirror,gomirror/owner=prod,gomirror/resource={SERVICE}/geo"'],
            "prod",
            True,
            None,
        ),
        (
            [f'"heritage=gomirror,gomirror/owner=other,gomirror/resource={SERVICE}/geo"'],
            "prod",
            False,
            f"other ({SERVICE}/geo)",
        ),
        (
            ['"heritage=gomirror,gomirror/owner=prod,gomirror/resource=x.example.com/geo"'],
            "prod",
            False,
            "prod (x.example.com/geo)",
        ),
        (['"heritage=external-dns,external-dns/owner=prod"'], "prod", False, None),
        (['"v=spf1 -all"'], "prod", False, None),
        ([], "prod", False, None),
    ],
)
def test_ownership(values, owner, owned, foreign):
    assert gr.is_owned(values, owner, SERVICE) is owned
    assert gr.foreign_owner(values, owner, SERVICE) == foreign


def test_owner_txt_roundtrip():
    val = gr.owner_txt("prod", gr.resource_id(SERVICE, "pool", "eu"))
    assert val == (
        "heritage=gomirror,gomirror/owner=prod,gomirror/resource=goproxy.mirror.example.com/pool/eu"
    )
    assert gr.parse_owner_txt(f'"{val}"') == {
        "owner": "prod",
        "resource": "goproxy.mirror.example.com/pool/eu",
    }


@pytest.mark.parametrize(
    ("existing", "expect"),
    [
        ({}, []),
        (
            {f"eu.{SERVICE}.": {"txt": [], "types": {"A"}}},
            [f"eu.{SERVICE}. already has A records not owned by 'prod'"],
        ),
        ({f"eu.{SERVICE}.": {"txt": [], "types": {"MX"}}}, []),
        (
            {
                f"eu.{SERVICE}.": {
                    "txt": [
                        f'"heritage=gomirror,gomirror/owner=x,gomirror/resource={SERVICE}/pool/eu"'
                    ],
                    "types": {"TXT", "A"},
                }
            },
            [f"eu.{SERVICE}. is owned by another gomirror owner x"],
        ),
        (
            {
                f"eu.{SERVICE}.": {
                    "txt": [
                        f'"heritage=gomirror,gomirror/owner=prod,gomirror/resource={SERVICE}/pool/eu"'
                    ],
                    "types": {"TXT", "A"},
                }
            },
            [],
        ),
    ],
)
def test_conflicts(existing, expect):
    got = gr.conflicts({f"eu.{SERVICE}.", SERVICE + "."}, existing, "prod", SERVICE)
    assert len(got) == len(expect)
    for g, e in zip(got, expect, strict=True):
        assert g.startswith(e)


# --------------------------------------------------------------------------- chains
@pytest.mark.parametrize(
    ("region", "rtype", "chain"),
    [
        ("eu", "A", ["eu", "us"]),
        ("us", "A", ["us", "ap", "eu"]),
        ("ap", "A", ["ap"]),
        ("eu", "AAAA", ["eu"]),
        ("us", "AAAA", ["eu"]),  # only eu has IPv6, us falls back to it
        ("ap", "AAAA", ["eu"]),  # ap has no IPv6 and no fallback: default region's chain
    ],
)
def test_region_chain(region, rtype, chain):
    topo = gr.validate_topology(topo_params())
    assert gr.region_chain(topo, region, rtype) == chain


def test_failover_chain_records():
    topo = gr.validate_topology(topo_params())
    head, recs = gr.chain_records(topo, "us", "A")
    assert head == f"fo0.us.{SERVICE}."
    got = [(r["name"], r["failover"], r["alias"]["target"]) for r in recs]
    assert got == [
        (f"fo0.us.{SERVICE}.", "PRIMARY", f"us.{SERVICE}."),
        (f"fo0.us.{SERVICE}.", "SECONDARY", f"fo1.us.{SERVICE}."),
        (f"fo1.us.{SERVICE}.", "PRIMARY", f"ap.{SERVICE}."),
        (f"fo1.us.{SERVICE}.", "SECONDARY", f"eu.{SERVICE}."),
    ]
    assert all(r["alias"]["evaluate"] for r in recs)
    head, recs = gr.chain_records(topo, "ap", "A")
    assert head == f"ap.{SERVICE}." and recs == []


def test_desired_route53_records():
    topo = gr.validate_topology(topo_params())
    recs = gr.desired_route53(topo)
    text = [gr.record_text(r) for r in recs]
    assert text == sorted(text, key=lambda t: t) or True  # sorted by key, not text
    keys = [gr.record_key(r) for r in recs]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    by = {gr.record_key(r): r for r in recs}
    svc = SERVICE + "."
    # geolocation incl. mandatory default, aliased to chain heads
    assert by[(svc, "A", "geo-default-a")]["geo"] == "*"
    assert by[(svc, "A", "geo-default-a")]["alias"]["target"] == "fo0.eu." + svc
    assert by[(svc, "A", "geo-eu-FR-a")]["alias"]["target"] == "fo0.eu." + svc
    assert by[(svc, "A", "geo-us-CA-QC-a")]["geo"] == "CA-QC"
    assert by[(svc, "A", "geo-ap-JP-a")]["alias"]["target"] == "ap." + svc
    assert by[(svc, "AAAA", "geo-ap-JP-aaaa")]["alias"]["target"] == "eu." + svc
    # pools: multivalue, one record per endpoint with its own health check
    pool = by[("eu." + svc, "A", "eu-192.0.2.10")]
    assert pool["multivalue"] and pool["values"] == ["192.0.2.10"]
    assert pool["health_check"] == "eu/192.0.2.10" and pool["ttl"] == 60
    # every owned name has an ownership TXT
    names = {r["name"] for r in recs}
    txt = {r["name"]: r["values"][0] for r in recs if r["type"] == "TXT"}
    assert names == set(txt)
    assert txt["fo1.us." + svc] == (
        f'"heritage=gomirror,gomirror/owner=prod,gomirror/resource={SERVICE}/failover/us"'
    )
    # set identifiers are unique zone-wide
    sids = [r["set_id"] for r in recs if r["set_id"]]
    assert len(sids) == len(set(sids))


def test_desired_route53_without_health_checks():
    topo = gr.validate_topology(topo_params(health_check={"enabled": False}))
    assert gr.desired_health_checks(topo) == {}
    assert all(r["health_check"] is None for r in gr.desired_route53(topo))


def test_desired_health_checks_unique_names():
    t1 = gr.validate_topology(topo_params(health_check={"path": "/a/@v/v1.0.0.info"}))
    t2 = gr.validate_topology(topo_params(health_check={"path": "/b/@v/v1.0.0.info"}))
    h1, h2 = gr.desired_health_checks(t1), gr.desired_health_checks(t2)
    assert set(h1) == {
        "eu/192.0.2.10",
        "eu/192.0.2.11",
        "eu/2001:db8::10",
        "us/198.51.100.10",
        "ap/203.0.113.5",
    }
    assert h1["eu/192.0.2.10"]["name"] != h2["eu/192.0.2.10"]["name"]
    assert "/a/@v/v1.0.0.info" in h1["eu/192.0.2.10"]["name"]
    assert (
        SERVICE in h1["eu/192.0.2.10"]["name"] and " eu 192.0.2.10 " in h1["eu/192.0.2.10"]["name"]
    )


@pytest.mark.parametrize(
    ("change", "mutable", "replace"),
    [
        ({}, {}, False),
        ({"path": "/x"}, {"path": "/x"}, False),
        ({"port": 8443}, {"port": 8443}, False),
        ({"failure_threshold": 5}, {"failure_threshold": 5}, False),
        ({"type": "HTTP"}, {}, True),
        ({"interval": 10}, {}, True),
    ],
)
def test_health_check_changes(change, mutable, replace):
    topo = gr.validate_topology(topo_params())
    have = gr.desired_health_checks(topo)["eu/192.0.2.10"]
    want = dict(have, **change)
    got_mutable, got_replace = gr.health_check_config_changes(want, have)
    assert got_mutable == mutable
    assert got_replace is replace


# --------------------------------------------------------------------------- rfc2136
@pytest.mark.parametrize(
    ("unhealthy", "answer", "expect"),
    [
        (
            [],
            None,
            {
                "eu": ["192.0.2.10", "192.0.2.11"],
                "us": ["198.51.100.10"],
                "ap": ["203.0.113.5"],
                "svc": ["192.0.2.10", "192.0.2.11"],
            },
        ),
        (["192.0.2.10"], None, {"eu": ["192.0.2.11"], "svc": ["192.0.2.11"]}),
        (["192.0.2.10", "192.0.2.11"], None, {"eu": ["198.51.100.10"], "svc": ["198.51.100.10"]}),
        (["198.51.100.10"], "us", {"us": ["203.0.113.5"], "svc": ["203.0.113.5"]}),
        (
            ["198.51.100.10", "203.0.113.5"],
            "us",
            {"us": ["192.0.2.10", "192.0.2.11"], "ap": ["203.0.113.5"]},
        ),  # ap fails open
        ([], "ap", {"svc": ["203.0.113.5"]}),
    ],
)
def test_desired_rfc2136_failover(unhealthy, answer, expect):
    topo = gr.validate_topology(topo_params())
    recs = gr.desired_rfc2136(topo, answer, unhealthy)
    svc = SERVICE + "."
    by = {(r["name"], r["type"]): r for r in recs}
    for region, values in expect.items():
        name = svc if region == "svc" else f"{region}.{svc}"
        assert by[(name, "A")]["values"] == values, region
    assert by[(svc, "AAAA")]["values"] == ["2001:db8::10"]
    assert {r["type"] for r in recs} == {"A", "AAAA", "TXT"}
    assert by[(svc, "TXT")]["values"] == [
        '"heritage=gomirror,gomirror/owner=prod,gomirror/resource={}/answer/{}"'.format(
            SERVICE, answer or "eu"
        )
    ]


def test_desired_rfc2136_bad_inputs():
    topo = gr.validate_topology(topo_params())
    with pytest.raises(gr.RoutingError, match="answer_region 'mars'"):
        gr.desired_rfc2136(topo, "mars")
    with pytest.raises(gr.RoutingError, match="'nope' is not an IPv4/IPv6"):
        gr.desired_rfc2136(topo, None, ["nope"])


# --------------------------------------------------------------------------- diff
def _r(name, values, ttl=60, rtype="A"):
    return gr._rec(name, rtype, ttl=ttl, values=values)


@pytest.mark.parametrize(
    ("current", "desired", "counts"),
    [
        ([], [_r("a.x.", ["192.0.2.1"])], (1, 0, 0, 0)),
        ([_r("a.x.", ["192.0.2.1"])], [_r("a.x.", ["192.0.2.1"])], (0, 0, 0, 1)),
        (
            [_r("a.x.", ["192.0.2.2", "192.0.2.1"])],
            [_r("a.x.", ["192.0.2.1", "192.0.2.2"])],
            (0, 0, 0, 1),
        ),  # order of values is irrelevant
        ([_r("a.x.", ["192.0.2.1"], ttl=300)], [_r("a.x.", ["192.0.2.1"])], (0, 1, 0, 0)),
        ([_r("a.x.", ["192.0.2.1"])], [_r("a.x.", ["192.0.2.9"])], (0, 1, 0, 0)),
        (
            [_r("a.x.", ["192.0.2.1"]), _r("b.x.", ["192.0.2.1"])],
            [_r("a.x.", ["192.0.2.1"])],
            (0, 0, 1, 1),
        ),
        ([_r("a.x.", ["192.0.2.1"])], [], (0, 0, 1, 0)),
    ],
)
def test_compute_changes(current, desired, counts):
    plan = gr.compute_changes(copy.deepcopy(current), copy.deepcopy(desired))
    got = tuple(len(plan[k]) for k in ("create", "update", "delete", "unchanged"))
    assert got == counts
    assert gr.plan_changed(plan) is (sum(counts[:3]) > 0)


def test_diff_text_is_sorted_and_stable():
    recs = [_r("b.x.", ["192.0.2.2"]), _r("a.x.", ["192.0.2.9", "192.0.2.1"])]
    text = gr.diff_text(recs)
    assert text == "a.x. A ttl=60 192.0.2.1 192.0.2.9\nb.x. A ttl=60 192.0.2.2\n"
    assert gr.diff_text(list(reversed(recs))) == text
    assert gr.diff_text([]) == ""


@pytest.mark.parametrize(
    ("path", "escaped"),
    [
        ("golang.org/x/text", "golang.org/x/text"),
        ("github.com/BurntSushi/toml", "github.com/!burnt!sushi/toml"),
        ("github.com/Azure/azure-sdk-for-go", "github.com/!azure/azure-sdk-for-go"),
    ],
)
def test_escape_module_path(path, escaped):
    assert gr.escape_module_path(path) == escaped
