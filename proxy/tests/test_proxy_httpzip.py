"""Whole versions over HTTP (UpstreamFetcher = "http"): .info, .mod and a streamed .zip
from the chain's proxies, verified in process (zip rules, h1 hashes, the real signed
checksum database of the origin) before anything is stored; the go command only where
HTTP cannot answer or when configured."""

# pytest fixtures are imported from proxyhelpers (the repo's tests/ owns `conftest`)
# ruff: noqa: F401, F811

import io
import json
import threading
import time
import zipfile
from pathlib import Path

import pytest
from upstreams import Upstream, upstream

from proxyhelpers import (
    CA,
    GO,
    NETRC,
    ORIGIN,
    ORIGIN_TREE,
    WITH_LAB_HOSTS,
    go_download_all,
    lab_git,
    nodes,
    origin,
)

pytestmark = pytest.mark.usefixtures("origin")

ORIGIN_SUMDB = {"SumDBUpstreams": {"sum.golang.org": ORIGIN + "/sumdb/sum.golang.org"}}
REFLECT2 = "/github.com/modern-go/reflect2/@v/v1.0.2"
TEXT_ZIP = "/golang.org/x/text/@v/v0.10.0.zip"  # 8.6 MB
# Small modules without dependencies: a cold client run takes a few seconds.
CLIENT_GOMOD = """module example.com/httpzipclient

go 1.20

require (
\tgithub.com/modern-go/reflect2 v1.0.2
\tgithub.com/modern-go/concurrent v0.0.0-20180306012644-bacd9c7ef1dd
\tgithub.com/pmezard/go-difflib v1.0.0
)
"""
CLIENT_VERSIONS = [
    ("github.com/modern-go/reflect2", "v1.0.2"),
    ("github.com/modern-go/concurrent", "v0.0.0-20180306012644-bacd9c7ef1dd"),
    ("github.com/pmezard/go-difflib", "v1.0.0"),
]


@pytest.fixture
def go_log(tmp_path) -> tuple[str, Path]:
    """A GoBinary that records every invocation's arguments, then runs the real go: what
    the node ran is observable from outside."""
    log = tmp_path / "go-invocations.log"
    wrapper = tmp_path / "go-recording"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {GO} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper), log


def go_downloads(log: Path) -> list[str]:
    return [line for line in (log.read_text().splitlines() if log.exists() else [])
            if line.startswith("mod download")]


def rezip(src: bytes, change) -> bytes:
    """The zip with every entry passed through change(name, data) -> data (None drops
    it); entries are deflated again, names and order kept."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(src)) as zin, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info.filename, data)
    return out.getvalue()


def origin_file(rel: str) -> bytes:
    return (ORIGIN_TREE / rel.lstrip("/")).read_bytes()


def leftover_temp(node) -> list[Path]:
    """Temporary fetch directories still present under the node's GoGetDir."""
    return [p for p in (node.dir / "work").glob("gomirror-proxy-*/f-*")]


def assert_not_stored(node, base: str) -> None:
    """The version is not in the store: no zip, no .info (a .mod alone may be, verified on
    its own when a client asked for it)."""
    for ext in ("info", "zip"):
        assert not (node.store / f"{base.lstrip('/')}.{ext}").exists(), ext


def test_cold_download_over_http_verified_by_the_go_client(nodes, go_log):
    wrapper, log = go_log
    node = nodes(extra={"GoBinary": wrapper})
    rc, mods, err, gosum = go_download_all(node.url, CLIENT_GOMOD)
    assert rc == 0, err + node.log.read_text()[-3000:]
    assert {(m["Path"], m["Version"]) for m in mods} == set(CLIENT_VERSIONS)
    assert not [m for m in mods if m.get("Error")]
    # The client checked everything against the default GOSUMDB (through the node).
    paths = [r["path"] for r in node.log_lines() if "path" in r]
    assert "/sumdb/sum.golang.org/lookup/github.com/modern-go/reflect2@v1.0.2" in paths
    assert "github.com/modern-go/reflect2 v1.0.2 h1:" in gosum
    for module, version in CLIENT_VERSIONS:
        base = f"{module}/@v/{version}"
        for ext in ("info", "mod", "zip"):
            assert (node.store / f"{base}.{ext}").read_bytes() == origin_file(f"{base}.{ext}")
    # Fetched over HTTP: no go command ran for them, the zips came from the upstream.
    assert go_downloads(log) == []
    assert node.metric("gomirror_proxy_go_runs_total", absent=0, command="mod download") == 0
    assert node.metric("gomirror_proxy_upstream_requests_total", upstream=ORIGIN,
                       result="ok") >= 9
    assert node.metric("gomirror_proxy_fetches_total", result="ok") == 3
    assert node.metric("gomirror_proxy_fetch_duration_seconds_count") == 3
    assert leftover_temp(node) == []


