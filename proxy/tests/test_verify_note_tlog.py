"""Signed notes and the transparent log: the real sum.golang.org head, records and tiles
from the origin, and synthetic logs signed with test keys for what one real head lacks."""

from __future__ import annotations

import asyncio
import base64

import pytest
from verifyhelpers import SUM_GOLANG_ORG_KEY, SUMDB, SyntheticLog, lookup_records, require_origin

from gomirror_proxy.verify import VerificationError, tlog
from gomirror_proxy.verify.note import Signer, Verifier, key_hash, open_note
from gomirror_proxy.verify.tlog import Tile, TileHashReader, Tree

# --- notes -------------------------------------------------------------------------------


def real_latest() -> bytes:
    require_origin()
    return (SUMDB / "latest").read_bytes()


def test_real_tree_head_verifies_with_the_published_key():
    v = Verifier.parse(SUM_GOLANG_ORG_KEY)
    assert (v.name, v.hash) == ("sum.golang.org", 0x033DE0AE)
    tree = tlog.parse_tree(open_note(real_latest(), [v]))
    assert tree.n > 70_000_000
    assert base64.b64encode(tree.hash).decode() in real_latest().decode()


@pytest.mark.parametrize(
    "vkey,message",
    [
        # The key as it was first handed around: its base64 part is 51 characters.
        (
            "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ikz1yAzqwDd6K3VmU/2eMVn",
            "not base64",
        ),
        (SUM_GOLANG_ORG_KEY.replace("033de0ae", "033de0af"), "does not match"),
        (SUM_GOLANG_ORG_KEY.replace("sum.golang.org", "sum.golang.com"), "does not match"),
        (SUM_GOLANG_ORG_KEY.replace("+033de0ae", "+33de0ae"), "8 hex digits"),
        ("sum.golang.org+033de0ae", "want <name>"),
        ("bad name+033de0ae+AQ==", "invalid name"),
        ("x+00000000+Ag" + "A" * 42, "Ed25519"),
    ],
)
def test_malformed_verifier_keys_are_refused(vkey, message):
    with pytest.raises(ValueError, match=message):
        Verifier.parse(vkey)


def test_key_hash_is_sha256_of_name_newline_key():
    key = bytes([1]) + bytes(range(32))
    import hashlib

    want = int.from_bytes(hashlib.sha256(b"n\n" + key).digest()[:4], "big")
    assert key_hash("n", key) == want


def test_note_signed_by_another_key_is_refused():
    other = Signer.generate("sum.golang.org")  # same name, different key (impostor)
    note = other.sign(b"go.sum database tree\n5\n" + base64.b64encode(bytes(32)) + b"\n")
    with pytest.raises(VerificationError) as e:
        open_note(note, [Verifier.parse(SUM_GOLANG_ORG_KEY)])
    assert e.value.kind == "signature"


def test_unknown_cosigners_are_ignored_but_a_known_signature_is_required():
    known, stranger = Signer.generate("db.test"), Signer.generate("witness.test")
    text = b"hello\n"
    both = known.sign(text) + stranger.sign(text).split(b"\n\n", 1)[1]
    assert open_note(both, [Verifier.parse(known.verifier_key())]) == text
    with pytest.raises(VerificationError, match="no valid signature by a known key"):
        open_note(stranger.sign(text), [Verifier.parse(known.verifier_key())])


def test_altered_text_breaks_the_known_signature():
    signer = Signer.generate("db.test")
    note = signer.sign(b"go.sum database tree\n10\n" + base64.b64encode(bytes(32)) + b"\n")
    forged = note.replace(b"\n10\n", b"\n11\n")
    with pytest.raises(VerificationError) as e:
        open_note(forged, [Verifier.parse(signer.verifier_key())])
    assert e.value.kind == "signature"
    assert "invalid signature by db.test" in str(e.value)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda n: n.replace(b"\n\n", b"\n"),  # no blank line before the signatures
        lambda n: n[:-1],  # signature block not newline-terminated
        lambda n: n.replace(b"hello", b"hel\x01lo"),  # control character
        lambda n: n.replace("\u2014".encode(), b"-"),  # not an em dash
        lambda n: n.replace(b"db.test ", b"db.test !!!"),  # not base64
        lambda n: b"\xff" + n,  # not UTF-8
        lambda n: n + n.split(b"\n\n", 1)[1] * 100,  # more than 100 signatures
    ],
)
def test_malformed_notes_are_refused(mutate):
    signer = Signer.generate("db.test")
    with pytest.raises(VerificationError) as e:
        open_note(mutate(signer.sign(b"hello\n")), [Verifier.parse(signer.verifier_key())])
    assert e.value.kind == "malformed"


