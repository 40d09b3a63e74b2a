"""The checksum-database proxy (`/sumdb/<name>/...`) and the node's own checksum-database
client: every go.mod and zip the node fetches over HTTP is checked against the database's
signed, tile-proved records (verify/) before it enters the store (one lookup per version,
both h1 hashes).

Only verified data is persisted: full tiles that the latest verified tree authenticates,
and lookups whose record was proved. Partial tiles (`.p/W`) change with every tree size:
they are held in bounded memory for a short time, never stored.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import time

import aiohttp

from . import modpath
from .config import Config, match_glob
from .errors import HTTPError
from .redact import redact
from .storage import Store
from .ttlcache import TTLCache
from .verify import NotFound, VerificationError
from .verify.tlog import Tile

# sum.golang.org and every database the go command speaks to use tiles of height 8.
TILE_HEIGHT = 8

log = logging.getLogger("gomirror_proxy")

TILE_RE = re.compile(
    r"^tile/[0-9]{1,2}/(?:[0-9]{1,3}|data)/(?:x[0-9]{3}/)*[0-9]{3}(?:\.p/[0-9]{1,3})?$"
)
LATEST_TTL = 5.0
LOOKUP_TTL = 300.0
PARTIAL_TILE_TTL = 60.0
DOWN_SECONDS = 10.0  # after a transport failure, answer from the store for this long
MEMORY_ENTRIES = 20000


class SumDBProxy:
    def __init__(self, cfg: Config, store: Store, metrics):
        self.cfg, self.store, self.metrics = cfg, store, metrics
        self.mem = TTLCache(MEMORY_ENTRIES)
        self.down_until: dict[str, float] = {}
        self.session: aiohttp.ClientSession | None = None
        self._dbs: dict = {}

    async def start(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    # --- upstream -------------------------------------------------------------------------
    async def _upstream(self, name: str, sub: str) -> bytes:
        url = f"{self.cfg.sumdb_upstreams[name]}/{sub}"
        if self.cfg.network_mode == "offline":
            raise HTTPError(404, "not found: offline")
        if self.down_until.get(name, 0) > time.monotonic():
            raise HTTPError(502, "checksum database upstream recently unreachable")
        try:
            async with self.session.get(url) as r:
                if r.status in (404, 410):
                    raise HTTPError(r.status, f"not found: {sub}")
                if r.status != 200:
                    raise HTTPError(502, f"checksum database upstream answered {r.status}")
                return await r.read()
        except (aiohttp.ClientError, TimeoutError) as e:
            # Don't make every client wait for a dead upstream: serve stored data for a while.
            self.down_until[name] = time.monotonic() + DOWN_SECONDS
            raise HTTPError(502, redact(f"checksum database upstream unreachable: {e}")) from None

    async def fetch(self, name: str, sub: str, mem_ttl: float) -> bytes:
        """From memory, else the upstream; when the upstream fails (not a 404), the
        persisted copy."""
        key = (name, sub)
        hit = self.mem.get(key)
        if hit is not None:
            self.metrics.sumdb.inc("memory")
            return hit
        try:
            body = await self._upstream(name, sub)
        except HTTPError as e:
            if e.status in (404, 410) and self.cfg.network_mode != "offline":
                raise
            stored = await self.store.read(f"sumdb/{name}/{sub}")
            if stored is None:
                raise
            self.metrics.sumdb.inc("stale")
            return stored
        self.metrics.sumdb.inc("upstream")
        self.mem.put(key, body, mem_ttl)
        return body

    async def persist(self, name: str, sub: str, body: bytes) -> None:
        with contextlib.suppress(Exception):
            await self.store.write(f"sumdb/{name}/{sub}", body)

    # --- verification -------------------------------------------------------------------------
    def db(self, name: str):
        """The checksum-database client for name (signature, inclusion and consistency
        proofs), its tree head kept in GoGetDir across restarts; None when name has no
        verifier key or the client is not installed."""
        if name not in self.cfg.sumdb_verifier_keys:
            return None
        got = self._dbs.get(name)
        if got is None:
            try:
                from .verify import checksumdb
            except ImportError:
                return None

            state_dir = os.path.join(self.cfg.go_get_dir or tempfile.gettempdir(),
                                     "gomirror-proxy-state")
            os.makedirs(state_dir, exist_ok=True)
            state = checksumdb.TreeHeadState(os.path.join(state_dir, f"{name}.tree"))

            async def fetch(path: str) -> bytes:
                ttl = LATEST_TTL if path == "latest" else LOOKUP_TTL
                try:
                    return await self.fetch(name, path, ttl)
                except HTTPError as e:
                    if e.status in (404, 410):
                        raise NotFound(path) from None
                    raise

            got = checksumdb.ChecksumDB(name, self.cfg.sumdb_verifier_keys[name], fetch, state)
            self._dbs[name] = got
        return got

    def verifying_db(self) -> str | None:
        """The database go.mod files are checked against (the first of SumDBs)."""
        return self.cfg.sumdbs[0] if self.cfg.sumdbs else None

    def can_verify(self) -> bool:
        """Whether module files can be checked against the checksum database in process
        (the first of SumDBs has a verifier key); if not, the go command fetches them."""
        name = self.verifying_db()
        return bool(name) and self.db(name) is not None

    async def lookup_hashes(self, module: str, version: str) -> dict[str, str] | None:
        """The database's proved h1 hashes of module@version ({"zip", "mod"}); None when
        the node cannot verify in process; HTTPError 404 when the database has no record,
        502 when its record or tree is refused."""
        name = self.verifying_db()
        db = self.db(name) if name else None
        if db is None:
            return None
        try:
            return await db.lookup(module, version)
        except NotFound:
            self.metrics.verification_failures.inc("not_in_database")
            raise HTTPError(404, f"not found: {module}@{version}: not in checksum database "
                                 f"{name}") from None
        except VerificationError as e:
            raise self._refused(module, version, "record", e) from None

    async def check_hashes(self, module: str, version: str, want: dict[str, str], *,
                           mod: bytes, zip_hash: str | None = None) -> None:
        """Compare a go.mod (and a zip's h1, computed while the zip was checked) with a
        lookup_hashes() result; HTTPError 502 "SECURITY ERROR" if any differs."""
        db = self.db(self.verifying_db())
        try:
            db.verify_hashes(want, mod=mod, zip_hash=zip_hash)
        except VerificationError as e:
            raise self._refused(module, version, "go.mod" if zip_hash is None else "download",
                                e) from None

    def _refused(self, module: str, version: str, what: str, e: VerificationError) -> HTTPError:
        """Count, log and word a refusal the way the go command does ("SECURITY ERROR")."""
        self.metrics.verification_failures.inc(e.kind)
        log.warning(json.dumps({"msg": "verification failed", "module": module,
                                "version": version, "kind": e.kind, "error": str(e)}))
        name = self.verifying_db()
        why = f"checksum mismatch: {e.msg}" if e.kind == "mismatch" else str(e)
        return HTTPError(502, f"SECURITY ERROR: {module}@{version}: {what} refused by "
                              f"checksum database {name}: {why}")

    async def verify_mod(self, module: str, version: str, body: bytes) -> bool:
        """True when the checksum database vouches for this go.mod; HTTPError when it
        refuses it; False when the node cannot verify in process (then the go command
        fetches the version and verifies it)."""
        want = await self.lookup_hashes(module, version)
        if want is None:
            return False
        await self.check_hashes(module, version, want, mod=body)
        return True

    # --- the /sumdb/<name>/ endpoints -----------------------------------------------------------
    async def supported(self, name: str) -> bool:
        """Whether lookups can be served: the store holds a verified tree, or the upstream
        answers."""
        if await self.stored_tree_size(name) is not None:
            return True
        try:
            await self.fetch(name, "latest", LATEST_TTL)
            return True
        except HTTPError:
            return False

    async def stored_tree_size(self, name: str) -> int | None:
        return _tree_size(await self.store.read(f"sumdb/{name}/latest"))

    async def persist_head(self, name: str, note: bytes) -> None:
        """Persist a verified signed tree note as `latest` when it is newer than the stored
        one: a replica's `latest`, full tiles and partial tiles then describe one tree."""
        n = _tree_size(note)
        old = await self.stored_tree_size(name)
        if n is not None and n > (old or -1):
            await self.persist(name, "latest", note)
            # The previous head's partial tiles describe a tree nobody is served any more:
            # remove them, so the store keeps one set of partial tiles, not one per head.
            if old is not None:
                keep = set(partial_tile_paths(n))
                for sub in partial_tile_paths(old):
                    if sub not in keep:
                        with contextlib.suppress(Exception):
                            await self.store.delete(f"sumdb/{name}/{sub}")

    async def latest(self, name: str) -> bytes:
        body = await self.fetch(name, "latest", LATEST_TTL)
        db = self.db(name)
        if db is not None:
            try:
                await db.update_latest()
            except VerificationError as e:
                self.metrics.verification_failures.inc(e.kind)
                raise HTTPError(502, f"checksum database tree refused: {e}") from None
            await self.persist_head(name, body)
        return body

    async def lookup(self, name: str, target: str) -> bytes:
        em, at, ev = target.rpartition("@")
        try:
            module = modpath.unescape_path(em)
            version = modpath.unescape_version(ev)
        except (modpath.InvalidPathError, modpath.InvalidVersionError) as e:
            raise HTTPError(404, f"not found: {e}") from None
        if not at or not modpath.is_valid_semver(version):
            raise HTTPError(404, "not found: invalid version")
        if match_glob(self.cfg.no_sum_patterns + self.cfg.private_patterns, module):
            raise HTTPError(403, f"forbidden: {module} matches NoSumPatterns/PrivatePatterns")
        sub = f"lookup/{target}"
        body = await self.fetch(name, sub, LOOKUP_TTL)
        db = self.db(name)
        if db is not None and await self.store.stat(f"sumdb/{name}/{sub}") is None:
            # Persisted only once proved (signature, inclusion, consistency).
            try:
                await db.lookup(module, version)
            except NotFound:
                raise HTTPError(404, f"not found: {target}") from None
            except VerificationError as e:
                self.metrics.verification_failures.inc(e.kind)
                raise HTTPError(502, f"checksum database record refused: {e}") from None
            await self.persist(name, sub, body)
            head = body.split(b"\n\n", 1)
            if len(head) == 2:
                await self.persist_head(name, head[1])
        return body

    async def tile(self, name: str, sub: str) -> bytes:
        if ".p/" in sub:
            body = await self.fetch(name, sub, PARTIAL_TILE_TTL)
            # Kept only when it is a partial tile of the stored tree (what a replica served
            # as GOPROXY=file:// needs); every other tree size's partial tiles stay in memory.
            n = await self.stored_tree_size(name)
            if n is not None and _partial_tile_of(sub, n):
                await self.persist(name, sub, body)
            return body
        key = f"sumdb/{name}/{sub}"
        body = await self.store.read(key)
        if body is not None:
            self.metrics.sumdb.inc("store")
            return body
        body = await self.fetch(name, sub, PARTIAL_TILE_TTL)
        db = self.db(name)
        if db is None:
            return body  # cannot be verified here: served, never stored
        try:
            ok = await db.verify_tile(sub, body)
        except (VerificationError, NotFound, HTTPError) as e:
            log.warning(json.dumps({"msg": "tile not verified", "tile": sub,
                                    "error": redact(str(e))[:300]}))
            ok = False
        if ok:
            await self.persist(name, sub, body)
        else:
            self.metrics.verification_failures.inc("tile")
        return body

    async def handle(self, rest: str) -> tuple[bytes, str, str]:
        """(body, content type, Cache-Control) for /sumdb/<rest>."""
        name, _, sub = rest.partition("/")
        if name not in self.cfg.sumdbs:
            raise HTTPError(404, f"not found: checksum database {name!r} is not proxied here")
        text = "text/plain; charset=utf-8"
        if sub == "supported":
            if not await self.supported(name):
                raise HTTPError(404, f"not found: checksum database {name} is unreachable "
                                     "and nothing is stored")
            return b"", text, "public, max-age=300"
        if sub == "latest":
            return await self.latest(name), text, f"public, max-age={int(LATEST_TTL)}"
        if sub.startswith("lookup/"):
            return await self.lookup(name, sub[len("lookup/"):]), text, "public, max-age=3600"
        if TILE_RE.match(sub):
            cc = "public, max-age=60" if ".p/" in sub else "public, max-age=31536000, immutable"
            return await self.tile(name, sub), "application/octet-stream", cc
        raise HTTPError(404, "not found")


def _tree_size(note: bytes | None) -> int | None:
    """The tree size of a signed tree note ("go.sum database tree\\nN\\n...")."""
    if not note:
        return None
    lines = note.split(b"\n", 2)
    if len(lines) < 3 or lines[0] != b"go.sum database tree" or not lines[1].isdigit():
        return None
    return int(lines[1])


def _partial_tile_of(path: str, n: int) -> bool:
    """Whether path is the partial tile that a tree of size n ends in at its level."""
    try:
        tile = Tile.parse(path)
    except ValueError:
        return False
    count = n >> (tile.h * max(tile.l, 0))  # hashes stored at this level
    return tile.n == count >> tile.h and tile.w == count & ((1 << tile.h) - 1)


def partial_tile_paths(n: int, h: int = TILE_HEIGHT) -> list[str]:
    """The partial tiles (hash tiles at every level, and the data tile) a tree of size n
    ends in: what a client of that tree may ask for besides full tiles."""
    out = []
    level, count = 0, n
    while count > 0:
        width = count & ((1 << h) - 1)
        if width:
            out.append(Tile(h, level, count >> h, width).path())
            if level == 0:
                out.append(Tile(h, -1, count >> h, width).path())
        count >>= h
        level += 1
    return out
