"""Configuration validation: every bad case names the key and what is allowed."""

import subprocess

import pytest

from gomirror_proxy.config import ConfigError, load, parse
from proxyhelpers import proxy_cmd, write_config


def base(tmp_path):
    return {"StorageType": "disk"}, {"Storage.Disk": {"RootPath": str(tmp_path / "store")}}


BAD = [
    ({"Port": "3000x"}, None, "Port", "is not \"[host]:port\""),
    ({"Port": 70000}, None, "Port", "out of range (allowed: 0..65535)"),
    ({"StorageType": "mongo"}, None, "StorageType", "'mongo' is not allowed (allowed: disk, s3)"),
    ({"NetworkMode": "online"}, None, "NetworkMode",
     "'online' is not allowed (allowed: strict, offline, fallback)"),
    ({"DownloadMode": "fast"}, None, "DownloadMode",
     "'fast' is not allowed (allowed: sync, async, redirect, async_redirect, none)"),
    ({"GoGetWorkers": 0}, None, "GoGetWorkers", "0 is out of range (allowed: 1..256)"),
    ({"Timeout": "10s"}, None, "Timeout", "must be an integer, not str '10s'"),
    ({"GoBinary": "/nonexistent/go"}, None, "GoBinary", "is not an executable found on PATH"),
    ({"GoBinaryEnvVars": ["GOPROXY"]}, None, "GoBinaryEnvVars", "'GOPROXY' is not KEY=VALUE"),
    ({"GoBinaryEnvVars": ["GOPROXY=ftp://x"]}, None, "GoBinaryEnvVars",
     "'ftp://x' is not a URL (allowed schemes: http, https, file)"),
    ({"GoBinaryEnvVars": ["GOFLAGS=-x"]}, None, "GoBinaryEnvVars",
     "GOFLAGS is set by the fetcher itself"),
    ({"Colour": "blue"}, None, "Colour", "unknown key (allowed: "),
    ({}, {"Storage.Disk": {"RootPath": "relative/dir"}}, "Storage.Disk.RootPath",
     "'relative/dir' must be an absolute path"),
    ({}, {"Storage.Disk": {}}, "Storage.Disk.RootPath", "required when StorageType = \"disk\""),
    ({"StorageType": "s3"}, {"Storage.S3": {"Region": "x"}}, "Storage.S3.Bucket",
     "required when StorageType = \"s3\""),
    ({"StorageType": "s3"}, {"Storage.S3": {"Bucket": "b", "Endpoint": "localhost:9000"}},
     "Storage.S3.Endpoint", "is not a URL"),
    ({"StorageType": "s3"}, {"Storage.S3": {"Bucket": "b", "Key": "k"}}, "Storage.S3.Key",
     "Key and Secret must be set together"),
    ({"DownloadMode": "redirect", "GoBinaryEnvVars": ["GOPROXY=direct"]}, None, "DownloadURL",
     "required for DownloadMode = 'redirect'"),
    ({"DownloadRules": [{"Pattern": "github.com/*", "Mode": "later"}]}, None,
     "DownloadRules[0].Mode", "'later' is not allowed"),
    ({"BasicAuthUser": "u"}, None, "BasicAuthUser", "must be set together"),
    ({"TLSCertFile": "/nonexistent.crt", "TLSKeyFile": "/nonexistent.key"}, None,
     "TLSCertFile", "is not a readable file"),
    ({"NETRCPath": "/nonexistent/.netrc"}, None, "NETRCPath", "is not a readable file"),
    ({"SumDBUpstreams": {"sum.example.org": "https://x"}}, None,
     "SumDBUpstreams.sum.example.org", "not listed in SumDBs"),
    ({"LogLevel": "loud"}, None, "LogLevel", "allowed: debug, info, warning, error"),
    # anything that would switch checksum verification off for some modules is refused:
    # NoSumPatterns / PrivatePatterns are the one, visible way to exempt modules
    ({"GoBinaryEnvVars": ["GOSUMDB=off"]}, None, "GoBinaryEnvVars",
     "GOSUMDB would change which modules are checked against the checksum database"),
    ({"GoBinaryEnvVars": ["GONOSUMDB=github.com"]}, None, "GoBinaryEnvVars",
     "GONOSUMDB would change which modules"),
    ({"GoBinaryEnvVars": ["GONOSUMCHECK=1"]}, None, "GoBinaryEnvVars",
     "GONOSUMCHECK would change which modules"),
    ({"GoBinaryEnvVars": ["GOINSECURE=*"]}, None, "GoBinaryEnvVars",
     "GOINSECURE would change which modules"),
    ({"GoBinaryEnvVars": ["GOPRIVATE=github.com/*"]}, None, "GoBinaryEnvVars",
     "exempt modules with NoSumPatterns, private ones with PrivatePatterns"),
    ({"GoBinaryEnvVars": ["GOFLAGS=-insecure"]}, None, "GoBinaryEnvVars",
     "GOFLAGS is set by the fetcher itself"),
    ({"GoBinaryEnvVars": ["GOPROXY="]}, None, "GoBinaryEnvVars", "GOPROXY is empty"),
    ({"NotFoundCacheSeconds": -1}, None, "NotFoundCacheSeconds",
     "-1 is out of range (allowed: 0..86400)"),
    ({"SumDBVerifierKeys": {"sum.golang.org": "sum.golang.org+033de0ae+AAAA"}}, None,
     "SumDBVerifierKeys.sum.golang.org", "want 0x01 (Ed25519) and 32 key bytes"),
    ({"SumDBVerifierKeys": {"sum.example.org": "x"}}, None,
     "SumDBVerifierKeys.sum.example.org", "not listed in SumDBs"),
]


