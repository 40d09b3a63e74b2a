"""ChecksumDB: real lookups of the origin's sum.golang.org data, and refusals (rollback,
fork, forged records and tiles, impostor keys) against synthetic databases."""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
import pytest
from verifyhelpers import (
    SUM_GOLANG_ORG_KEY,
    SUMDB,
    SyntheticLog,
    lookup_records,
    origin_module_files,
    require_origin,
)

from gomirror_proxy.modpath import unescape_path, unescape_version
from gomirror_proxy.verify import ChecksumDB, NotFound, TreeHeadState, VerificationError, tlog
from gomirror_proxy.verify.note import Signer
from proxyhelpers import ORIGIN, origin_up

# --- the real database (files of the hermetic origin) --------------------------------------


class OriginFiles:
    """fetch() over the origin's copy of sum.golang.org, counting what is fetched."""

    def __init__(self) -> None:
        require_origin()
        self.fetched: list[str] = []
        self.tampered: dict[str, bytes] = {}

    async def __call__(self, path: str) -> bytes:
        self.fetched.append(path)
        if path in self.tampered:
            return self.tampered[path]
        try:
            return (SUMDB / path).read_bytes()
        except FileNotFoundError:
            raise NotFound(path) from None


def real_db(fetch, state=None) -> ChecksumDB:
    return ChecksumDB("sum.golang.org", SUM_GOLANG_ORG_KEY, fetch, state or TreeHeadState(None))


def security_kinds(caplog) -> list[str]:
    return [
        json.loads(r.getMessage())["kind"]
        for r in caplog.records
        if r.name == "gomirror_proxy.security"
    ]


def test_every_origin_record_verifies_and_matches_the_origin_files(tmp_path):
    fetch = OriginFiles()
    state = TreeHeadState(str(tmp_path / "sum.golang.org" / "latest"))
    db = real_db(fetch, state)
    records = lookup_records()
    files = {
        key + suffix: p for suffix in (".mod", ".zip") for key, p in origin_module_files(suffix)
    }
    matched = 0

    async def run():
        nonlocal matched
        for key in sorted(records):
            module, version = key.rsplit("@", 1)
            module, version = unescape_path(module), unescape_version(version)
            hashes = await db.lookup(module, version)
            assert f"{module} {version} {hashes['zip']}\n".encode() in records[key]
            assert f"{module} {version}/go.mod {hashes['mod']}\n".encode() in records[key]
            mod, zip_ = files.get(key + ".mod"), files.get(key + ".zip")
            if zip_ is not None and zip_.stat().st_size > 1 << 20:
                zip_ = None  # big zips: hashed in test_verify_dirhash already (keeps this fast)
            if mod is not None or zip_ is not None:
                db.verify_hashes(
                    hashes,
                    mod=mod.read_bytes() if mod else None,
                    zip_path=str(zip_) if zip_ else None,
                )
                matched += 1

    asyncio.run(run())
    assert matched >= 40
    # The verified head was persisted exactly as signed.
    assert (tmp_path / "sum.golang.org" / "latest").read_bytes() == (SUMDB / "latest").read_bytes()
    # Tiles are cached: far fewer tile fetches than lookups x tiles per proof.
    tile_fetches = [p for p in fetch.fetched if p.startswith("tile/")]
    assert len(tile_fetches) == len(set(tile_fetches))


def test_a_restarted_node_reverifies_its_stored_head(tmp_path):
    path = tmp_path / "latest"
    asyncio.run(
        real_db(OriginFiles(), TreeHeadState(str(path))).lookup("golang.org/x/mod", "v0.8.0")
    )
    again = real_db(OriginFiles(), TreeHeadState(str(path)))
    assert asyncio.run(again.lookup("golang.org/x/text", "v0.10.0"))["mod"].startswith("h1:")
    path.write_bytes(path.read_bytes().replace(b"\n7", b"\n8", 1))  # tamper with the size
    with pytest.raises(VerificationError, match="stored tree head .* does not verify") as e:
        asyncio.run(real_db(OriginFiles(), TreeHeadState(str(path))).update_latest())
    assert e.value.kind == "signature"


