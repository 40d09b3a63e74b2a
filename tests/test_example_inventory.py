"""inventories/example is an inventory a platform team can copy: it renders with the
documented example vault password, every role's argument_specs and preflight pass for
every host, and the topology check passes. Each defect the example once had, put back
into a copy of it, fails the check with a message naming the host and the variable."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

# Not from conftest: the unit tests' conftest shadows it when both run in one pytest call.
REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "inventories" / "example"
VALIDATE = REPO / "playbooks" / "validate.yml"
# The password the example's vault.yml documents.
EXAMPLE_VAULT_PASSWORD = "example-only"  # noqa: S105 - documented, example only
# The example as it was before the fixes (the defects the issue lists).
BROKEN_REVISION = "9876c82"


@pytest.fixture(scope="module")
def vault_password_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vault") / "password"
    path.write_text(EXAMPLE_VAULT_PASSWORD + "\n")
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env.pop("ANSIBLE_INVENTORY", None)
    return env


def _run(*cmd: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout
    )


def _topology(inventory: Path, password: Path) -> subprocess.CompletedProcess:
    """The topology check of validate.yml alone."""
    return _run(
        "ansible-playbook",
        "-i",
        str(inventory),
        "--vault-password-file",
        str(password),
        "--tags",
        "topology",
        str(VALIDATE),
    )


def test_the_example_renders_with_the_example_password(vault_password_file):
    proc = _run(
        "ansible-inventory",
        "-i",
        str(EXAMPLE),
        "--list",
        "--vault-password-file",
        str(vault_password_file),
    )
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    inventory = json.loads(proc.stdout)
    hostvars = inventory["_meta"]["hostvars"]
    assert len(hostvars) == 18
    assert set(inventory["proxy_nodes"]["hosts"]) >= {"bj-goproxy-node1.internal.example.com"}


def test_the_example_passes_every_preflight_and_the_topology_check(vault_password_file):
    proc = _run(
        "ansible-playbook",
        "-i",
        str(EXAMPLE),
        "--vault-password-file",
        str(vault_password_file),
        str(VALIDATE),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    recap = proc.stdout[proc.stdout.index("PLAY RECAP") :]
    assert "failed=0" in recap and "failed=1" not in recap
    # every host got its role checks (the proxy nodes' preflight has the most tasks)
    assert "sg-goproxy-node1.internal.example.com : ok=" in recap


@pytest.fixture
def example_copy(tmp_path) -> Path:
    """A copy of the example inventory to break; playbook-relative paths stay the repo's."""
    dest = tmp_path / "example"
    shutil.copytree(EXAMPLE, dest)
    return dest


