"""Pure-function tests of module_utils/gomirror_topology.py: a two-region network that is
consistent, and each way of breaking it, named by host and variable."""

import copy

import pytest
from module_utils import gomirror_topology as gt

SERVICE = "goproxy.example.com"
PUBLIC = ["https://goproxy.cn", "https://mirrors.aliyun.com/goproxy/", "direct"]
PUBLIC_SUMDB = "https://goproxy.cn/sumdb/sum.golang.org"
PRIVATE = [{"pattern": "git.internal.example.com", "host": "git.internal.example.com"}]


def network():
    """cn-north (core, disk store served by rsync) and cn-east (regional: the core region
    by its published name first), one edge each, one DNS server, one client."""
    node = {
        "proxy_node_sumdbs": [{"name": "sum.golang.org", "upstream": PUBLIC_SUMDB}],
        "proxy_node_private_prefixes": PRIVATE,
        "proxy_node_storage_type": "disk",
        "proxy_node_storage_disk_root": "/srv/gomirror/store",
        "proxy_node_upstream_separator": ",",
    }
    edge = {
        "nginx_edge_tls_names": [SERVICE, f"*.{SERVICE}"],
        "nginx_edge_server_names": [SERVICE, f"*.{SERVICE}"],
    }
    hosts = {
        "bj-node1": {
            "groups": ["proxy_nodes", "sync_sources"],
            "vars": dict(
                copy.deepcopy(node),
                gomirror_region="cn-north",
                proxy_node_upstreams=list(PUBLIC),
                mirror_sync_server_enabled=True,
                mirror_sync_server_modules=[{"name": "goproxy", "path": "/srv/gomirror/store"}],
            ),
        },
        "sh-node1": {
            "groups": ["proxy_nodes", "sync_replicas"],
            "vars": dict(
                copy.deepcopy(node),
                gomirror_region="cn-east",
                proxy_node_upstreams=[f"https://cn-north.{SERVICE}"] + PUBLIC,
                proxy_node_upstream_separator="|",
                mirror_sync_jobs=[{"name": "goproxy-core", "source": "rsync://bj-node1/goproxy"}],
            ),
        },
        "bj-edge1": {
            "groups": ["edges"],
            "vars": dict(copy.deepcopy(edge), gomirror_region="cn-north"),
        },
        "sh-edge1": {
            "groups": ["edges"],
            "vars": dict(copy.deepcopy(edge), gomirror_region="cn-east"),
        },
        "bj-dns1": {
            "groups": ["dns_servers"],
            "vars": {
                "geodns_service": SERVICE,
                "geodns_checker_probe_scheme": "https",
                "geodns_regions": [
                    {"name": "cn-north", "endpoints": ["203.0.113.10"], "fallback": ["cn-east"]},
                    {"name": "cn-east", "endpoints": ["203.0.113.20"], "fallback": ["cn-north"]},
                ],
            },
        },
        "ci-runner01": {
            "groups": ["go_clients"],
            "vars": {
                "goproxy_client_mirror_url": f"https://{SERVICE}",
                "goproxy_client_private_patterns": ["git.internal.example.com"],
            },
        },
    }
    return copy.deepcopy({"hosts": hosts, "external_upstreams": PUBLIC + [PUBLIC_SUMDB]})


def hostvars(net, host):
    return net["hosts"][host]["vars"]


def test_the_consistent_network_has_no_problem():
    assert gt.check_network(network()) == []


def test_published_names_are_the_service_and_one_pool_per_region():
    assert gt.published_names(network()) == {
        SERVICE: "bj-dns1",
        f"cn-north.{SERVICE}": "bj-dns1",
        f"cn-east.{SERVICE}": "bj-dns1",
    }


def test_an_unpublished_core_name_is_refused_naming_host_and_variable():
    net = network()
    hostvars(net, "sh-node1")["proxy_node_upstreams"][0] = f"https://core.{SERVICE}"
    problems = gt.check_network(net)
    assert len(problems) == 1
    assert problems[0].startswith(
        f"sh-node1: proxy_node_upstreams: core.{SERVICE} is neither a name GeoDNS publishes"
    )


def test_an_address_as_upstream_is_refused():
    net = network()
    hostvars(net, "sh-node1")["proxy_node_sumdbs"][0]["upstream"] = (
        "http://172.28.20.41/sumdb/sum.golang.org"
    )
    problems = gt.check_upstream_names(net)
    assert problems == [
        "sh-node1: proxy_node_sumdbs['sum.golang.org'].upstream: "
        "http://172.28.20.41/sumdb/sum.golang.org "
        f"names an address; use a name GeoDNS publishes (cn-east.{SERVICE}, cn-north.{SERVICE}, "
        f"{SERVICE})"
    ]


