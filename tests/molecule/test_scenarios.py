"""Every molecule scenario, run as `molecule test -s NAME` from the repository root.

GOMIRROR_MOLECULE_SCENARIOS (space-separated) picks scenarios; by default all of them.
Each scenario's full output goes to .cache/run/molecule-NAME.log, every line prefixed with
the seconds since the scenario started (where the suite's time goes); a failure shows its
tail.
Every scenario is in this one file, so make test's `-n 2 --dist loadfile` runs them on one
worker, one after another: two scenarios at once on 2 cores would slow both past their
timeouts.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import CACHE, REPO


def scenarios() -> list[str]:
    chosen = os.environ.get("GOMIRROR_MOLECULE_SCENARIOS", "").split()
    if chosen:
        return chosen
    return sorted(p.parent.name for p in (REPO / "molecule").glob("*/molecule.yml"))


@pytest.mark.molecule
@pytest.mark.parametrize("scenario", scenarios())
def test_molecule_scenario(scenario: str):
    assert (REPO / "molecule" / scenario / "molecule.yml").is_file(), f"no scenario {scenario}"
    log = CACHE / "run" / f"molecule-{scenario}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PY_COLORS="0", ANSIBLE_FORCE_COLOR="0", NO_COLOR="1")
    rc = run_timestamped(["molecule", "test", "-s", scenario], env, log, timeout=1800)
    if rc != 0:
        tail = "\n".join(Path(log).read_text(errors="replace").splitlines()[-150:])
        pytest.fail(f"molecule test -s {scenario} exited {rc}; log {log}:\n{tail}")


def run_timestamped(cmd: list[str], env: dict, log: Path, timeout: float) -> int:
    """Run cmd from the repository root, its output into log with "[SSSS.s] " before each
    line; killed after timeout seconds (exit status -9)."""
    t0 = time.monotonic()
    with log.open("w") as out, subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, errors="replace") as proc:
        watchdog = threading.Timer(timeout, proc.kill)  # also when it prints nothing
        watchdog.start()
        try:
            for line in proc.stdout:
                out.write(f"[{time.monotonic() - t0:7.1f}] {line}")
        finally:
            watchdog.cancel()
        rc = proc.wait()
        if time.monotonic() - t0 >= timeout:
            out.write(f"killed after {timeout:.0f} s\n")
        return rc
