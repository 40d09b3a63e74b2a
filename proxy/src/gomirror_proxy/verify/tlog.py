"""The checksum database's transparent log (golang.org/x/mod/sumdb/tlog), from RFC 6962.

The log is a Merkle tree over record texts: a record's hash is SHA256(0x00 || text), an
inner node's SHA256(0x01 || left || right). Every hash is "stored" at an index in one
linear sequence (the order a log writes them); tiles of height H hold 2**H consecutive
hashes of one tile level, so the hashes of tree levels L*H .. L*H+H-1 are computable from
the tile of level L. A tree of size N is named by its signed head (N, root hash).

Proofs are built in two steps so the I/O stays outside the math: `*_indexes()` says which
stored hashes a proof needs, a `TileHashReader` reads them out of tiles (authenticating
every tile against the signed root before use), then `record_proof` / `tree_proof` build
the proof and `check_record` / `check_tree` verify it against signed heads.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass

from gomirror_proxy.verify.errors import VerificationError

HASH_SIZE = 32
TILE_HEIGHT = 8  # what sum.golang.org serves; the path carries it
TREE_PREFIX = b"go.sum database tree\n"


def record_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


# --- stored hash indexes ---------------------------------------------------------------


def stored_hash_index(level: int, n: int) -> int:
    """Index in the stored sequence of the hash at `level`, position n on that level."""
    # The hash is written right after the level-0 hash of its last record.
    for _ in range(level):
        n = 2 * n + 1
    i = 0
    while n > 0:
        i += n
        n >>= 1
    return i + level


def split_stored_hash_index(index: int) -> tuple[int, int]:
    """Inverse of stored_hash_index: (level, n)."""
    # stored_hash_index(0, n) < 2n, so the record that wrote `index` is near index/2.
    n = index // 2
    index_n = stored_hash_index(0, n)
    while True:
        # Record n+1 adds its leaf plus one hash per subtree it completes.
        x = index_n + 1 + _trailing_zeros(n + 1)
        if x > index:
            break
        n += 1
        index_n = x
    level = index - index_n
    return level, n >> level


def stored_hash_count(n: int) -> int:
    """How many hashes a tree of n records stores."""
    if n == 0:
        return 0
    count = stored_hash_index(0, n - 1) + 1
    i = n - 1
    while i & 1:
        count += 1
        i >>= 1
    return count


def _trailing_zeros(x: int) -> int:
    return (x & -x).bit_length() - 1


def _maxpow2(n: int) -> tuple[int, int]:
    """Largest k = 2**level strictly below n, and level."""
    level = (n - 1).bit_length() - 1
    return 1 << level, level


def _subtree_indexes(lo: int, hi: int, need: list[int]) -> list[int]:
    """Stored indexes of the maximal complete subtrees that cover [lo, hi)."""
    while lo < hi:
        k, level = _maxpow2(hi - lo + 1)
        if lo & (k - 1):
            raise AssertionError(f"tlog: [{lo}, {hi}) is not aligned")
        need.append(stored_hash_index(level, lo >> level))
        lo += k
    return need


def _subtree_hash(lo: int, hi: int, hashes: Iterator[bytes]) -> bytes:
    parts = []
    while lo < hi:
        k, _ = _maxpow2(hi - lo + 1)
        parts.append(next(hashes))
        lo += k
    h = parts[-1]
    for left in reversed(parts[:-1]):
        h = node_hash(left, h)
    return h


def tree_hash_indexes(n: int) -> list[int]:
    return _subtree_indexes(0, n, [])


def tree_hash(n: int, hashes: Sequence[bytes]) -> bytes:
    """Root hash of the tree of size n from the hashes at tree_hash_indexes(n)."""
    if n == 0:
        return bytes(HASH_SIZE)  # tlog's hash of the empty tree
    return _subtree_hash(0, n, iter(hashes))


# --- record (inclusion) proofs ---------------------------------------------------------


def _leaf_proof_indexes(lo: int, hi: int, n: int, need: list[int]) -> list[int]:
    if lo + 1 == hi:
        return need
    k, _ = _maxpow2(hi - lo)
    if n < lo + k:
        _leaf_proof_indexes(lo, lo + k, n, need)
        _subtree_indexes(lo + k, hi, need)
    else:
        _subtree_indexes(lo, lo + k, need)
        _leaf_proof_indexes(lo + k, hi, n, need)
    return need


def _leaf_proof(lo: int, hi: int, n: int, hashes: Iterator[bytes]) -> list[bytes]:
    if lo + 1 == hi:
        return []
    k, _ = _maxpow2(hi - lo)
    if n < lo + k:
        proof = _leaf_proof(lo, lo + k, n, hashes)
        proof.append(_subtree_hash(lo + k, hi, hashes))
    else:
        sibling = _subtree_hash(lo, lo + k, hashes)
        proof = _leaf_proof(lo + k, hi, n, hashes)
        proof.append(sibling)
    return proof


def record_proof_indexes(t: int, n: int) -> list[int]:
    """Stored hashes an inclusion proof of record n in the tree of size t needs."""
    if not 0 <= n < t:
        raise ValueError(f"record {n} is not in a tree of size {t}")
    return _leaf_proof_indexes(0, t, n, [])


def record_proof(t: int, n: int, hashes: Sequence[bytes]) -> list[bytes]:
    """The RFC 6962 audit path of record n in the tree of size t."""
    return _leaf_proof(0, t, n, iter(hashes))


def _run_record_proof(proof: list[bytes], lo: int, hi: int, n: int, leaf: bytes) -> bytes:
    if lo + 1 == hi:
        if proof:
            raise _ProofError
        return leaf
    if not proof:
        raise _ProofError
    k, _ = _maxpow2(hi - lo)
    if n < lo + k:
        return node_hash(_run_record_proof(proof[:-1], lo, lo + k, n, leaf), proof[-1])
    return node_hash(proof[-1], _run_record_proof(proof[:-1], lo + k, hi, n, leaf))


class _ProofError(Exception):
    """A proof has the wrong number of hashes for the trees it claims to relate."""


def check_record(proof: list[bytes], t: int, th: bytes, n: int, h: bytes) -> None:
    """Verify that record hash h is record n of the tree of size t and root th."""
    if not 0 <= n < t:
        raise VerificationError("inclusion", f"record {n} is not in a tree of size {t}")
    try:
        root = _run_record_proof(proof, 0, t, n, h)
    except _ProofError:
        root = None
    if root != th:
        raise VerificationError("inclusion", f"record {n} is not in the tree of size {t}")


# --- tree (consistency) proofs ---------------------------------------------------------


def _tree_proof_indexes(lo: int, hi: int, n: int, need: list[int]) -> list[int]:
    if n == hi:
        return need if lo == 0 else _subtree_indexes(lo, hi, need)
    k, _ = _maxpow2(hi - lo)
    if n <= lo + k:
        _tree_proof_indexes(lo, lo + k, n, need)
        _subtree_indexes(lo + k, hi, need)
    else:
        _subtree_indexes(lo, lo + k, need)
        _tree_proof_indexes(lo + k, hi, n, need)
    return need


def _tree_proof(lo: int, hi: int, n: int, hashes: Iterator[bytes]) -> list[bytes]:
    if n == hi:
        return [] if lo == 0 else [_subtree_hash(lo, hi, hashes)]
    k, _ = _maxpow2(hi - lo)
    if n <= lo + k:
        proof = _tree_proof(lo, lo + k, n, hashes)
        proof.append(_subtree_hash(lo + k, hi, hashes))
    else:
        sibling = _subtree_hash(lo, lo + k, hashes)
        proof = _tree_proof(lo + k, hi, n, hashes)
        proof.append(sibling)
    return proof


def tree_proof_indexes(t: int, n: int) -> list[int]:
    """Stored hashes a proof that the tree of size n is a prefix of size t needs."""
    if not 1 <= n <= t:
        raise ValueError(f"no consistency proof from size {n} to size {t}")
    return _tree_proof_indexes(0, t, n, [])


def tree_proof(t: int, n: int, hashes: Sequence[bytes]) -> list[bytes]:
    """The RFC 6962 consistency proof from the tree of size n to the tree of size t."""
    return _tree_proof(0, t, n, iter(hashes))


def _run_tree_proof(
    proof: list[bytes], lo: int, hi: int, n: int, old: bytes
) -> tuple[bytes, bytes]:
    """(hash of [lo, n), hash of [lo, hi)) as the proof claims them."""
    if n == hi:
        if lo == 0:
            if proof:
                raise _ProofError
            return old, old
        if len(proof) != 1:
            raise _ProofError
        return proof[0], proof[0]
    if not proof:
        raise _ProofError
    k, _ = _maxpow2(hi - lo)
    if n <= lo + k:
        oh, th = _run_tree_proof(proof[:-1], lo, lo + k, n, old)
        return oh, node_hash(th, proof[-1])
    oh, th = _run_tree_proof(proof[:-1], lo + k, hi, n, old)
    return node_hash(proof[-1], oh), node_hash(proof[-1], th)


def check_tree(proof: list[bytes], t: int, th: bytes, n: int, h: bytes) -> None:
    """Verify that the tree (n, h) is a prefix of the tree (t, th)."""
    if not 1 <= n <= t:
        raise VerificationError("consistency", f"no consistency proof from size {n} to size {t}")
    try:
        old, new = _run_tree_proof(proof, 0, t, n, h)
    except _ProofError:
        old = new = None
    if old != h or new != th:
        raise VerificationError(
            "consistency", f"tree of size {n} is not a prefix of the tree of size {t}"
        )


# --- tiles -----------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Tile:
    """Tile (height h, level l, index n, width w); l == -1 is the record data tile."""

    h: int
    l: int  # noqa: E741 - tlog's name
    n: int
    w: int

    @property
    def full(self) -> bool:
        return self.w == 1 << self.h

    def path(self) -> str:
        n = self.n
        digits = f"{n % 1000:03d}"
        while n >= 1000:
            n //= 1000
            digits = f"x{n % 1000:03d}/{digits}"
        partial = "" if self.full else f".p/{self.w}"
        level = "data" if self.l == -1 else str(self.l)
        return f"tile/{self.h}/{level}/{digits}{partial}"

    @classmethod
    def parse(cls, path: str) -> Tile:
        """Parse "tile/H/L/[xNNN/...]NNN[.p/W]"; the path must be the canonical one."""
        f = path.split("/")
        bad = ValueError(f"malformed tile path {path!r}")
        if not path.isascii() or len(f) < 4 or f[0] != "tile" or not f[1].isdigit():
            raise bad
        h = int(f[1])
        if not 1 <= h <= 30:
            raise bad
        if f[2] == "data":
            level = -1
        elif f[2].isdigit():
            level = int(f[2])
        else:
            raise bad
        w = 1 << h
        if f[-2].endswith(".p"):
            if not f[-1].isdigit() or not 0 < int(f[-1]) < w:
                raise bad
            w = int(f[-1])
            f = f[:-2] + [f[-2][:-2]]
        n = 0
        for part in f[3:]:
            digits = part[1:] if part.startswith("x") else part
            if len(digits) != 3 or not digits.isdigit():
                raise bad
            n = n * 1000 + int(digits)
        tile = cls(h, level, n, w)
        if tile.path() != path:
            raise bad
        return tile

    def parent(self, k: int, tree_size: int) -> Tile | None:
        """The tile k levels up that holds this tile's hashes, at its width in the tree."""
        level = self.l + k
        n = self.n >> (k * self.h)
        width = 1 << self.h
        top = tree_size >> (level * self.h)  # hashes on tile level `level` in the tree
        if (n << self.h) + width >= top:
            if (n << self.h) >= top:
                return None
            width = top - (n << self.h)
        return Tile(self.h, level, n, width)


