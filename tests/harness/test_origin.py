"""The hermetic origin really is a GOPROXY with a real, pinned checksum database."""

from __future__ import annotations

import shutil
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

from conftest import CACHE, WORKLOAD_GOMOD


def test_pinned_set_verifies_against_the_captured_checksum_database(origin_url, go_client):
    proc = go_client.download(WORKLOAD_GOMOD.read_text(), GOPROXY=origin_url)
    assert proc.returncode == 0, proc.stderr
    go_sum = go_client.go_sum
    # Each line came from a lookup in the checksum database, verified against its
    # signed tree head by the go command (default GOSUMDB, nothing turned off).
    for line in (
        "github.com/gin-gonic/gin v1.9.1 h1:",
        "github.com/BurntSushi/toml v1.3.2 h1:",
        "github.com/dgrijalva/jwt-go v3.2.0+incompatible h1:",
        "github.com/chenzhuoyu/base64x v0.0.0-20221115062448-fe3a3abad311 h1:",
        "github.com/go-playground/validator/v10 v10.14.0 h1:",
    ):
        assert line in go_sum
    latest = (go_client.root / "gopath" / "pkg" / "sumdb" / "sum.golang.org" / "latest")
    assert latest.read_text().startswith("go.sum database tree\n")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _serve(directory):
    handler = partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_tampered_module_fails_checksum_verification(tmp_path, go_client):
    tree = tmp_path / "tree"
    shutil.copytree(CACHE / "origin" / "tree", tree)
    zip_path = tree / "github.com" / "gin-gonic" / "gin" / "@v" / "v1.9.1.zip"
    # Change one source file inside gin's zip, keep everything else as it was.
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/gin.go"):
                data += b"\n// tampered on the way\n"
            dst.writestr(info, data)
    shutil.move(tampered, zip_path)
    server = _serve(tree)
    try:
        proc = go_client.download(
            WORKLOAD_GOMOD.read_text(), GOPROXY=f"http://127.0.0.1:{server.server_port}"
        )
    finally:
        server.shutdown()
    assert proc.returncode != 0
    # -json reports per-module errors on stdout.
    out = proc.stdout + proc.stderr
    assert "SECURITY ERROR" in out
    assert "verifying module: checksum mismatch" in out


_PRIVATE_GOMOD = "module example.com/t\n\ngo 1.20\n\nrequire {require}\n"


def test_private_modules_come_from_the_git_host_with_credentials(origin_url, go_client):
    (go_client.home / ".netrc").write_text((CACHE / "gitserver" / "netrc").read_text())
    (go_client.home / ".netrc").chmod(0o600)
    gomod = _PRIVATE_GOMOD.format(require="git.internal.example/platform/service v1.1.0")
    proc = go_client.download(
        gomod, lab_hosts=True, GOPROXY=origin_url, GOPRIVATE="git.internal.example"
    )
    assert proc.returncode == 0, proc.stderr
    assert '"Path": "git.internal.example/platform/corelib"' in proc.stdout
    assert '"Version": "v1.2.0"' in proc.stdout


def test_private_modules_need_the_credentials(origin_url, go_client):
    gomod = _PRIVATE_GOMOD.format(require="git.internal.example/platform/corelib v1.0.0")
    proc = go_client.download(
        gomod, lab_hosts=True, GOPROXY=origin_url, GOPRIVATE="git.internal.example",
        GIT_TERMINAL_PROMPT="0",
    )
    assert proc.returncode != 0
    assert "401" in proc.stdout + proc.stderr or "terminal prompts disabled" in proc.stdout
