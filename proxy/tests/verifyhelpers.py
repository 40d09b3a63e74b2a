"""Helpers for the verify tests: the hermetic origin's real files and lookup records."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from gomirror_proxy.verify import NotFound, tlog
from proxyhelpers import ORIGIN_TREE

SUMDB = ORIGIN_TREE / "sumdb/sum.golang.org"
SUM_GOLANG_ORG_KEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"


def require_origin() -> None:
    if not (SUMDB / "latest").is_file():
        pytest.skip("hermetic origin tree not built (make setup)")


def lookup_records() -> dict[str, bytes]:
    """Escaped "module@version" -> the lookup response the origin serves for it."""
    require_origin()
    root = SUMDB / "lookup"
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*@*") if p.is_file()}


def origin_module_files(suffix: str) -> list[tuple[str, Path]]:
    """(escaped "module@version", path) of every `<module>/@v/<version><suffix>` file."""
    require_origin()
    found = []
    for p in sorted(ORIGIN_TREE.rglob(f"@v/*{suffix}")):
        rel = p.relative_to(ORIGIN_TREE)
        if rel.parts[0] == "sumdb":
            continue
        module = "/".join(rel.parts[:-2])
        found.append((f"{module}@{p.name[: -len(suffix)]}", p))
    return found


class SyntheticLog:
    """A small checksum database built here and signed with a test key, to exercise what
    the one real tree head in the origin cannot: growth, forks, rollbacks, forged tiles.

    The hashes are computed level by level (independently of the tile-reading code under
    test); `root(n)` is RFC 6962's recursive Merkle tree hash.
    """

    def __init__(self, signer, texts: list[bytes], height: int = 8) -> None:
        self.signer = signer
        self.texts = texts
        self.height = height
        self.size = len(texts)  # the size "latest" and lookups are served at
        self.levels = [[tlog.record_hash(t) for t in texts]]
        while len(self.levels[-1]) > 1:
            below = self.levels[-1]
            self.levels.append(
                [tlog.node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
            )
        self.tampered: dict[str, bytes] = {}
        self.fetched: list[str] = []

    @classmethod
    def of_modules(cls, signer, count: int, *, salt: str = "", height: int = 8):
        return cls(signer, [record_text(i, salt) for i in range(count)], height)

    def root(self, n: int) -> bytes:
        def mth(lo: int, hi: int) -> bytes:
            if hi - lo == 1:
                return self.levels[0][lo]
            k = 1 << ((hi - lo - 1).bit_length() - 1)
            return tlog.node_hash(mth(lo, lo + k), mth(lo + k, hi))

        return mth(0, n) if n else bytes(32)

    def tree_note(self, n: int | None = None, signer=None) -> bytes:
        n = self.size if n is None else n
        return (signer or self.signer).sign(tlog.Tree(n, self.root(n)).text())

    def lookup_response(self, record_id: int, n: int | None = None) -> bytes:
        return b"%d\n" % record_id + self.texts[record_id] + b"\n" + self.tree_note(n)

    def tile(self, path: str, size: int | None = None) -> bytes:
        tile = tlog.Tile.parse(path)
        size = self.size if size is None else size
        start, end = tile.n << tile.h, (tile.n << tile.h) + tile.w
        if tile.l == -1:
            if end > size:
                raise LookupError(path)
            return b"".join(t + b"\n" for t in self.texts[start:end])
        if end > size >> (tile.l * tile.h):
            raise LookupError(path)
        return b"".join(self.levels[tile.l * tile.h][start:end])

    async def fetch(self, path: str) -> bytes:
        self.fetched.append(path)
        if path in self.tampered:
            return self.tampered[path]
        if path == "latest":
            return self.tree_note()
        if path.startswith("lookup/"):
            module = path[len("lookup/") :].rsplit("@", 1)[0]
            for i, t in enumerate(self.texts[: self.size]):
                if t.startswith(module.encode() + b" "):
                    return self.lookup_response(i)
            raise NotFound(path)
        try:
            # The server has the whole log: tiles of any tree up to it are served.
            return self.tile(path, len(self.texts))
        except LookupError:
            raise NotFound(path) from None


def record_text(i: int, salt: str = "") -> bytes:
    """A go.sum record of module example.com/m<i> v1.0.0 (hashes made up, salt varies them)."""

    def h(what: str) -> str:
        return base64.b64encode(hashlib.sha256(f"{salt}{what}{i}".encode()).digest()).decode()

    m = f"example.com/m{i}"
    return f"{m} v1.0.0 h1:{h('zip')}\n{m} v1.0.0/go.mod h1:{h('mod')}\n".encode()