def test_a_client_mirror_url_outside_the_published_names_is_refused():
    net = network()
    hostvars(net, "ci-runner01")["goproxy_client_mirror_url"] = "https://goproxy.other.example"
    problems = gt.check_upstream_names(net)
    assert len(problems) == 1 and problems[0].startswith(
        "ci-runner01: goproxy_client_mirror_url: goproxy.other.example"
    )


def test_an_internal_upstream_with_nothing_after_it_has_no_fallback():
    net = network()
    hostvars(net, "sh-node1")["proxy_node_upstreams"] = [f"https://cn-north.{SERVICE}"]
    assert gt.check_fallbacks(net) == [
        f"sh-node1: proxy_node_upstreams: https://cn-north.{SERVICE} has no fallback after it "
        "(add the public upstreams)"
    ]


def test_an_internal_upstream_needs_the_pipe_separator():
    net = network()
    hostvars(net, "sh-node1")["proxy_node_upstream_separator"] = ","
    problems = gt.check_fallbacks(net)
    assert len(problems) == 1 and problems[0].startswith(
        "sh-node1: proxy_node_upstream_separator: must be '|'"
    )


def test_a_checksum_database_upstream_on_an_internal_name_has_no_fallback():
    net = network()
    hostvars(net, "sh-node1")["proxy_node_sumdbs"][0]["upstream"] = (
        f"https://cn-north.{SERVICE}/sumdb/sum.golang.org"
    )
    problems = gt.check_fallbacks(net)
    assert len(problems) == 1
    assert problems[0].startswith(
        f"sh-node1: proxy_node_sumdbs['sum.golang.org'].upstream: cn-north.{SERVICE} is the "
        "only upstream"
    )


def test_every_region_needs_a_fallback_region():
    net = network()
    hostvars(net, "bj-dns1")["geodns_regions"][1]["fallback"] = []
    assert gt.check_fallbacks(net) == [
        "bj-dns1: geodns_regions: region 'cn-east' has no fallback region (its clients get no "
        "answer when its edges fail)"
    ]


def test_a_sync_source_storing_on_s3_is_refused():
    net = network()
    hostvars(net, "bj-node1")["proxy_node_storage_type"] = "s3"
    assert gt.check_sync(net) == [
        "bj-node1: mirror_sync_server_modules['goproxy']: serves /srv/gomirror/store but this "
        "node stores "
        "on s3 (proxy_node_storage_type): replicas would pull an empty tree"
    ]


def test_a_sync_source_serving_another_directory_than_its_store_is_refused():
    net = network()
    hostvars(net, "bj-node1")["mirror_sync_server_modules"][0]["path"] = "/srv/other"
    problems = gt.check_sync(net)
    assert problems == [
        "bj-node1: mirror_sync_server_modules['goproxy']: serves /srv/other, not the node's store "
        "/srv/gomirror/store (proxy_node_storage_disk_root)"
    ]


def test_a_replica_pulling_a_module_nobody_serves_is_refused():
    net = network()
    hostvars(net, "sh-node1")["mirror_sync_jobs"][0]["source"] = "rsync://bj-node2/goproxy"
    assert gt.check_sync(net) == [
        "sh-node1: mirror_sync_jobs['goproxy-core'].source: rsync://bj-node2/goproxy is not a "
        "module a sync_sources host serves"
    ]


def test_a_replica_may_name_the_source_by_its_address():
    net = network()
    hostvars(net, "bj-node1")["gomirror_address"] = "10.10.0.21"
    hostvars(net, "sh-node1")["mirror_sync_jobs"][0]["source"] = "10.10.0.21::goproxy"
    assert gt.check_sync(net) == []


def test_an_edge_certificate_not_covering_the_probe_name_is_refused():
    net = network()
    hostvars(net, "sh-edge1")["nginx_edge_tls_names"] = ["203.0.113.20"]
    assert gt.check_probes(net) == [
        f"sh-edge1: nginx_edge_tls_certificate: covers 203.0.113.20, not {SERVICE}, the name "
        "bj-dns1 "
        "probes with (geodns_checker_probe_host or geodns_service)"
    ]


