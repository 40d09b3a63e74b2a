"""h1 dirhash of go.mod files and module zips, against the checksum database's records."""

from __future__ import annotations

import base64
import hashlib
import zipfile

import pytest
from verifyhelpers import lookup_records, origin_module_files

from gomirror_proxy.verify.dirhash import DirHashError, hash_gomod, hash_zip, zip_entry_name


def _record_hashes(record: bytes) -> dict[str, str]:
    # "<id>\n<module> <version> h1:...\n<module> <version>/go.mod h1:...\n\n<tree note>"
    lines = record.decode().split("\n\n", 1)[0].splitlines()[1:]
    return {"mod" if v.endswith("/go.mod") else "zip": h for _m, v, h in (x.split() for x in lines)}


@pytest.mark.parametrize("suffix,kind", [(".mod", "mod"), (".zip", "zip")])
def test_every_origin_file_matches_its_checksum_record(suffix, kind):
    records = lookup_records()
    checked = 0
    for key, path in origin_module_files(suffix):
        if key not in records:
            continue
        got = hash_gomod(path.read_bytes()) if kind == "mod" else hash_zip(str(path))
        assert got == _record_hashes(records[key])[kind], key
        checked += 1
    # The origin holds a real module graph (dozens of versions): all of them must be seen.
    assert checked >= 30


def test_gomod_hash_follows_the_hash1_definition():
    data = b"module example.com/m\n\ngo 1.21\n"
    summary = f"{hashlib.sha256(data).hexdigest()}  go.mod\n".encode()
    want = "h1:" + base64.b64encode(hashlib.sha256(summary).digest()).decode()
    assert hash_gomod(data) == want
    assert hash_gomod(data + b"\n") != want


def test_zip_hash_sorts_names_and_covers_every_entry(tmp_path):
    def make(name, entries):
        p = tmp_path / name
        with zipfile.ZipFile(p, "w") as zf:
            for n, d in entries:
                zf.writestr(n, d)
        return str(p)

    a = make("a.zip", [("m@v1.0.0/b.go", b"b"), ("m@v1.0.0/a.go", b"a")])
    b = make("b.zip", [("m@v1.0.0/a.go", b"a"), ("m@v1.0.0/b.go", b"b")])
    c = make("c.zip", [("m@v1.0.0/a.go", b"a"), ("m@v1.0.0/b.go", b"B")])
    assert hash_zip(a) == hash_zip(b) != hash_zip(c)


def test_zip_names_are_hashed_as_stored_bytes(tmp_path):
    p = tmp_path / "u.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("m@v1.0.0/é.go", b"x")
    with zipfile.ZipFile(p) as zf:
        assert zip_entry_name(zf.infolist()[0]) == "m@v1.0.0/é.go".encode()


def test_names_with_newlines_are_refused(tmp_path):
    p = tmp_path / "n.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("m@v1.0.0/a\n.go", b"x")
    with pytest.raises(DirHashError, match="newline"):
        hash_zip(str(p))
