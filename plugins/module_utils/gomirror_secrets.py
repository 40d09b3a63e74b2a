# Copyright: gomirror project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure checks that an inventory carries real secrets and certificates: no placeholder
(CHANGE-ME, an all-zero checksum), no TSIG secret shared by two regions, no lab CA
outside the lab. Problems are "<host>: <variable>: <what>", never the value itself.

Certificates are read with `cryptography` (a dependency of ansible-core) on the controller.
"""

from __future__ import annotations

import base64
import binascii
import re

# The subject of the CA harness/pki.sh creates for the lab.
LAB_CA_SUBJECT_CN = "gomirror lab CA"

# Variables whose values are secrets or pins; placeholders in them are refused.
SECRET_NAME = re.compile(r"(password|passwd|secret|token|tsig|_key$|sha256)", re.IGNORECASE)
# Structured variables holding credentials inside their entries.
SECRET_STRUCTURES = (
    "proxy_node_private_prefixes",
    "mirror_sync_jobs",
    "mirror_sync_server_users",
    "geodns_tsig_secrets",
    "object_store_s3_identities",
)
_PLACEHOLDER = re.compile(r"change[-_ ]?me|replace[-_ ]?me|placeholder", re.IGNORECASE)
_ZERO_HASH = re.compile(r"^0{32,}$")


def is_secret_variable(name):
    return bool(SECRET_NAME.search(name)) or name in SECRET_STRUCTURES


def placeholder_reason(value):
    """Why a secret string is a placeholder, or None."""
    text = str(value).strip()
    if _PLACEHOLDER.search(text):
        return "holds a placeholder (CHANGE-ME)"
    if _ZERO_HASH.match(text):
        return "is all zeros (a placeholder checksum)"
    if len(text) >= 8 and len(text) % 4 == 0:
        try:
            decoded = base64.b64decode(text, validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            decoded = ""
        if _PLACEHOLDER.search(decoded):
            return "is the base64 of a placeholder (CHANGE-ME)"
    return None


def _walk(value, path):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}['{key}']")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            label = item.get("name") or item.get("pattern") if isinstance(item, dict) else None
            yield from _walk(item, f"{path}['{label}']" if label else f"{path}[{index}]")
    elif isinstance(value, str):
        yield path, value


def check_placeholders(host, variables):
    """Problems for every secret variable (or credential inside one) of a host that holds
    a placeholder."""
    problems = []
    for name in sorted(variables):
        if not is_secret_variable(name):
            continue
        for path, text in _walk(variables[name], name):
            reason = placeholder_reason(text)
            if reason:
                problems.append(f"{host}: {path}: {reason}; set the real value (vault it)")
    return problems


def check_tsig_reuse(dns_secrets):
    """dns_secrets: {dns host: {region: secret}}. A secret updating one region's view must
    not update another's: the same secret for two regions is refused."""
    owner = {}
    problems = []
    for host in sorted(dns_secrets):
        for region, secret in sorted((dns_secrets[host] or {}).items()):
            first = owner.setdefault(str(secret), (host, region))
            if first[1] != region:
                problems.append(
                    f"{host}: geodns_tsig_secrets['{region}']: is the same secret as "
                    f"geodns_tsig_secrets['{first[1]}'] of {first[0]}; every region needs its "
                    "own key"
                )
    return problems


def certificate_names(pem):
    """Names a PEM certificate covers and who it is: {dns, ips, subject_cn, issuer_cn}
    (of the first certificate in the text)."""
    from cryptography import x509  # noqa: PLC0415 - controller-side only
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    cert = x509.load_pem_x509_certificate(str(pem).encode())

    def _cn(name):
        attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
        return attrs[0].value if attrs else ""

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = san.get_values_for_type(x509.DNSName)
        ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        dns, ips = [], []
    return {"dns": dns, "ips": ips, "subject_cn": _cn(cert.subject), "issuer_cn": _cn(cert.issuer)}


def check_lab_ca(host, variable, info, lab):
    """A certificate of the lab CA (or signed by it) outside the lab is refused."""
    if lab:
        return []
    if info.get("subject_cn") == LAB_CA_SUBJECT_CN:
        return [
            f"{host}: {variable}: is the lab CA (CN={LAB_CA_SUBJECT_CN}); a production "
            "inventory trusts its own organisation's CA"
        ]
    if info.get("issuer_cn") == LAB_CA_SUBJECT_CN:
        return [
            f"{host}: {variable}: is signed by the lab CA (CN={LAB_CA_SUBJECT_CN}); issue it "
            "from the organisation's CA"
        ]
    return []
