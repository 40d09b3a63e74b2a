#!/usr/bin/python3
# Copyright: gomirror project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gomirror-geodns-checker: continuous health-check failover for the geodns role.

Every `interval` seconds it probes every region endpoint the way the go command uses a
GOPROXY (the canary module's .info and .mod, plugins/module_utils/gomirror_probe.py).
An endpoint is withdrawn after `fall` consecutive failures and restored after `rise`
consecutive successes. Whenever the set of withdrawn endpoints changes (and every
`resync` seconds anyway) it reconciles every BIND view through TSIG-signed dynamic
updates, with the same code the gomirror_geo_routing module runs
(gomirror_routing.py + gomirror_rfc2136.py): view <region> gets its region's effective
answer at <service>, every view gets every region's at <region>.<service>. The
reconcile is idempotent, so an unchanged health state sends no UPDATE.

The shared code is copied next to this file by the role, under
<lib>/ansible/module_utils/ (a package shim, so its `ansible.module_utils.*` imports
resolve without Ansible on the host).

    gomirror-geodns-checker --config checker.json [--keys keys.json] [--once] [--check-config]
    gomirror-geodns-checker --check-keys keys.json

State (per endpoint health, withdrawn list, last reconcile) is written as JSON to
<state_dir>/state.json after every round.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

LOG = logging.getLogger("gomirror-geodns-checker")
HERE = os.path.dirname(os.path.abspath(__file__))


def load_shared(lib_dir):
    sys.path.insert(0, lib_dir)
    from ansible.module_utils import (  # noqa: PLC0415 - the path is chosen at run time
        gomirror_probe,
        gomirror_rfc2136,
        gomirror_routing,
    )

    return gomirror_probe, gomirror_rfc2136, gomirror_routing


def load_keys(path, routing):
    """The view keys file: {region: {name, secret, algorithm}}, secrets checked."""
    with open(path) as fh:
        keys = json.load(fh)
    for region, key in keys.items():
        routing.validate_tsig_secret(key["secret"], key.get("name") or region)
        if not key.get("name") or not key.get("algorithm"):
            raise routing.RoutingError(f"key of region {region!r} needs name and algorithm")
    return keys


def load_config(path, routing, keys_path=None):
    with open(path) as fh:
        cfg = json.load(fh)
    cfg["keys"] = load_keys(keys_path or cfg["keys_file"], routing)
    topo = routing.validate_topology(
        {
            "service": cfg["service"],
            "zone": cfg["zone"],
            "ttl": cfg["ttl"],
            "owner_id": cfg["owner_id"],
            "default_region": cfg["default_region"],
            "regions": cfg["regions"],
            "health_check": {"enabled": False},
        }
    )
    names = [r["name"] for r in topo["regions"]]
    for name in names:
        key = cfg["keys"].get(name)
        if not key:
            raise routing.RoutingError(f"no TSIG key for region {name!r}")
        routing.validate_tsig_secret(key["secret"], key["name"])
    for key in ("interval", "fall", "rise", "timeout", "resync"):
        if float(cfg[key]) <= 0:
            raise routing.RoutingError(f"{key} must be positive")
    return cfg, topo


class Checker:
    def __init__(self, cfg, topo, probe_mod, rfc2136, routing):
        self.cfg = cfg
        self.topo = topo
        self.probe_mod = probe_mod
        self.rfc2136 = rfc2136
        self.routing = routing
        self.endpoints = [(r["name"], e) for r in topo["regions"] for e in r["endpoints"]]
        self.state_path = os.path.join(cfg["state_dir"], "state.json")
        previous = self._read_state()
        self.health = {}
        for region, ep in self.endpoints:
            old = previous.get(ep, {})
            self.health[ep] = {
                "region": region,
                "healthy": bool(old.get("healthy", True)),
                "successes": 0,
                "failures": 0,
                "reason": old.get("reason"),
                "since": old.get("since"),
            }
        self.applied = None  # withdrawn set last written to every view
        self.next_resync = 0.0
        self.last_reconcile = None
        self.stop = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=min(32, max(1, len(self.endpoints))))

    def _read_state(self):
        try:
            with open(self.state_path) as fh:
                return json.load(fh).get("endpoints", {})
        except (OSError, ValueError):
            return {}

    def base_url(self, ep):
        host = f"[{ep}]" if ":" in ep else ep
        return f"{self.cfg['probe']['scheme']}://{host}:{self.cfg['probe']['port']}"

    def probe_one(self, ep):
        p = self.cfg["probe"]
        headers = {"Host": p["host"]} if p.get("host") else None
        return self.probe_mod.probe(
            self.base_url(ep),
            p["module"],
            p["version"],
            timeout=float(self.cfg["timeout"]),
            retries=0,
            validate_certs=bool(p.get("validate_certs", True)),
            headers=headers,
            # The endpoint is an address; TLS speaks the probe name (SNI and the
            # certificate check), the name the edge's certificate covers.
            server_name=p.get("host") if p["scheme"] == "https" else None,
        )

    def round(self):
        """Probe every endpoint once; update fall/rise counters; return transitions."""
        eps = [ep for _r, ep in self.endpoints]
        results = dict(zip(eps, self.pool.map(self.probe_one, eps), strict=True))
        transitions = []
        now = time.time()
        for ep, res in results.items():
            h = self.health[ep]
            if res["healthy"]:
                h["successes"] += 1
                h["failures"] = 0
                if not h["healthy"] and h["successes"] >= int(self.cfg["rise"]):
                    h.update(healthy=True, since=now, reason=None)
                    transitions.append((ep, "restored"))
            else:
                h["failures"] += 1
                h["successes"] = 0
                h["reason"] = res["failure_reason"]
                if h["healthy"] and h["failures"] >= int(self.cfg["fall"]):
                    h.update(healthy=False, since=now)
                    transitions.append((ep, "withdrawn"))
        for ep, what in transitions:
            LOG.warning(
                "endpoint %s (region %s) %s%s",
                ep,
                self.health[ep]["region"],
                what,
                "" if what == "restored" else f": {self.health[ep]['reason']}",
            )
        return transitions

    def withdrawn(self):
        return sorted(ep for ep, h in self.health.items() if not h["healthy"])

    def reconcile(self, withdrawn):
        """Write every view; True when all views are in the wanted state."""
        ok = True
        changed_views = []
        for region in [r["name"] for r in self.topo["regions"]]:
            key = self.cfg["keys"][region]
            conn = self.rfc2136.Conn(
                {
                    "server": self.cfg["server"],
                    "port": self.cfg["port"],
                    "timeout": 5,
                    "key_name": key["name"],
                    "key_secret": key["secret"],
                    "key_algorithm": key["algorithm"],
                }
            )
            try:
                res = self.rfc2136.reconcile(
                    conn,
                    self.topo,
                    {"answer_region": region, "unhealthy_endpoints": withdrawn},
                    False,
                )
            except (self.rfc2136.ProviderError, self.routing.RoutingError) as exc:
                LOG.error("view %s: reconcile failed: %s", region, exc)
                ok = False
                continue
            if res["changed"]:
                changed_views.append(region)
        if changed_views:
            LOG.warning(
                "withdrawn endpoints %s: updated views %s",
                ", ".join(withdrawn) or "none",
                ", ".join(changed_views),
            )
        self.last_reconcile = {
            "time": time.time(),
            "ok": ok,
            "withdrawn": withdrawn,
            "changed_views": changed_views,
        }
        return ok

    def write_state(self):
        doc = {
            "updated": time.time(),
            "withdrawn": self.withdrawn(),
            "applied": self.applied,
            "last_reconcile": self.last_reconcile,
            "endpoints": self.health,
        }
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(doc, fh, indent=1, sort_keys=True)
        os.replace(tmp, self.state_path)

    def step(self):
        self.round()
        withdrawn = self.withdrawn()
        now = time.monotonic()
        if withdrawn != self.applied or now >= self.next_resync:
            if self.reconcile(withdrawn):
                self.applied = withdrawn
                self.next_resync = now + float(self.cfg["resync"])
            else:
                self.applied = None  # retry next round
        self.write_state()

    def run(self):
        interval = float(self.cfg["interval"])
        LOG.info(
            "checking %d endpoints every %ss (fall %s, rise %s), %d views on %s:%s",
            len(self.endpoints),
            interval,
            self.cfg["fall"],
            self.cfg["rise"],
            len(self.topo["regions"]),
            self.cfg["server"],
            self.cfg["port"],
        )
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                self.step()
            except Exception:  # keep the daemon alive; systemd would restart it anyway
                LOG.exception("round failed")
            self.stop.wait(max(0.0, interval - (time.monotonic() - start)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config")
    ap.add_argument("--lib", default=os.path.join(os.path.dirname(HERE), "lib"))
    ap.add_argument("--once", action="store_true", help="one probe round and reconcile")
    ap.add_argument("--keys", help="keys file (default: the config's keys_file)")
    ap.add_argument("--check-config", action="store_true", help="validate the config only")
    ap.add_argument("--check-keys", metavar="FILE", help="validate a keys file only")
    args = ap.parse_args(argv)
    if not args.config and not args.check_keys:
        ap.error("--config is required")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stdout)
    probe_mod, rfc2136, routing = load_shared(args.lib)
    if args.check_keys:
        try:
            keys = load_keys(args.check_keys, routing)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            LOG.error("invalid keys file %s: %s: %s", args.check_keys, type(exc).__name__, exc)
            return 2
        print(f"{args.check_keys}: OK ({len(keys)} keys)")
        return 0
    try:
        cfg, topo = load_config(args.config, routing, args.keys)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        LOG.error("invalid configuration %s: %s: %s", args.config, type(exc).__name__, exc)
        return 2
    if args.check_config:
        print(f"{args.config}: OK ({len(topo['regions'])} regions)")
        return 0
    checker = Checker(cfg, topo, probe_mod, rfc2136, routing)
    if args.once:
        checker.step()
        return 0
    signal.signal(signal.SIGTERM, lambda *_: checker.stop.set())
    signal.signal(signal.SIGINT, lambda *_: checker.stop.set())
    checker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
