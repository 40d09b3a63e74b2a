"""playbooks/site.yml: validate.yml is its first play, every play that changes hosts has a
tag per role and per tier, and proxy nodes, edges and DNS servers roll out one region at
a time (canary first, core region last), as the real plays batch the example inventory."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SITE = REPO / "playbooks" / "site.yml"
EXAMPLE = REPO / "inventories" / "example"
LAB = REPO / "inventories" / "lab"
EXAMPLE_VAULT_PASSWORD = "example-only"  # noqa: S105 - documented, example only
BATCH = "{{ ansible_play_batch | join(',') }}"
TIER_OF_ROLE = {
    "ca_trust": None,
    "go_toolchain": "nodes",
    "object_store": "storage",
    "proxy_node": "nodes",
    "mirror_sync": "sync",
    "nginx_edge": "edges",
    "geodns": "dns",
    "goproxy_client": "clients",
}
ROLLED_OUT_PER_REGION = {
    "proxy_node": "proxy_nodes",
    "nginx_edge": "edges",
    "geodns": "dns_servers",
}


def _site():
    return yaml.safe_load(SITE.read_text())


def _role_plays():
    return [p for p in _site() if p.get("roles")]


def test_the_first_play_validates_the_inventory():
    first = _site()[0]
    assert first["ansible.builtin.import_playbook"] == "validate.yml"
    assert "validate" in first["tags"]
    validate = yaml.safe_load((REPO / "playbooks" / "validate.yml").read_text())
    assert all("validate" in play["tags"] for play in validate)


def test_every_play_has_tags_and_role_plays_a_tag_per_role_and_tier():
    for play in _site():
        assert play.get("tags"), f"play without tags: {play.get('name')}"
    for play in _role_plays():
        for entry in play["roles"]:
            role = entry["role"]
            assert role in play["tags"], f"{play['name']}: no tag {role}"
            tier = TIER_OF_ROLE[role]
            assert tier is None or tier in play["tags"], f"{play['name']}: no tier tag {tier}"


def test_nodes_edges_and_dns_roll_out_in_planned_batches_and_stop_on_a_failure():
    planned = {}
    for play in _role_plays():
        for entry in play["roles"]:
            tier = ROLLED_OUT_PER_REGION.get(entry["role"])
            if tier:
                planned[tier] = play
    assert set(planned) == set(ROLLED_OUT_PER_REGION.values())
    for tier, play in planned.items():
        assert play["hosts"] == f"gomirror_rollout_{tier}"
        # The sizes of the plan's batch groups of this tier, in batch order.
        assert f"'gomirror_rollout_{tier}_batch_[0-9]+$'" in play["serial"]
        assert "sort(attribute='key')" in play["serial"]
        assert play["max_fail_percentage"] == 0



def _playbook(inventory: Path, playbook: Path, *extra: str, **env_extra: str):
    """ansible-playbook with the repository's ansible.cfg and no ANSIBLE_INVENTORY from the
    caller's environment; fails the test with the output's tail unless it succeeds."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               **env_extra)
    env.pop("ANSIBLE_INVENTORY", None)
    proc = subprocess.run(["ansible-playbook", "-i", str(inventory), str(playbook), *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    return proc

def _batches(inventory: Path, tmp_path: Path, *extra: str) -> dict[str, list[list[str]]]:
    """The batches site.yml's own tier plays (their hosts and serial) get from the real
    planning play, printed by a debug task in place of the roles."""
    imports = [p.get("ansible.builtin.import_playbook") for p in _site()]
    imports = [i for i in imports if i]
    assert imports == ["validate.yml", "rollout_plan.yml"]
    plays = [{"ansible.builtin.import_playbook": str(REPO / "playbooks" / "rollout_plan.yml")}]
    for play in _role_plays():
        if not play.get("serial"):
            continue
        plays.append(
            {
                "name": play["name"],
                "hosts": play["hosts"],
                "serial": play["serial"],
                "gather_facts": False,
                "vars": {"ansible_connection": "local"},
                "tasks": [
                    {
                        "ansible.builtin.debug": {"msg": f"BATCH {play['hosts']} {BATCH}"},
                        "run_once": True,
                    }
                ],
            }
        )
    probe = tmp_path / "batches.yml"
    probe.write_text(yaml.safe_dump(plays, sort_keys=False))
    password = tmp_path / "password"
    password.write_text(EXAMPLE_VAULT_PASSWORD + "\n")
    proc = _playbook(inventory, probe, "--vault-password-file", str(password), *extra)
    found: dict[str, list[list[str]]] = {}
    for group, hosts in re.findall(r'"msg": "BATCH gomirror_rollout_(\w+) ([^"]*)"', proc.stdout):
        found.setdefault(group, []).append(hosts.split(","))
    return found


def test_the_example_rolls_out_canary_first_one_region_at_a_time_core_last(tmp_path):
    batches = _batches(EXAMPLE, tmp_path)
    assert batches["proxy_nodes"] == [
        ["sh-goproxy-node1.internal.example.com"],
        ["sh-goproxy-node2.internal.example.com"],
        ["sz-goproxy-node1.internal.example.com"],
        ["sg-goproxy-node1.internal.example.com"],
        ["bj-goproxy-node1.internal.example.com", "bj-goproxy-node2.internal.example.com"],
    ]
    assert batches["edges"][0] == ["sh-goproxy-edge1.internal.example.com"]
    assert batches["edges"][-1] == [
        "bj-goproxy-edge1.internal.example.com",
        "bj-goproxy-edge2.internal.example.com",
    ]
    assert batches["dns_servers"] == [
        ["sh-dns1.internal.example.com"],
        ["bj-dns1.internal.example.com"],
    ]


def test_the_region_order_is_one_inventory_variable(tmp_path):
    batches = _batches(
        EXAMPLE,
        tmp_path,
        "-e",
        '{"gomirror_rollout_regions": ["cn-north", "cn-east", "cn-south", "ap-southeast"]}',
    )
    assert batches["proxy_nodes"][:2] == [
        ["bj-goproxy-node1.internal.example.com"],
        ["bj-goproxy-node2.internal.example.com"],
    ]
    assert batches["proxy_nodes"][-1] == ["sg-goproxy-node1.internal.example.com"]


def test_a_limited_run_batches_only_the_hosts_in_play(tmp_path):
    batches = _batches(LAB, tmp_path, "--limit", "lab-cn-north-node1,lab-cn-east-edge1")
    assert batches == {"proxy_nodes": [["lab-cn-north-node1"]], "edges": [["lab-cn-east-edge1"]]}


def test_the_lab_passes_validate_unchanged(tmp_path):
    """The lab is production-shaped: regional nodes ask the core region by its published
    name, edges serve HTTPS for their names with the lab CA, the checker probes by name."""
    cache = Path(os.environ.get("GOMIRROR_CACHE", REPO / ".cache"))
    if not (cache / "pki" / "ca.crt").is_file() or not (cache / "gitserver" / "password").is_file():
        if os.environ.get("GOMIRROR_REQUIRE_ORIGIN"):
            raise AssertionError(f"the lab's harness artifacts are missing in {cache} (make setup)")
        pytest.skip(f"the lab's harness artifacts are missing in {cache} (make setup)")
    for playbook, extra in (("lab-up.yml", ["--tags", "pki"]), ("validate.yml", ["-v"])):
        proc = _playbook(LAB, REPO / "playbooks" / playbook, *extra, GOMIRROR_CACHE=str(cache))
    assert re.search(r"topology of \d+ hosts is consistent", proc.stdout), proc.stdout[-2000:]