def test_missing_record_is_not_found():
    with pytest.raises(NotFound):
        asyncio.run(real_db(OriginFiles()).lookup("example.com/not/there", "v1.0.0"))


def test_flipped_byte_in_a_real_tile_fails_the_lookup(caplog):
    fetch = OriginFiles()
    path = "tile/8/0/x060/540"  # the level-0 tile of golang.org/x/mod@v0.8.0's record
    data = (SUMDB / path).read_bytes()
    fetch.tampered[path] = data[:7] + bytes([data[7] ^ 0x80]) + data[8:]
    with pytest.raises(VerificationError) as e:
        asyncio.run(real_db(fetch).lookup("golang.org/x/mod", "v0.8.0"))
    assert e.value.kind == "inclusion"
    assert security_kinds(caplog) == ["inclusion"]


def test_altered_real_record_fails_inclusion():
    fetch = OriginFiles()
    lookup = "lookup/golang.org/x/mod@v0.8.0"
    real = (SUMDB / lookup).read_bytes()
    fetch.tampered[lookup] = real.replace(b"h1:LUYu", b"h1:LUYv")
    with pytest.raises(VerificationError, match="record 15498348 is not in the tree") as e:
        asyncio.run(real_db(fetch).lookup("golang.org/x/mod", "v0.8.0"))
    assert e.value.kind == "inclusion"
    fetch.tampered[lookup] = real.replace(b"15498348\n", b"15498349\n")
    with pytest.raises(VerificationError, match="record 15498349 is not in the tree"):
        asyncio.run(real_db(fetch).lookup("golang.org/x/mod", "v0.8.0"))


def test_record_of_another_module_is_refused():
    fetch = OriginFiles()
    fetch.tampered["lookup/golang.org/x/mod@v0.9.0"] = (
        SUMDB / "lookup/golang.org/x/mod@v0.8.0"
    ).read_bytes()
    with pytest.raises(VerificationError, match="does not give both h1 hashes") as e:
        asyncio.run(real_db(fetch).lookup("golang.org/x/mod", "v0.9.0"))
    assert e.value.kind == "malformed"


def test_verify_tile_accepts_only_full_authentic_tiles(caplog):
    db = real_db(OriginFiles())
    full = [p for p in (SUMDB / "tile").rglob("*") if p.is_file() and ".p" not in str(p)]
    assert len(full) > 20

    async def run():
        for p in full:
            path = str(p.relative_to(SUMDB))
            assert await db.verify_tile(path, p.read_bytes()), path
        partial = "tile/8/0/x283/536.p/230"
        assert not await db.verify_tile(partial, (SUMDB / partial).read_bytes())
        good = (SUMDB / "tile/8/0/000").read_bytes()
        assert not await db.verify_tile("tile/8/0/000", good[:-1] + b"\x00")
        assert not await db.verify_tile("tile/8/0/001", good)  # right data, wrong place
        assert not await db.verify_tile("tile/8/0/x999/000", good)  # beyond the tree
        assert not await db.verify_tile("tile/8/0/../000", good)

    asyncio.run(run())
    assert security_kinds(caplog) == ["inclusion", "inclusion"]


def test_verify_hashes_refuses_a_mismatch(tmp_path, caplog):
    require_origin()
    db = real_db(OriginFiles())
    want = asyncio.run(db.lookup("golang.org/x/mod", "v0.8.0"))
    mod = next(p for k, p in origin_module_files(".mod") if k == "golang.org/x/mod@v0.8.0")
    db.verify_hashes(want, mod=mod.read_bytes())
    with pytest.raises(VerificationError, match="go.mod hash .* does not match") as e:
        db.verify_hashes(want, mod=mod.read_bytes() + b"\n")
    assert e.value.kind == "mismatch"
    other_zip = next(p for k, p in origin_module_files(".zip") if k == "golang.org/x/text@v0.10.0")
    with pytest.raises(VerificationError, match="zip hash"):
        db.verify_hashes(want, zip_path=str(other_zip))
    with pytest.raises(VerificationError, match="unhashable"):
        db.verify_hashes(want, zip_path=str(tmp_path / "missing.zip"))
    assert security_kinds(caplog) == ["mismatch", "mismatch", "mismatch"]


