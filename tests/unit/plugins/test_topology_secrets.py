"""Pure-function tests of module_utils/gomirror_secrets.py: placeholders, TSIG reuse and
the lab CA, with certificates made by openssl here."""

import base64

import pytest
from module_utils import gomirror_secrets as gs
from pki_testlib import TestCA


def test_change_me_anywhere_in_a_secret_is_refused():
    assert gs.check_placeholders("h1", {"vault_git_password": "CHANGE-ME-git"}) == [
        "h1: vault_git_password: holds a placeholder (CHANGE-ME); set the real value (vault it)"
    ]


def test_the_base64_of_a_placeholder_is_refused():
    secret = base64.b64encode(b"CHANGE-ME-tsig-cn-north-0000000").decode()
    assert gs.check_placeholders("dns1", {"geodns_tsig_secrets": {"cn-north": secret}}) == [
        "dns1: geodns_tsig_secrets['cn-north']: is the base64 of a placeholder (CHANGE-ME); set "
        "the real value (vault it)"
    ]


def test_an_all_zero_checksum_is_refused():
    assert gs.check_placeholders("n1", {"go_toolchain_sha256": "0" * 64}) == [
        "n1: go_toolchain_sha256: is all zeros (a placeholder checksum); set the real value "
        "(vault it)"
    ]


def test_credentials_inside_entries_are_named_by_the_entry():
    variables = {
        "proxy_node_private_prefixes": [
            {"pattern": "git.example", "login": "bot", "password": "changeme"}
        ]
    }
    assert gs.check_placeholders("n1", variables) == [
        "n1: proxy_node_private_prefixes['git.example']['password']: holds a placeholder "
        "(CHANGE-ME); "
        "set the real value (vault it)"
    ]


def test_a_placeholder_s3_identity_of_the_object_store_is_refused():
    variables = {"object_store_s3_identities": [
        {"name": "gomirror", "access_key": "gomirror-core", "secret_key": "CHANGE-ME-s3",
         "actions": ["Read", "Write", "List"]}]}
    assert gs.check_placeholders("os1", variables) == [
        "os1: object_store_s3_identities['gomirror']['secret_key']: holds a placeholder "
        "(CHANGE-ME); set the real value (vault it)"
    ]


def test_real_secrets_and_other_variables_pass():
    variables = {
        "vault_git_password": "3f9c1e0b7d2a4c68a1b2",
        "geodns_tsig_secrets": {"cn-north": base64.b64encode(bytes(range(32))).decode()},
        "go_toolchain_sha256": "6c74ccddd9ca1a0ab08d9ea18016bbb0325a7a0a93a458e064ec4abb5fd70299",
        # not a secret variable: a placeholder word in a comment-like value is not refused
        "gomirror_mirror_name": "change-me.example.com",
    }
    assert gs.check_placeholders("h1", variables) == []


def test_a_tsig_secret_shared_by_two_regions_is_refused():
    problems = gs.check_tsig_reuse(
        {"dns1": {"cn-north": "A" * 44, "cn-east": "A" * 44, "cn-south": "B" * 44}}
    )
    assert problems == [
        "dns1: geodns_tsig_secrets['cn-north']: is the same secret as "
        "geodns_tsig_secrets['cn-east'] of dns1; "
        "every region needs its own key"
    ]


def test_the_same_region_key_on_two_dns_servers_is_fine():
    assert (
        gs.check_tsig_reuse({"dns1": {"cn-north": "A" * 44}, "dns2": {"cn-north": "A" * 44}}) == []
    )


def test_a_region_key_reused_on_another_server_for_another_region_is_refused():
    problems = gs.check_tsig_reuse({"dns1": {"cn-north": "A" * 44}, "dns2": {"cn-east": "A" * 44}})
    assert problems == [
        "dns2: geodns_tsig_secrets['cn-east']: is the same secret as "
        "geodns_tsig_secrets['cn-north'] of dns1; "
        "every region needs its own key"
    ]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A lab-named CA and an organisation CA, each with an edge certificate."""
    d = tmp_path_factory.mktemp("pki")
    out = {}
    for label, cn in (("lab", gs.LAB_CA_SUBJECT_CN), ("org", "Example Org CA")):
        ca = TestCA(d, cn)
        edge, _key = ca.issue(
            "goproxy.example.com",
            "DNS:goproxy.example.com,DNS:*.goproxy.example.com,IP:203.0.113.10",
        )
        out[label] = {"ca": ca.cert.read_text(), "edge": edge.read_text()}
    return out


def test_certificate_names_reads_the_subject_alternative_names(pki):
    info = gs.certificate_names(pki["org"]["edge"])
    assert info == {
        "dns": ["goproxy.example.com", "*.goproxy.example.com"],
        "ips": ["203.0.113.10"],
        "subject_cn": "goproxy.example.com",
        "issuer_cn": "Example Org CA",
    }


def test_the_lab_ca_outside_the_lab_is_refused(pki):
    info = gs.certificate_names(pki["lab"]["ca"])
    assert gs.check_lab_ca("n1", "ca_trust_certificates['ca']", info, lab=False) == [
        "n1: ca_trust_certificates['ca']: is the lab CA (CN=gomirror lab CA); a production "
        "inventory "
        "trusts its own organisation's CA"
    ]
    assert gs.check_lab_ca("n1", "ca_trust_certificates['ca']", info, lab=True) == []


def test_a_certificate_signed_by_the_lab_ca_outside_the_lab_is_refused(pki):
    info = gs.certificate_names(pki["lab"]["edge"])
    problems = gs.check_lab_ca("e1", "nginx_edge_tls_certificate", info, lab=False)
    assert problems == [
        "e1: nginx_edge_tls_certificate: is signed by the lab CA (CN=gomirror lab CA); issue it "
        "from the organisation's CA"
    ]


def test_the_organisation_ca_passes(pki):
    for pem in pki["org"].values():
        assert gs.check_lab_ca("e1", "v", gs.certificate_names(pem), lab=False) == []


def test_a_text_that_is_no_certificate_raises_value_error():
    with pytest.raises(ValueError):
        gs.certificate_names("not a certificate")
