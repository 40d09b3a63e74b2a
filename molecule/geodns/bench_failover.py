#!/usr/bin/env python3
"""Failover benchmark for the geodns role, run against the molecule scenario's containers.

    molecule converge -s geodns          # containers up, role applied
    python molecule/geodns/bench_failover.py --trials 5

Each trial stops the cn edge's nginx, then every region's client polls the DNS server on
its own network (dig +norecurse, every 0.1 s) until none of its answers (the service name
and cn.<service>) holds the cn edge; failover = the slowest client's time minus the stop
time (both read from the containers' clock, which is the host's). Then nginx starts
again and recovery = until cn's client gets the cn edge back at the service name and
every client at cn.<service>. Authoritative answers are measured; a resolver's cache adds
up to the TTL on top. Prints a Markdown section for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SERVICE = "goproxy.mirror.example.test"
DNS = {"cn": "172.28.61.53", "ap": "172.28.62.53", "eu": "172.28.63.53"}
EDGE_CN = "172.28.61.10"
EDGE = "geodns-edge-cn"


def sh(container, script):
    out = subprocess.run(
        ["docker", "exec", container, "sh", "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=90,
    )
    return out.stdout


def pollers(mode):
    procs = {}
    for region, dns in DNS.items():
        names = [f"cn.{SERVICE}"]
        if mode == "exclude" or region == "cn":
            names.insert(0, SERVICE)
        client = f"geodns-client-{region}"
        procs[region] = subprocess.Popen(
            ["docker", "exec", client, "wait_answers", dns, mode, EDGE_CN, *names],
            stdout=subprocess.PIPE,
            text=True,
        )
    return procs


def collect(procs):
    done = {}
    for region, proc in procs.items():
        out, _ = proc.communicate(timeout=90)
        if proc.returncode != 0:
            raise SystemExit(f"client {region}: answers did not settle: {out}")
        lines = out.splitlines()
        done[region] = (float(lines[0]), lines[1:])
    return done


def trial(i):
    # de-phase the stop against the checker's probe rounds so trials sample the spread
    time.sleep((i * 0.37) % 2.0)
    t_stop = float(sh(EDGE, "date +%s.%N; nginx -s stop").split()[0])
    procs = pollers("exclude")
    down = collect(procs)
    failover = max(t for t, _ in down.values()) - t_stop
    if down["cn"][1][0] != f"{SERVICE} = 172.28.62.10 ":
        raise SystemExit(f"cn clients did not fail over to ap: {down['cn'][1]}")
    time.sleep(1.0 + (i * 0.53) % 2.0)
    t_start = float(sh(EDGE, "date +%s.%N; nginx").split()[0])
    up = collect(pollers("include"))
    recovery = max(t for t, _ in up.values()) - t_start
    # let the checker's rise counter and state settle before the next stop
    time.sleep(2.0)
    return failover, recovery


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=5)
    args = ap.parse_args()
    cfg = yaml.safe_load((HERE / "vars" / "geodns.yml").read_text())
    for region in DNS:
        subprocess.run(
            [
                "docker",
                "cp",
                str(HERE / "files" / "wait_answers.sh"),
                f"geodns-client-{region}:/usr/local/bin/wait_answers",
            ],
            check=True,
        )
    # start from a healthy, settled state
    collect(pollers("include"))
    rows = []
    for i in range(args.trials):
        f, r = trial(i)
        rows.append((f, r))
        print(f"trial {i + 1}: failover {f:.2f} s, recovery {r:.2f} s", file=sys.stderr)
    fo = [f for f, _ in rows]
    rc = [r for _, r in rows]

    def stats(xs):
        return f"{min(xs):.2f} | {statistics.median(xs):.2f} | {max(xs):.2f}"

    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"""
## geodns failover

`python molecule/geodns/bench_failover.py --trials {args.trials}` against the containers of
`molecule converge -s geodns`, {when}.

Checker settings: interval {cfg["geodns_checker_interval"]} s, fall {cfg["geodns_checker_fall"]},
rise {cfg["geodns_checker_rise"]}, probe timeout {cfg["geodns_checker_timeout"]} s. Answer TTL
{cfg["geodns_ttl"]} s.

Each trial stops the cn edge's nginx, so its probes get connection refused. The three
region clients poll the authoritative server on their own network every 0.1 s.

* **Failover** runs from the stop until no view answers the cn edge at `{SERVICE}` or
  at `cn.{SERVICE}`.
* **Recovery** runs from the restart until cn's clients get the cn edge again at
  `{SERVICE}` and every view has it at `cn.{SERVICE}`.

| measure ({args.trials} trials) | min s | median s | max s |
|---|---|---|---|
| failover (edge stopped -> excluded everywhere) | {stats(fo)} |
| recovery (edge back -> included again) | {stats(rc)} |

Per trial (failover / recovery, s): {", ".join(f"{f:.2f} / {r:.2f}" for f, r in rows)}.

A client behind a caching resolver can see the change up to one TTL
({cfg["geodns_ttl"]} s) later.
""")


if __name__ == "__main__":
    main()