@pytest.mark.parametrize("top,tables,key,msg", BAD, ids=[b[2] + "-" + str(i) for i, b in
                                                          enumerate(BAD)])
def test_bad_config_cli(tmp_path, top, tables, key, msg):
    t, tb = base(tmp_path)
    t.update(top)
    cfg = write_config(tmp_path / "c.toml", t, tables if tables is not None else tb)
    with pytest.raises(ConfigError) as ei:
        load(str(cfg))
    assert ei.value.key == key
    assert msg in str(ei.value)
    assert str(ei.value).startswith(f"config error: {key}: ")


def test_check_config_cli_exit_codes(tmp_path):
    t, tb = base(tmp_path)
    good = write_config(tmp_path / "good.toml", t, tb)
    r = subprocess.run([*proxy_cmd(), "check-config", str(good)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "store").exists(), "check-config must not create anything"
    t["NetworkMode"] = "online"
    bad = write_config(tmp_path / "bad.toml", t, tb)
    r = subprocess.run([*proxy_cmd(), "check-config", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1
    assert "config error: NetworkMode: 'online' is not allowed" in r.stderr
    (tmp_path / "broken.toml").write_text("Port = \n")
    r = subprocess.run([*proxy_cmd(), "check-config", str(tmp_path / "broken.toml")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "not valid TOML" in r.stderr


def test_serve_refuses_bad_config(tmp_path):
    t, tb = base(tmp_path)
    t["StorageType"] = "memory"
    bad = write_config(tmp_path / "bad.toml", t, tb)
    r = subprocess.run([*proxy_cmd(), "serve", "-c", str(bad)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1
    assert "config error: StorageType: 'memory' is not allowed (allowed: disk, s3)" in r.stderr
    assert "listening" not in r.stdout


def test_defaults_and_athens_names(tmp_path):
    c = parse({"Storage": {"Disk": {"RootPath": "/srv/gomirror"}}}, check_paths=False)
    assert c.goproxy == "https://goproxy.cn,https://mirrors.aliyun.com/goproxy/,direct"
    assert c.upstream_urls() == ["https://goproxy.cn", "https://mirrors.aliyun.com/goproxy"]
    assert c.download_url == "https://goproxy.cn"
    assert c.network_mode == "strict" and c.download_mode == "sync" and c.port == 3000
    assert c.sumdb_upstreams == {"sum.golang.org": "https://goproxy.cn/sumdb/sum.golang.org"}


def test_example_config_is_valid():
    import tomllib
    from pathlib import Path

    ex = Path(__file__).resolve().parents[1] / "config.example.toml"
    c = parse(tomllib.loads(ex.read_text()), check_paths=False)
    assert c.private_patterns == ["git.internal.example"] and c.network_mode == "fallback"
