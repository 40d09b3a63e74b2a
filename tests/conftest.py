"""Fixtures shared by the repository-level tests: where the harness put things."""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("GOMIRROR_CACHE", REPO / ".cache"))
ORIGIN_URL = os.environ.get("GOMIRROR_ORIGIN_URL", "http://127.0.0.1:18080")
WORKLOAD_GOMOD = REPO / "harness" / "origin" / "workload" / "go.mod"
WITH_LAB_HOSTS = REPO / "harness" / "with-lab-hosts"


def origin_up() -> bool:
    try:
        with urllib.request.urlopen(f"{ORIGIN_URL}/healthz", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def origin_url() -> str:
    """The hermetic origin on loopback; `make test` requires it instead of skipping."""
    if not origin_up():
        if os.environ.get("GOMIRROR_REQUIRE_ORIGIN"):
            pytest.fail(f"the origin does not answer at {ORIGIN_URL}: run `make services-up`")
        pytest.skip("the origin is not up (make services-up)")
    return ORIGIN_URL


class GoClient:
    """A `go` command with its own empty module cache, GOPATH and HOME."""

    def __init__(self, root: Path):
        self.root = root
        self.home = root / "home"
        for d in ("home", "gopath", "modcache", "work"):
            (root / d).mkdir(parents=True, exist_ok=True)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
        env.update(
            HOME=str(self.home),
            GOPATH=str(self.root / "gopath"),
            GOMODCACHE=str(self.root / "modcache"),
            GOFLAGS="-mod=mod",
            GOTOOLCHAIN="local",
            GOSUMDB="sum.golang.org",
            GONOSUMDB="",
            GOPRIVATE="",
            GONOPROXY="",
            GOINSECURE="",
            SSL_CERT_FILE=str(CACHE / "pki" / "ca.crt"),
            GIT_SSL_CAINFO=str(CACHE / "pki" / "ca.crt"),
        )
        env.update(extra)
        return env

    def download(self, gomod: str, *, lab_hosts: bool = False, **extra: str):
        """`go mod download -json all` of a go.mod (no go.sum), returning the process."""
        work = self.root / "work"
        (work / "go.mod").write_text(gomod)
        (work / "go.sum").unlink(missing_ok=True)
        cmd = ["go", "mod", "download", "-json", "all"]
        if lab_hosts:
            cmd = [str(WITH_LAB_HOSTS), *cmd]
        return subprocess.run(
            cmd, cwd=work, env=self.env(**extra), capture_output=True, text=True, timeout=300
        )

    @property
    def go_sum(self) -> str:
        return (self.root / "work" / "go.sum").read_text()


@pytest.fixture
def go_client(tmp_path) -> GoClient:
    if shutil.which("go") is None:
        pytest.fail("the go command is not on PATH")
    return GoClient(tmp_path / "go")
