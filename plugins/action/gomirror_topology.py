# Copyright: gomirror project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of gomirror_topology: reads every host's variables from the inventory on
the controller and runs the pure checks of module_utils/gomirror_topology.py and
module_utils/gomirror_secrets.py. Nothing is sent to a host."""

from __future__ import annotations

import importlib.util
import os

import yaml
from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase


def _shared(name):
    """The shared pure code: the collection's module_utils when this plugin was loaded
    from the installed collection gomirror.network; from the repository, the file next
    to this plugin (module_utils paths are only mapped for modules, not for
    controller-side plugins)."""
    if __name__.startswith("ansible_collections."):
        return importlib.import_module(
            f"ansible_collections.gomirror.network.plugins.module_utils.{name}"
        )
    path = os.path.join(os.path.dirname(__file__), "..", "module_utils", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_gomirror_shared_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_secrets = _shared("gomirror_secrets")
_topology = _shared("gomirror_topology")

# The variables the topology checks read, by the role whose defaults complete them.
TOPOLOGY_VARIABLES = {
    None: ("gomirror_region", "gomirror_address"),
    "proxy_node": (
        "proxy_node_upstreams",
        "proxy_node_upstream_separator",
        "proxy_node_sumdbs",
        "proxy_node_private_prefixes",
        "proxy_node_storage_type",
        "proxy_node_storage_disk_root",
    ),
    "mirror_sync": ("mirror_sync_server_enabled", "mirror_sync_server_modules", "mirror_sync_jobs"),
    "goproxy_client": (
        "goproxy_client_mirror_url",
        "goproxy_client_fallback_proxies",
        "goproxy_client_private_patterns",
        "goproxy_client_sumdb_url",
    ),
    "geodns": (
        "geodns_service",
        "geodns_regions",
        "geodns_checker_probe_scheme",
        "geodns_checker_probe_host",
    ),
    "nginx_edge": ("nginx_edge_server_names", "nginx_edge_region"),
}
# The inventory groups each role is applied to (site.yml).
ROLE_GROUPS = {
    "proxy_node": ("proxy_nodes",),
    "mirror_sync": ("sync_sources", "sync_replicas"),
    "goproxy_client": ("go_clients",),
    "geodns": ("dns_servers",),
    "nginx_edge": ("edges",),
}
# Credentials inside entries the topology reads; dropped before the checks see them.
_CREDENTIAL_KEYS = ("password", "login")
ROLES_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "roles")


def role_defaults(role):
    """The role's literal defaults (templated ones are left to the inventory)."""
    path = os.path.join(ROLES_DIR, role, "defaults", "main.yml")
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh) or {}
    except OSError:
        return {}
    return {k: v for k, v in data.items() if "{{" not in repr(v)}


def _strip_credentials(value):
    if isinstance(value, list):
        return [_strip_credentials(v) for v in value]
    if isinstance(value, dict):
        return {k: _strip_credentials(v) for k, v in value.items() if k not in _CREDENTIAL_KEYS}
    return value


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("external_upstreams", "lab", "hosts"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        hostvars = task_vars["hostvars"]
        groups = task_vars["groups"]
        hosts = list(args.get("hosts") or groups.get("all", []))
        lab = bool(args.get("lab", False))
        external = list(args.get("external_upstreams") or [])
        memberships = {h: [g for g, members in groups.items() if h in members] for h in hosts}
        defaults = {role: role_defaults(role) for role in TOPOLOGY_VARIABLES if role}

        problems = []
        network = {"hosts": {}, "external_upstreams": external}
        dns_secrets = {}
        for host in hosts:
            render = self._renderer(hostvars, host, problems)
            variables = {}
            for role, names in TOPOLOGY_VARIABLES.items():
                if role and not set(memberships[host]) & set(ROLE_GROUPS[role]):
                    continue
                for name in names:
                    found, value = render(name)
                    if not found and role:
                        found, value = name in defaults[role], defaults[role].get(name)
                    if found and value is not None:
                        variables[name] = _strip_credentials(value)
            problems.extend(self._certificates(render, host, variables, lab))
            secrets = {}
            for name in sorted(hostvars.raw_get(host)):
                if _secrets.is_secret_variable(name):
                    found, value = render(name)
                    if found:
                        secrets[name] = value
            problems.extend(_secrets.check_placeholders(host, secrets))
            if "dns_servers" in memberships[host] and isinstance(
                secrets.get("geodns_tsig_secrets"), dict
            ):
                dns_secrets[host] = secrets["geodns_tsig_secrets"]
            network["hosts"][host] = {"groups": memberships[host], "vars": variables}
        problems.extend(_secrets.check_tsig_reuse(dns_secrets))
        problems.extend(_topology.check_network(network))

        result["changed"] = False
        result["problems"] = problems
        loops = _topology.fallback_loops(network)
        if loops:
            result["warnings"] = _topology.group_by_message(loops)
        result["hosts"] = len(hosts)
        if problems:
            result["failed"] = True
            result["msg"] = f"{len(problems)} topology problem(s):\n" + "\n".join(
                _topology.group_by_message(problems)
            )
        else:
            result["msg"] = f"topology of {len(hosts)} hosts is consistent"
        return result

    def _renderer(self, hostvars, host, problems):
        """render(name) -> (found, value): a host's variable templated in that host's
        context (its variables, the magic ones and hostvars); a failure is a problem."""
        raw = hostvars.raw_get(host)
        templar = self._templar.copy_with_new_env(available_variables=dict(raw, hostvars=hostvars))

        def render(name):
            if name not in raw:
                return False, None
            try:
                return True, templar.template(raw[name])
            except AnsibleError as exc:
                problems.append(f"{host}: {name}: cannot be rendered ({exc.message})")
                return False, None

        return render

    @staticmethod
    def _certificates(render, host, variables, lab):
        problems = []
        pem = render("nginx_edge_tls_certificate")[1]
        if pem:
            try:
                info = _secrets.certificate_names(pem)
            except ValueError as exc:
                return [f"{host}: nginx_edge_tls_certificate: is not a PEM certificate ({exc})"]
            variables["nginx_edge_tls_names"] = info["dns"] + info["ips"]
            problems.extend(_secrets.check_lab_ca(host, "nginx_edge_tls_certificate", info, lab))
        for entry in render("ca_trust_certificates")[1] or []:
            label = f"ca_trust_certificates['{entry.get('name', '?')}']"
            try:
                info = _secrets.certificate_names(entry.get("content", ""))
            except ValueError as exc:
                problems.append(f"{host}: {label}: is not a PEM certificate ({exc})")
                continue
            problems.extend(_secrets.check_lab_ca(host, label, info, lab))
        return problems
