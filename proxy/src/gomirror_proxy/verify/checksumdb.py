"""Async checksum-database client of the node: the go command's sumdb checks, in process.

A lookup is accepted only when (1) the tree note is signed by the configured key, (2) the
record is proved to be in that tree (audit path from tiles that hash to the signed
root), and (3) that tree is proved consistent with the latest head this node verified
before (kept in a TreeHeadState). Anything else raises VerificationError and is logged on
the security logger.
"""

from __future__ import annotations

import asyncio
import zipfile
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from gomirror_proxy.modpath import escape_path, escape_version
from gomirror_proxy.verify import tlog
from gomirror_proxy.verify.dirhash import DirHashError, hash_gomod, hash_zip
from gomirror_proxy.verify.errors import NotFound, VerificationError
from gomirror_proxy.verify.note import Verifier, open_note
from gomirror_proxy.verify.tlog import Tile, TileHashReader, Tree
from gomirror_proxy.verify.treehead import TreeHeadState, security_event

Fetch = Callable[[str], Awaitable[bytes]]
DEFAULT_TILE_CACHE = 2048  # tiles (8 KiB each when full): bounded memory, ~16 MiB


class _TileCache:
    """LRU of authenticated tile data by tile path (tile contents never change)."""

    def __init__(self, max_tiles: int) -> None:
        self._max = max_tiles
        self._data: OrderedDict[str, bytes] = OrderedDict()

    def get(self, tile: Tile) -> bytes | None:
        full = Tile(tile.h, tile.l, tile.n, 1 << tile.h)
        for path in (tile.path(), full.path()):
            data = self._data.get(path)
            if data is not None:
                self._data.move_to_end(path)
                # A full tile's prefix is the same tile at a smaller width.
                return data[: tile.w * tlog.HASH_SIZE]
        return None

    def put(self, tile: Tile, data: bytes) -> None:
        self._data[tile.path()] = data
        self._data.move_to_end(tile.path())
        while len(self._data) > self._max:
            self._data.popitem(last=False)