@pytest.mark.parametrize(
    "text",
    [
        b"go.sum database tree\n12\n",  # too few lines
        b"go.sum database tree\n012\n" + base64.b64encode(bytes(32)) + b"\n",
        b"go.sum database tree\n-1\n" + base64.b64encode(bytes(32)) + b"\n",
        b"go.sum database tree\n12\n" + base64.b64encode(bytes(31)) + b"\n",
        b"go.sum database tree\n12\n!!!!\n",
        b"some other note\n12\n" + base64.b64encode(bytes(32)) + b"\n",
    ],
)
def test_malformed_tree_notes_are_refused(text):
    with pytest.raises(VerificationError) as e:
        tlog.parse_tree(text)
    assert e.value.kind == "malformed"


def test_tree_note_round_trips_and_ignores_later_lines():
    tree = Tree(12, bytes(range(32)))
    assert tlog.parse_tree(tree.text()) == tree
    assert tlog.parse_tree(tree.text() + b"extension line\n") == tree


@pytest.mark.parametrize(
    "msg",
    [
        b"12 m v h1:x\n\nnote",  # no id line
        b"+12\nm v h1:x\n\nnote",
        b"12\nm v h1:x\nno blank line",
        b"12\nm v\x00 h1:x\n\nnote",
        b"12\n\xffm v h1:x\n\nnote",
    ],
)
def test_malformed_records_are_refused(msg):
    with pytest.raises(VerificationError) as e:
        tlog.parse_record(msg)
    assert e.value.kind == "malformed"


# --- stored hash indexes and tile paths ---------------------------------------------------


def test_stored_hash_indexes_follow_the_write_order():
    # Records 0..3 write: leaf0; leaf1, (1,0); leaf2; leaf3, (1,1), (2,0).
    order = [(0, 0), (0, 1), (1, 0), (0, 2), (0, 3), (1, 1), (2, 0)]
    assert [tlog.stored_hash_index(lv, n) for lv, n in order] == list(range(7))
    for index in range(5000):
        assert tlog.stored_hash_index(*tlog.split_stored_hash_index(index)) == index
    for n in range(1, 600):
        assert tlog.stored_hash_count(n) == tlog.stored_hash_index(0, n)


@pytest.mark.parametrize(
    "tile,path",
    [
        (Tile(8, 0, 0, 256), "tile/8/0/000"),
        (Tile(8, 0, 1234067, 256), "tile/8/0/x001/x234/067"),
        (Tile(8, 1, 1107, 144), "tile/8/1/x001/107.p/144"),
        (Tile(8, -1, 5, 256), "tile/8/data/005"),
        (Tile(8, -1, 5, 7), "tile/8/data/005.p/7"),
    ],
)
def test_tile_paths(tile, path):
    assert tile.path() == path
    assert Tile.parse(path) == tile


@pytest.mark.parametrize(
    "path",
    [
        "tile/8/0/1234",
        "tile/8/0/01",
        "tile/8/0/x1/234",
        "tile/8/0/000.p/256",
        "tile/8/0/000.p/0",
        "tile/0/0/000",
        "tile/8/-1/000",
        "tile/8/0",
        "tiles/8/0/000",
        "tile/8/0/x000/001",  # not canonical: the leading group is dropped
        "tile/8/0/00\u00b2",  # a digit to str.isdigit, not to the format
    ],
)
def test_bad_tile_paths_are_refused(path):
    with pytest.raises(ValueError, match="malformed tile path"):
        Tile.parse(path)


def test_every_origin_tile_path_parses_back_to_itself():
    require_origin()
    paths = [str(p.relative_to(SUMDB)) for p in (SUMDB / "tile").rglob("*") if p.is_file()]
    assert len(paths) > 20
    for path in paths:
        tile = Tile.parse(path)
        assert tile.path() == path
        assert (SUMDB / path).stat().st_size == tile.w * tlog.HASH_SIZE


# --- proofs on the real tree ------------------------------------------------------------


def origin_tiles(tampered: dict[str, bytes] | None = None):
    async def read(tiles: list[Tile]) -> list[bytes]:
        return [(tampered or {}).get(t.path()) or (SUMDB / t.path()).read_bytes() for t in tiles]

    return read


def real_tree() -> Tree:
    return tlog.parse_tree(open_note(real_latest(), [Verifier.parse(SUM_GOLANG_ORG_KEY)]))


def test_origin_tiles_hash_to_the_signed_root():
    tree = real_tree()
    reader = TileHashReader(tree, origin_tiles())
    hashes = asyncio.run(reader.read_hashes(tlog.tree_hash_indexes(tree.n)))
    assert tlog.tree_hash(tree.n, hashes) == tree.hash


