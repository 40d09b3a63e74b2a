#!/usr/bin/python
# Copyright: gomirror project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Documentation only: the work is done on the controller by the action plugin of the
# same name (plugins/action/gomirror_topology.py).

DOCUMENTATION = r"""
---
module: gomirror_topology
short_description: Check that a gomirror inventory describes a network that works
version_added: "1.0.0"
description:
  - Reads every host's variables from the inventory on the controller (nothing is sent to a
    host) and checks the network they describe as a whole.
  - Every name a proxy node or Go client uses as an upstream (GOPROXY chains, checksum
    database upstreams, the clients' mirror URL) is a name GeoDNS publishes (C(geodns_service)
    or C(<region>.<service>)) or one of O(external_upstreams).
  - A node that asks another region first falls through to the public upstreams when that
    region is unreachable (C(|) separator); a checksum database upstream, which has no
    fallback, is not an internal name; every GeoDNS region has a fallback region.
  - Every rsync module of a sync source is the disk store of its node; every replica pulls
    a module a sync source serves.
  - Every edge the GeoDNS checker probes over https has a certificate covering the probe name.
  - Every private module pattern is in every node's C(proxy_node_private_prefixes) and every
    client's C(goproxy_client_private_patterns).
  - No secret variable holds a placeholder (CHANGE-ME, base64 of it, an all-zero checksum), no
    two regions share a TSIG secret, and outside the lab no certificate is the lab CA or
    signed by it.
  - Each problem names the host and the variable; values of secrets are never shown.
  - Warns (without failing) when a node asks another region by its pool name and that
    region's GeoDNS fallback leads back to the node's own region.
author:
  - gomirror project (@gomirror)
attributes:
  check_mode:
    support: full
    description: Only reads the inventory, so it runs unchanged in check mode.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no diff.
  action:
    support: full
    description: Runs on the controller as an action plugin.
options:
  external_upstreams:
    description:
      - URLs of the upstreams outside the network that nodes and clients may use (the
        public Go proxies and checksum database proxies).
    type: list
    elements: str
    default: []
  lab:
    description:
      - The inventory is the lab, whose CA is allowed.
    type: bool
    default: false
  hosts:
    description:
      - Inventory hosts to check (default every host of the inventory).
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Check the whole network before any host changes
  gomirror_topology:
    external_upstreams: "{{ gomirror_public_upstreams + [gomirror_public_sumdb] }}"
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
problems:
  description: 'Every problem found, as "<host>: <variable>: <what is wrong>".'
  returned: always
  type: list
  elements: str
  sample:
    - "sh-goproxy-node1: proxy_node_upstreams: core.goproxy.example.com is neither a name
      GeoDNS publishes ..."
hosts:
  description: How many hosts were checked.
  returned: always
  type: int
  sample: 15
"""
