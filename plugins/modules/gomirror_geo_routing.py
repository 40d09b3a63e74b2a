#!/usr/bin/python
# Copyright: gomirror project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)


DOCUMENTATION = r"""
---
module: gomirror_geo_routing
short_description: Reconcile GeoIP DNS routing for a multi-region Go module mirror
version_added: "1.0.0"
description:
  - Takes a whole routing topology (service name, regions with endpoints and client
    matches, per-region fallback order, default region, TTL, health checks) and reconciles
    it onto a DNS provider in one call.
  - Records are owned the external-dns way, with an ownership TXT record next to every
    owned name
    (C("heritage=gomirror,gomirror/owner=<owner_id>,gomirror/resource=<service>/<kind>...")).
    The module only ever changes or deletes records at names it owns for this
    O(owner_id) and O(service), and refuses to take over names that already carry
    A, AAAA or TXT records it does not own.
  - With O(provider=route53) it maintains per-region multivalue pools with one health
    check per endpoint, per-region failover alias chains following the fallback order,
    and geolocation records at the service name including the default location C(*).
    See C(docs/dns-routing.md).
  - With O(provider=rfc2136) it maintains C(<region>.<service>) and C(<service>) A/AAAA
    records on a self-hosted authoritative server through TSIG-signed dynamic updates;
    the GeoIP part is done by the server configuration (for example one BIND view per
    region). See C(docs/dns-routing.md).
  - All input is validated before anything is read or changed.
author:
  - gomirror project (@gomirror)
requirements:
  - boto3 (for O(provider=route53))
  - dnspython >= 2.0 (for O(provider=rfc2136))
attributes:
  check_mode:
    support: full
    description: Nothing is written; with O(provider=rfc2136) no UPDATE message is sent.
  diff_mode:
    support: full
    description: Returns the owned records before and after, one sorted line per record.
options:
  provider:
    description: Where the records live.
    type: str
    required: true
    choices: [route53, rfc2136]
  state:
    description:
      - V(present) reconciles the topology; V(absent) removes every record (and, for
        Route53, health check) owned by O(owner_id) for O(service).
    type: str
    default: present
    choices: [present, absent]
  service:
    description: Client-facing name of the mirror, for example C(goproxy.mirror.example.com).
    type: str
    required: true
  zone:
    description: DNS zone (Route53 hosted zone name) that contains O(service).
    type: str
    required: true
  owner_id:
    description:
      - Identity written into the ownership TXT records; records owned by another
        owner are never modified.
    type: str
    default: default
  ttl:
    description: TTL of non-alias records, 1 to 604800 seconds.
    type: int
    default: 60
  default_region:
    description:
      - Region answering clients that match no region (Route53 default location C(*),
        and the O(service) records with O(provider=rfc2136)).
      - Required when O(state=present).
    type: str
  regions:
    description: The regions. Required when O(state=present).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Region name, a DNS label (used in record names).
        type: str
        required: true
      endpoints:
        description: IPv4 and/or IPv6 addresses of the region's mirror front ends.
        type: list
        elements: str
        required: true
      countries:
        description: ISO 3166-1 alpha-2 country codes routed to this region.
        type: list
        elements: str
        default: []
      subdivisions:
        description: ISO 3166-2 subdivisions (C(US-CA)) routed to this region.
        type: list
        elements: str
        default: []
      cidrs:
        description:
          - Client networks routed to this region. Must not overlap between regions.
          - Not supported with O(provider=route53) (fails validation); with
            O(provider=rfc2136) they are only validated and returned for the view ACLs.
        type: list
        elements: str
        default: []
      fallback:
        description: Regions to fail over to, in order, when this region is unhealthy.
        type: list
        elements: str
        default: []
  health_check:
    description: Health check settings (one check per endpoint with Route53).
    type: dict
    default: {}
    suboptions:
      enabled:
        description: Create and attach health checks (Route53).
        type: bool
        default: true
      protocol:
        description: Protocol of the check.
        type: str
        default: HTTPS
        choices: [HTTP, HTTPS]
      port:
        description: Port, default 443 for HTTPS and 80 for HTTP.
        type: int
      path:
        description:
          - Request path. Defaults to the C(.info) path of the canary module,
            C(/<canary_module>/@v/<canary_version>.info).
        type: str
      canary_module:
        description: Canary module path used for the default O(health_check.path).
        type: str
        default: golang.org/x/text
      canary_version:
        description: Canary module version used for the default O(health_check.path).
        type: str
        default: v0.3.0
      host:
        description: Host header / SNI name of the check; defaults to O(service).
        type: str
      interval:
        description: Seconds between checks.
        type: int
        default: 30
        choices: [10, 30]
      failure_threshold:
        description: Consecutive failures before an endpoint is unhealthy (1-10).
        type: int
        default: 3
  route53:
    description: Route53 connection options.
    type: dict
    default: {}
    suboptions:
      hosted_zone_id:
        description: Hosted zone id; looked up from O(zone) when omitted.
        type: str
      endpoint_url:
        description: Alternative Route53 API endpoint.
        type: str
      aws_region:
        description: AWS region for the API client.
        type: str
        default: us-east-1
      profile:
        description: boto3 profile name.
        type: str
      access_key:
        description: AWS access key id; otherwise the usual boto3 credential chain.
        type: str
      secret_key:
        description: AWS secret access key.
        type: str
      session_token:
        description: AWS session token.
        type: str
  rfc2136:
    description: RFC 2136 connection options.
    type: dict
    default: {}
    suboptions:
      server:
        description: Primary authoritative server (address or name).
        type: str
      port:
        description: Server port.
        type: int
        default: 53
      protocol:
        description: Transport for updates (zone reads always use TCP).
        type: str
        default: tcp
        choices: [tcp, udp]
      timeout:
        description: Timeout in seconds for each DNS exchange.
        type: float
        default: 10
      key_name:
        description: TSIG key name. The key must be allowed to update and AXFR the zone.
        type: str
      key_secret:
        description: Base64 TSIG secret.
        type: str
      key_algorithm:
        description: TSIG algorithm.
        type: str
        default: hmac-sha256
        choices: [hmac-md5, hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384, hmac-sha512]
      answer_region:
        description:
          - Region whose answer is written at O(service) itself. Use one call per BIND
            view (each view with its own zone copy and TSIG key) with that view's region;
            defaults to O(default_region).
        type: str
      unhealthy_endpoints:
        description:
          - Endpoints currently failing their probe (for example from
            C(gomirror_proxy_probe)); regions without a healthy endpoint fail over to
            the next region of their fallback list.
        type: list
        elements: str
        default: []
notes:
  - Route53 CIDR collections are not used; regions with O(regions[].cidrs) fail
    validation with O(provider=route53).
  - Route53 health check ids are returned in RV(health_checks); checks are tagged with
    C(Name), C(gomirror/owner), C(gomirror/service) and C(gomirror/key).
"""

