"""Module zip rules of the go command (golang.org/x/mod/zip CheckZip and Unzip).

A zip from an upstream is untrusted: before it enters the store every entry must lie
under "<module>@<version>/", have a file path the go command accepts, not collide with
another under case folding, and the uncompressed contents must stay within the limits.
Sizes are checked twice: the central directory's declared sizes first (cheap refusal),
then the bytes really produced while decompressing (the directory can lie). That one
decompression also yields the zip's h1 hash (inspect_zip), so a fetched zip is read once.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from gomirror_proxy.modpath import (
    _WINDOWS_RESERVED,
    InvalidPathError,
    InvalidVersionError,
    check_path,
    check_version,
)
from gomirror_proxy.verify.dirhash import summary_hash, zip_entry_name

MAX_GOMOD = 16 << 20  # x/mod/zip MaxGoMod
MAX_LICENSE = 16 << 20  # x/mod/zip MaxLICENSE
_FILE_PUNCT = "!#$%&()+,-.=@[]^_{}~ "
_ASCII_ELEMENT_OK = re.compile(r"[A-Za-z0-9!#$%&()+,\-.=@\[\]^_{}~ ]*")  # _file_name_char_ok
_CHUNK = 1 << 16
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # APPNOTE 4.3.7: ends with name, extra lengths


class ZipCheckError(ValueError):
    """The zip is not a valid module zip for the module and version (message says why)."""


def _file_name_char_ok(c: str) -> bool:
    if c.isascii():
        return c.isalnum() or c in _FILE_PUNCT
    # unicode.IsLetter: general categories L*.
    return unicodedata.category(c).startswith("L")


def check_file_path(path: str) -> None:
    """module.CheckFilePath: a slash-separated relative path every OS can create.

    Not modpath's element check: file paths in zips also allow non-ASCII letters, have
    no per-element length limit and no Windows short-name (~N) rule, as in x/mod.
    """
    if path == "":
        raise ZipCheckError("empty file path")
    if "//" in path:
        raise ZipCheckError(f"file path {path!r}: double slash")
    if path.endswith("/"):
        raise ZipCheckError(f"file path {path!r}: trailing slash")
    for elem in path.split("/"):
        if elem == "":
            raise ZipCheckError(f"file path {path!r}: empty path element")
        if elem.count(".") == len(elem):
            raise ZipCheckError(f"file path {path!r}: invalid path element {elem!r}")
        if elem.endswith("."):
            raise ZipCheckError(f"file path {path!r}: trailing dot in path element")
        if not (elem.isascii() and _ASCII_ELEMENT_OK.fullmatch(elem)):
            for c in elem:
                if not _file_name_char_ok(c):
                    raise ZipCheckError(f"file path {path!r}: invalid char {c!r}")
        short = elem.split(".", 1)[0]
        if short.upper() in _WINDOWS_RESERVED:
            raise ZipCheckError(f"file path {path!r}: {short!r} is reserved on Windows")


def fold_key(s: str) -> str:
    """A key equal for two strings iff they are equal under simple case folding.

    Go maps each rune to the smallest rune of its case-folding orbit; the orbit is
    approximated by the single-rune upper/lower mappings (multi-rune mappings such as
    "ß" -> "SS" are not simple folds and are left out, as in Go).
    """
    if s.isascii():
        # An ASCII letter's orbit is its two cases (no other single-rune mapping reaches
        # it from ASCII), so fold_runes would give exactly this; paths are mostly ASCII.
        return s.lower()
    return fold_runes(s)


def fold_runes(s: str) -> str:
    """fold_key rune by rune (any string)."""
    out = []
    for c in s:
        candidates = {c}
        for f in (str.lower, str.upper):
            for base in list(candidates):
                m = f(base)
                if len(m) == 1:
                    candidates.add(m)
        low = min(candidates)
        out.append(low.lower() if "A" <= low <= "Z" else low)
    return "".join(out)


class _Collisions:
    """Case-fold collisions and a path used both as a file and a directory."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, bool]] = {}

    def add(self, path: str, is_dir: bool) -> None:
        while True:
            key = fold_key(path)
            other = self._seen.get(key)
            if other is None:
                self._seen[key] = (path, is_dir)
            elif other[0] != path:
                raise ZipCheckError(
                    f"case-insensitive file name collision: {other[0]!r} and {path!r}"
                )
            elif other[1] != is_dir:
                raise ZipCheckError(f"entry {path!r} is both a file and a directory")
            elif not is_dir:
                raise ZipCheckError(f"multiple entries for file {path!r}")
            else:
                return  # a directory already recorded: so are its parents
            if "/" not in path:
                return
            path, is_dir = path.rsplit("/", 1)[0], True