def tile_for_index(h: int, index: int) -> tuple[Tile, int, int]:
    """The narrowest tile holding stored hash `index`, and the byte range of its subtree."""
    level, n = split_stored_hash_index(index)
    tile_level = level // h
    level -= tile_level * h  # level inside the tile
    tile_n = (n << level) >> h
    n -= (tile_n << h) >> level  # position inside the tile, on that level
    tile = Tile(h, tile_level, tile_n, (n + 1) << level)
    return tile, (n << level) * HASH_SIZE, ((n + 1) << level) * HASH_SIZE


_TILE_ROOTS: OrderedDict[bytes, bytes] = OrderedDict()  # sha256(data) -> tile_hash(data)
_TILE_ROOTS_MAX = 4096
_TILE_ROOTS_MIN = 16 * HASH_SIZE  # smaller subtrees are cheaper to hash than to look up


def tile_hash(data: bytes) -> bytes:
    """Root of the complete subtree whose bottom hashes are `data` (2**k hashes).

    Every proof re-reads the same few tiles (the tree's right edge, the upper levels), so
    roots of larger subtrees are remembered by the SHA-256 of their data: a pure function
    of the bytes, and no weaker than the Merkle tree itself, which also stands on
    SHA-256's collision resistance."""
    if len(data) < _TILE_ROOTS_MIN:
        return _subtree_root(data)
    key = hashlib.sha256(data).digest()
    root = _TILE_ROOTS.get(key)
    if root is None:
        root = _subtree_root(data)
        _TILE_ROOTS[key] = root
        if len(_TILE_ROOTS) > _TILE_ROOTS_MAX:
            _TILE_ROOTS.popitem(last=False)
    else:
        _TILE_ROOTS.move_to_end(key)
    return root


