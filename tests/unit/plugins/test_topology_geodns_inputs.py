"""The geodns role's preflight (filter gomirror_geodns_preflight) checks zones, GeoIP
networks and the topology with gomirror_routing's own label and country rules."""

import importlib.util
from pathlib import Path

import pytest
from module_utils import gomirror_routing as gr

FILTER = Path(__file__).resolve().parents[3] / "plugins" / "filter" / "gomirror_geodns.py"


def params(**over):
    p = {
        "service": "goproxy.example.com",
        "zones": [
            {"name": "example.com", "nameservers": [{"name": "ns1", "address": "203.0.113.53"}]}
        ],
        "ttl": 20,
        "owner_id": "geodns",
        "default_region": "cn-north",
        "regions": [
            {
                "name": "cn-north",
                "endpoints": ["203.0.113.10"],
                "countries": ["CN"],
                "fallback": ["cn-east"],
            },
            {
                "name": "cn-east",
                "endpoints": ["203.0.113.20"],
                "cidrs": ["10.20.0.0/16"],
                "fallback": ["cn-north"],
            },
        ],
        "geoip_source": "build",
        "geoip_networks": [{"network": "192.0.2.0/25", "country": "cn"}],
    }
    p.update(over)
    return p


def _filter():
    spec = importlib.util.spec_from_file_location("gomirror_geodns_filter", FILTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FilterModule().filters()["gomirror_geodns_preflight"]


def test_good_inputs_are_normalised():
    out = gr.geodns_inputs(params())
    assert out["zone"] == "example.com"
    assert out["geoip_networks"] == [{"network": "192.0.2.0/25", "country": "CN"}]
    assert [r["name"] for r in out["topology"]["regions"]] == ["cn-north", "cn-east"]


@pytest.mark.parametrize(
    ("over", "message"),
    [
        (
            {"zones": [{"name": "_bad.example.com", "nameservers": [{"name": "ns1"}]}]},
            "geodns_zones: '_bad.example.com' is not a DNS name",
        ),
        (
            {"service": "goproxy.other.example"},
            "geodns_service 'goproxy.other.example' is not a name below any zone of "
            "geodns_zones (example.com)",
        ),
        (
            {"geoip_networks": [{"network": "192.0.2.0/25", "country": "CHN"}]},
            "geodns_geoip_networks: 'CHN' is not an ISO 3166-1 alpha-2 code",
        ),
        (
            {"default_region": "eu"},
            "geodns_default_region: default_region 'eu' is not one of the regions",
        ),
        ({"ttl": 0}, "geodns_ttl: ttl 0 out of range"),
        (
            {"regions": [{"name": "cn_north", "endpoints": ["203.0.113.10"]}]},
            "geodns_regions: region name 'cn_north' is not a valid DNS label",
        ),
        (
            {"regions": [{"name": "cn-north", "endpoints": ["203.0.113.10"], "weight": 1}]},
            "geodns_regions: region 'cn-north' has unknown keys ['weight']",
        ),
    ],
)
def test_bad_inputs_name_the_variable(over, message):
    with pytest.raises(gr.RoutingError) as exc:
        gr.geodns_inputs(params(**over))
    assert str(exc.value).startswith(message)


def test_zone_names_and_region_names_follow_one_label_rule():
    for name in ("cn-north", "a1", "x"):
        assert gr.is_dns_name(f"{name}.example.com") and gr._LABEL_RE.match(name)
    for name in ("_acme", "-a", "a-", "a_b"):
        assert not gr.is_dns_name(f"{name}.example.com") and not gr._LABEL_RE.match(name)


def test_the_filter_returns_the_error_instead_of_raising():
    preflight = _filter()
    assert preflight(params())["error"] == ""
    bad = preflight(params(geoip_source="build", geoip_networks=[]))
    assert (
        bad["error"]
        == "geodns_geoip_networks: geodns_geoip_source=build needs at least one network"
    )
