"""The go command as a fetcher: `direct` (VCS) and private modules, and whole versions
whose zip the go command verifies against the checksum database, as Athens does.

`go mod download -json module@version` runs in a private, temporary GOMODCACHE with
GOPROXY = the configured upstream chain, GOPRIVATE for private prefixes (so they go
straight to their VCS, never to a public proxy, and are not checked against a public
checksum database), GOTOOLCHAIN=local and GOFLAGS=-mod=mod. Arguments are a list, never
a shell. A bounded number of go processes run at once; each has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import shutil
import signal
import tempfile
import time

from ..config import Config, match_glob
from ..redact import redact
from .errors import FetchError, classify


def _rmtree(p: str) -> None:
    def onerror(func, path, _exc):
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(path), 0o700)
            os.chmod(path, 0o700)
            func(path)

    shutil.rmtree(p, onerror=onerror)


try:
    _LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:  # not glibc: no parent-death signal, the timeout still applies
    _LIBC = None


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the node dies, so a killed node leaves no go running.
    Runs between fork and exec: no imports, no allocation-heavy work."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


WATCH_INTERVAL = 0.1  # seconds between looks at the size of what go is downloading


def _largest_file(root: str) -> int:
    """The size of the largest file under root (the go command's download directory;
    the shared sumdb cache is a symlink and not followed)."""
    largest = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                largest = max(largest, os.lstat(os.path.join(dirpath, name)).st_size)
    return largest


def _cleanup_dead_workdirs(base: str) -> None:
    """Remove work directories of node processes that no longer run (killed nodes)."""
    for name in os.listdir(base):
        parts = name.split("-")
        if not name.startswith("gomirror-proxy-") or len(parts) < 4 or not parts[2].isdigit():
            continue
        pid = int(parts[2])
        try:
            os.kill(pid, 0)
            continue  # alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        _rmtree(os.path.join(base, name))


class GoRunner:
    def __init__(self, cfg: Config, metrics=None):
        self.cfg = cfg
        self.metrics = metrics
        self.sem = asyncio.Semaphore(cfg.go_get_workers)
        base = cfg.go_get_dir or tempfile.gettempdir()
        os.makedirs(base, exist_ok=True)
        with contextlib.suppress(OSError):
            _cleanup_dead_workdirs(base)
        self.work = tempfile.mkdtemp(prefix=f"gomirror-proxy-{os.getpid()}-", dir=base)
        self.gopath = os.path.join(self.work, "gopath")  # shared: sumdb cache, go's own locks
        self.gocache = os.path.join(self.work, "gocache")
        self.sumdb_cache = os.path.join(self.work, "sumdb")
        os.makedirs(self.sumdb_cache, exist_ok=True)
        os.makedirs(self.gopath, exist_ok=True)
        os.makedirs(self.gocache, exist_ok=True)
        self.home = None
        if cfg.netrc_path:
            # git reads credentials only from $HOME/.netrc (through curl), go from $NETRC:
            # give the fetcher a private HOME that holds a copy of the configured file.
            self.home = os.path.join(self.work, "home")
            os.makedirs(self.home, mode=0o700, exist_ok=True)
            dst = os.path.join(self.home, ".netrc")
            shutil.copyfile(cfg.netrc_path, dst)
            os.chmod(dst, 0o600)

    def close(self) -> None:
        _rmtree(self.work)

    def env(self, modcache: str) -> dict[str, str]:
        cfg = self.cfg
        env = {
            k: v for k, v in os.environ.items()
            if k in ("PATH", "HOME", "USER", "LANG", "SSL_CERT_FILE", "SSL_CERT_DIR",
                     "GIT_SSL_CAINFO", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
                     "http_proxy", "https_proxy", "no_proxy", "TMPDIR")
        }
        env.update({
            "GOPROXY": cfg.goproxy,
            "GOPATH": self.gopath,
            "GOCACHE": self.gocache,
            "GOENV": "off",
            "GOTELEMETRY": "off",
            "GIT_TERMINAL_PROMPT": "0",
            "GCM_INTERACTIVE": "never",
        })
        env.update(cfg.go_binary_env_vars)
        env["GOMODCACHE"] = modcache
        env["GOTOOLCHAIN"] = "local"
        env["GOFLAGS"] = "-mod=mod -modcacherw"
        if cfg.private_patterns:
            env["GOPRIVATE"] = ",".join(cfg.private_patterns)
        nosum = list(cfg.no_sum_patterns) + list(cfg.private_patterns)
        if nosum:
            env["GONOSUMDB"] = ",".join(nosum)
        if self.home:
            env["HOME"] = self.home
            env["NETRC"] = os.path.join(self.home, ".netrc")
        return env

    def is_private(self, module: str) -> bool:
        return match_glob(self.cfg.private_patterns, module)

    async def run(self, args: list[str], tmp: str, timeout: float,
                  max_file: int = 0) -> tuple[int, bytes, bytes]:
        """Run go; with max_file, the process group is killed as soon as a file it is
        downloading grows past max_file bytes (FetchError 404 "zip too large")."""
        modcache = os.path.join(tmp, "modcache")
        # Each fetch has its own module cache, but the checksum database's tiles and
        # lookups are shared: without this every `go` run would fetch the same tiles again
        # (most of a cold fetch's round trips). The go command locks and renames these
        # files itself, as it does for any module cache shared by concurrent commands.
        download = os.path.join(modcache, "cache", "download")
        os.makedirs(download, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.symlink(self.sumdb_cache, os.path.join(download, "sumdb"))
        proc = await asyncio.create_subprocess_exec(
            self.cfg.go_binary, *args, cwd=tmp, env=self.env(modcache),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True, preexec_fn=_die_with_parent,
        )
        too_large: list[int] = []

        async def watch_downloads():
            while True:
                await asyncio.sleep(WATCH_INTERVAL)
                size = await asyncio.to_thread(_largest_file, download)
                if size > max_file:
                    too_large.append(size)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    return

        watcher = asyncio.ensure_future(watch_downloads()) if max_file else None
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise
        finally:
            if watcher:
                watcher.cancel()
        if too_large:
            raise FetchError(404, f"zip too large: more than {max_file} bytes (MaxZipSize),"
                                  " download stopped")
        return proc.returncode or 0, out, err

    @contextlib.asynccontextmanager
    async def tempdir(self):
        tmp = tempfile.mkdtemp(prefix="f-", dir=self.work)
        try:
            yield tmp
        finally:
            await asyncio.to_thread(_rmtree, tmp)

    async def download(self, module: str, version: str, tmp: str) -> dict:
        """Run go mod download; return its JSON (files under tmp)."""
        async with self.sem:
            t0 = time.monotonic()
            if self.metrics:
                self.metrics.go_runs.inc("mod download")
                self.metrics.inflight.inc()
            try:
                try:
                    rc, out, err = await self.run(
                        ["mod", "download", "-json", f"{module}@{version}"], tmp,
                        self.cfg.timeout, max_file=self.cfg.max_zip_size,
                    )
                except TimeoutError:
                    raise FetchError(504, f"fetch of {module}@{version} timed out") from None
            finally:
                if self.metrics:
                    self.metrics.inflight.dec()
                    self.metrics.fetch_seconds.observe(time.monotonic() - t0)
        try:
            info = json.loads(out.decode() or "{}")
        except ValueError:
            info = {}
        if rc != 0 or info.get("Error") or not info.get("Zip"):
            msg = info.get("Error") or err.decode(errors="replace").strip() or f"go exited {rc}"
            raise FetchError(classify(msg), redact(msg))
        size = os.path.getsize(info["Zip"])
        if size > self.cfg.max_zip_size:
            raise FetchError(404, f"zip too large: {size} bytes > MaxZipSize")
        return info

    async def go_json(self, args: list[str], what: str, timeout: float,
                      read_key: str = "") -> dict:
        """Run one go command that prints a JSON object, bounded by GoGetWorkers; with
        read_key, the file that field names is read (as bytes under "_bytes") before the
        temporary module cache goes."""
        async with self.sem, self.tempdir() as tmp:
            if self.metrics:
                self.metrics.go_runs.inc(" ".join(args[:2]))
                self.metrics.inflight.inc()
            try:
                rc, out, err = await self.run(args, tmp, timeout)
            except TimeoutError:
                raise FetchError(504, f"{what} timed out") from None
            finally:
                if self.metrics:
                    self.metrics.inflight.dec()
            try:
                data = json.loads(out.decode() or "{}")
            except ValueError:
                data = {}
            e = data.get("Error")
            if rc != 0 or e:
                msg = (e.get("Err") if isinstance(e, dict) else e) or \
                    err.decode(errors="replace").strip() or f"go exited {rc}"
                raise FetchError(classify(msg), redact(msg))
            if read_key and data.get(read_key):
                with open(data[read_key], "rb") as f:
                    data["_bytes"] = f.read()
        return data

    async def gomod(self, module: str, version: str) -> bytes:
        """A go.mod alone, as the go command fetched and verified it (`go list -m` checks
        it against the checksum database unless the module is NoSum/private)."""
        data = await self.go_json(["list", "-m", "-json", f"{module}@{version}"],
                                  f"go.mod of {module}@{version}", min(self.cfg.timeout, 120),
                                  read_key="GoMod")
        if data.get("Version") != version or "_bytes" not in data:
            raise FetchError(404, f"not found: {module}@{version}: no go.mod")
        return data["_bytes"]

    async def list_versions(self, module: str) -> list[str]:
        """The module's versions, retracted ones included (`go list -m -versions -retracted`)."""
        data = await self.go_json(["list", "-m", "-versions", "-retracted", "-json", module],
                                  f"list of {module}", min(self.cfg.timeout, 60))
        return list(data.get("Versions") or [])

    async def query(self, module: str, query: str) -> dict:
        """The .info of what module@query resolves to (`latest`, a branch, a commit, v1.2)."""
        data = await self.go_json(["list", "-m", "-json", f"{module}@{query}"],
                                  f"{module}@{query}", min(self.cfg.timeout, 120))
        if not data.get("Version"):
            raise FetchError(404, f"{module}@{query}: no version")
        info = {"Version": data["Version"]}
        if data.get("Time"):
            info["Time"] = data["Time"]
        return info