def _broken(path: str) -> str:
    """A file of the example as the broken revision had it."""
    return subprocess.run(
        ["git", "show", f"{BROKEN_REVISION}:inventories/example/{path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _failed_with(proc: subprocess.CompletedProcess, *expected: str) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    for text in expected:
        assert text in out, f"{text!r} not in:\n{out[-4000:]}"


def test_the_example_passes_the_topology_check_alone(example_copy, vault_password_file):
    proc = _topology(example_copy, vault_password_file)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_a_core_name_geodns_does_not_publish_fails(example_copy, vault_password_file):
    (example_copy / "group_vars" / "region_cn_east.yml").write_text(
        _broken("group_vars/region_cn_east.yml")
    )
    _failed_with(
        _topology(example_copy, vault_password_file),
        "sh-goproxy-node1.internal.example.com, sh-goproxy-node2.internal.example.com: "
        "proxy_node_upstreams: "
        "core.goproxy.example.com is neither a name GeoDNS publishes",
        "proxy_node_sumdbs['sum.golang.org'].upstream: core.goproxy.example.com is the only "
        "upstream",
    )


def test_a_sync_source_storing_on_s3_fails(example_copy, vault_password_file):
    (example_copy / "group_vars" / "region_cn_north.yml").write_text(
        _broken("group_vars/region_cn_north.yml")
    )
    _failed_with(
        _topology(example_copy, vault_password_file),
        "bj-goproxy-node1.internal.example.com: mirror_sync_server_modules['goproxy']: serves "
        "/srv/gomirror/store "
        "but this node stores on s3 (proxy_node_storage_type)",
    )


def test_placeholder_secrets_and_reused_tsig_keys_fail(example_copy, vault_password_file):
    (example_copy / "group_vars" / "all" / "vault.yml").write_text(
        _broken("group_vars/all/vault.yml")
    )
    _failed_with(
        _topology(example_copy, vault_password_file),
        ": vault_git_password: holds a placeholder (CHANGE-ME)",
        ": vault_sync_password: holds a placeholder (CHANGE-ME)",
        "bj-dns1.internal.example.com: geodns_tsig_secrets['cn-north']: is the base64 of a "
        "placeholder",
        "geodns_tsig_secrets['cn-east']: is the same secret as geodns_tsig_secrets['ap-southeast']",
        "mirror_sync_server_users['replica']['password']: holds a placeholder",
    )


def test_an_all_zero_go_checksum_fails(example_copy, vault_password_file):
    main = example_copy / "group_vars" / "all" / "main.yml"
    lines = [
        'go_toolchain_sha256: "' + "0" * 64 + '"'
        if line.startswith("go_toolchain_sha256:")
        else line
        for line in main.read_text().splitlines()
    ]
    main.write_text("\n".join(lines) + "\n")
    _failed_with(
        _topology(example_copy, vault_password_file),
        "bj-goproxy-node1.internal.example.com, bj-goproxy-node2.internal.example.com, "
        "bj-goproxy-edge1.internal.example.com and 15 more: go_toolchain_sha256: is all zeros",
    )


def test_the_lab_ca_outside_the_lab_fails(example_copy, vault_password_file):
    (example_copy / "files" / "internal-ca.crt").write_text(_broken("files/internal-ca.crt"))
    (example_copy / "files" / "edge.crt").write_text(_broken("files/edge.crt"))
    _failed_with(
        _topology(example_copy, vault_password_file),
        ": ca_trust_certificates['example-internal-ca']: is the lab CA (CN=gomirror lab CA)",
        "bj-goproxy-edge1.internal.example.com, bj-goproxy-edge2.internal.example.com, "
        "sh-goproxy-edge1.internal.example.com and 3 more: nginx_edge_tls_certificate: is "
        "signed by the lab CA",
    )


def test_an_edge_certificate_not_covering_the_probe_name_fails(
    example_copy, vault_password_file, tmp_path
):
    """The checker probes each endpoint by name (SNI and Host): a certificate for the
    address alone does not cover it."""
    key, cert = tmp_path / "ip.key", tmp_path / "ip.crt"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=203.0.113.20",
            "-addext",
            "subjectAltName=IP:203.0.113.20",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    host_vars = example_copy / "host_vars"
    host_vars.mkdir()
    (host_vars / "sh-goproxy-edge1.internal.example.com.yml").write_text(
        "---\nnginx_edge_tls_certificate: "
        "\"{{ lookup('ansible.builtin.file', inventory_dir ~ '/files/ip.crt') }}\"\n"
    )
    shutil.copy(cert, example_copy / "files" / "ip.crt")
    _failed_with(
        _topology(example_copy, vault_password_file),
        "sh-goproxy-edge1.internal.example.com: nginx_edge_tls_certificate: covers "
        "203.0.113.20, not "
        "goproxy.example.com, the name bj-dns1.internal.example.com probes with",
    )


def test_a_role_preflight_failure_stops_the_validation(example_copy, vault_password_file):
    """validate.yml runs the roles' own preflights: the example's former GeoIP setting
    names a database file it does not ship."""
    (example_copy / "group_vars" / "dns_servers.yml").write_text(
        _broken("group_vars/dns_servers.yml")
    )
    proc = _run(
        "ansible-playbook",
        "-i",
        str(example_copy),
        "--vault-password-file",
        str(vault_password_file),
        "--limit",
        "dns_servers",
        str(VALIDATE),
    )
    _failed_with(
        proc,
        "fatal: [bj-dns1.internal.example.com]",
        "geodns_geoip_mmdb_file must name a MaxMind-format .mmdb on the controller",
    )


def test_ansible_cfg_keeps_host_key_checking_and_names_existing_plugin_folders():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "ansible.cfg")
    defaults = cfg["defaults"]
    assert defaults.getboolean("host_key_checking", fallback=True) is True
    for key in ("library", "module_utils", "action_plugins", "filter_plugins", "roles_path"):
        if key in defaults:
            assert (REPO / defaults[key]).is_dir(), f"{key} = {defaults[key]} is not a folder"
