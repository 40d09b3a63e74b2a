"""Every molecule scenario, run as `molecule test -s NAME` from the repository root.

GOMIRROR_MOLECULE_SCENARIOS (space-separated) picks scenarios; by default all of them.
Each scenario's full output goes to .cache/run/molecule-NAME.log; a failure shows its tail.
Every scenario is in this one file, so make test's `-n 2 --dist loadfile` runs them on one
worker, one after another: two scenarios at once on 2 cores would slow both past their
timeouts.
"""

from __future__ import annotations

import os
import subprocess
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
    with log.open("w") as out:
        proc = subprocess.run(
            ["molecule", "test", "-s", scenario],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=1800,
        )
    if proc.returncode != 0:
        tail = "\n".join(Path(log).read_text(errors="replace").splitlines()[-150:])
        pytest.fail(f"molecule test -s {scenario} exited {proc.returncode}; log {log}:\n{tail}")
