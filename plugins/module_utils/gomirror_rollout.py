# Copyright: gomirror project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure rules of site.yml's per-region rollout: the batches a tier is rolled out in (one
region at a time, the canary host alone first, the core region last by default) and the
inventory group of each batch.

A play's `serial` and `hosts` are templated before any host is in play, with the `groups`
magic variable but without host variables; that is why site.yml computes the batches in
a planning play (module gomirror_rollout_plan), keeps them as inventory groups (add_host)
and reads their sizes back from `groups` for `serial`."""

from __future__ import annotations

# Zero-padded, so that the groups sort by name in batch order.
BATCH_GROUP = "gomirror_rollout_{tier}_batch_{index:03d}"


class RolloutError(ValueError):
    """A rollout order or a host's region that cannot be planned; the message names the
    host and the variable."""


def default_region_order(hosts, regions, core_region=""):
    """Every region in the order its first host appears, the core region moved last."""
    order = []
    for host in hosts:
        region = regions.get(host)
        if region and region not in order:
            order.append(region)
    if core_region in order:
        order.remove(core_region)
        order.append(core_region)
    return order


def rollout_batches(hosts, regions, order=None, core_region=""):
    """[[host, ...], ...]: the canary (first host of the first region) alone, the rest of
    its region, then each further region of `order` as one batch."""
    hosts = [str(h) for h in hosts or []]
    regions = {str(h): (str(r) if r else "") for h, r in (regions or {}).items()}
    missing = [h for h in hosts if not regions.get(h)]
    if missing:
        raise RolloutError(
            f"{', '.join(missing)}: gomirror_region: not set; every host rolled out per "
            "region needs its region (put it into a region_* group)"
        )
    if order:
        order = [str(r) for r in order]
        if len(set(order)) != len(order):
            raise RolloutError(f"gomirror_rollout_regions: {', '.join(order)} lists a region twice")
        unlisted = [h for h in hosts if regions[h] not in order]
        if unlisted:
            raise RolloutError(
                f"gomirror_rollout_regions: {', '.join(order)} does not list the region of "
                + ", ".join(f"{h} ({regions[h]})" for h in unlisted)
                + "; list every region once, in rollout order"
            )
    else:
        order = default_region_order(hosts, regions, core_region)
    batches = []
    for region in order:
        in_region = [h for h in hosts if regions[h] == region]
        if not batches and in_region:
            batches.append(in_region[:1])
            in_region = in_region[1:]
        if in_region:
            batches.append(in_region)
    return batches


def rollout_plan(tiers, play_hosts, regions, order=None, core_region=""):
    """{tier: [[hosts]]} and [{host, tier, group}] for add_host: every host of every tier
    ({tier: [hosts in inventory order]}) that is in play, with the group of its batch."""
    in_play = set(play_hosts or [])
    batches_of, plan = {}, []
    for tier, members in (tiers or {}).items():
        hosts = [h for h in members or [] if h in in_play]
        batches_of[tier] = rollout_batches(hosts, regions, order, core_region)
        for index, batch in enumerate(batches_of[tier], 1):
            group = BATCH_GROUP.format(tier=tier, index=index)
            plan.extend({"host": h, "tier": tier, "group": group} for h in batch)
    return batches_of, plan
