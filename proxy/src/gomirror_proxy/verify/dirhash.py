"""The go command's "h1:" hashes (golang.org/x/mod/sumdb/dirhash Hash1).

Hash1 of a set of files: sort the names (byte order), write one summary line
"<hex sha256 of content>  <name>\\n" per file, and return "h1:" + base64 of the sha256
of the summary. The go.mod hash is Hash1 of the single file named "go.mod"; the zip hash
is Hash1 of every entry of the zip under its stored name (prefix included).
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Callable, Iterable

_CHUNK = 1 << 16


class DirHashError(ValueError):
    """The files cannot be hashed (a name the summary format cannot carry)."""


def zip_entry_name(info: zipfile.ZipInfo) -> bytes:
    """The entry's name exactly as stored in the zip, as Go's archive/zip sees it.

    Python decodes names without the UTF-8 flag as cp437 and cuts them at a NUL; Go keeps
    the raw bytes. Hashes and path checks must use the raw bytes or a crafted name could
    hash or validate differently here than in the go command.
    """
    encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
    return info.orig_filename.encode(encoding, "surrogateescape")


def summary_hash(digests: Iterable[tuple[bytes, str]]) -> str:
    """Hash1 from each file's name and the hex sha256 of its content (for callers that
    already read the contents, e.g. zipcheck's single pass over a zip)."""
    summary = hashlib.sha256()
    for name, hexdigest in sorted(digests, key=lambda e: e[0]):
        if b"\n" in name:
            raise DirHashError(f"file name {name!r} contains a newline; h1 cannot hash it")
        summary.update(b"%s  %s\n" % (hexdigest.encode(), name))
    return "h1:" + base64.b64encode(summary.digest()).decode()


def _summary_hash(entries: Iterable[tuple[bytes, Callable[[], Iterable[bytes]]]]) -> str:
    def digest(read_chunks: Callable[[], Iterable[bytes]]) -> str:
        content = hashlib.sha256()
        for chunk in read_chunks():
            content.update(chunk)
        return content.hexdigest()

    for name, _ in entries:  # refuse before reading anything
        if b"\n" in name:
            raise DirHashError(f"file name {name!r} contains a newline; h1 cannot hash it")
    return summary_hash((name, digest(read)) for name, read in entries)


def hash_gomod(data: bytes) -> str:
    """The h1 hash of a go.mod file ("<module> <version>/go.mod h1:..." in go.sum)."""
    return _summary_hash([(b"go.mod", lambda: [data])])


def hash_zip(path: str) -> str:
    """The h1 hash of a module zip ("<module> <version> h1:..." in go.sum).

    Reads every entry, so run check_zip first on untrusted zips: it bounds the sizes.
    """
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        # Go's HashZip opens entries by name, so a duplicated name hashes the last entry
        # of that name twice; keep the same meaning.
        last_by_name = {zip_entry_name(info): info for info in infos}

        def reader(info: zipfile.ZipInfo) -> Callable[[], Iterable[bytes]]:
            def read_chunks() -> Iterable[bytes]:
                with zf.open(info) as f:
                    while chunk := f.read(_CHUNK):
                        yield chunk

            return read_chunks

        entries = [(zip_entry_name(i), reader(last_by_name[zip_entry_name(i)])) for i in infos]
        return _summary_hash(entries)
