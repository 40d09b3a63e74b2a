# Copyright: gomirror project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter of the geodns role's preflight: the role's inputs checked on the controller by
the routing code the gomirror_geo_routing module and the checker use."""

from __future__ import annotations

import importlib
import importlib.util
import os

DOCUMENTATION = r"""
name: gomirror_geodns_preflight
short_description: Validate the geodns role's topology, zones and GeoIP networks
version_added: "1.0.0"
description:
  - Checks the routing topology with the same rules as the gomirror_geo_routing module and
    the health checker (module_utils/gomirror_routing.py), plus the zones and GeoIP
    networks only the role takes.
  - Returns C(error) (a message naming the variable, or an empty string), C(zone),
    C(topology) (normalised), C(geoip_networks) and C(warnings).
options:
  _input:
    description:
      - Dict of service, zones, ttl, owner_id, default_region, regions, geoip_source and
        geoip_networks (the role's variables without their geodns_ prefix).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Validate the topology
  ansible.builtin.set_fact:
    _geodns_preflight: "{{ _geodns_inputs | gomirror_geodns_preflight }}"
  vars:
    _geodns_inputs:
      service: "{{ geodns_service }}"
      zones: "{{ geodns_zones }}"
      regions: "{{ geodns_regions }}"
"""

RETURN = r"""
_value:
  description: error, zone, topology, geoip_networks, warnings.
  type: dict
"""


def _routing():
    """The shared routing code: the collection's module_utils when loaded from the
    installed collection, else the file next to this plugin in the repository."""
    if __name__.startswith("ansible_collections."):
        return importlib.import_module(
            "ansible_collections.gomirror.network.plugins.module_utils.gomirror_routing"
        )
    path = os.path.join(os.path.dirname(__file__), "..", "module_utils", "gomirror_routing.py")
    spec = importlib.util.spec_from_file_location("_gomirror_shared_gomirror_routing", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def geodns_preflight(params):
    routing = _routing()
    try:
        out = routing.geodns_inputs(dict(params))
    except routing.RoutingError as exc:
        return {"error": str(exc), "zone": "", "topology": {}, "geoip_networks": [], "warnings": []}
    return dict(out, error="")


class FilterModule:
    def filters(self):
        return {"gomirror_geodns_preflight": geodns_preflight}
