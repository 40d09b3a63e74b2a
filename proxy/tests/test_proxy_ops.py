"""Operations without an upstream: auth, TLS, readiness, SIGTERM, logs."""

# pytest fixtures are imported from proxyhelpers (the repo's tests/ owns `conftest`)
# ruff: noqa: F401, F811

import base64
import json
import ssl
import urllib.request

from proxyhelpers import (
    CACHE,
    closed_port,
    nodes,
)


def test_basic_auth_and_tls(nodes):
    crt, key = CACHE / "pki/services.crt", CACHE / "pki/services.key"
    node = nodes(upstream=f"http://127.0.0.1:{closed_port()}", extra={
        "NetworkMode": "offline", "BasicAuthUser": "mirror", "BasicAuthPass": "s3cret",
        "TLSCertFile": str(crt), "TLSKeyFile": str(key)})
    ctx = ssl.create_default_context(cafile=str(CACHE / "pki/ca.crt"))
    ctx.check_hostname = False  # the lab certificate names the lab hosts, not 127.0.0.1
    base = f"https://127.0.0.1:{node.port}"

    def get(path, auth=None):
        req = urllib.request.Request(base + path)
        if auth:
            req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
                return r.status, r.headers
        except urllib.error.HTTPError as e:
            return e.code, e.headers

    assert get("/healthz")[0] == 200
    assert get("/readyz")[0] == 200
    st, h = get("/version")
    assert st == 401 and h["WWW-Authenticate"].startswith("Basic")
    assert get("/version", "mirror:wrong")[0] == 401
    assert get("/version", "mirror:s3cret")[0] == 200
    # offline, nothing stored: not found, and behind BasicAuth no shared cache keeps it
    st, h = get("/github.com/x/y/@v/list", "mirror:s3cret")
    assert st == 404 and h["Cache-Control"] == "private, max-age=10"


def test_sigterm_and_json_logs(nodes):
    node = nodes(upstream=f"http://127.0.0.1:{closed_port()}",
                 extra={"NetworkMode": "offline", "LogLevel": "info"})
    assert node.get("/healthz")[0] == 200
    assert node.get("/nope")[0] == 404
    assert node.stop() == 0
    lines = node.log.read_text().splitlines()
    recs = [json.loads(line) for line in lines]  # every line is one JSON object
    assert lines and all(isinstance(r, dict) for r in recs)
    acc = [r for r in recs if r.get("path") == "/nope"]
    assert acc and acc[0]["status"] == 404 and acc[0]["endpoint"] == "other"
    assert set(acc[0]) >= {"ts", "remote", "method", "path", "status", "bytes", "ms"}
    assert [r["msg"] for r in recs if r.get("msg") in ("shutting down", "stopped")] == [
        "shutting down", "stopped"]