def test_configuration_errors_name_the_problem():
    with pytest.raises(ValueError, match="'sum.golang.org': verifier key .* not base64"):
        ChecksumDB(
            "sum.golang.org",
            "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ikz1yAzqwDd6K3VmU/2eMVn",
            OriginFiles(),
            TreeHeadState(None),
        )
    with pytest.raises(ValueError, match="verifier key is for 'sum.golang.org'"):
        ChecksumDB("sum.example.com", SUM_GOLANG_ORG_KEY, OriginFiles(), TreeHeadState(None))


# --- synthetic databases: growth, rollback, forks -----------------------------------------

SIZE = 1100  # level-0 tiles 0..3 full, a partial level-0 and level-1 tile on the edge


@pytest.fixture(scope="module")
def signer():
    return Signer.generate("db.test")


@pytest.fixture(scope="module")
def log(signer):
    return SyntheticLog.of_modules(signer, SIZE)


def synthetic_db(log: SyntheticLog, state: TreeHeadState | None = None) -> ChecksumDB:
    return ChecksumDB("db.test", log.signer.verifier_key(), log.fetch, state or TreeHeadState(None))


def at_size(log: SyntheticLog, n: int) -> SyntheticLog:
    view = SyntheticLog(log.signer, log.texts)
    view.size = n
    return view


def test_a_growing_log_advances_the_head_with_consistency_proofs(log, tmp_path):
    state = TreeHeadState(str(tmp_path / "latest"))
    for n in (1, 2, 255, 256, 257, 700, SIZE):
        tree = asyncio.run(synthetic_db(at_size(log, n), state).update_latest())
        assert (tree.n, tree.hash) == (n, log.root(n))
        assert state.tree == tree
    assert TreeHeadState(str(tmp_path / "latest")).note == log.tree_note(SIZE)


def test_lookup_verifies_and_accepts_an_older_consistent_tree(log):
    state = TreeHeadState(None)
    db = synthetic_db(log, state)
    hashes = asyncio.run(db.lookup("example.com/m1000", "v1.0.0"))
    assert log.texts[1000] == (
        f"example.com/m1000 v1.0.0 {hashes['zip']}\n"
        f"example.com/m1000 v1.0.0/go.mod {hashes['mod']}\n".encode()
    )
    # A cache upstream may answer with a lookup signed for an older tree.
    older = at_size(log, 900)
    db_old = synthetic_db(older, state)
    asyncio.run(db_old.lookup("example.com/m5", "v1.0.0"))
    assert state.tree.n == SIZE  # an older lookup never moves the head back


def test_rollback_of_latest_is_refused_and_logged(log, caplog):
    state = TreeHeadState(None)
    asyncio.run(synthetic_db(log, state).update_latest())
    with pytest.raises(VerificationError, match="older than the verified tree") as e:
        asyncio.run(synthetic_db(at_size(log, 900), state).update_latest())
    assert e.value.kind == "rollback"
    assert security_kinds(caplog) == ["rollback"]
    assert state.tree.n == SIZE


def test_fork_of_the_same_size_is_refused(log, signer, caplog):
    state = TreeHeadState(None)
    asyncio.run(synthetic_db(log, state).update_latest())
    fork = SyntheticLog(signer, log.texts[:5] + [b"example.com/evil v1.0.0 h1:x\n"] + log.texts[6:])
    with pytest.raises(VerificationError, match="fork") as e:
        asyncio.run(synthetic_db(fork, state).update_latest())
    assert e.value.kind == "consistency"
    assert security_kinds(caplog) == ["consistency"]


def test_newer_head_inconsistent_with_the_stored_one_is_refused(log, signer, caplog):
    state = TreeHeadState(None)
    asyncio.run(synthetic_db(at_size(log, 700), state).update_latest())
    evil = [b"example.com/evil v1.0.0 h1:x\n"]
    db = synthetic_db(SyntheticLog(signer, log.texts[:300] + evil + log.texts[301:]), state)
    with pytest.raises(VerificationError, match="not a prefix") as e:
        asyncio.run(db.lookup("example.com/m1000", "v1.0.0"))
    assert e.value.kind == "consistency"
    with pytest.raises(VerificationError, match="not a prefix") as e:
        asyncio.run(db.update_latest())
    assert e.value.kind == "consistency"
    assert state.tree.n == 700
    assert security_kinds(caplog) == ["consistency", "consistency"]


