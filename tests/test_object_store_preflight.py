"""roles/object_store preflight: run on the controller (tasks_from: preflight, as
playbooks/validate.yml runs every role's) against a three-host cluster inventory, it passes
the layout molecule/object_store deploys and refuses each bad one naming the variable,
without showing a secret."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from conftest import REPO

SECRET = "lab-object-store-secret-0001"  # noqa: S105 - test value, like the scenario's
PLACEHOLDER = "CHANGE-ME-before-going-live"  # noqa: S105 - the placeholder to refuse
PLAYBOOK = """
- name: Check the object store's variables
  hosts: object_store
  gather_facts: false
  tasks:
    - name: Run the role's preflight
      ansible.builtin.include_role:
        name: object_store
        tasks_from: preflight
{role_vars}
"""


@pytest.fixture()
def cluster(tmp_path):
    """An inventory of one master+filer+s3 host and two volume servers in one rack, and a
    controller-side binary with its sha256 (preflight hashes the file, it never runs it)."""
    binary = tmp_path / "weed"
    binary.write_bytes(b"#!/bin/sh\necho weed stand-in for the hash check\n")
    hosts = {
        "store1": {"object_store_components": ["master", "filer", "s3"],
                   "object_store_bind_address": "10.0.1.10"},
        "store2": {"object_store_components": ["volume"], "object_store_bind_address": "10.0.1.21"},
        "store3": {"object_store_components": ["volume"], "object_store_bind_address": "10.0.1.22"},
    }
    inventory = {"object_store": {
        "hosts": hosts,
        "vars": {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "object_store_weed_binary_src": str(binary),
            "object_store_weed_binary_sha256": hashlib.sha256(binary.read_bytes()).hexdigest(),
            "object_store_replication": "001",
            "object_store_bucket": "gomirror-core",
            "object_store_s3_identities": [{
                "name": "gomirror-proxy", "access_key": "GOMIRRORLAB0001", "secret_key": SECRET,
                "actions": ["Read:gomirror-core", "Write:gomirror-core", "List:gomirror-core"],
            }],
        },
    }}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    return tmp_path


def preflight(where, extra=None, role_vars=None):
    playbook = where / "preflight.yml"
    indented = "".join(f"\n        {line}" for line in
                       yaml.safe_dump(role_vars).splitlines()) if role_vars else ""
    playbook.write_text(PLAYBOOK.format(role_vars=f"      vars:{indented}" if indented else ""))
    argv = ["ansible-playbook", "-i", str(where / "inventory.yml"), str(playbook)]
    if extra is not None:
        (where / "extra.json").write_text(json.dumps(extra))
        argv += ["--extra-vars", f"@{where / 'extra.json'}"]
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_ROLES_PATH=str(REPO / "roles"))
    proc = subprocess.run(argv, cwd=where, env=env, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def test_the_scenario_layout_passes(cluster):
    rc, out = preflight(cluster)
    assert rc == 0, out[-3000:]
    assert "failed=0" in out


def _identity(**change):
    identity = {"name": "gomirror-proxy", "access_key": "GOMIRRORLAB0001", "secret_key": SECRET,
                "actions": ["Read:gomirror-core"]}
    return [dict(identity, **change)]


@pytest.mark.parametrize(("extra", "expected"), [
    # one rack: no room for a copy in another rack, nor for three copies in two servers
    ({"object_store_replication": "010"},
     r"object_store_replication '010' asks for copies in 0 other data center\(s\), 1 other rack"),
    ({"object_store_replication": "002"}, r"2 other server\(s\) of the same rack, but"),
    # 001 unquoted in YAML is the integer 1
    ({"object_store_replication": 1}, r'object_store_replication must be three digits "xyz"'),
    ({"object_store_bucket": "ab"}, r"object_store_bucket must be a DNS label"),
    ({"object_store_s3_identities": []},
     r"object_store_s3_identities must hold at least one identity where s3 runs"),
    ({"object_store_s3_identities": _identity(secret_key=PLACEHOLDER)},
     r"object_store_s3_identities entry 'gomirror-proxy' needs"),
    ({"object_store_s3_identities": _identity(actions=["FullControl"])},
     r"object_store_s3_identities entry 'gomirror-proxy' needs"),
    ({"object_store_weed_binary_sha256": "0" * 64}, r"not the all-zero placeholder"),
    ({"object_store_weed_binary_sha256": "ab" * 32},
     r"has sha256 [0-9a-f]{64}, object_store_weed_binary_sha256 pins abab"),
    ({"object_store_extra_args": {"volume": ["-max=1 -dir=/"]}}, r"object_store_extra_args maps"),
], ids=["rack-copy", "three-copies", "not-three-digits", "short-bucket",
        "no-identities", "placeholder-secret", "unknown-action",
        "zero-sha256", "wrong-sha256", "extra-arg-with-space"])
def test_a_bad_cluster_variable_is_refused_by_name(cluster, extra, expected):
    rc, out = preflight(cluster, extra)
    assert rc != 0, out[-3000:]
    assert re.search(expected, out), out[-3000:]
    for identity in extra.get("object_store_s3_identities", []):
        assert identity["secret_key"] not in out, "a secret was shown"


def _host_vars(where, host, **change):
    inventory = yaml.safe_load((where / "inventory.yml").read_text())
    inventory["object_store"]["hosts"][host].update(change)
    (where / "inventory.yml").write_text(yaml.safe_dump(inventory))


@pytest.mark.parametrize(("host", "change", "expected"), [
    ("store2", {"object_store_bind_address": "203.0.113.21"},
     r"store2: object_store_bind_address must be a private IPv4 address of the host"
     r".*got '203\.0\.113\.21'"),
    ("store1", {"object_store_s3_port": 8888},
     r"store1: .*must be 1024..65535 and distinct"
     r" \(got \[9333, 19333, 8888, 18888, 8888, 18333\]\)"),
    ("store2", {"object_store_components": ["master", "volume"]},
     r"has 2 master\(s\).*must put master on 1, 3\s+or 5 hosts"),
    ("store1", {"object_store_components": ["master", "s3"]},
     r"and filer on at least one when s3 runs"),
], ids=["public-address", "port-twice", "two-masters", "gateway-without-filer"])
def test_a_bad_host_layout_is_refused_on_every_host(cluster, host, change, expected):
    _host_vars(cluster, host, **change)
    rc, out = preflight(cluster)
    assert rc != 0, out[-3000:]
    assert re.search(expected, out), out[-3000:]
    assert "failed=0" not in out.split("PLAY RECAP")[-1], "every host of the cluster refuses it"


def test_a_layout_variable_given_as_role_variable_is_refused(cluster):
    # store1 alone would see the filer gone; the volume servers would still point at it
    rc, out = preflight(cluster, role_vars={"object_store_components": ["master", "volume"]})
    assert rc != 0, out[-3000:]
    assert "object_store_components is" in out and "in the inventory of" in out, out[-3000:]
    assert "set it in host_vars or group_vars" in out
