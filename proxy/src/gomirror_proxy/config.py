"""The node's TOML configuration: Athens' key names where the meaning is the same.

`load(path)` parses and validates everything up front; any problem raises ConfigError
naming the key and what is allowed, so `serve` starts nothing and `check-config` exits
non-zero. See docs/proxy.md for the key table and the differences from Athens.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import tomllib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from . import chain
from .verify.note import Verifier

DEFAULT_GOPROXY = "https://goproxy.cn,https://mirrors.aliyun.com/goproxy/,direct"
DEFAULT_SUMDB = "sum.golang.org"
DEFAULT_SUMDB_UPSTREAM = "https://goproxy.cn/sumdb/sum.golang.org"
# The public key of sum.golang.org (what the go command has built in).
DEFAULT_SUMDB_KEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"

DOWNLOAD_MODES = ("sync", "async", "redirect", "async_redirect", "none")
NETWORK_MODES = ("strict", "offline", "fallback")
STORAGE_TYPES = ("disk", "s3")
GO_ENVS = ("development", "production")
LOG_LEVELS = ("debug", "info", "warning", "error")
# How a whole version (.info, .mod, .zip) is fetched from the chain's HTTP proxies:
# "http" streams the files and verifies them in process; "gocommand" runs
# `go mod download` per version, as Athens does.
UPSTREAM_FETCHERS = ("http", "gocommand")
# The fetcher owns these: a private module cache per fetch, no toolchain switching.
RESERVED_GO_ENV = ("GOMODCACHE", "GOTOOLCHAIN", "GOFLAGS")
# These switch checksum verification off or route modules around it: NoSumPatterns /
# PrivatePatterns are the one way to exempt modules, so the exemption is visible.
UNSAFE_GO_ENV = ("GOSUMDB", "GONOSUMDB", "GONOSUMCHECK", "GONOSUMCHECKS", "GOINSECURE",
                 "GOPRIVATE", "GONOPROXY", "GOVCS")


class ConfigError(ValueError):
    def __init__(self, key: str, msg: str):
        super().__init__(f"config error: {key}: {msg}")
        self.key = key


@dataclass
class DownloadRule:
    pattern: str
    mode: str
    download_url: str


@dataclass
class S3Config:
    bucket: str = ""
    region: str = "us-east-1"
    key: str = ""
    secret: str = ""
    token: str = ""
    endpoint: str = ""
    force_path_style: bool = False
    use_default_configuration: bool = False
    prefix: str = ""
    max_concurrency: int = 32  # store calls in flight at once (threads and connections)


@dataclass
class Config:
    host: str = ""
    port: int = 3000
    go_binary: str = "go"
    go_env: str = "production"
    go_binary_env_vars: dict[str, str] = field(default_factory=dict)
    go_get_workers: int = 4
    go_get_dir: str = ""
    protocol_workers: int = 30
    timeout: int = 300
    storage_type: str = "disk"
    disk_root: str = ""
    disk_max_bytes: int = 0  # 0: unbounded
    disk_evict_to_percent: int = 90
    s3: S3Config = field(default_factory=S3Config)
    network_mode: str = "strict"
    download_mode: str = "sync"
    download_url: str = ""
    download_rules: list[DownloadRule] = field(default_factory=list)
    exclude_patterns: list[str] = field(default_factory=list)
    private_patterns: list[str] = field(default_factory=list)
    no_sum_patterns: list[str] = field(default_factory=list)
    sumdbs: list[str] = field(default_factory=lambda: [DEFAULT_SUMDB])
    sumdb_upstreams: dict[str, str] = field(default_factory=dict)
    netrc_path: str = ""
    basic_auth_user: str = ""
    basic_auth_pass: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    log_level: str = "info"
    shutdown_timeout: int = 60
    max_zip_size: int = 500 << 20
    list_cache_seconds: int = 60
    lock_ttl: int = 0  # 0: Timeout + 60
    not_found_cache_seconds: int = 60
    not_found_cache_entries: int = 10000
    sumdb_verifier_keys: dict[str, str] = field(default_factory=dict)
    upstream_fetcher: str = "http"
    hit_log_socket: str = ""  # unix datagram socket of the nginx front's hit records

    @property
    def goproxy(self) -> str:
        return self.go_binary_env_vars.get("GOPROXY", DEFAULT_GOPROXY)

    def upstream_urls(self) -> list[str]:
        """The HTTP(S) proxies of the GOPROXY chain, in order (no 'direct'/'off')."""
        return chain.proxy_urls(self.goproxy)


def _glob_ok(p: str) -> bool:
    return bool(p) and "\x00" not in p and not p.startswith("/")


def match_glob(patterns: list[str], module: str) -> bool:
    """GOPRIVATE-style matching: a pattern matches a module path or any of its prefixes."""
    elems = module.split("/")
    for pat in patterns:
        n = pat.rstrip("/").count("/") + 1
        if len(elems) < n:
            continue
        if fnmatch.fnmatchcase("/".join(elems[:n]), pat.rstrip("/")):
            return True
    return False


def _url(key: str, v, schemes=("http", "https")) -> str:
    if not isinstance(v, str) or not v:
        raise ConfigError(key, "must be a non-empty URL string")
    u = urlsplit(v)
    if u.scheme not in schemes or not u.netloc:
        raise ConfigError(key, f"{v!r} is not a URL (allowed schemes: {', '.join(schemes)})")
    return v.rstrip("/")


def _typed(d: dict, key: str, typ, default, where: str = ""):
    full = f"{where}{key}"
    if key not in d:
        return default
    v = d[key]
    if typ is int and (isinstance(v, bool) or not isinstance(v, int)):
        raise ConfigError(full, f"must be an integer, not {type(v).__name__} {v!r}")
    if typ is bool and not isinstance(v, bool):
        raise ConfigError(full, f"must be true or false, not {v!r}")
    if typ is str and not isinstance(v, str):
        raise ConfigError(full, f"must be a string, not {type(v).__name__} {v!r}")
    if typ is list and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
        raise ConfigError(full, "must be a list of strings")
    return v


def _choice(key: str, v: str, allowed) -> str:
    if v not in allowed:
        raise ConfigError(key, f"{v!r} is not allowed (allowed: {', '.join(allowed)})")
    return v


def _positive(key: str, v: int, lo: int = 1, hi: int | None = None) -> int:
    if v < lo or (hi is not None and v > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ConfigError(key, f"{v} is out of range (allowed: {rng})")
    return v


TOP_KEYS = {
    "Port", "GoBinary", "GoEnv", "GoBinaryEnvVars", "GoGetWorkers", "GoGetDir",
    "ProtocolWorkers", "Timeout", "StorageType", "NetworkMode", "DownloadMode",
    "DownloadURL", "DownloadRules", "ExcludePatterns", "PrivatePatterns", "NoSumPatterns",
    "SumDBs", "SumDBUpstreams", "NETRCPath", "BasicAuthUser", "BasicAuthPass",
    "TLSCertFile", "TLSKeyFile", "LogLevel", "ShutdownTimeout", "MaxZipSize",
    "ListCacheSeconds", "LockTTL", "Storage", "NotFoundCacheSeconds", "NotFoundCacheEntries",
    "SumDBVerifierKeys", "UpstreamFetcher", "HitLogSocket",
}
DISK_KEYS = {"RootPath", "MaxBytes", "EvictToPercent"}
S3_KEYS = {
    "Region", "Key", "Secret", "Token", "Bucket", "Endpoint", "ForcePathStyle",
    "UseDefaultConfiguration", "Prefix", "MaxConcurrency",
}


def parse(data: dict, *, check_paths: bool = True) -> Config:
    c = Config()
    for k in data:
        if k not in TOP_KEYS:
            raise ConfigError(k, "unknown key (allowed: " + ", ".join(sorted(TOP_KEYS)) + ")")

    port = data.get("Port", ":3000")
    if isinstance(port, bool) or not isinstance(port, (int, str)):
        raise ConfigError("Port", "must be a port number or \"[host]:port\"")
    if isinstance(port, int):
        host, pnum = "", port
    else:
        host, _, p = port.rpartition(":")
        if not p.isdigit():
            raise ConfigError("Port", f"{port!r} is not \"[host]:port\" (e.g. \":3000\")")
        pnum = int(p)
        host = host.strip("[]")
    c.host, c.port = host, _positive("Port", pnum, 0, 65535)

    c.go_binary = _typed(data, "GoBinary", str, "go")
    if check_paths and not shutil.which(c.go_binary):
        raise ConfigError("GoBinary", f"{c.go_binary!r} is not an executable found on PATH")
    c.go_env = _choice("GoEnv", _typed(data, "GoEnv", str, "production"), GO_ENVS)
    env = {}
    for item in _typed(data, "GoBinaryEnvVars", list, []):
        k, sep, v = item.partition("=")
        if not sep or not k or not k.replace("_", "").isalnum():
            raise ConfigError("GoBinaryEnvVars", f"{item!r} is not KEY=VALUE")
        if k in RESERVED_GO_ENV:
            raise ConfigError(
                "GoBinaryEnvVars",
                f"{k} is set by the fetcher itself (reserved: {', '.join(RESERVED_GO_ENV)};"
                " use PrivatePatterns / NoSumPatterns)",
            )
        if k in UNSAFE_GO_ENV:
            raise ConfigError(
                "GoBinaryEnvVars",
                f"{k} would change which modules are checked against the checksum database"
                f" (refused: {', '.join(UNSAFE_GO_ENV)}); exempt modules with NoSumPatterns,"
                " private ones with PrivatePatterns",
            )
        env[k] = v
    c.go_binary_env_vars = env
    gp = env.get("GOPROXY", DEFAULT_GOPROXY)
    hops = chain.parse(gp)
    if not hops:
        raise ConfigError("GoBinaryEnvVars", "GOPROXY is empty (e.g. \"https://goproxy.cn,direct\")")
    for hop in hops:
        if hop.kind == "proxy":
            _url("GoBinaryEnvVars", hop.url, ("http", "https", "file"))
        elif hop.kind == "file" and not hop.url.startswith("/"):
            raise ConfigError("GoBinaryEnvVars", f"GOPROXY file://{hop.url} needs an absolute path")

    c.go_get_workers = _positive("GoGetWorkers", _typed(data, "GoGetWorkers", int, 4), 1, 256)
    c.protocol_workers = _positive(
        "ProtocolWorkers", _typed(data, "ProtocolWorkers", int, 30), 1, 10000
    )
    c.timeout = _positive("Timeout", _typed(data, "Timeout", int, 300), 1, 86400)
    c.shutdown_timeout = _positive(
        "ShutdownTimeout", _typed(data, "ShutdownTimeout", int, 60), 0, 3600
    )
    c.max_zip_size = _positive("MaxZipSize", _typed(data, "MaxZipSize", int, 500 << 20), 1)
    c.list_cache_seconds = _positive(
        "ListCacheSeconds", _typed(data, "ListCacheSeconds", int, 60), 0, 86400
    )
    c.lock_ttl = _positive("LockTTL", _typed(data, "LockTTL", int, 0), 0)
    c.not_found_cache_seconds = _positive(
        "NotFoundCacheSeconds", _typed(data, "NotFoundCacheSeconds", int, 60), 0, 86400
    )
    c.not_found_cache_entries = _positive(
        "NotFoundCacheEntries", _typed(data, "NotFoundCacheEntries", int, 10000), 0, 10_000_000
    )
    c.go_get_dir = _typed(data, "GoGetDir", str, "")
    c.upstream_fetcher = _choice(
        "UpstreamFetcher", _typed(data, "UpstreamFetcher", str, "http"), UPSTREAM_FETCHERS
    )
    c.log_level = _choice("LogLevel", _typed(data, "LogLevel", str, "info").lower(), LOG_LEVELS)

    c.storage_type = _choice(
        "StorageType", _typed(data, "StorageType", str, "disk"), STORAGE_TYPES
    )
    storage = data.get("Storage", {})
    if not isinstance(storage, dict):
        raise ConfigError("Storage", "must be a table ([Storage.Disk] / [Storage.S3])")
    for k in storage:
        if k not in ("Disk", "S3"):
            raise ConfigError(f"Storage.{k}", "unknown storage table (allowed: Disk, S3)")
    disk = storage.get("Disk", {})
    s3 = storage.get("S3", {})
    if c.storage_type == "disk":
        for k in disk:
            if k not in DISK_KEYS:
                raise ConfigError(f"Storage.Disk.{k}",
                                  "unknown key (allowed: " + ", ".join(sorted(DISK_KEYS)) + ")")
        root = _typed(disk, "RootPath", str, "", "Storage.Disk.")
        if not root:
            raise ConfigError("Storage.Disk.RootPath", "required when StorageType = \"disk\"")
        if not os.path.isabs(root):
            raise ConfigError("Storage.Disk.RootPath", f"{root!r} must be an absolute path")
        if check_paths and os.path.exists(root) and not os.path.isdir(root):
            raise ConfigError("Storage.Disk.RootPath", f"{root!r} exists and is not a directory")
        c.disk_root = root
        c.disk_max_bytes = _positive(
            "Storage.Disk.MaxBytes", _typed(disk, "MaxBytes", int, 0, "Storage.Disk."), 0
        )
        c.disk_evict_to_percent = _positive(
            "Storage.Disk.EvictToPercent",
            _typed(disk, "EvictToPercent", int, 90, "Storage.Disk."), 1, 99,
        )
    else:
        for k in s3:
            if k not in S3_KEYS:
                raise ConfigError(
                    f"Storage.S3.{k}", "unknown key (allowed: " + ", ".join(sorted(S3_KEYS)) + ")"
                )
        w = "Storage.S3."
        c.s3 = S3Config(
            bucket=_typed(s3, "Bucket", str, "", w),
            region=_typed(s3, "Region", str, "us-east-1", w),
            key=_typed(s3, "Key", str, "", w),
            secret=_typed(s3, "Secret", str, "", w),
            token=_typed(s3, "Token", str, "", w),
            endpoint=_typed(s3, "Endpoint", str, "", w),
            force_path_style=_typed(s3, "ForcePathStyle", bool, False, w),
            use_default_configuration=_typed(s3, "UseDefaultConfiguration", bool, False, w),
            prefix=_typed(s3, "Prefix", str, "", w).strip("/"),
            max_concurrency=_typed(s3, "MaxConcurrency", int, 32, w),
        )
        if not 1 <= c.s3.max_concurrency <= 512:
            raise ConfigError("Storage.S3.MaxConcurrency",
                              f"must be 1..512, got {c.s3.max_concurrency}")
        if not c.s3.bucket:
            raise ConfigError("Storage.S3.Bucket", "required when StorageType = \"s3\"")
        if c.s3.endpoint:
            _url("Storage.S3.Endpoint", c.s3.endpoint)
        if not c.s3.use_default_configuration and bool(c.s3.key) != bool(c.s3.secret):
            raise ConfigError(
                "Storage.S3.Key", "Key and Secret must be set together (or UseDefaultConfiguration)"
            )

    c.network_mode = _choice(
        "NetworkMode", _typed(data, "NetworkMode", str, "strict"), NETWORK_MODES
    )
    c.download_mode = _choice(
        "DownloadMode", _typed(data, "DownloadMode", str, "sync"), DOWNLOAD_MODES
    )
    ups = c.upstream_urls()
    default_dl = ups[0] if ups else ""
    if "DownloadURL" in data:
        c.download_url = _url("DownloadURL", data["DownloadURL"])
    else:
        c.download_url = default_dl
    if c.download_mode in ("redirect", "async_redirect") and not c.download_url:
        raise ConfigError("DownloadURL", f"required for DownloadMode = {c.download_mode!r}")

    rules = data.get("DownloadRules", [])
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise ConfigError("DownloadRules", "must be an array of tables ([[DownloadRules]])")
    for i, r in enumerate(rules):
        where = f"DownloadRules[{i}]."
        for k in r:
            if k not in ("Pattern", "Mode", "DownloadURL"):
                raise ConfigError(where + k, "unknown key (allowed: Pattern, Mode, DownloadURL)")
        pat = _typed(r, "Pattern", str, "", where)
        if not _glob_ok(pat):
            raise ConfigError(where + "Pattern",
                              "required: a module path glob like \"github.com/org/*\"")
        mode = _choice(where + "Mode", _typed(r, "Mode", str, "", where), DOWNLOAD_MODES)
        url = c.download_url
        if "DownloadURL" in r:
            url = _url(where + "DownloadURL", r["DownloadURL"])
        if mode in ("redirect", "async_redirect") and not url:
            raise ConfigError(where + "DownloadURL", f"required for Mode = {mode!r}")
        c.download_rules.append(DownloadRule(pat, mode, url))

    for key, attr in (
        ("ExcludePatterns", "exclude_patterns"),
        ("PrivatePatterns", "private_patterns"),
        ("NoSumPatterns", "no_sum_patterns"),
    ):
        pats = _typed(data, key, list, [])
        for p in pats:
            if not _glob_ok(p) or "," in p:
                raise ConfigError(key, f"{p!r} is not a module path glob")
        setattr(c, attr, pats)

    sumdbs = _typed(data, "SumDBs", list, [DEFAULT_SUMDB])
    names = []
    for s in sumdbs:
        name = urlsplit(s).netloc if "://" in s else s
        if not name or "/" in name or name.startswith("."):
            raise ConfigError("SumDBs", f"{s!r} is not a checksum database name or https URL")
        names.append(name)
    c.sumdbs = names
    ups_tbl = data.get("SumDBUpstreams", {})
    if not isinstance(ups_tbl, dict):
        raise ConfigError("SumDBUpstreams", "must be a table: name = \"upstream URL\"")
    c.sumdb_upstreams = {}
    for name in names:
        if name in ups_tbl:
            c.sumdb_upstreams[name] = _url(f"SumDBUpstreams.{name}", ups_tbl[name])
        elif name == DEFAULT_SUMDB:
            c.sumdb_upstreams[name] = DEFAULT_SUMDB_UPSTREAM
        else:
            c.sumdb_upstreams[name] = f"https://{name}"
    for name in ups_tbl:
        if name not in names:
            raise ConfigError(f"SumDBUpstreams.{name}", "not listed in SumDBs")
    keys_tbl = data.get("SumDBVerifierKeys", {})
    if not isinstance(keys_tbl, dict):
        raise ConfigError("SumDBVerifierKeys", "must be a table: name = \"verifier key\"")
    c.sumdb_verifier_keys = {}
    for name in names:
        key = keys_tbl.get(name, DEFAULT_SUMDB_KEY if name == DEFAULT_SUMDB else "")
        if not key:
            continue  # served, not verified: tiles and lookups are then never persisted
        where = f"SumDBVerifierKeys.{name}"
        if not isinstance(key, str):
            raise ConfigError(where, "must be a verifier key string")
        try:
            if Verifier.parse(key).name != name:
                raise ValueError(f"the key is not for {name}")
        except ValueError as e:
            raise ConfigError(where, f"{e} (want \"{name}+<hash>+<base64 key>\")") from None
        c.sumdb_verifier_keys[name] = key
    for name in keys_tbl:
        if name not in names:
            raise ConfigError(f"SumDBVerifierKeys.{name}", "not listed in SumDBs")

    c.netrc_path = _typed(data, "NETRCPath", str, "")
    if c.netrc_path and check_paths and not os.path.isfile(c.netrc_path):
        raise ConfigError("NETRCPath", f"{c.netrc_path!r} is not a readable file")

    c.basic_auth_user = _typed(data, "BasicAuthUser", str, "")
    c.basic_auth_pass = _typed(data, "BasicAuthPass", str, "")
    if bool(c.basic_auth_user) != bool(c.basic_auth_pass):
        raise ConfigError("BasicAuthUser", "BasicAuthUser and BasicAuthPass must be set together")
    c.tls_cert_file = _typed(data, "TLSCertFile", str, "")
    c.tls_key_file = _typed(data, "TLSKeyFile", str, "")
    if bool(c.tls_cert_file) != bool(c.tls_key_file):
        raise ConfigError("TLSCertFile", "TLSCertFile and TLSKeyFile must be set together")
    if check_paths:
        for key, p in (("TLSCertFile", c.tls_cert_file), ("TLSKeyFile", c.tls_key_file)):
            if p and not os.path.isfile(p):
                raise ConfigError(key, f"{p!r} is not a readable file")
    c.hit_log_socket = _hit_log_socket(_typed(data, "HitLogSocket", str, ""))
    if c.lock_ttl == 0:
        c.lock_ttl = c.timeout + 60
    return c


# sun_path of a unix socket address holds 108 bytes with the terminating NUL.
_SUN_PATH_MAX = 107


def _hit_log_socket(path: str) -> str:
    if not path:
        return ""
    if not os.path.isabs(path):
        raise ConfigError("HitLogSocket", f"{path!r} must be an absolute path (or \"\" for off)")
    if len(os.fsencode(path)) > _SUN_PATH_MAX:
        raise ConfigError("HitLogSocket", f"{path!r} is longer than {_SUN_PATH_MAX} bytes, "
                                          "the limit of a unix socket address")
    # Its directory is not checked: systemd creates it (RuntimeDirectory) only when the
    # service starts, after check-config ran; a bind failure at start names the path.
    return path


def load(path: str, *, check_paths: bool = True) -> Config:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("(file)", f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("(file)", f"{path}: not valid TOML: {e}") from None
    c = parse(data, check_paths=check_paths)
    if check_paths and c.storage_type == "disk":
        probe = c.disk_root
        while not os.path.exists(probe):
            probe = os.path.dirname(probe)
        if not os.access(probe, os.W_OK):
            raise ConfigError("Storage.Disk.RootPath", f"{c.disk_root!r} is not writable")
    return c