def test_lookup_with_an_older_forked_tree_is_refused(log, signer, caplog):
    state = TreeHeadState(None)
    asyncio.run(synthetic_db(log, state).update_latest())
    # A fork of size 1080 that rewrote record 1050: its proof for record 5 holds in the
    # fork's own tree, but the fork is no prefix of the verified tree of size SIZE.
    texts = log.texts[:1050] + [b"example.com/evil v1.0.0 h1:x\n"] + log.texts[1051:]
    fork = SyntheticLog(signer, texts)
    fork.size = 1080

    async def fetch(path: str) -> bytes:
        if path.endswith(".p/56") or not path.startswith("tile/"):  # the fork's own edge
            return await fork.fetch(path)
        return await log.fetch(path)

    db = ChecksumDB("db.test", signer.verifier_key(), fetch, state)
    with pytest.raises(VerificationError, match="not a prefix") as e:
        asyncio.run(db.lookup("example.com/m5", "v1.0.0"))
    assert e.value.kind == "consistency"
    assert security_kinds(caplog) == ["consistency"]


def test_note_signed_by_another_key_is_refused(log, caplog):
    impostor = Signer.generate("db.test")
    forged = SyntheticLog(impostor, log.texts)
    db = ChecksumDB("db.test", log.signer.verifier_key(), forged.fetch, TreeHeadState(None))
    with pytest.raises(VerificationError) as e:
        asyncio.run(db.lookup("example.com/m3", "v1.0.0"))
    assert e.value.kind == "signature"
    with pytest.raises(VerificationError):
        asyncio.run(db.update_latest())
    assert security_kinds(caplog) == ["signature", "signature"]


def test_record_id_beyond_the_tree_is_refused(log):
    view = at_size(log, 900)
    view.tampered["lookup/example.com/m5@v1.0.0"] = view.lookup_response(950, 900).replace(
        b"m950", b"m5"
    )
    with pytest.raises(VerificationError, match="not in a tree of size 900") as e:
        asyncio.run(synthetic_db(view).lookup("example.com/m5", "v1.0.0"))
    assert e.value.kind == "inclusion"


@pytest.mark.parametrize(
    "body",
    [b"", b"garbage", b"12\nexample.com/m5 v1.0.0 h1:x\n\nnot a note\n"],
)
def test_malformed_lookup_responses_are_refused(log, body):
    view = at_size(log, SIZE)
    view.tampered["lookup/example.com/m5@v1.0.0"] = body
    with pytest.raises(VerificationError) as e:
        asyncio.run(synthetic_db(view).lookup("example.com/m5", "v1.0.0"))
    assert e.value.kind == "malformed"


def test_flipped_byte_in_a_synthetic_tile_is_refused(log):
    view = at_size(log, SIZE)
    path = "tile/8/0/001"
    view.tampered[path] = b"\x00" + log.tile(path)[1:]
    with pytest.raises(VerificationError, match="does not match its parent") as e:
        asyncio.run(synthetic_db(view).lookup("example.com/m300", "v1.0.0"))
    assert e.value.kind == "inclusion"


def test_missing_partial_tile_falls_back_to_the_full_tile(log):
    # The database has grown past SIZE: the edge tile of the tree of size SIZE is complete
    # now and only its full form is served.
    grown = SyntheticLog(log.signer, log.texts + [b"example.com/late v1.0.0 h1:x\n"] * 200)
    served_at_size = at_size(grown, SIZE)
    edge = "tile/8/0/004.p/76"
    fetched = []

    async def fetch(path: str) -> bytes:
        fetched.append(path)
        if path == edge:
            raise NotFound(path)
        return grown.tile(path) if path.startswith("tile/") else await served_at_size.fetch(path)

    db = ChecksumDB("db.test", log.signer.verifier_key(), fetch, TreeHeadState(None))
    hashes = asyncio.run(db.lookup("example.com/m1050", "v1.0.0"))
    assert hashes["mod"].encode() in log.texts[1050]
    assert fetched.index(edge) < fetched.index("tile/8/0/004")


