#!/usr/bin/python
# Copyright: gomirror project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: gomirror_rollout_plan
short_description: Plan a per-region rollout (canary host first, core region last)
version_added: "1.0.0"
description:
  - Splits the hosts of each tier into rollout batches, one region at a time, in the order
    O(order) gives; when it is empty, every region in the order its first host appears,
    O(core_region) last. The first host of the first region is a batch of its own (the
    canary).
  - Returns, for C(ansible.builtin.add_host), every host with the inventory group of its
    batch, C(gomirror_rollout_<tier>_batch_NNN); site.yml reads the batch sizes back from
    C(groups) for C(serial), which is templated without host variables.
  - Fails naming the host and the variable when a host has no region, or the order leaves
    out the region of a host or lists a region twice.
  - Computes only; run it on the controller (a local connection).
author:
  - gomirror project (@gomirror)
attributes:
  check_mode:
    support: full
    description: Changes nothing, so it runs unchanged in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is no diff.
options:
  tiers:
    description: The hosts of each tier in inventory order (tier name to host names).
    type: dict
    required: true
  play_hosts:
    description: The hosts in play (C(ansible_play_hosts_all)); the others are left out.
    type: list
    elements: str
    required: true
  regions:
    description: The region of each host (host name to its C(gomirror_region)).
    type: dict
    required: true
  order:
    description: The regions in rollout order (C(gomirror_rollout_regions)); empty for the default.
    type: list
    elements: str
    default: []
  core_region:
    description: The core region, last in the default order (C(gomirror_core_region)).
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Plan the rollout of the edges
  gomirror_rollout_plan:
    tiers:
      edges: "{{ groups['edges'] }}"
    play_hosts: "{{ ansible_play_hosts_all }}"
    regions: "{{ dict(_edges | zip(_edges | map('extract', hostvars, 'gomirror_region'))) }}"
    core_region: "{{ gomirror_core_region }}"
  vars:
    _edges: "{{ groups['edges'] }}"
  register: rollout
  run_once: true
"""

RETURN = r"""
batches:
  description: The batches of each tier, each a list of host names, in rollout order.
  returned: always
  type: dict
  sample: {"edges": [["sh-edge1"], ["sh-edge2"], ["bj-edge1", "bj-edge2"]]}
plan:
  description: Every host in play with its tier and the group of its batch, in rollout order.
  returned: always
  type: list
  elements: dict
  sample: [{"host": "sh-edge1", "tier": "edges", "group": "gomirror_rollout_edges_batch_001"}]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

# Run from the repository (module_utils=./plugins/module_utils) the shared code is
# ansible.module_utils.*; installed as the collection gomirror.network it is the
# collection's module_utils.
try:
    from ansible.module_utils.gomirror_rollout import RolloutError, rollout_plan
except ImportError:
    from ansible_collections.gomirror.network.plugins.module_utils.gomirror_rollout import (
        RolloutError,
        rollout_plan,
    )


def main():
    module = AnsibleModule(
        argument_spec={
            "tiers": {"type": "dict", "required": True},
            "play_hosts": {"type": "list", "elements": "str", "required": True},
            "regions": {"type": "dict", "required": True},
            "order": {"type": "list", "elements": "str", "default": []},
            "core_region": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        batches, plan = rollout_plan(
            p["tiers"], p["play_hosts"], p["regions"], p["order"], p["core_region"]
        )
    except RolloutError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, batches=batches, plan=plan)


if __name__ == "__main__":
    main()
