"""site.yml's per-region rollout order (plugins/module_utils/gomirror_rollout.py):
the canary host alone, the rest of its region, then one region per batch, the core
region last by default; a bad order or a host without a region is refused by name."""

import pytest
from module_utils import gomirror_rollout as ro

# Inventory order: the core region's hosts first, as in inventories/example.
HOSTS = ["bj1", "bj2", "sh1", "sh2", "sz1"]
REGIONS = {
    "bj1": "cn-north",
    "bj2": "cn-north",
    "sh1": "cn-east",
    "sh2": "cn-east",
    "sz1": "cn-south",
}


def test_default_order_is_inventory_order_with_the_core_region_last():
    assert ro.rollout_batches(HOSTS, REGIONS, [], "cn-north") == [
        ["sh1"],
        ["sh2"],
        ["sz1"],
        ["bj1", "bj2"],
    ]


def test_without_a_core_region_the_inventory_order_stands():
    assert ro.rollout_batches(HOSTS, REGIONS) == [["bj1"], ["bj2"], ["sh1", "sh2"], ["sz1"]]


def test_an_explicit_order_wins_and_its_first_host_is_the_canary():
    order = ["cn-south", "cn-north", "cn-east"]
    assert ro.rollout_batches(HOSTS, REGIONS, order, "cn-north") == [
        ["sz1"],
        ["bj1", "bj2"],
        ["sh1", "sh2"],
    ]


def test_a_region_with_no_host_in_play_is_skipped():
    assert ro.rollout_batches(["sh2", "bj1"], REGIONS, ["cn-south", "cn-east", "cn-north"]) == [
        ["sh2"],
        ["bj1"],
    ]


def test_an_order_that_leaves_a_region_out_names_the_hosts():
    with pytest.raises(ro.RolloutError) as exc:
        ro.rollout_batches(HOSTS, REGIONS, ["cn-north", "cn-east"])
    assert "gomirror_rollout_regions" in str(exc.value)
    assert "sz1 (cn-south)" in str(exc.value)


def test_an_order_that_lists_a_region_twice_is_refused():
    with pytest.raises(ro.RolloutError, match="lists a region twice"):
        ro.rollout_batches(HOSTS, REGIONS, ["cn-north", "cn-east", "cn-south", "cn-east"])


def test_a_host_without_region_is_refused_by_name():
    with pytest.raises(ro.RolloutError) as exc:
        ro.rollout_batches(["bj1", "dns1"], dict(REGIONS, dns1=""))
    assert str(exc.value).startswith("dns1: gomirror_region: not set")


def test_the_plan_names_a_group_per_batch_in_an_order_its_names_sort_in():
    tiers = {"proxy_nodes": HOSTS, "edges": ["e-bj", "e-sh"], "dns_servers": []}
    regions = dict(REGIONS, **{"e-bj": "cn-north", "e-sh": "cn-east"})
    batches, plan = ro.rollout_plan(tiers, HOSTS + ["e-bj", "e-sh"], regions, [], "cn-north")
    assert batches == {
        "proxy_nodes": [["sh1"], ["sh2"], ["sz1"], ["bj1", "bj2"]],
        "edges": [["e-sh"], ["e-bj"]],
        "dns_servers": [],
    }
    nodes = [(i["host"], i["group"]) for i in plan if i["tier"] == "proxy_nodes"]
    assert nodes[-1] == ("bj2", "gomirror_rollout_proxy_nodes_batch_004")
    assert [h for h, _g in nodes] == ["sh1", "sh2", "sz1", "bj1", "bj2"]
    assert ro.BATCH_GROUP.format(tier="edges", index=10) > ro.BATCH_GROUP.format(
        tier="edges", index=9
    )


def test_the_plan_covers_only_the_hosts_in_play():
    _batches, plan = ro.rollout_plan(
        {"proxy_nodes": HOSTS}, ["bj2", "sz1"], REGIONS, [], "cn-north"
    )
    assert [(i["host"], i["group"]) for i in plan] == [
        ("sz1", "gomirror_rollout_proxy_nodes_batch_001"),
        ("bj2", "gomirror_rollout_proxy_nodes_batch_002"),
    ]