def _entry_name(info: zipfile.ZipInfo, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ZipCheckError(f"entry name {raw!r} is not valid UTF-8") from None


def _file_limit(name: str) -> int | None:
    return {"go.mod": MAX_GOMOD, "LICENSE": MAX_LICENSE}.get(name)


def _check_entries(
    infos: list[zipfile.ZipInfo], raw_names: dict[int, bytes], prefix: str, max_size: int
) -> list[tuple[zipfile.ZipInfo, str]]:
    """Name and declared-size checks; returns the file entries with their module paths."""
    collisions = _Collisions()
    total = 0
    files = []
    for info in infos:
        full = _entry_name(info, raw_names[id(info)])
        if not full.startswith(prefix):
            raise ZipCheckError(f"entry {full!r} does not have prefix {prefix!r}")
        name = full[len(prefix) :]
        if name == "":
            continue
        is_dir = name.endswith("/")
        if is_dir:
            name = name[:-1]
        check_file_path(name)
        collisions.add(name, is_dir)
        if is_dir:
            continue
        base = name.rsplit("/", 1)[-1]
        if base.lower() == "go.mod":
            if base != name:
                raise ZipCheckError(f"entry {full!r}: go.mod file not in module root directory")
            if name != "go.mod":
                raise ZipCheckError(f"entry {full!r}: go.mod file name must be lower case")
        total += info.file_size
        if total > max_size:
            raise ZipCheckError(
                f"total uncompressed size of module contents too large (max size is {max_size}"
                " bytes, declared in the zip directory)"
            )
        limit = _file_limit(name)
        if limit is not None and info.file_size > limit:
            raise ZipCheckError(f"{name} file too large (max size is {limit} bytes)")
        files.append((info, name))
    return files


def _data_offset(f, info: zipfile.ZipInfo) -> int:
    f.seek(info.header_offset)
    header = f.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        raise ZipCheckError(f"entry {info.orig_filename!r}: bad local file header")
    name_len, extra_len = _LOCAL_HEADER.unpack(header)[-2:]
    return info.header_offset + _LOCAL_HEADER.size + name_len + extra_len


def _inflate_bounded(f, info: zipfile.ZipInfo, name: str, bound: int) -> Iterator[bytes]:
    """Yield the entry's uncompressed bytes, refusing output past `bound` bytes.

    Decompresses the raw stream itself (stored or deflate, what Go's archive/zip reads)
    instead of trusting zipfile, which stops at the declared size and so would hide
    extra data a lying directory entry carries.
    """
    if info.flag_bits & 0x1:
        raise ZipCheckError(f"entry {name!r} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ZipCheckError(f"entry {name!r}: unsupported compression method {info.compress_type}")
    f.seek(_data_offset(f, info))
    inflater = zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
    left = info.compress_size
    produced = 0
    while left > 0:
        raw = f.read(min(_CHUNK, left))
        if not raw:
            raise ZipCheckError(f"entry {name!r}: compressed data is truncated")
        left -= len(raw)
        while raw:
            if inflater is None:
                out, raw = raw, b""
            else:
                # max_length caps the output of a zip bomb before it is held in memory.
                out = inflater.decompress(raw, _CHUNK)
                raw = inflater.unconsumed_tail
            produced += len(out)
            if produced > bound:
                raise ZipCheckError(
                    f"uncompressed size of {name} is larger than declared size"
                    f" ({info.file_size} bytes)"
                )
            if out:
                yield out
            if inflater is not None and inflater.eof:
                if raw or inflater.unused_data or left:
                    raise ZipCheckError(f"entry {name!r}: data after the end of the deflate stream")
                break
    if inflater is not None and not inflater.eof:
        raise ZipCheckError(f"entry {name!r}: deflate stream is truncated")


def _read_checked(
    path: str, files: list[tuple[zipfile.ZipInfo, str]], others: list[zipfile.ZipInfo],
    raw_names: dict[int, bytes], max_size: int,
) -> tuple[bytes | None, dict[bytes, str]]:
    """Decompress every entry once, bounding the real output: the root go.mod's bytes and
    the hex sha256 of each entry's contents by stored name (what h1 hashes). `others` are
    the entries that are not files (directories, the bare prefix): the go command's
    HashZip reads those too, so they are hashed, bounded by their declared sizes."""
    total = 0
    gomod = None
    digests: dict[bytes, str] = {}
    with open(path, "rb") as f:
        for info, name in files:
            limit = _file_limit(name)
            size = 0
            crc = 0
            content = hashlib.sha256()
            keep = bytearray() if name == "go.mod" else None
            try:
                for chunk in _inflate_bounded(f, info, name, info.file_size):
                    size += len(chunk)
                    total += len(chunk)
                    crc = zlib.crc32(chunk, crc)
                    if total > max_size:
                        raise ZipCheckError(
                            "total uncompressed size of module contents too large"
                            f" (max size is {max_size} bytes)"
                        )
                    if limit is not None and size > limit:
                        raise ZipCheckError(f"{name} file too large (max size is {limit} bytes)")
                    content.update(chunk)
                    if keep is not None:
                        keep += chunk
            except zlib.error as e:
                raise ZipCheckError(f"entry {name!r}: corrupt deflate data: {e}") from None
            if size != info.file_size:
                raise ZipCheckError(
                    f"uncompressed size of {name} is {size} bytes, declared {info.file_size}"
                )
            if crc != info.CRC:
                raise ZipCheckError(f"entry {name!r}: CRC-32 mismatch")
            digests[raw_names[id(info)]] = content.hexdigest()
            if keep is not None:
                gomod = bytes(keep)
        for info in others:
            name = info.orig_filename
            if info.file_size > max_size - total:
                raise ZipCheckError(f"entry {name!r}: declared size too large")
            content = hashlib.sha256()
            try:
                for chunk in _inflate_bounded(f, info, name, info.file_size):
                    content.update(chunk)
                    total += len(chunk)
            except zlib.error as e:
                raise ZipCheckError(f"entry {name!r}: corrupt deflate data: {e}") from None
            # Duplicated names: Go's HashZip opens by name, so the last entry counts.
            digests[raw_names[id(info)]] = content.hexdigest()
    return gomod, digests


@dataclass(frozen=True)
class ZipFacts:
    """What checking a module zip established: its root go.mod (None when it has none)
    and its h1 hash (the go.sum line's, computed in the same pass)."""

    gomod: bytes | None
    h1: str


def check_zip(
    path: str, module: str, version: str, *, max_size: int, gomod: bytes | None
) -> bytes | None:
    """Check the module zip at `path` for module@version; raise ZipCheckError if invalid.
    Returns the zip's root go.mod bytes, or None when the zip has none (see inspect_zip)."""
    return inspect_zip(path, module, version, max_size=max_size, gomod=gomod).gomod


def inspect_zip(
    path: str, module: str, version: str, *, max_size: int, gomod: bytes | None
) -> ZipFacts:
    """Check the module zip at `path` for module@version and hash it, in one read.

    max_size bounds both the zip file and the total uncompressed contents (the go
    command uses 500 MiB). If `gomod` is given and the zip has a root go.mod, the two
    must be byte-equal (a version's .mod file is its zip's go.mod).
    Raises ZipCheckError if the zip is invalid.
    """
    if max_size <= 0:
        raise ZipCheckError(f"max_size must be a positive number of bytes, not {max_size!r}")
    try:
        check_path(module)
        check_version(module, version)
    except (InvalidPathError, InvalidVersionError) as e:
        raise ZipCheckError(f"invalid module {module!r} version {version!r}: {e}") from None
    zip_size = os.path.getsize(path)
    if zip_size > max_size:
        raise ZipCheckError(
            f"module zip file is too large ({zip_size} bytes; limit is {max_size} bytes)"
        )
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ZipCheckError(f"not a readable zip file: {e}") from None
    with zf:
        infos = zf.infolist()
    # Raw stored names (zip_entry_name): what Go's archive/zip sees and h1 hashes.
    raw_names = {id(info): zip_entry_name(info) for info in infos}
    files = _check_entries(infos, raw_names, f"{module}@{version}/", max_size)
    checked = {id(info) for info, _ in files}
    others = [info for info in infos if id(info) not in checked]
    zip_gomod, digests = _read_checked(path, files, others, raw_names, max_size)
    if gomod is not None and zip_gomod is not None and zip_gomod != gomod:
        raise ZipCheckError(f"go.mod in the zip differs from {module}@{version}.mod")
    # One summary line per entry, as HashZip lists z.File (duplicated names twice).
    h1 = summary_hash((raw_names[id(i)], digests[raw_names[id(i)]]) for i in infos)
    return ZipFacts(zip_gomod, h1)
