"""Private modules: from the lab git server with credentials, never from the origin."""

# pytest fixtures are imported from proxyhelpers (the repo's tests/ owns `conftest`)
# ruff: noqa: F401, F811

import json
import subprocess

import pytest

from proxyhelpers import (
    CA,
    GIT_LOG,
    GO,
    NETRC,
    ORIGIN,
    ORIGIN_LOG,
    WITH_LAB_HOSTS,
    LogTail,
    go_download_all,
    go_env,
    lab_git,
    nodes,
    origin,
)

pytestmark = pytest.mark.usefixtures("lab_git")

CLIENT_GOMOD = """module example.com/privclient

go 1.20

require (
\tgit.internal.example/platform/service v1.1.0
\tgithub.com/BurntSushi/toml v1.3.2
)
"""


def test_private_modules_via_git_with_credentials(nodes):
    node = nodes(
        wrap=[str(WITH_LAB_HOSTS)],
        extra={
            "PrivatePatterns": ["git.internal.example"],
            "NETRCPath": str(NETRC),
            "GoBinaryEnvVars": [
                f"GOPROXY={ORIGIN}",
                f"GIT_SSL_CAINFO={CA}",
                f"SSL_CERT_FILE={CA}",
            ],
        },
    )
    origin_tail, git_tail = LogTail(ORIGIN_LOG), LogTail(GIT_LOG)
    rc, mods, err, _ = go_download_all(node.url, CLIENT_GOMOD,
                                       GONOSUMDB="git.internal.example")
    assert rc == 0, err + node.log.read_text()[-3000:]
    got = {(m["Path"], m["Version"]) for m in mods}
    assert ("git.internal.example/platform/service", "v1.1.0") in got
    assert ("git.internal.example/platform/corelib", "v1.2.0") in got
    assert ("github.com/BurntSushi/toml", "v1.3.2") in got
    # fetched from the git server (with the netrc credentials) ...
    git_lines = git_tail.lines()
    assert any("/platform/service.git/" in line and '" 200 ' in line for line in git_lines)
    assert any("/platform/corelib.git/" in line and '" 200 ' in line for line in git_lines)
    # ... never asked of the public upstream, nor of its checksum database
    origin_lines = origin_tail.lines()
    assert origin_lines, "the public module should have come from the origin"
    assert not [line for line in origin_lines if "git.internal.example" in line]
    node_paths = [r["path"] for r in node.log_lines() if "path" in r]
    assert not [p for p in node_paths if p.startswith("/sumdb/") and "git.internal" in p]
    st, _, _ = node.get("/sumdb/sum.golang.org/lookup/git.internal.example/platform/"
                        "corelib@v1.2.0")
    assert st == 403
    # list / latest of a private module come from git too
    st, _, body = node.get("/git.internal.example/platform/corelib/@v/list")
    assert st == 200 and body.decode().split() == ["v1.0.0", "v1.1.0", "v1.2.0"]
    st, _, body = node.get("/git.internal.example/platform/corelib/@latest")
    assert st == 200 and json.loads(body)["Version"] == "v1.2.0"
    assert not [line for line in origin_tail.lines() if "git.internal.example" in line]
    assert (node.store / "git.internal.example/platform/corelib/@v/v1.2.0.zip").exists()


def private_node(nodes):
    return nodes(
        wrap=[str(WITH_LAB_HOSTS)],
        extra={
            "PrivatePatterns": ["git.internal.example"],
            "NETRCPath": str(NETRC),
            "GoBinaryEnvVars": [f"GOPROXY={ORIGIN}", f"GIT_SSL_CAINFO={CA}",
                                f"SSL_CERT_FILE={CA}"],
        },
    )


def test_private_branch_query_and_retracted_versions_via_git(nodes, tmp_path):
    """Queries and lists of a private module are answered by the go command from git:
    a branch resolves to its pseudo-version, a retracted tag stays listed."""
    node = private_node(nodes)
    feature = "git.internal.example/platform/feature"
    pseudo = "v1.2.1-0.20240304120000-3d16c76450ac"  # branch `next` (fixed commit and date)
    st, h, body = node.get(f"/{feature}/@v/next.info")
    assert st == 200, body
    assert json.loads(body)["Version"] == pseudo
    assert h["Cache-Control"] == "public, max-age=2"
    st, _, body = node.get(f"/{feature}/@v/list")
    assert st == 200 and body.decode().split() == ["v1.0.0", "v1.1.0", "v1.2.0"]  # v1.1.0 retracted
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "go.mod").write_text("module example.com/featclient\n\ngo 1.21\n")
    r = subprocess.run([GO, "get", f"{feature}@next"], cwd=proj, capture_output=True, text=True,
                       env=go_env(tmp_path, node.url, GONOSUMDB="git.internal.example"),
                       timeout=180)
    assert r.returncode == 0, r.stderr
    assert f"{feature} {pseudo}" in (proj / "go.mod").read_text()
    assert not (node.store / feature / "@v/next.info").exists()


def test_private_module_without_credentials_fails_cleanly(nodes):
    node = nodes(
        wrap=[str(WITH_LAB_HOSTS)],
        extra={
            "PrivatePatterns": ["git.internal.example"],
            "GoBinaryEnvVars": [f"GOPROXY={ORIGIN}", f"GIT_SSL_CAINFO={CA}",
                                f"SSL_CERT_FILE={CA}", "HOME=/nonexistent"],
            "Timeout": 60,
        },
    )
    origin_tail = LogTail(ORIGIN_LOG)
    st, _, body = node.get("/git.internal.example/platform/corelib/@v/v1.0.0.info")
    # git cannot read the repository: "cannot be fetched here", so a chain falls through
    assert st == 404 and b"git ls-remote" in body, body
    assert not [line for line in origin_tail.lines() if "git.internal.example" in line]



def test_private_modules_never_redirected(nodes):
    node = nodes(
        wrap=[str(WITH_LAB_HOSTS)],
        extra={
            "DownloadMode": "redirect",
            "PrivatePatterns": ["git.internal.example"],
            "NETRCPath": str(NETRC),
            "GoBinaryEnvVars": [f"GOPROXY={ORIGIN}", f"GIT_SSL_CAINFO={CA}",
                                f"SSL_CERT_FILE={CA}"],
        },
    )
    st, h, _ = node.get("/git.internal.example/platform/corelib/@v/v1.1.0.info")
    assert st == 200 and "Location" not in h  # fetched (sync), not redirected
    st, h, _ = node.get("/github.com/mattn/go-isatty/@v/v0.0.19.info")
    assert st == 302 and h["Location"].startswith(ORIGIN)  # public: redirected
