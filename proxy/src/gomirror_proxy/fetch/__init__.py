"""The fetch layer behind one interface: what the node asks an upstream for.

Public modules go to the HTTP proxies of the GOPROXY chain (fetch/http.py); when the
chain reaches `direct`, and always for PrivatePatterns, the go command answers
(fetch/gocmd.py). Whole versions come over HTTP too (UpstreamFetcher = "http": .info,
.mod and a streamed .zip, checked here and against the checksum database by the node
before they are stored) or, with UpstreamFetcher = "gocommand" and where HTTP cannot
answer, from `go mod download`, which verifies them itself.
"""

from __future__ import annotations

import asyncio
import json

from .. import modpath
from ..config import Config
from .errors import FetchError, classify
from .gocmd import GoRunner
from .http import Answer, HTTPFetcher

__all__ = ["Answer", "FetchError", "Fetcher", "GoRunner", "HTTPFetcher", "InfoMismatchError",
           "classify"]

LIST_LIMIT = 4 << 20
INFO_LIMIT = 64 << 10
MOD_LIMIT = 16 << 20


class Fetcher:
    def __init__(self, cfg: Config, metrics):
        self.cfg = cfg
        self.http = HTTPFetcher(cfg.goproxy, min(cfg.timeout, 60), metrics)
        self.go = GoRunner(cfg, metrics)

    async def start(self) -> None:
        await self.http.start()

    async def close(self) -> None:
        await self.http.close()
        await asyncio.to_thread(self.go.close)  # removes the work directory

    def is_private(self, module: str) -> bool:
        return self.go.is_private(module)

    def _not_found(self, a: Answer, what: str) -> FetchError:
        return FetchError(a.status, f"not found: {what}: no upstream has it")

    async def list(self, module: str, em: str) -> list[str]:
        """The upstream's version list (retracted versions included)."""
        if not self.is_private(module):
            a = await self.http.get(f"{em}/@v/list", LIST_LIMIT)
            if a.body is not None:
                return [v for v in a.body.decode(errors="replace").split()
                        if modpath.is_valid_semver(v)]
            if not a.direct:
                raise self._not_found(a, module)
        return await self.go.list_versions(module)

    async def info_query(self, module: str, em: str, query: str) -> dict:
        """The .info of the version module@query resolves to (query: "latest" for @latest,
        a branch, a commit hash, a semver prefix)."""
        if not self.is_private(module):
            rel = f"{em}/@latest" if query == "latest" else \
                f"{em}/@v/{modpath.escape_version(query)}.info"
            a = await self.http.get(rel, INFO_LIMIT)
            if a.body is not None:
                return parse_info(a.body, module, f"{module}@{query}")
            if not a.direct:
                raise self._not_found(a, f"{module}@{query}")
        return await self.go.query(module, query)

    async def gomod(self, module: str, em: str, ev: str) -> bytes | None:
        """A go.mod over HTTP; None when only `direct` can have it (fetch the version)."""
        if self.is_private(module):
            return None
        a = await self.http.get(f"{em}/@v/{ev}.mod", MOD_LIMIT)
        if a.body is not None:
            return a.body
        if a.direct:
            return None
        raise self._not_found(a, f"{module}@{modpath.unescape_version(ev)}")

    async def version_info(self, module: str, em: str, version: str, ev: str) -> bytes | None:
        """The .info of a canonical version over HTTP, as the upstream sent it (stored byte
        for byte), checked: valid JSON naming exactly this version. None when only
        `direct` can have it."""
        what = f"{module}@{version}"
        a = await self.http.get(f"{em}/@v/{ev}.info", INFO_LIMIT)
        if a.body is None:
            if a.direct:
                return None
            raise self._not_found(a, what)
        got = parse_info(a.body, module, what)["Version"]
        if got != version:
            raise InfoMismatchError(f"{what}: upstream answered an .info for version {got!r}")
        return a.body

    async def zip_file(self, module: str, em: str, ev: str, dest: str) -> bool:
        """The .zip over HTTP, streamed into dest with MaxZipSize enforced while it
        arrives. False when only `direct` can have it."""
        limit = self.cfg.max_zip_size
        too_large = FetchError(404, f"zip too large: more than {limit} bytes (MaxZipSize),"
                                    " download stopped")
        a = await self.http.get_file(f"{em}/@v/{ev}.zip", dest, limit, too_large,
                                     timeout=self.cfg.timeout)
        if a.status == 200:
            return True
        if a.direct:
            return False
        raise self._not_found(a, f"{module}@{modpath.unescape_version(ev)}")

    async def gomod_from_go(self, module: str, version: str) -> bytes:
        """A go.mod as the go command fetched and verified it (private modules, direct,
        and when the node cannot verify in process)."""
        return await self.go.gomod(module, version)

    def tempdir(self):
        """A scratch directory for version(), removed on exit."""
        return self.go.tempdir()

    async def version(self, module: str, version: str, tmp: str) -> dict:
        """The whole version with the go command (files under tmp)."""
        return await self.go.download(module, version, tmp)


class InfoMismatchError(FetchError):
    """An upstream's .info names another version than the one asked for."""

    def __init__(self, msg: str):
        super().__init__(502, msg)


def parse_info(body: bytes, module: str, what: str) -> dict:
    """An upstream .info answer, checked: JSON with a canonical Version valid for module."""
    try:
        info = json.loads(body)
        version = info["Version"]
        if not isinstance(version, str):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise FetchError(502, f"{what}: upstream answered an invalid .info") from None
    try:
        modpath.check_version(module, version)
    except modpath.InvalidVersionError as e:
        raise FetchError(502, f"{what}: upstream answered version {version!r}: {e}") from None
    out = {"Version": version}
    if isinstance(info.get("Time"), str):
        out["Time"] = info["Time"]
    return out