EXAMPLES = r"""
- name: Route mirror clients to the nearest region, with failover
  gomirror_geo_routing:
    provider: route53
    service: goproxy.mirror.example.com
    zone: mirror.example.com
    owner_id: prod
    default_region: eu
    ttl: 60
    regions:
      - name: eu
        endpoints: [192.0.2.10, 192.0.2.11, "2001:db8::10"]
        countries: [DE, FR, NL]
        fallback: [us]
      - name: us
        endpoints: [198.51.100.10]
        countries: [US, CA]
        subdivisions: []
        fallback: [eu]
    health_check:
      protocol: HTTPS
      canary_module: golang.org/x/text
      canary_version: v0.3.0
      interval: 30
      failure_threshold: 3

- name: Same topology on BIND, view "eu" (its own zone copy, selected by its TSIG key)
  gomirror_geo_routing:
    provider: rfc2136
    service: goproxy.mirror.example.com
    zone: mirror.example.com
    owner_id: prod
    default_region: eu
    regions: "{{ mirror_regions }}"
    rfc2136:
      server: 192.0.2.53
      key_name: eu-update
      key_secret: "{{ vault_tsig_eu }}"
      answer_region: eu
      unhealthy_endpoints: "{{ failed_probes | default([]) }}"
"""

RETURN = r"""
changed:
  description: Whether records or health checks were (or in check mode would be) changed.
  returned: always
  type: bool
records:
  description: The wanted records, one dict per record (name, type, set_id, ttl, values,
    alias, geo, failover, multivalue, health_check).
  returned: always
  type: list
  elements: dict
records_text:
  description: The wanted records as sorted one-line strings.
  returned: always
  type: list
  elements: str
created:
  description: Records created (one-line strings).
  returned: always
  type: list
  elements: str
updated:
  description: Records updated (one-line strings of the new state).
  returned: always
  type: list
  elements: str
deleted:
  description: Owned records deleted because they are no longer wanted.
  returned: always
  type: list
  elements: str
health_checks:
  description: Route53 health checks, keyed by C(<region>/<endpoint>), with id, name,
    type, port, path and what was done (created, updated, replaced, unchanged).
  returned: always
  type: dict
health_checks_deleted:
  description: Ids of owned Route53 health checks that were deleted.
  returned: always
  type: list
  elements: str
routing:
  description: Per region and address family, the fallback chain and (rfc2136) the region
    currently answering.
  returned: when state=present
  type: dict
diff:
  description: Sorted owned records before and after.
  returned: always
  type: dict
  contains:
    before:
      description: Owned records before, one per line.
      type: str
    after:
      description: Owned records after, one per line.
      type: str
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402

# Run from the repository (module_utils=./plugins/module_utils) the shared code is
# ansible.module_utils.*; installed as the collection gomirror.network it is the
# collection's module_utils. The repository's copy is tried first so that a copy of the
# collection installed elsewhere (ansible-lint installs one) never shadows the tree.
try:
    from ansible.module_utils import gomirror_rfc2136 as r2136
    from ansible.module_utils import gomirror_route53 as r53
    from ansible.module_utils import gomirror_routing as _routing
except ImportError:
    from ansible_collections.gomirror.network.plugins.module_utils import (
        gomirror_rfc2136 as r2136,
    )
    from ansible_collections.gomirror.network.plugins.module_utils import (
        gomirror_route53 as r53,
    )
    from ansible_collections.gomirror.network.plugins.module_utils import (
        gomirror_routing as _routing,
    )

RoutingError = _routing.RoutingError
desired_health_checks = _routing.desired_health_checks
desired_route53 = _routing.desired_route53
diff_text = _routing.diff_text
record_text = _routing.record_text
routing_summary = _routing.routing_summary
validate_topology = _routing.validate_topology
validate_tsig_secret = _routing.validate_tsig_secret


def argument_spec():
    region = dict(
        name=dict(type="str", required=True),
        endpoints=dict(type="list", elements="str", required=True),
        countries=dict(type="list", elements="str", default=[]),
        subdivisions=dict(type="list", elements="str", default=[]),
        cidrs=dict(type="list", elements="str", default=[]),
        fallback=dict(type="list", elements="str", default=[]),
    )
    health = dict(
        enabled=dict(type="bool", default=True),
        protocol=dict(type="str", default="HTTPS", choices=["HTTP", "HTTPS"]),
        port=dict(type="int"),
        path=dict(type="str"),
        canary_module=dict(type="str", default="golang.org/x/text"),
        canary_version=dict(type="str", default="v0.3.0"),
        host=dict(type="str"),
        interval=dict(type="int", default=30, choices=[10, 30]),
        failure_threshold=dict(type="int", default=3),
    )
    route53 = dict(
        hosted_zone_id=dict(type="str"),
        endpoint_url=dict(type="str"),
        aws_region=dict(type="str", default="us-east-1"),
        profile=dict(type="str"),
        access_key=dict(type="str", no_log=True),
        secret_key=dict(type="str", no_log=True),
        session_token=dict(type="str", no_log=True),
    )
    rfc2136 = dict(
        server=dict(type="str"),
        port=dict(type="int", default=53),
        protocol=dict(type="str", default="tcp", choices=["tcp", "udp"]),
        timeout=dict(type="float", default=10),
        key_name=dict(type="str", no_log=False),
        key_secret=dict(type="str", no_log=True),
        key_algorithm=dict(
            type="str",
            default="hmac-sha256",
            choices=[
                "hmac-md5",
                "hmac-sha1",
                "hmac-sha224",
                "hmac-sha256",
                "hmac-sha384",
                "hmac-sha512",
            ],
            no_log=False,
        ),
        answer_region=dict(type="str"),
        unhealthy_endpoints=dict(type="list", elements="str", default=[]),
    )
    return dict(
        provider=dict(type="str", required=True, choices=["route53", "rfc2136"]),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        service=dict(type="str", required=True),
        zone=dict(type="str", required=True),
        owner_id=dict(type="str", default="default"),
        ttl=dict(type="int", default=60),
        default_region=dict(type="str"),
        regions=dict(type="list", elements="dict", options=region, default=[]),
        health_check=dict(type="dict", options=health, default={}),
        route53=dict(
            type="dict",
            options=route53,
            default={},
            required_together=[["access_key", "secret_key"]],
        ),
        rfc2136=dict(
            type="dict",
            options=rfc2136,
            default={},
            required_together=[["key_name", "key_secret"]],
        ),
    )


def _absent_topology(params):
    """For state=absent only service/zone/owner matter; build a minimal topology."""
    return validate_topology(
        dict(
            service=params["service"],
            zone=params["zone"],
            ttl=params["ttl"],
            owner_id=params["owner_id"],
            default_region="x",
            regions=[dict(name="x", endpoints=["192.0.2.1"])],
            health_check=dict(enabled=False),
        )
    )


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=[
            ("state", "present", ("regions", "default_region")),
        ],
        supports_check_mode=True,
    )
    p = module.params
    provider = p["provider"]

    if provider == "rfc2136" and not (p["rfc2136"] or {}).get("server"):
        module.fail_json(msg="rfc2136.server is required when provider=rfc2136")

    routing = None  # only state=present has a routing summary
    try:
        topo = validate_topology(p) if p["state"] == "present" else _absent_topology(p)
        if provider == "rfc2136":
            validate_tsig_secret(p["rfc2136"].get("key_secret"), p["rfc2136"].get("key_name"))
            if p["state"] == "present":
                ans = p["rfc2136"].get("answer_region")
                if ans and ans.lower() not in [r["name"] for r in topo["regions"]]:
                    raise RoutingError(f"rfc2136.answer_region {ans!r} is not one of the regions")
                routing = routing_summary(topo, p["rfc2136"].get("unhealthy_endpoints"))
        elif p["state"] == "present":
            routing = routing_summary(topo)
            desired_route53(topo)  # validates route53-specific constraints (cidrs)
    except RoutingError as exc:
        module.fail_json(msg=f"invalid topology: {exc}")
    except ValueError as exc:
        module.fail_json(msg=f"invalid input: {exc}")

    health_checks = {}
    hc_deleted = []
    if provider == "route53":
        if not r53.HAS_BOTO3:
            module.fail_json(
                msg=missing_required_lib("boto3"), exception=str(r53.BOTO3_IMPORT_ERROR)
            )
        try:
            cl = r53.client(p["route53"])
            res = r53.reconcile(cl, topo, p["route53"], module.check_mode, p["state"])
        except r53.ProviderError as exc:
            module.fail_json(msg=str(exc))
        except Exception as exc:  # botocore credential/endpoint errors etc.
            module.fail_json(msg=f"Route53 error: {type(exc).__name__}: {exc}")
        hp = res["hc_plan"]
        ids = res.get("health_check_ids", {})
        actions = {}
        for h in hp["create"]:
            actions[h["key"]] = "created"
        for u in hp["update"]:
            actions[u["after"]["key"]] = "updated"
        for u in hp["replace"]:
            actions[u["after"]["key"]] = "replaced"

        wanted_hcs = desired_health_checks(topo) if p["state"] == "present" else {}
        for key, want in sorted(wanted_hcs.items()):
            item = dict(want)
            item["id"] = ids.get(key)
            item["action"] = actions.get(key, "unchanged")
            health_checks[key] = item
        hc_deleted = sorted(h["id"] for h in hp["delete"])
        hc_deleted += sorted(u["before"]["id"] for u in hp["replace"])
    else:
        if not r2136.HAS_DNSPYTHON:
            module.fail_json(
                msg=missing_required_lib("dnspython"), exception=str(r2136.DNSPYTHON_IMPORT_ERROR)
            )
        try:
            conn = r2136.Conn(p["rfc2136"])
            res = r2136.reconcile(conn, topo, p["rfc2136"], module.check_mode, p["state"])
        except r2136.ProviderError as exc:
            module.fail_json(msg=str(exc))

    plan = res["plan"]
    result = dict(
        changed=res["changed"],
        provider=provider,
        service=topo["service"],
        records=res["desired"],
        records_text=sorted(record_text(r) for r in res["desired"]),
        created=[record_text(r) for r in plan["create"]],
        updated=[record_text(u["after"]) for u in plan["update"]],
        deleted=[record_text(r) for r in plan["delete"]],
        health_checks=health_checks,
        health_checks_deleted=hc_deleted,
        diff=dict(before=diff_text(res["current"]), after=diff_text(res["desired"])),
    )
    if p["state"] == "present":
        result["routing"] = routing
    if provider == "route53":
        result["zone_id"] = res["zone_id"]
    else:
        result["serial_before"] = res.get("serial_before")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