def _subtree_root(data: bytes) -> bytes:
    """tile_hash without memory: pairwise, level by level."""
    level = [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def hash_from_tile(tile: Tile, data: bytes, index: int) -> bytes:
    """Stored hash `index`, computed from the data of `tile` that contains it."""
    if tile.l < 0 or len(data) < tile.w * HASH_SIZE:
        raise ValueError(f"tile {tile.path()}: data too short or not a hash tile")
    want, start, end = tile_for_index(tile.h, index)
    if (want.l, want.n) != (tile.l, tile.n) or tile.w < want.w:
        raise ValueError(f"hash {index} is in {want.path()}, not {tile.path()}")
    return tile_hash(data[start:end])


def data_tile_records(tile: Tile, data: bytes) -> list[bytes]:
    """Split a data tile into its record texts (each "text\\n" followed by a blank line)."""
    if tile.l != -1 or not data.endswith(b"\n\n"):
        raise ValueError(f"{tile.path()}: not a data tile")
    texts = [t + b"\n" for t in data[:-2].split(b"\n\n")]
    if len(texts) != tile.w:
        raise ValueError(f"{tile.path()}: {len(texts)} records, want {tile.w}")
    return texts


# --- signed tree heads and lookup records ----------------------------------------------


@dataclass(frozen=True)
class Tree:
    n: int
    hash: bytes

    def text(self) -> bytes:
        return TREE_PREFIX + f"{self.n}\n{base64.b64encode(self.hash).decode()}\n".encode()


def parse_tree(text: bytes) -> Tree:
    """Parse a tree note's text "go.sum database tree\\nN\\nbase64(root)\\n" (later lines
    are ignored, for the format's forward compatibility)."""
    if not text.startswith(TREE_PREFIX) or text.count(b"\n") < 3 or len(text) > 1_000_000:
        raise VerificationError("malformed", "not a go.sum database tree note")
    lines = text.split(b"\n", 3)
    if not lines[1].isdigit() or lines[1] != str(int(lines[1])).encode():
        raise VerificationError("malformed", f"tree size {lines[1]!r} is not a decimal number")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except binascii.Error:
        root = b""
    if len(root) != HASH_SIZE:
        raise VerificationError("malformed", "tree hash is not 32 base64-encoded bytes")
    return Tree(int(lines[1]), root)


def _valid_record_text(text: bytes) -> bool:
    try:
        s = text.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return s.endswith("\n") and "\n\n" not in s and not any(c < " " and c != "\n" for c in s)


def parse_record(msg: bytes) -> tuple[int, bytes, bytes]:
    """Split a lookup response "id\\ntext\\n\\nnote" into (id, text, signed tree note)."""
    head, sep, rest = msg.partition(b"\n")
    if not sep or not head.isdigit() or head != str(int(head)).encode():
        raise VerificationError("malformed", "lookup response does not start with a record id")
    text, sep, note = rest.partition(b"\n\n")
    text += b"\n"
    if not sep or not _valid_record_text(text):
        raise VerificationError("malformed", "lookup response has no valid record text")
    return int(head), text, note


# --- reading hashes out of tiles -------------------------------------------------------

TileFetch = Callable[[list[Tile]], Awaitable[list[bytes]]]


class TileHashReader:
    """Read stored hashes of the tree `tree` out of tiles, authenticating every tile.

    The tiles along the tree's right edge must hash to the signed root; every other tile
    read must hash to its entry in its (already authenticated) parent tile. Only then are
    hashes returned, so a tile server cannot make a proof pass with forged tiles.
    """

    def __init__(
        self,
        tree: Tree,
        read_tiles: TileFetch,
        *,
        height: int = TILE_HEIGHT,
        on_verified: Callable[[list[Tile], list[bytes]], None] | None = None,
    ) -> None:
        self.tree = tree
        self._read_tiles = read_tiles
        self._h = height
        self._on_verified = on_verified  # gets the tiles once authenticated (for caching)

    def _tile(self, index: int) -> Tile:
        tile, _, _ = tile_for_index(self._h, index)
        return tile

    async def read_hashes(self, indexes: list[int]) -> list[bytes]:
        tree = self.tree
        if not indexes:
            return []
        if any(i >= stored_hash_count(tree.n) for i in indexes):
            raise VerificationError("inclusion", f"hash index not in the tree of size {tree.n}")
        order: dict[Tile, int] = {}
        tiles: list[Tile] = []

        def want(tile: Tile) -> int:
            if tile not in order:
                order[tile] = len(tiles)
                tiles.append(tile)
            return order[tile]

        # The right-edge tiles, which together give the root hash.
        edge = tree_hash_indexes(tree.n)
        edge_tiles = [want(self._tile(x).parent(0, tree.n)) for x in edge]
        n_edge = len(tiles)
        # Tiles holding the wanted hashes, each with the chain of parents up to a tile
        # already planned (so it can be authenticated top-down).
        index_tiles = []
        for x in indexes:
            tile = self._tile(x)
            chain = []
            k = 0
            while (p := tile.parent(k, tree.n)) not in order:
                chain.append(p)
                k += 1
            for p in reversed(chain):
                if not p.full:
                    raise AssertionError(f"tlog: tile {p.path()} has a parent but is partial")
                want(p)
            index_tiles.append(order[tile.parent(0, tree.n)])

        data = await self._read_tiles(tiles)
        if len(data) != len(tiles):
            raise AssertionError("tile reader returned the wrong number of tiles")
        for tile, d in zip(tiles, data, strict=True):
            if len(d) != tile.w * HASH_SIZE:
                raise VerificationError(
                    "inclusion", f"{tile.path()}: {len(d)} bytes, want {tile.w * HASH_SIZE}"
                )

        root = hash_from_tile(tiles[edge_tiles[-1]], data[edge_tiles[-1]], edge[-1])
        for j in range(len(edge) - 2, -1, -1):
            left = hash_from_tile(tiles[edge_tiles[j]], data[edge_tiles[j]], edge[j])
            root = node_hash(left, root)
        if root != tree.hash:
            raise VerificationError(
                "inclusion", f"tiles do not hash to the signed tree of size {tree.n}"
            )
        for j in range(n_edge, len(tiles)):
            tile = tiles[j]
            parent = tile.parent(1, tree.n)
            pj = order[parent]
            expect = hash_from_tile(parent, data[pj], stored_hash_index(parent.l * self._h, tile.n))
            if tile_hash(data[j]) != expect:
                raise VerificationError(
                    "inclusion", f"{tile.path()} does not match its parent {parent.path()}"
                )
        if self._on_verified is not None:
            self._on_verified(tiles, data)
        return [
            hash_from_tile(tiles[j], data[j], x) for j, x in zip(index_tiles, indexes, strict=True)
        ]


async def prove_record(reader: TileHashReader, n: int) -> list[bytes]:
    t = reader.tree.n
    return record_proof(t, n, await reader.read_hashes(record_proof_indexes(t, n)))


async def prove_tree(reader: TileHashReader, n: int) -> list[bytes]:
    t = reader.tree.n
    return tree_proof(t, n, await reader.read_hashes(tree_proof_indexes(t, n)))