def test_every_origin_record_is_proved_in_the_real_tree():
    tree = real_tree()
    reader = TileHashReader(tree, origin_tiles())
    records = lookup_records()
    assert len(records) >= 40
    for key, msg in records.items():
        record_id, text, note = tlog.parse_record(msg)
        assert tlog.parse_tree(open_note(note, [Verifier.parse(SUM_GOLANG_ORG_KEY)])) == tree
        proof = asyncio.run(tlog.prove_record(reader, record_id))
        tlog.check_record(proof, tree.n, tree.hash, record_id, tlog.record_hash(text))
        # The same proof does not hold for an altered record or another id.
        altered = text.replace(b"h1:", b"h1:A", 1)
        with pytest.raises(VerificationError, match="inclusion"):
            tlog.check_record(proof, tree.n, tree.hash, record_id, tlog.record_hash(altered))
        with pytest.raises(VerificationError, match="inclusion"):
            tlog.check_record(proof, tree.n, tree.hash, record_id ^ 1, tlog.record_hash(text))
        assert key


def _flip(data: bytes, at: int = 100) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


@pytest.mark.parametrize(
    "path,why",
    [
        ("tile/8/0/x283/536.p/230", "tiles do not hash to the signed tree"),  # right edge
        ("tile/8/0/x060/540", "does not match its parent"),  # authenticated by its parent
    ],
)
def test_a_flipped_byte_in_a_real_tile_is_refused(path, why):
    tree = real_tree()
    tampered = {path: _flip((SUMDB / path).read_bytes())}
    record_id = 15498348 if "x060" in path else tree.n - 1
    reader = TileHashReader(tree, origin_tiles(tampered))
    with pytest.raises(VerificationError, match=why) as e:
        asyncio.run(reader.read_hashes([tlog.stored_hash_index(0, record_id)]))
    assert e.value.kind == "inclusion"


def test_hash_beyond_the_tree_is_refused():
    tree = real_tree()
    reader = TileHashReader(tree, origin_tiles())
    with pytest.raises(VerificationError, match="not in the tree"):
        asyncio.run(reader.read_hashes([tlog.stored_hash_count(tree.n)]))


# --- proofs on synthetic logs (height 2: many tile levels from few records) ----------------


@pytest.fixture(scope="module")
def small_log():
    return SyntheticLog.of_modules(Signer.generate("db.test"), 70, height=2)


def synthetic_tiles(log: SyntheticLog, size: int):
    async def read(tiles: list[Tile]) -> list[bytes]:
        return [log.tile(t.path(), size) for t in tiles]

    return read


def test_tree_hash_from_tiles_equals_the_recursive_merkle_hash(small_log):
    for n in range(1, 71):
        tree = Tree(n, small_log.root(n))
        reader = TileHashReader(tree, synthetic_tiles(small_log, n), height=2)
        hashes = asyncio.run(reader.read_hashes(tlog.tree_hash_indexes(n)))
        assert tlog.tree_hash(n, hashes) == tree.hash


def test_record_proofs_for_every_record_of_every_size(small_log):
    roots = [small_log.root(n) for n in range(71)]

    async def run():
        for t in range(1, 71):
            reader = TileHashReader(Tree(t, roots[t]), synthetic_tiles(small_log, t), height=2)
            for n in range(t):
                proof = await tlog.prove_record(reader, n)
                leaf = small_log.levels[0][n]
                tlog.check_record(proof, t, roots[t], n, leaf)
                with pytest.raises(VerificationError):
                    tlog.check_record(proof, t, roots[t], n, small_log.levels[0][(n + 1) % 70])
                if t > 1:
                    with pytest.raises(VerificationError):
                        tlog.check_record(proof[:-1], t, roots[t], n, leaf)

    asyncio.run(run())


def test_tree_proofs_between_every_pair_of_sizes(small_log):
    forked = SyntheticLog.of_modules(small_log.signer, 70, salt="fork", height=2)
    roots = [small_log.root(n) for n in range(71)]
    forked_roots = [forked.root(n) for n in range(71)]

    async def run():
        for t in range(1, 71):
            reader = TileHashReader(Tree(t, roots[t]), synthetic_tiles(small_log, t), height=2)
            for n in range(1, t + 1):
                proof = await tlog.prove_tree(reader, n)
                tlog.check_tree(proof, t, roots[t], n, roots[n])
                with pytest.raises(VerificationError) as e:
                    tlog.check_tree(proof, t, roots[t], n, forked_roots[n])
                assert e.value.kind == "consistency"

    asyncio.run(run())


def test_tile_reader_hands_authenticated_tiles_to_its_cache(small_log):
    seen = []
    tree = Tree(70, small_log.root(70))
    reader = TileHashReader(
        tree,
        synthetic_tiles(small_log, 70),
        height=2,
        on_verified=lambda tiles, data: seen.extend(zip(tiles, data, strict=True)),
    )
    asyncio.run(tlog.prove_record(reader, 5))
    assert seen and all(small_log.tile(t.path(), 70) == d for t, d in seen)


def test_data_tiles_split_into_records(small_log):
    tile = Tile(2, -1, 3, 4)
    texts = tlog.data_tile_records(tile, small_log.tile(tile.path()))
    assert texts == small_log.texts[12:16]
    with pytest.raises(ValueError, match="records, want 4"):
        tlog.data_tile_records(tile, b"".join(t + b"\n" for t in small_log.texts[12:15]))
