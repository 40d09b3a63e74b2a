"""The store interface and its key layout (the go command's module-cache download layout).

    <escaped module>/@v/list
    <escaped module>/@v/<escaped version>.zip | .mod | .info
    sumdb/<name>/...               (checksum-database data)

A version is complete when its .info exists; writers put .zip, then .mod, then .info,
each atomically, so a crash at any point leaves no version that looks complete; eviction
removes .info first for the same reason. The `list` file names the complete versions
that are not pseudo-versions, sorted. Internal state lives under `.tmp/` and `.locks/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

from .. import modpath

FILES = ("zip", "mod", "info")  # write order; .info last = completion marker
EVICT_ORDER = ("info", "zip", "mod")  # .info first: a half-evicted version is incomplete
_VERSION_KEY = re.compile(r"^(?P<em>.+)/@v/(?P<ev>[^/]+)\.(?P<ext>zip|mod|info)$")


def version_key(escaped_mod: str, escaped_ver: str, ext: str) -> str:
    return f"{escaped_mod}/@v/{escaped_ver}.{ext}"


def parse_version_key(key: str) -> tuple[str, str] | None:
    """(escaped module, escaped version) of a version file's key; None for other keys."""
    m = _VERSION_KEY.match(key)
    if m is None or key.startswith(("sumdb/", ".")):
        return None
    return m["em"], m["ev"]


def versions_in(names) -> list[str]:
    """The versions of an @v/ directory's file names that are complete (have a .info)."""
    out = []
    for n in names:
        if n.endswith(".info"):
            with contextlib.suppress(ValueError):
                out.append(modpath.unescape_version(n[: -len(".info")]))
    return out


def list_body(versions: list[str]) -> bytes:
    vs = sorted({v for v in versions if not modpath.is_pseudo(v)}, key=modpath.semver_key)
    return "".join(v + "\n" for v in vs).encode()


class Store:
    kind = "abstract"

    async def has_version(self, em: str, ev: str) -> bool: ...
    async def stat(self, key: str) -> int | None: ...
    async def read(self, key: str) -> bytes | None: ...
    async def write(self, key: str, data: bytes) -> None: ...
    async def delete(self, key: str) -> None:
        """Remove one stored file that is not part of a version (e.g. a superseded partial
        checksum-database tile); a missing key is not an error."""
        raise NotImplementedError
    async def put_version(self, em: str, ev: str, files: dict[str, str]) -> None: ...
    async def stored_versions(self, em: str) -> list[str]:
        return await asyncio.to_thread(self._stored_versions_sync, em)

    def _stored_versions_sync(self, em: str) -> list[str]: ...
    async def catalog(self, after: str, limit: int) -> list[tuple[str, str]]: ...
    async def check_writable(self) -> None: ...

    def local_path(self, key: str) -> str | None:
        return None

    async def stream(self, key: str, chunk: int = 1 << 20) -> AsyncIterator[bytes]:
        data = await self.read(key)
        if data is not None:
            yield data

    def lock(self, em: str, ev: str, ttl: int):
        """An async context manager serialising fetches of one version across processes."""
        raise NotImplementedError

    # Serving bookkeeping for size-bounded stores; no-ops where nothing is evicted.
    def touch(self, em: str, ev: str) -> None:
        """A version file was served (eviction removes the least recently served first)."""

    @contextlib.contextmanager
    def reading(self, em: str, ev: str):
        """Pin a version against eviction: hold it from the existence check until the file
        is open (an open file survives its unlinking)."""
        yield

    def bind_metrics(self, metrics) -> None:
        """Report store size and evictions through this Metrics registry."""

    def cleanup_tmp(self, older_than: float = 0) -> None:
        """Remove what killed writers left behind."""