def test_a_cold_info_is_answered_before_its_zip_is_verified_and_kept_by_no_cache(
        nodes, upstream):
    # The go command asks for every .info of its build list before its first zip: a cold
    # .info is answered as soon as the upstream's .info arrives, the zip (here ~2 s on the
    # wire) still streaming. Nothing is stored until the whole version is verified.
    zip_size = len(origin_file(REFLECT2 + ".zip"))
    up = upstream(slow={REFLECT2 + ".zip": zip_size // 2})
    node = nodes(upstream=up.url, extra=ORIGIN_SUMDB)
    t0 = time.monotonic()
    st, h, body = node.get(REFLECT2 + ".info")
    assert st == 200 and body == origin_file(REFLECT2 + ".info")
    assert time.monotonic() - t0 < 1.5, "the .info waited for the zip"
    assert h["Cache-Control"] == "no-store"
    assert not (node.store / f"{REFLECT2.lstrip('/')}.info").exists()
    # The zip request joins the fetch already running (one upstream zip transfer).
    st, _, body = node.get(REFLECT2 + ".zip")
    assert st == 200 and body == origin_file(REFLECT2 + ".zip")
    assert up.asked(REFLECT2 + ".zip") == 1 and up.asked(REFLECT2 + ".info") == 1
    st, h, body = node.get(REFLECT2 + ".info")  # stored whole now: immutable
    assert st == 200 and body == origin_file(REFLECT2 + ".info")
    assert h["Cache-Control"].endswith("immutable")


def tampered_reflect2_zip() -> bytes:
    """reflect2's zip with one byte changed inside one file: a valid module zip, the wrong
    content (its h1 is not the checksum database's)."""
    good = origin_file(REFLECT2 + ".zip")
    bad = rezip(good, lambda name, data: data.replace(b"package reflect2", b"package reflect3", 1)
                if name.endswith("/reflect2.go") else data)
    assert bad != good
    return bad


def test_a_cold_info_answered_early_does_not_let_a_tampered_zip_in(nodes, upstream):
    up = upstream(override={REFLECT2 + ".zip": tampered_reflect2_zip()})
    node = nodes(upstream=up.url, extra=ORIGIN_SUMDB)
    st, h, body = node.get(REFLECT2 + ".info")
    assert st == 200 and h["Cache-Control"] == "no-store"
    st, _, body = node.get(REFLECT2 + ".zip")
    assert st == 502 and body.startswith(b"SECURITY ERROR"), body
    assert_not_stored(node, REFLECT2)
    assert node.metric("gomirror_proxy_verification_failures_total", kind="mismatch") == 1


def test_a_tampered_zip_is_refused_before_the_client_sees_bytes(nodes, upstream, tmp_path):
    up = upstream(override={REFLECT2 + ".zip": tampered_reflect2_zip()})
    node = nodes(upstream=up.url, extra=ORIGIN_SUMDB)
    st, h, body = node.get(REFLECT2 + ".zip")
    assert st == 502, body
    assert body.startswith(b"SECURITY ERROR"), body
    assert b"checksum mismatch" in body and b"refused by checksum database" in body, body
    assert h["Cache-Control"] == "no-store"
    assert_not_stored(node, REFLECT2)
    assert node.metric("gomirror_proxy_verification_failures_total", kind="mismatch") == 1
    assert any(r.get("msg") == "verification failed" and r.get("kind") == "mismatch"
               for r in node.log_lines())
    assert leftover_temp(node) == []
    # The real go client gets the node's refusal, not a zip it would have to refuse itself.
    rc, mods, err, _ = go_download_all(node.url, CLIENT_GOMOD.replace(
        "\tgithub.com/modern-go/concurrent v0.0.0-20180306012644-bacd9c7ef1dd\n"
        "\tgithub.com/pmezard/go-difflib v1.0.0\n", ""))
    assert rc != 0
    reported = err + json.dumps(mods)
    assert "502 Bad Gateway" in reported and "SECURITY ERROR" in reported, reported
    assert_not_stored(node, REFLECT2)


def test_a_zip_whose_go_mod_differs_from_the_mod_is_refused(nodes, upstream):
    bad = rezip(origin_file(REFLECT2 + ".zip"), lambda name, data: data + b"// extra\n"
                if name.endswith("@v1.0.2/go.mod") else data)
    up = upstream(override={REFLECT2 + ".zip": bad})
    node = nodes(upstream=up.url, extra=ORIGIN_SUMDB)
    st, _, body = node.get(REFLECT2 + ".zip")
    assert st == 502 and b"invalid module zip" in body, body
    assert b"go.mod in the zip differs" in body, body
    assert_not_stored(node, REFLECT2)
    assert node.metric("gomirror_proxy_verification_failures_total", kind="zip_check") == 1
    assert leftover_temp(node) == []


@pytest.mark.parametrize("change, why", [
    (lambda name, data: data, b"does not have prefix"),  # entries moved below
    (None, b"case-insensitive file name collision"),
])
def test_zips_breaking_the_go_commands_rules_are_refused(nodes, upstream, change, why):
    src = origin_file(REFLECT2 + ".zip")
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(src)) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            name = info.filename
            if change is not None:
                name = name.replace("@v1.0.2/", "@v1.0.3/", 1)
            zout.writestr(name, zin.read(info))
        if change is None:
            zout.writestr("github.com/modern-go/reflect2@v1.0.2/README.MD", b"twin\n")
    up = upstream(override={REFLECT2 + ".zip": out.getvalue()})
    node = nodes(upstream=up.url, extra=ORIGIN_SUMDB)
    st, _, body = node.get(REFLECT2 + ".zip")
    assert st == 502 and why in body, body
    assert_not_stored(node, REFLECT2)
    assert node.metric("gomirror_proxy_verification_failures_total", kind="zip_check") == 1


def test_an_info_naming_another_version_is_refused(nodes, upstream):
    up = upstream(override={REFLECT2 + ".info": b'{"Version":"v1.0.1"}'})
    node = nodes(upstream=up.url, extra=ORIGIN_SUMDB)
    st, _, body = node.get(REFLECT2 + ".zip")
    assert st == 502 and b"'v1.0.1'" in body, body
    assert up.asked(REFLECT2 + ".zip") == 0  # refused before the zip was asked for
    assert_not_stored(node, REFLECT2)
    assert node.metric("gomirror_proxy_verification_failures_total", kind="info") == 1


@pytest.mark.parametrize("declared", [True, False])
def test_an_oversized_zip_is_refused_while_it_streams(nodes, upstream, go_log, declared):
    wrapper, log = go_log
    # Undeclared: no Content-Length, 2 MB/s (4 s for the whole zip); declared: at once.
    up = upstream(slow={} if declared else {TEXT_ZIP: 2 << 20})
    node = nodes(upstream=up.url, extra={"MaxZipSize": 1 << 20, "GoBinary": wrapper,
                                          **ORIGIN_SUMDB})
    t0 = time.monotonic()
    st, _, body = node.get(TEXT_ZIP)
    took = time.monotonic() - t0
    assert st == 404 and b"zip too large" in body and b"MaxZipSize" in body, body
    assert took < (1 if declared else 3), took  # stopped at ~1 MB, not after 8.6 MB
    assert_not_stored(node, TEXT_ZIP.removesuffix(".zip"))
    assert go_downloads(log) == []
    assert leftover_temp(node) == []


def test_a_version_no_upstream_has_is_remembered_without_the_go_command(nodes, upstream,
                                                                          go_log):
    wrapper, log = go_log
    up = upstream()
    node = nodes(upstream=up.url, extra={"GoBinary": wrapper, "NotFoundCacheSeconds": 60,
                                         **ORIGIN_SUMDB})
    missing = "/github.com/modern-go/reflect2/@v/v1.0.99"
    for _ in range(2):
        st, _, body = node.get(missing + ".zip")
        assert st == 404 and body.startswith(b"not found"), body
    assert up.asked(missing + ".info") == 1  # the second answer came from memory
    assert up.asked(missing + ".zip") == 0
    assert node.metric("gomirror_proxy_not_found_cache_hits_total") == 1
    assert go_downloads(log) == []


def test_chain_comma_falls_through_on_404_for_zips(nodes, upstream):
    a = upstream(override={REFLECT2 + ".zip": None})  # has .info and .mod, not the zip
    node = nodes(upstream=f"{a.url},{ORIGIN}", extra=ORIGIN_SUMDB)
    st, _, body = node.get(REFLECT2 + ".zip")
    assert st == 200 and body == origin_file(REFLECT2 + ".zip")
    assert a.asked(REFLECT2 + ".zip") == 1
    assert node.metric("gomirror_proxy_upstream_requests_total", upstream=a.url,
                       result="not_found") == 1
    # `,` does not fall through on a 5xx
    b = upstream(status={REFLECT2 + ".zip": 500})
    n2 = nodes(upstream=f"{b.url},{ORIGIN}", extra=ORIGIN_SUMDB)
    st, _, body = n2.get(REFLECT2 + ".zip")
    assert st == 502 and b"answered 500" in body, body
    assert_not_stored(n2, REFLECT2)


def test_chain_pipe_falls_through_on_5xx_for_zips(nodes, upstream):
    a = upstream(status={REFLECT2 + ".zip": 503})
    node = nodes(upstream=f"{a.url}|{ORIGIN}", extra=ORIGIN_SUMDB)
    st, _, body = node.get(REFLECT2 + ".zip")
    assert st == 200 and body == origin_file(REFLECT2 + ".zip")
    assert a.asked(REFLECT2 + ".zip") == 3  # first try and two retries, then the next hop
    assert (node.store / (REFLECT2.lstrip("/") + ".info")).exists()


def test_429_and_5xx_are_retried_with_backoff(nodes, upstream):
    up = upstream(fail_first={REFLECT2 + ".zip": [429, 503]})
    node = nodes(upstream=up.url, extra=ORIGIN_SUMDB)
    t0 = time.monotonic()
    st, _, body = node.get(REFLECT2 + ".zip")
    assert st == 200 and body == origin_file(REFLECT2 + ".zip")
    assert up.asked(REFLECT2 + ".zip") == 3
    assert time.monotonic() - t0 >= 0.6  # 0.2 s, then 0.4 s of backoff
    assert node.metric("gomirror_proxy_upstream_requests_total", upstream=up.url,
                       result="ok") >= 3  # .info, .mod, .zip


def test_concurrent_misses_for_different_versions_run_in_parallel(nodes, upstream):
    # Each zip takes ~1 s to arrive; two in parallel take ~1 s, not ~2 s.
    slow_a, slow_b = REFLECT2 + ".zip", "/github.com/pmezard/go-difflib/@v/v1.0.0.zip"
    up = upstream(slow={slow_a: 25000, slow_b: 12500})
    node = nodes(upstream=up.url, extra={"GoGetWorkers": 1, **ORIGIN_SUMDB})
    results = {}

    def get(p):
        results[p] = node.get(p)[0]

    t0 = time.monotonic()
    threads = [threading.Thread(target=get, args=(p,)) for p in (slow_a, slow_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    took = time.monotonic() - t0
    assert results == {slow_a: 200, slow_b: 200}
    assert took < 1.8, took  # GoGetWorkers = 1 bounds the go command only


def test_upstream_fetcher_gocommand_uses_go_mod_download(nodes, go_log):
    wrapper, log = go_log
    node = nodes(extra={"GoBinary": wrapper, "UpstreamFetcher": "gocommand"})
    st, _, body = node.get(REFLECT2 + ".zip")
    assert st == 200 and body == origin_file(REFLECT2 + ".zip")
    assert go_downloads(log) == ["mod download -json github.com/modern-go/reflect2@v1.0.2"]
    assert node.metric("gomirror_proxy_go_runs_total", command="mod download") == 1
    for ext in ("info", "mod"):
        assert (node.store / f"{REFLECT2.lstrip('/')}.{ext}").exists()


def test_no_verifier_key_falls_back_to_the_go_command(nodes, go_log):
    """A first SumDB without a verifier key: the node cannot verify in process, so the
    go command fetches (and verifies) the version, as for go.mod files."""
    wrapper, log = go_log
    node = nodes(extra={"GoBinary": wrapper, "SumDBs": ["sum.example.org"],
                        "SumDBUpstreams": {"sum.example.org":
                                           ORIGIN + "/sumdb/sum.golang.org"}})
    st, _, body = node.get(REFLECT2 + ".zip")
    assert st == 200 and body == origin_file(REFLECT2 + ".zip")
    assert go_downloads(log) == ["mod download -json github.com/modern-go/reflect2@v1.0.2"]


def test_nosum_modules_go_over_http_without_the_database(nodes, upstream, go_log):
    wrapper, log = go_log
    up = upstream()
    node = nodes(upstream=up.url, extra={"GoBinary": wrapper,
                                         "NoSumPatterns": ["github.com/modern-go/*"]})
    st, _, body = node.get(REFLECT2 + ".zip")
    assert st == 200 and body == origin_file(REFLECT2 + ".zip")
    assert go_downloads(log) == []
    assert not [p for p in up.paths if p.startswith("/sumdb/")]


def test_nosum_modules_still_get_the_zip_rules(nodes, upstream):
    bad = rezip(origin_file(REFLECT2 + ".zip"), lambda name, data: data + b"// extra\n"
                if name.endswith("@v1.0.2/go.mod") else data)
    up = upstream(override={REFLECT2 + ".zip": bad})
    node = nodes(upstream=up.url, extra={"NoSumPatterns": ["github.com/modern-go/*"],
                                         "SumDBUpstreams": {"sum.golang.org":
                                                            up.url + "/sumdb/sum.golang.org"}})
    st, _, body = node.get(REFLECT2 + ".zip")
    assert st == 502 and b"go.mod in the zip differs" in body, body
    assert_not_stored(node, REFLECT2)
    # and the database was not asked about it
    assert not [p for p in up.paths if p.startswith("/sumdb/")]


def test_private_modules_still_use_the_go_command(nodes, lab_git, go_log):
    wrapper, log = go_log
    node = nodes(
        wrap=[str(WITH_LAB_HOSTS)],
        extra={
            "GoBinary": wrapper,
            "PrivatePatterns": ["git.internal.example"],
            "NETRCPath": str(NETRC),
            "GoBinaryEnvVars": [f"GOPROXY={ORIGIN}", f"GIT_SSL_CAINFO={CA}",
                                f"SSL_CERT_FILE={CA}"],
        },
    )
    st, _, body = node.get("/git.internal.example/platform/corelib/@v/v1.2.0.zip")
    assert st == 200, body
    assert go_downloads(log) == ["mod download -json git.internal.example/platform/corelib@v1.2.0"]
    st, _, _ = node.get(REFLECT2 + ".zip")  # a public module beside it: over HTTP
    assert st == 200
    assert len(go_downloads(log)) == 1


def test_upstream_fetcher_is_validated(tmp_path):
    from gomirror_proxy.config import ConfigError, parse

    base = {"Storage": {"Disk": {"RootPath": str(tmp_path)}}}
    assert parse(base, check_paths=False).upstream_fetcher == "http"
    assert parse({**base, "UpstreamFetcher": "gocommand"},
                 check_paths=False).upstream_fetcher == "gocommand"
    with pytest.raises(ConfigError) as e:
        parse({**base, "UpstreamFetcher": "athens"}, check_paths=False)
    assert str(e.value) == ("config error: UpstreamFetcher: 'athens' is not allowed "
                            "(allowed: http, gocommand)")
    with pytest.raises(ConfigError, match="UpstreamFetcher: must be a string"):
        parse({**base, "UpstreamFetcher": 1}, check_paths=False)
