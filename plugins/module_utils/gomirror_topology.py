# Copyright: gomirror project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure checks of a whole gomirror network as an inventory describes it (the topology).

Input is a plain dict built from the inventory by the gomirror_topology action plugin:

    {"hosts": {inventory_name: {"groups": [...], "vars": {variable: value}}},
     "external_upstreams": ["https://goproxy.cn", ...]}

`vars` holds the role variables the checks read, already templated, with the role
defaults filled in; certificates are given as the names they cover
(`nginx_edge_tls_names`, see gomirror_certificates.certificate_names). Every check
returns problems as strings "<host>: <variable>: <what is wrong>", never a secret.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

# Entries of a GOPROXY chain that are not URLs.
CHAIN_KEYWORDS = ("direct", "off")


def _hosts_in(network, group):
    return sorted(h for h, info in network["hosts"].items() if group in info.get("groups", ()))


def _vars(network, host):
    return network["hosts"][host].get("vars", {})


def url_host(url):
    """Lower-case host name of an http(s) URL, or None for anything else."""
    parts = urlsplit(str(url).strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.hostname.lower().rstrip(".")


def _is_ip(name):
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def name_covered(name, cert_names):
    """True when a certificate with these subjectAltName DNS names (or IPs) covers name.
    A wildcard covers exactly one left-most label (RFC 6125)."""
    name = name.lower().rstrip(".")
    for pattern in cert_names:
        pattern = str(pattern).lower().rstrip(".")
        if pattern == name:
            return True
        if pattern.startswith("*.") and "." in name and name.split(".", 1)[1] == pattern[2:]:
            return True
    return False


def pattern_covers(cover, pattern):
    """True when the GOPRIVATE-style pattern `cover` matches every path `pattern` does
    (the same pattern, or a path prefix of it)."""
    cover, pattern = cover.strip().rstrip("/"), pattern.strip().rstrip("/")
    return pattern == cover or pattern.startswith(cover + "/")


# --------------------------------------------------------------------------- names
def published_names(network):
    """{name: dns host} of every name the GeoDNS servers publish: the service name and
    <region>.<service> for each region of geodns_regions."""
    names = {}
    for host in _hosts_in(network, "dns_servers"):
        v = _vars(network, host)
        service = str(v.get("geodns_service") or "").lower().rstrip(".")
        if not service:
            continue
        names.setdefault(service, host)
        for region in v.get("geodns_regions") or []:
            names.setdefault(f"{str(region.get('name', '')).lower()}.{service}", host)
    return names


def _services(network):
    return {
        str(_vars(network, h).get("geodns_service") or "").lower().rstrip(".")
        for h in _hosts_in(network, "dns_servers")
    } - {""}


def external_hosts(network):
    return {h for h in (url_host(u) for u in network.get("external_upstreams") or []) if h}


def upstream_uses(network):
    """(host, variable, url) of every URL a node or client fetches modules or checksums from."""
    uses = []
    for host in _hosts_in(network, "proxy_nodes"):
        v = _vars(network, host)
        for url in v.get("proxy_node_upstreams") or []:
            if url not in CHAIN_KEYWORDS and not str(url).startswith("file://"):
                uses.append((host, "proxy_node_upstreams", url))
        for db in v.get("proxy_node_sumdbs") or []:
            uses.append(
                (
                    host,
                    f"proxy_node_sumdbs['{db.get('name', '?')}'].upstream",
                    db.get("upstream", ""),
                )
            )
    for host in _hosts_in(network, "go_clients"):
        v = _vars(network, host)
        if v.get("goproxy_client_mirror_url"):
            uses.append((host, "goproxy_client_mirror_url", v["goproxy_client_mirror_url"]))
        for url in v.get("goproxy_client_fallback_proxies") or []:
            uses.append((host, "goproxy_client_fallback_proxies", url))
        if v.get("goproxy_client_sumdb_url"):
            uses.append((host, "goproxy_client_sumdb_url", v["goproxy_client_sumdb_url"]))
    return uses


def is_internal(network, name):
    """A name of the mirror's own namespace (the service name or below it)."""
    return any(name == s or name.endswith("." + s) for s in _services(network))


def check_upstream_names(network):
    """Every upstream a node or client uses is a name GeoDNS publishes or an external
    upstream; an address or an unpublished name would bypass GeoDNS failover."""
    published = published_names(network)
    external = external_hosts(network)
    names = ", ".join(sorted(published)) or "none: no dns_servers host sets geodns_service"
    problems = []
    for host, var, url in upstream_uses(network):
        name = url_host(url)
        if name is None:
            problems.append(f"{host}: {var}: {url!r} is not an http(s) URL")
        elif name in published or (name in external and not is_internal(network, name)):
            continue
        elif _is_ip(name):
            problems.append(
                f"{host}: {var}: {url} names an address; use a name GeoDNS publishes ({names})"
            )
        else:
            problems.append(
                f"{host}: {var}: {name} is neither a name GeoDNS publishes "
                f"({names}) "
                f"nor an external upstream ({', '.join(sorted(external)) or 'none'})"
            )
    return problems


# --------------------------------------------------------------------------- fallbacks
def check_fallbacks(network):
    """A node that asks another region first can still fetch when that region is down;
    every GeoDNS region has a region to fall back to."""
    problems = []
    for host in _hosts_in(network, "proxy_nodes"):
        v = _vars(network, host)
        chain = [str(u) for u in v.get("proxy_node_upstreams") or []]
        internal = [
            i for i, u in enumerate(chain) if url_host(u) and is_internal(network, url_host(u))
        ]
        if not internal:
            continue
        if internal[-1] == len(chain) - 1 or chain[internal[-1] + 1 :] == ["off"]:
            problems.append(
                f"{host}: proxy_node_upstreams: {chain[internal[-1]]} has no fallback after it "
                "(add the public upstreams)"
            )
        elif v.get("proxy_node_upstream_separator", ",") != "|":
            problems.append(
                f"{host}: proxy_node_upstream_separator: must be '|' so the chain falls through "
                f"when {chain[internal[0]]} is unreachable (',' falls through on 404/410 only)"
            )
        for db in v.get("proxy_node_sumdbs") or []:
            name = url_host(db.get("upstream", ""))
            if name and is_internal(network, name):
                problems.append(
                    f"{host}: proxy_node_sumdbs['{db.get('name', '?')}'].upstream: {name} is the "
                    "only upstream of this checksum database (SumDBUpstreams takes one URL), so "
                    "it has no fallback when that region is down; use the public checksum "
                    "database proxy"
                )
    for host in _hosts_in(network, "dns_servers"):
        regions = _vars(network, host).get("geodns_regions") or []
        if len(regions) < 2:
            continue
        for region in regions:
            if not region.get("fallback"):
                problems.append(
                    f"{host}: geodns_regions: region {region.get('name')!r} has no fallback "
                    "region (its clients get no answer when its edges fail)"
                )
    return problems


# --------------------------------------------------------------------------- sync
def check_sync(network):
    """Every rsync module a sync source serves is the disk store of its node, and every
    replica pulls from a module a sync source serves."""
    problems = []
    served = {}
    for host in _hosts_in(network, "sync_sources"):
        v = _vars(network, host)
        if not v.get("mirror_sync_server_enabled"):
            problems.append(
                f"{host}: mirror_sync_server_enabled: a sync source must run the rsync daemon"
            )
            continue
        is_node = host in _hosts_in(network, "proxy_nodes")
        for module in v.get("mirror_sync_server_modules") or []:
            name, path = module.get("name", "?"), str(module.get("path", "")).rstrip("/")
            for alias in (host, str(v.get("gomirror_address") or host)):
                served[(alias, name)] = host
            if not is_node:
                continue
            storage = v.get("proxy_node_storage_type", "disk")
            root = str(v.get("proxy_node_storage_disk_root", "")).rstrip("/")
            if storage != "disk":
                problems.append(
                    f"{host}: mirror_sync_server_modules['{name}']: serves {path} but this node "
                    f"stores on {storage} (proxy_node_storage_type): replicas would pull an "
                    "empty tree"
                )
            elif path != root:
                problems.append(
                    f"{host}: mirror_sync_server_modules['{name}']: serves {path}, not the node's "
                    f"store {root} (proxy_node_storage_disk_root)"
                )
    for host in _hosts_in(network, "sync_replicas"):
        for job in _vars(network, host).get("mirror_sync_jobs") or []:
            source = str(job.get("source", ""))
            if source.startswith("rsync://"):
                src_host, _slash, rest = source[len("rsync://") :].partition("/")
            else:
                src_host, _colons, rest = source.partition("::")
            module = rest.split("/", 1)[0]
            if (src_host.split(":")[0], module) not in served:
                problems.append(
                    f"{host}: mirror_sync_jobs['{job.get('name', '?')}'].source: {source} is not a "
                    "module a sync_sources host serves"
                )
    return problems


# --------------------------------------------------------------------------- probes
def probe_name(dns_vars):
    return (
        str(dns_vars.get("geodns_checker_probe_host") or dns_vars.get("geodns_service") or "")
        .lower()
        .rstrip(".")
    )


def check_probes(network):
    """Every endpoint the GeoDNS checker probes over https presents a certificate that
    covers the name the checker sends (SNI and Host), and serves that name."""
    problems = []
    edges = _hosts_in(network, "edges")
    for dns in _hosts_in(network, "dns_servers"):
        v = _vars(network, dns)
        if v.get("geodns_checker_probe_scheme", "http") != "https":
            continue
        name = probe_name(v)
        for region in v.get("geodns_regions") or []:
            rname = str(region.get("name", ""))
            in_region = [e for e in edges if _vars(network, e).get("gomirror_region") == rname]
            if not in_region:
                problems.append(
                    f"{dns}: geodns_regions: region {rname!r} has endpoints but no edges host of "
                    "the inventory is in it, so no certificate can be checked for its probes"
                )
            for edge in in_region:
                ev = _vars(network, edge)
                cert_names = ev.get("nginx_edge_tls_names") or []
                if not cert_names:
                    problems.append(
                        f"{edge}: nginx_edge_tls_certificate: no certificate, but {dns} probes "
                        f"this region over https as {name}"
                    )
                elif not name_covered(name, cert_names):
                    problems.append(
                        f"{edge}: nginx_edge_tls_certificate: covers {', '.join(cert_names)}, not "
                        f"{name}, the name {dns} probes with (geodns_checker_probe_host or "
                        "geodns_service)"
                    )
                server_names = ev.get("nginx_edge_server_names") or []
                if server_names and not name_covered(name, server_names):
                    problems.append(
                        f"{edge}: nginx_edge_server_names: {', '.join(server_names)} does not "
                        f"answer {name}, the name {dns} probes with"
                    )
    return problems


# --------------------------------------------------------------------------- private
def private_patterns(network):
    """Every private module pattern anywhere in the network."""
    found = set()
    for info in network["hosts"].values():
        v = info.get("vars", {})
        for p in v.get("proxy_node_private_prefixes") or []:
            if p.get("pattern"):
                found.add(str(p["pattern"]))
        for p in v.get("goproxy_client_private_patterns") or []:
            found.add(str(p))
    return sorted(found)


def check_private(network):
    """No private module path reaches a public upstream: nodes fetch them directly
    (PrivatePatterns/NoSumPatterns come from proxy_node_private_prefixes) and clients keep
    them out of the proxy and the checksum database (GOPRIVATE)."""
    problems = []
    patterns = private_patterns(network)
    external = external_hosts(network)
    for host in _hosts_in(network, "proxy_nodes"):
        v = _vars(network, host)
        public = [u for u in v.get("proxy_node_upstreams") or [] if url_host(u) in external]
        have = [str(p.get("pattern", "")) for p in v.get("proxy_node_private_prefixes") or []]
        if not public:
            continue
        for pattern in patterns:
            if not any(pattern_covers(c, pattern) for c in have):
                problems.append(
                    f"{host}: proxy_node_private_prefixes: private {pattern} is missing, so its "
                    f"modules would be asked of {public[0]}"
                )
    for host in _hosts_in(network, "go_clients"):
        have = [str(p) for p in _vars(network, host).get("goproxy_client_private_patterns") or []]
        for pattern in patterns:
            if not any(pattern_covers(c, pattern) for c in have):
                problems.append(
                    f"{host}: goproxy_client_private_patterns: private {pattern} is missing, so "
                    "the "
                    "go command would send it to the proxy and the public checksum database"
                )
    return problems


def fallback_loops(network):
    """Warnings (not errors) for a node that asks another region by its pool name when that
    region's GeoDNS fallback leads back to the node's own region: while that region is
    down, the pool name answers with this region's edges, so the request comes back to
    this region until it times out before the chain goes on to the next upstream."""
    chains = {}
    for dns in _hosts_in(network, "dns_servers"):
        v = _vars(network, dns)
        service = str(v.get("geodns_service") or "").lower().rstrip(".")
        for region in v.get("geodns_regions") or []:
            name = f"{str(region.get('name', '')).lower()}.{service}"
            chains.setdefault(name, (dns, [str(f) for f in region.get("fallback") or []]))
    warnings = []
    for host in _hosts_in(network, "proxy_nodes"):
        v = _vars(network, host)
        own = v.get("gomirror_region")
        for url in v.get("proxy_node_upstreams") or []:
            name = url_host(url)
            if name in chains and own in chains[name][1]:
                dns, fallback = chains[name]
                warnings.append(
                    f"{host}: proxy_node_upstreams: {name} falls back to {own} (geodns_regions of "
                    f"{dns}: {', '.join(fallback)}) while its region is down, so this region's "
                    "requests come back to its own edges until they time out"
                )
    return warnings


CHECKS = (check_upstream_names, check_fallbacks, check_sync, check_probes, check_private)


def check_network(network):
    """Every topology problem of the network, in check order."""
    problems = []
    for check in CHECKS:
        problems.extend(check(network))
    return problems


def group_by_message(problems):
    """The problems with the same text for several hosts as one line naming them all
    (a group variable is wrong on every host of the group), in first-seen order."""
    hosts_of = {}
    for problem in problems:
        host, _colon, rest = problem.partition(": ")
        hosts_of.setdefault(rest, []).append(host)
    lines = []
    for rest, hosts in hosts_of.items():
        shown = ", ".join(hosts[:3]) + (f" and {len(hosts) - 3} more" if len(hosts) > 3 else "")
        lines.append(f"{shown}: {rest}")
    return lines