def test_verify_tile_on_synthetic_hash_and_data_tiles(log):
    db = synthetic_db(at_size(log, SIZE))

    async def run():
        assert await db.verify_tile("tile/8/0/002", log.tile("tile/8/0/002"))
        assert await db.verify_tile("tile/8/data/003", log.tile("tile/8/data/003"))
        forged = log.tile("tile/8/data/003").replace(b"m800 ", b"m801 ", 1)
        assert not await db.verify_tile("tile/8/data/003", forged)
        assert not await db.verify_tile("tile/8/data/004", log.tile("tile/8/data/003"))
        assert not await db.verify_tile("tile/8/1/000", b"\x00" * 8192)  # level 1 not complete

    asyncio.run(run())


def test_concurrent_lookups_share_one_head(log):
    state = TreeHeadState(None)
    db = synthetic_db(log, state)

    async def run():
        return await asyncio.gather(
            *(db.lookup(f"example.com/m{i}", "v1.0.0") for i in range(0, SIZE, 97))
        )

    results = asyncio.run(run())
    assert len(results) == len(range(0, SIZE, 97))
    assert state.tree == tlog.Tree(SIZE, log.root(SIZE))


@pytest.fixture(autouse=True)
def _capture_security_log(caplog):
    caplog.set_level(logging.WARNING, logger="gomirror_proxy.security")


def test_tree_head_state_persists_atomically_and_refuses_going_back(tmp_path, caplog):
    path = tmp_path / "db" / "latest"
    state = TreeHeadState(str(path))
    assert state.note is None and state.tree is None
    t5, t9 = tlog.Tree(5, bytes(32)), tlog.Tree(9, bytes(range(32)))
    assert state.advance(b"note5\n", t5) and state.advance(b"note9\n", t9)
    assert not state.advance(b"note9\n", t9)  # the same head again: no change
    assert path.read_bytes() == b"note9\n" and oct(path.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in path.parent.iterdir()] == ["latest"]  # no temporary files left
    with pytest.raises(VerificationError) as e:
        state.advance(b"note5\n", t5, database="db.test")
    assert e.value.kind == "rollback"
    with pytest.raises(VerificationError) as e:
        state.advance(b"fork9\n", tlog.Tree(9, bytes(32)), database="db.test")
    assert e.value.kind == "consistency"
    assert path.read_bytes() == b"note9\n"
    logged = [json.loads(r.getMessage()) for r in caplog.records]
    assert [(r["kind"], r["database"]) for r in logged] == [
        ("rollback", "db.test"),
        ("consistency", "db.test"),
    ]
    memory = TreeHeadState(None)
    assert memory.advance(b"note5\n", t5) and memory.note == b"note5\n"


def test_lookups_over_http_from_the_loopback_origin():
    """The same proofs with the database fetched over HTTP (the origin serves it)."""
    if not origin_up():
        pytest.skip("hermetic origin not running (make setup)")
    base = f"{ORIGIN}/sumdb/sum.golang.org/"

    async def run():
        async with aiohttp.ClientSession() as session:

            async def fetch(path: str) -> bytes:
                async with session.get(base + path) as r:
                    if r.status in (404, 410):
                        raise NotFound(path)
                    r.raise_for_status()
                    return await r.read()

            db = real_db(fetch)
            got = await db.lookup("golang.org/x/text", "v0.10.0")
            with pytest.raises(NotFound):
                await db.lookup("golang.org/x/text", "v0.0.0-20000101000000-000000000000")
            return got, await db.verify_tile("tile/8/0/000", (SUMDB / "tile/8/0/000").read_bytes())

    hashes, tile_ok = asyncio.run(run())
    record = (SUMDB / "lookup/golang.org/x/text@v0.10.0").read_bytes()
    assert f"golang.org/x/text v0.10.0 {hashes['zip']}\n".encode() in record
    assert tile_ok