class ChecksumDB:
    """Verified access to one checksum database (e.g. sum.golang.org) through `fetch`.

    `fetch(path)` GETs "latest", "lookup/<escaped module>@<escaped version>" or
    "tile/..." relative to the database's URL and raises NotFound for 404/410.
    """

    def __init__(
        self,
        name: str,
        verifier_key: str,
        fetch: Fetch,
        state: TreeHeadState,
        *,
        tile_cache: int = DEFAULT_TILE_CACHE,
    ) -> None:
        try:
            self._verifier = Verifier.parse(verifier_key)
        except ValueError as e:
            raise ValueError(f"checksum database {name!r}: {e}") from None
        if self._verifier.name != name:
            raise ValueError(
                f"checksum database {name!r}: verifier key is for {self._verifier.name!r}"
            )
        if tile_cache < 1:
            raise ValueError(f"tile_cache must be at least 1 tile, not {tile_cache!r}")
        self.name = name
        self._fetch = fetch
        self._state = state
        self._tiles = _TileCache(tile_cache)
        self._lock = asyncio.Lock()  # serialises proofs against and updates of the head

    # --- public API -------------------------------------------------------------------

    async def lookup(self, module: str, version: str) -> dict[str, str]:
        """{"zip": "h1:...", "mod": "h1:..."} for module@version, proved as described
        in the module docstring. Raises NotFound if the database has no record."""
        path = f"lookup/{escape_path(module)}@{escape_version(version)}"
        msg = await self._fetch(path)
        try:
            record_id, text, note = tlog.parse_record(msg)
            tree = self._open_tree(note)
            hashes = _record_hashes(text, module, version)
            reader = self._reader(tree)
            proof = await self._prove(tlog.prove_record(reader, record_id), record_id, tree)
            tlog.check_record(proof, tree.n, tree.hash, record_id, tlog.record_hash(text))
            await self._merge(note, tree, older_ok=True)
        except VerificationError as e:
            raise self._event(e, module=module, version=version) from None
        return hashes

    async def update_latest(self) -> Tree:
        """Fetch "latest", verify it and advance the stored head; an older tree than the
        stored head is a rollback and refused."""
        msg = await self._fetch("latest")
        try:
            tree = self._open_tree(msg)
            await self._merge(msg, tree, older_ok=False)
        except VerificationError as e:
            raise self._event(e, path="latest") from None
        return tree

    async def verify_tile(self, path: str, data: bytes) -> bool:
        """Whether `data` is the full tile at `path` in the latest verified tree (then the
        node may store it). Partial tiles, tiles beyond the tree and forged data: False."""
        try:
            tile = Tile.parse(path)
        except ValueError:
            return False
        if tile.h != tlog.TILE_HEIGHT or not tile.full:
            return False
        try:
            tree = await self._head()
        except VerificationError:
            return False  # already logged where it was refused
        try:
            if tile.l == -1:
                texts = tlog.data_tile_records(tile, data)
                tile = Tile(tile.h, 0, tile.n, tile.w)
                data = b"".join(tlog.record_hash(t) for t in texts)
            elif len(data) != tile.w * tlog.HASH_SIZE:
                return False
            if (tile.n + 1) << tile.h > tree.n >> (tile.l * tile.h):
                return False  # not yet complete in the verified tree
            index = tlog.stored_hash_index((tile.l + 1) * tile.h, tile.n)
            [want] = await self._prove(self._reader(tree).read_hashes([index]), index, tree)
        except ValueError:
            return False
        except VerificationError as e:
            self._event(e, path=path)
            return False
        if tlog.tile_hash(data) != want:
            self._event(VerificationError("inclusion", "tile data is not in the tree"), path=path)
            return False
        self._tiles.put(tile, data)
        return True

    def verify_hashes(
        self,
        want: dict[str, str],
        *,
        mod: bytes | None = None,
        zip_path: str | None = None,
        zip_hash: str | None = None,
    ) -> None:
        """Compare the h1 hashes of a .mod's bytes and/or a zip (a file, or the h1 its
        checked read computed: zipcheck.inspect_zip) with `want` (a lookup() result);
        raise VerificationError("mismatch") if any differs."""
        checks = []
        if mod is not None:
            checks.append(("mod", "go.mod", lambda: hash_gomod(mod)))
        if zip_path is not None and zip_hash is not None:
            raise ValueError("verify_hashes takes zip_path= or zip_hash=, not both")
        if zip_path is not None:
            checks.append(("zip", "zip", lambda: hash_zip(zip_path)))
        if zip_hash is not None:
            checks.append(("zip", "zip", lambda: zip_hash))
        if not checks:
            raise ValueError("verify_hashes needs mod= and/or zip_path= or zip_hash=")
        for key, what, compute in checks:
            expected = want.get(key)
            try:
                got = compute()
            except (DirHashError, OSError, ValueError, zipfile.BadZipFile) as e:
                got = f"unhashable ({e})"
            if expected is None or got != expected:
                raise self._event(
                    VerificationError(
                        "mismatch",
                        f"{what} hash {got} does not match the checksum database's {expected}",
                    )
                )

    # --- internals --------------------------------------------------------------------

    def _event(self, error: VerificationError, **context: str) -> VerificationError:
        return security_event(error, database=self.name, **context)

    def _open_tree(self, note: bytes) -> Tree:
        return tlog.parse_tree(open_note(note, [self._verifier]))

    async def _head(self) -> Tree:
        """The latest verified tree: the stored one (re-verified once), else "latest"."""
        tree = self._state_tree()
        if tree is None:
            tree = await self.update_latest()
        return tree

    def _state_tree(self) -> Tree | None:
        if self._state.tree is None and self._state.note is not None:
            try:
                self._state.loaded(self._open_tree(self._state.note))
            except VerificationError as e:
                raise self._event(
                    VerificationError(
                        e.kind, f"stored tree head {self._state.path} does not verify: {e.msg}"
                    )
                ) from None
        return self._state.tree

    async def _merge(self, note: bytes, tree: Tree, *, older_ok: bool) -> None:
        """Prove `tree` consistent with the stored head; advance the head if newer."""
        async with self._lock:
            head = self._state_tree()
            if head is not None and tree.n > head.n:
                await self._check_consistent(old=head, new=tree)
            elif head is not None and tree.n < head.n and older_ok:
                # A lookup may carry an older (cached) tree: fine if it is a prefix of ours.
                await self._check_consistent(old=tree, new=head)
                return
            self._state.advance(note, tree, database=self.name)

    async def _check_consistent(self, *, old: Tree, new: Tree) -> None:
        if old.n == 0:
            if old.hash != tlog.tree_hash(0, []):
                raise VerificationError("consistency", "empty tree with a non-empty hash")
            return
        proof = await self._prove(tlog.prove_tree(self._reader(new), old.n), old.n, new)
        tlog.check_tree(proof, new.n, new.hash, old.n, old.hash)

    def _reader(self, tree: Tree) -> TileHashReader:
        return TileHashReader(tree, self._read_tiles, on_verified=self._tiles_verified)

    async def _prove(self, proof: Awaitable, n: int, tree: Tree):
        """Await a tile-reading proof step, reporting impossible requests as refusals."""
        try:
            return await proof
        except ValueError as e:
            raise VerificationError("inclusion", f"{n} in tree of size {tree.n}: {e}") from None
        except NotFound as e:
            raise VerificationError(
                "inclusion", f"database does not serve a tile the proof needs: {e}"
            ) from None

    def _tiles_verified(self, tiles: list[Tile], data: list[bytes]) -> None:
        for tile, d in zip(tiles, data, strict=True):
            self._tiles.put(tile, d)

    async def _read_tiles(self, tiles: list[Tile]) -> list[bytes]:
        return list(await asyncio.gather(*(self._read_tile(t) for t in tiles)))

    async def _read_tile(self, tile: Tile) -> bytes:
        cached = self._tiles.get(tile)
        if cached is not None:
            return cached
        try:
            return await self._fetch(tile.path())
        except NotFound:
            if tile.full:
                raise
        # A partial tile may be gone once the tile is complete; the full one has its data.
        full = await self._fetch(Tile(tile.h, tile.l, tile.n, 1 << tile.h).path())
        return full[: tile.w * tlog.HASH_SIZE]


def _record_hashes(text: bytes, module: str, version: str) -> dict[str, str]:
    """The h1 hashes a record text gives for module@version (lines for others ignored,
    as the go command does)."""
    found: dict[str, str] = {}
    for line in text.decode().splitlines():
        prefixes = (("zip", f"{module} {version} "), ("mod", f"{module} {version}/go.mod "))
        for key, prefix in prefixes:
            if line.startswith(prefix) and line[len(prefix) :].startswith("h1:"):
                value = line[len(prefix) :]
                if found.setdefault(key, value) != value:
                    raise VerificationError("malformed", f"record has two h1 {key} hashes")
    if set(found) != {"zip", "mod"}:
        raise VerificationError(
            "malformed", f"record does not give both h1 hashes of {module}@{version}"
        )
    return found