def test_an_edge_without_certificate_behind_an_https_probe_is_refused():
    net = network()
    hostvars(net, "bj-edge1")["nginx_edge_tls_names"] = []
    problems = gt.check_probes(net)
    assert problems == [
        "bj-edge1: nginx_edge_tls_certificate: no certificate, but bj-dns1 probes this region "
        f"over https as {SERVICE}"
    ]


def test_a_region_without_edges_cannot_have_its_certificate_checked():
    net = network()
    del net["hosts"]["sh-edge1"]
    problems = gt.check_probes(net)
    assert len(problems) == 1 and problems[0].startswith(
        "bj-dns1: geodns_regions: region 'cn-east' has endpoints but no edges host"
    )


def test_http_probes_need_no_certificate():
    net = network()
    hostvars(net, "bj-dns1")["geodns_checker_probe_scheme"] = "http"
    hostvars(net, "sh-edge1")["nginx_edge_tls_names"] = []
    assert gt.check_probes(net) == []


def test_the_probe_host_overrides_the_service_name():
    net = network()
    hostvars(net, "bj-dns1")["geodns_checker_probe_host"] = "health.other.example"
    problems = gt.check_probes(net)
    assert len(problems) == 4  # both edges: certificate and server names
    assert all("health.other.example" in p for p in problems)


@pytest.mark.parametrize(
    ("name", "covered"),
    [
        (SERVICE, True),
        (f"cn-north.{SERVICE}", True),
        (f"a.cn-north.{SERVICE}", False),  # a wildcard covers one label only
        ("example.com", False),
    ],
)
def test_wildcards_cover_one_label(name, covered):
    assert gt.name_covered(name, [SERVICE, f"*.{SERVICE}"]) is covered


def test_a_node_missing_a_private_prefix_would_ask_the_public_upstream():
    net = network()
    hostvars(net, "sh-node1")["proxy_node_private_prefixes"] = []
    assert gt.check_private(net) == [
        "sh-node1: proxy_node_private_prefixes: private git.internal.example.com is missing, so "
        "its "
        f"modules would be asked of {PUBLIC[0]}"
    ]


def test_a_client_missing_a_private_pattern_is_refused():
    net = network()
    hostvars(net, "ci-runner01")["goproxy_client_private_patterns"] = ["git.other.example"]
    problems = gt.check_private(net)
    assert any(
        p.startswith(
            "ci-runner01: goproxy_client_private_patterns: private git.internal.example.com is "
            "missing"
        )
        for p in problems
    )


def test_a_wider_private_pattern_covers_a_narrower_one():
    net = network()
    hostvars(net, "ci-runner01")["goproxy_client_private_patterns"] = ["git.internal.example.com"]
    hostvars(net, "sh-node1")["proxy_node_private_prefixes"] = [
        {"pattern": "git.internal.example.com"}
    ]
    hostvars(net, "bj-node1")["proxy_node_private_prefixes"] = [
        {"pattern": "git.internal.example.com"},
        {"pattern": "git.internal.example.com/platform"},
    ]
    assert gt.check_private(net) == []


def test_a_node_without_public_upstreams_needs_no_private_patterns():
    net = network()
    hostvars(net, "sh-node1")["proxy_node_upstreams"] = [f"https://cn-north.{SERVICE}", "direct"]
    hostvars(net, "sh-node1")["proxy_node_upstream_separator"] = "|"
    hostvars(net, "sh-node1")["proxy_node_private_prefixes"] = []
    assert [p for p in gt.check_private(net) if p.startswith("sh-node1")] == []


def test_checks_do_not_change_their_input():
    net = network()
    before = copy.deepcopy(net)
    gt.check_network(net)
    assert net == before


def test_problems_of_many_hosts_are_reported_once():
    problems = [f"h{i}: vault_git_password: holds a placeholder" for i in range(5)] + [
        "h9: other: x"
    ]
    assert gt.group_by_message(problems) == [
        "h0, h1, h2 and 2 more: vault_git_password: holds a placeholder",
        "h9: other: x",
    ]


def test_a_core_pool_falling_back_to_the_asking_region_is_a_warning():
    net = network()
    assert gt.fallback_loops(net) == [
        f"sh-node1: proxy_node_upstreams: cn-north.{SERVICE} falls back to cn-east (geodns_regions "
        "of bj-dns1: cn-east) while its region is down, so this region's requests come back to "
        "its own edges until they time out"
    ]
    hostvars(net, "bj-dns1")["geodns_regions"][0]["fallback"] = []
    assert gt.fallback_loops(net) == []
