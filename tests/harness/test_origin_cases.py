"""The origin's protocol cases (retractions, queries, a toolchain) and the private module
with a branch and a retraction, each proven with the real go client and nothing but the
origin (and the git host). Versions come from what fill.py captured, never from here."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import CACHE, WITH_LAB_HOSTS

FEATURE = "git.internal.example/platform/feature"
# Fixed by make_repos.sh: `next` is one commit after v1.2.0, committed 2024-03-04T12:00:00Z.
FEATURE_NEXT = "v1.2.1-0.20240304120000-3d16c76450ac"


@pytest.fixture(scope="module")
def cases() -> dict:
    return json.loads((CACHE / "origin" / "summary.json").read_text())


def go(client, *args: str, lab_hosts: bool = False, **extra: str):
    """`go ARGS` in the client's empty work dir (no go.mod), with its own caches."""
    cmd = [str(WITH_LAB_HOSTS), "go", *args] if lab_hosts else ["go", *args]
    env = client.env(GOFLAGS="-modcacherw", **extra)
    return subprocess.run(
        cmd, cwd=client.root / "work", env=env, capture_output=True, text=True, timeout=300
    )


def go_one(client, *args: str, **kw) -> dict:
    """`go ... -json` of one module query: the one JSON object it prints."""
    proc = go(client, *args, **kw)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_the_retracting_module_lists_and_serves_its_retracted_versions(
    origin_url, go_client, cases
):
    retracting = cases["retracting"]
    module = retracting["module"]
    assert retracting["retracted"], "fill.py picked a module that retracts nothing"
    assert retracting["latest"] not in retracting["retracted"]
    latest = go_one(go_client, "list", "-m", "-versions", "-retracted", "-json",
                    f"{module}@latest", GOPROXY=origin_url)
    assert latest["Version"] == retracting["latest"]
    assert set(latest["Versions"]) == set(retracting["versions"])
    # Without -retracted the go command hides what the newest go.mod retracts: it read
    # the retract directive from the origin's copy of that go.mod.
    visible = go(go_client, "list", "-m", "-versions", module, GOPROXY=origin_url)
    assert visible.returncode == 0, visible.stderr
    shown = visible.stdout.split()[1:]
    assert set(shown) == set(retracting["versions"]) - set(retracting["retracted"])

    newest_retracted = retracting["retracted"][-1]
    info = go_one(go_client, "list", "-m", "-retracted", "-json",
                  f"{module}@{newest_retracted}", GOPROXY=origin_url)
    assert info["Retracted"]

    # The zips verify against the pinned checksum database (default GOSUMDB).
    for version in retracting["zips"]:
        mod = go_one(go_client, "mod", "download", "-json", f"{module}@{version}",
                     GOPROXY=origin_url)
        assert mod["Version"] == version
        assert mod["Sum"].startswith("h1:")
        assert "Error" not in mod


@pytest.mark.parametrize("which", ["branch", "commit"])
def test_branch_and_commit_queries_resolve_to_the_captured_pseudo_version(
    origin_url, go_client, cases, which
):
    query = cases["query"]
    escaped = "".join(f"!{c.lower()}" if c.isupper() else c for c in query["module"])
    answer = CACHE / "origin" / "tree" / escaped / "@v" / f"{query[which]}.info"
    canonical = json.loads(answer.read_text())["Version"]
    mod = go_one(go_client, "mod", "download", "-json", f"{query['module']}@{query[which]}",
                 GOPROXY=origin_url)
    assert mod["Version"] == canonical
    assert mod["Sum"].startswith("h1:")
    assert "Error" not in mod


def test_a_toolchain_switch_comes_from_the_origin(origin_url, go_client, cases):
    toolchain = cases["toolchain"]
    local = go(go_client, "env", "GOVERSION").stdout.strip()
    assert local != toolchain["go"]
    proc = go(go_client, "version", GOPROXY=origin_url, GOTOOLCHAIN=toolchain["go"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"go version {toolchain['go']} ")
    # The switch downloaded (and verified) the toolchain module into this client's cache.
    assert (go_client.root / "modcache" / "cache" / "download" / "golang.org" / "toolchain"
            / "@v" / f"{toolchain['version']}.zip").stat().st_size == toolchain["zip_bytes"]


def _private(client, origin: str, *args: str, one: bool = False):
    """`go ARGS` for the private host, with its credentials; `one`: parse the JSON answer."""
    (client.home / ".netrc").write_text((CACHE / "gitserver" / "netrc").read_text())
    (client.home / ".netrc").chmod(0o600)
    run = go_one if one else go
    return run(client, *args, lab_hosts=True, GOPROXY=origin, GOPRIVATE="git.internal.example")


def test_the_private_branch_resolves_to_a_pseudo_version_after_the_newest_tag(
    origin_url, go_client
):
    mod = _private(go_client, origin_url, "mod", "download", "-json", f"{FEATURE}@next",
                   one=True)
    assert mod["Version"] == FEATURE_NEXT
    assert mod["Origin"]["Ref"] == "refs/heads/next"


def test_the_private_module_retracts_an_older_tag(origin_url, go_client):
    visible = _private(go_client, origin_url, "list", "-m", "-versions", FEATURE)
    assert visible.returncode == 0, visible.stderr
    assert visible.stdout.split() == [FEATURE, "v1.0.0", "v1.2.0"]
    info = _private(go_client, origin_url, "list", "-m", "-versions", "-retracted", "-json",
                    f"{FEATURE}@v1.1.0", one=True)
    assert info["Retracted"] == ["v1.1.0 was tagged from a broken commit."]
    assert info["Versions"] == ["v1.0.0", "v1.1.0", "v1.2.0"]
