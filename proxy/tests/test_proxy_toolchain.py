"""GOTOOLCHAIN switches through a node: the go command fetches `golang.org/toolchain` (a
~70 MB zip) through GOPROXY and verifies it against the checksum database (Athens #2152:
504s and hangs on exactly these)."""

# pytest fixtures are imported from proxyhelpers (the repo's tests/ owns `conftest`)
# ruff: noqa: F401, F811

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from proxyhelpers import GO, ORIGIN_TREE, go_env, nodes, origin

pytestmark = pytest.mark.usefixtures("origin")

# Room for one toolchain zip (fill.py's summary says how big the captured one is).
TOOLCHAIN_ZIP_LIMIT = 256 << 20


@pytest.fixture(scope="module")
def toolchain() -> dict:
    """The toolchain release the origin holds, as fill.py recorded it."""
    return json.loads((ORIGIN_TREE.parent / "summary.json").read_text())["toolchain"]


def switch(tmp: Path, goproxy: str, go_release: str) -> subprocess.CompletedProcess:
    """`GOTOOLCHAIN=<release> go version` with an empty module cache, outside any module."""
    tmp.mkdir(parents=True, exist_ok=True)
    env = go_env(tmp, goproxy, GOTOOLCHAIN=go_release, GOFLAGS="-modcacherw")
    return subprocess.run([GO, "version"], cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=300)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_client_with_an_older_go_switches_through_the_node(nodes, tmp_path, toolchain):
    local = subprocess.run([GO, "env", "GOVERSION"], capture_output=True, text=True,
                           env=go_env(tmp_path, "off")).stdout.strip()
    assert local and local != toolchain["go"]
    assert toolchain["zip_bytes"] < TOOLCHAIN_ZIP_LIMIT
    node = nodes(extra={"MaxZipSize": TOOLCHAIN_ZIP_LIMIT})

    proc = switch(tmp_path / "client1", node.url, toolchain["go"])
    assert proc.returncode == 0, proc.stderr + node.log.read_text()[-4000:]
    assert proc.stdout.startswith(f"go version {toolchain['go']} "), proc.stdout

    # The zip the node stored is the origin's, byte for byte.
    rel = f"{toolchain['module']}/@v/{toolchain['version']}.zip"
    stored = node.store / rel
    assert stored.stat().st_size == toolchain["zip_bytes"]
    assert sha256(stored) == sha256(ORIGIN_TREE / rel)
    # The client verified it against the checksum database through the node.
    paths = [r["path"] for r in node.log_lines() if "path" in r]
    assert f"/{rel}" in paths
    lookup = f"/sumdb/sum.golang.org/lookup/{toolchain['module']}@{toolchain['version']}"
    assert lookup in paths

    # A second client with an empty cache switches from the node's store as well.
    again = switch(tmp_path / "client2", node.url, toolchain["go"])
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"go version {toolchain['go']} ")


def test_a_zip_limit_below_the_toolchain_refuses_the_switch(nodes, tmp_path, toolchain):
    node = nodes(extra={"MaxZipSize": 1 << 20})
    proc = switch(tmp_path / "client", node.url, toolchain["go"])
    assert proc.returncode != 0
    assert f"download {toolchain['go']} for" in proc.stderr
    rel = f"/{toolchain['module']}/@v/{toolchain['version']}.zip"
    lines = node.log_lines()
    # Not found (not a 5xx): a `GOPROXY=node,direct` client may still fall through.
    statuses = [r["status"] for r in lines if r.get("path") == rel]
    assert statuses and set(statuses) <= {404, 410}
    # The refusal names the setting that caused it.
    assert any("MaxZipSize" in r.get("error", "") for r in lines
               if r.get("version") == toolchain["version"])
    # Nothing half-written or oversized entered the store.
    assert not (node.store / toolchain["module"] / "@v" / f"{toolchain['version']}.zip").exists()
