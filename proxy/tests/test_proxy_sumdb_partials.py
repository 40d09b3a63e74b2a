"""Partial checksum-database tiles: the store keeps those of the stored tree head only."""

from __future__ import annotations

import asyncio
import os

from gomirror_proxy.config import Config
from gomirror_proxy.metrics import Metrics
from gomirror_proxy.storage import DiskStore
from gomirror_proxy.sumdbproxy import SumDBProxy, _partial_tile_of, partial_tile_paths
from proxyhelpers import ORIGIN_TREE

NAME = "sum.golang.org"


def head(n: int) -> bytes:
    # Only the tree size matters to persist_head; the note was verified before it is called.
    return f"go.sum database tree\n{n}\nAAAA\n\n\u2014 {NAME} sig\n".encode()


def test_partial_tile_paths_are_exactly_the_partial_tiles_of_the_tree():
    n = 72585446
    paths = partial_tile_paths(n)
    # 72585446 = ((4*256 + 83)*256 + 144)*256 + 230: partial at levels 0..3 plus the data tile
    assert paths == [
        "tile/8/0/x283/536.p/230",
        "tile/8/data/x283/536.p/230",
        "tile/8/1/x001/107.p/144",
        "tile/8/2/004.p/83",
        "tile/8/3/000.p/4",
    ]
    assert all(_partial_tile_of(p, n) for p in paths)
    # one more record changes the bottom tiles' width; the upper levels stay as they were
    assert [_partial_tile_of(p, n + 1) for p in paths] == [False, False, True, True, True]
    # a level whose width is zero has no partial tile
    assert partial_tile_paths(256) == ["tile/8/1/000.p/1"]


def test_the_partial_tiles_a_real_go_client_fetched_are_those_of_the_captured_head():
    """The origin recorded the tiles a fresh go client asked for at the pinned head."""
    root = ORIGIN_TREE / "sumdb" / NAME
    assert (root / "latest").is_file(), f"{root}: the origin is not filled (make origin)"
    n = int((root / "latest").read_bytes().split(b"\n")[1])
    tiles = (p.relative_to(root).as_posix() for p in (root / "tile").rglob("*") if p.is_file())
    fetched = {t for t in tiles if ".p/" in t}
    assert fetched, "the origin holds no partial tile"
    assert fetched <= set(partial_tile_paths(n))


def test_a_newer_head_removes_the_previous_heads_partial_tiles(tmp_path):
    store = DiskStore(str(tmp_path / "store"))
    proxy = SumDBProxy(Config(disk_root=str(tmp_path / "store")), store, Metrics())
    full = "tile/8/0/x001/101/845"

    async def run():
        await proxy.persist_head(NAME, head(72585446))
        for sub in [*partial_tile_paths(72585446), full]:
            await store.write(f"sumdb/{NAME}/{sub}", b"x" * 32)
        await proxy.persist_head(NAME, head(72585500))
        # an older head never replaces the stored one, and removes nothing
        await proxy.persist_head(NAME, head(72585400))

    asyncio.run(run())
    root = tmp_path / "store" / "sumdb" / NAME
    assert (root / "latest").read_bytes() == head(72585500)
    for sub in partial_tile_paths(72585446):
        if sub in partial_tile_paths(72585500):
            continue
        assert not (root / sub).exists(), sub
    # full tiles are immutable and stay; the unchanged top-level partial tiles stay too
    assert (root / full).exists()
    assert os.path.exists(root / "tile/8/3/000.p/4")
