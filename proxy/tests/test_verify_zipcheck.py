"""Module zip checks (x/mod/zip rules) on the origin's real zips and on crafted bad ones."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import pytest
from verifyhelpers import origin_module_files

from gomirror_proxy.modpath import unescape_path, unescape_version
from gomirror_proxy.verify.dirhash import hash_zip
from gomirror_proxy.verify.zipcheck import (
    MAX_GOMOD,
    ZipCheckError,
    check_zip,
    fold_key,
    fold_runes,
    inspect_zip,
)

MOD = "example.com/m"
VER = "v1.2.3"
PREFIX = f"{MOD}@{VER}/"
GOMOD = b"module example.com/m\n"
LIMIT = 500 << 20


def make_zip(tmp_path, entries, *, compression=zipfile.ZIP_DEFLATED, name="m.zip"):
    p = tmp_path / name
    with zipfile.ZipFile(p, "w", compression=compression) as zf:
        for n, d in entries:
            zf.writestr(n, d)
    return str(p)


def test_every_origin_zip_passes_and_its_gomod_equals_the_mod_file():
    # The few zips over 4 MiB are left to test_verify_dirhash, which reads them anyway.
    zips = [(k, p) for k, p in origin_module_files(".zip") if p.stat().st_size < 4 << 20]
    assert len(zips) >= 30
    with_gomod = 0
    for key, path in zips:
        module, version = key.rsplit("@", 1)
        mod_file = path.with_suffix(".mod")
        gomod = mod_file.read_bytes() if mod_file.exists() else None
        got = check_zip(
            str(path), unescape_path(module), unescape_version(version), max_size=LIMIT, gomod=gomod
        )
        if got is not None:
            with_gomod += 1
            assert got == gomod, key
    assert with_gomod >= 20


def test_the_checked_read_gives_the_h1_of_every_origin_zip():
    # inspect_zip hashes while it checks (one read); it must agree with dirhash.hash_zip,
    # which the go.sum lines of the real checksum database were tested against.
    zips = [(k, p) for k, p in origin_module_files(".zip") if p.stat().st_size < 4 << 20]
    assert len(zips) >= 30
    for key, path in zips:
        module, version = key.rsplit("@", 1)
        facts = inspect_zip(str(path), unescape_path(module), unescape_version(version),
                            max_size=LIMIT, gomod=None)
        assert facts.h1 == hash_zip(str(path)), key


@pytest.mark.filterwarnings("ignore:Duplicate name")  # the duplicate is the point
def test_the_checked_read_hashes_directory_entries_as_the_go_command_does(tmp_path):
    # HashZip lists every entry, directories and the bare prefix included, a duplicated
    # directory name twice (with the last entry's contents).
    z = make_zip(tmp_path, [(PREFIX, b""), (PREFIX + "a/", b""),
                            (PREFIX + "a/b.go", b"package a\n"), (PREFIX + "a/", b"x"),
                            (PREFIX + "go.mod", GOMOD)])
    facts = inspect_zip(z, MOD, VER, max_size=LIMIT, gomod=GOMOD)
    assert facts.gomod == GOMOD
    assert facts.h1 == hash_zip(z)


def test_fold_key_of_ascii_is_the_rune_by_rune_fold():
    every_ascii = "".join(chr(c) for c in range(128))
    assert fold_key(every_ascii) == fold_runes(every_ascii)
    assert fold_key("Go.MOD") == fold_runes("Go.MOD") == "go.mod"


def test_valid_zip_returns_its_gomod(tmp_path):
    z = make_zip(tmp_path, [(PREFIX + "go.mod", GOMOD), (PREFIX + "a/b.go", b"package a\n")])
    assert check_zip(z, MOD, VER, max_size=LIMIT, gomod=GOMOD) == GOMOD
    assert check_zip(z, MOD, VER, max_size=LIMIT, gomod=None) == GOMOD
    no_mod = make_zip(tmp_path, [(PREFIX + "a.go", b"package a\n")], name="n.zip")
    assert check_zip(no_mod, MOD, VER, max_size=LIMIT, gomod=GOMOD) is None


@pytest.mark.parametrize(
    "entry,message",
    [
        (PREFIX + "../evil.go", "invalid path element '..'"),
        (PREFIX + "a/./b.go", "invalid path element '.'"),
        ("other.com/m@v1.2.3/a.go", "does not have prefix"),
        ("/abs/a.go", "does not have prefix"),
        (PREFIX + "/abs.go", "empty path element"),
        (PREFIX + "a//b.go", "double slash"),
        (PREFIX + "a\\b.go", "invalid char '\\\\\\\\'"),
        (PREFIX + "a*.go", "invalid char"),
        (PREFIX + "CON.go", "reserved on Windows"),
        (PREFIX + "a./b.go", "trailing dot"),
        (PREFIX + "sub/go.mod", "not in module root"),
        (PREFIX + "GO.MOD", "lower case"),
    ],
)
def test_bad_entry_names_are_refused(tmp_path, entry, message):
    z = make_zip(tmp_path, [(PREFIX + "ok.go", b"x"), (entry, b"y")])
    with pytest.raises(ZipCheckError, match=message):
        check_zip(z, MOD, VER, max_size=LIMIT, gomod=None)


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize(
    "first,second",
    [("README", "readme"), ("a/x.go", "A/y.go"), ("k.go", "\u212a.go"), ("dup.go", "dup.go")],
)
def test_case_fold_and_exact_duplicates_are_refused(tmp_path, first, second):
    z = make_zip(tmp_path, [(PREFIX + first, b"1"), (PREFIX + second, b"2")])
    with pytest.raises(ZipCheckError, match="collision|multiple entries"):
        check_zip(z, MOD, VER, max_size=LIMIT, gomod=None)


def test_fold_key_matches_simple_folding_not_full_folding():
    assert fold_key("Kelvin\u212a") == fold_key("kelvink")
    assert fold_key("\u017f") == fold_key("S")  # long s folds to s
    assert fold_key("stra\u00dfe") != fold_key("strasse")  # ß -> ss is not a simple fold


def test_file_and_directory_of_one_name_are_refused(tmp_path):
    z = make_zip(tmp_path, [(PREFIX + "a", b"1"), (PREFIX + "a/b.go", b"2")])
    with pytest.raises(ZipCheckError, match="both a file and a directory"):
        check_zip(z, MOD, VER, max_size=LIMIT, gomod=None)


def test_declared_total_over_max_size_is_refused(tmp_path):
    z = make_zip(tmp_path, [(PREFIX + "a.go", b"a" * 600), (PREFIX + "b.go", b"b" * 600)])
    with pytest.raises(ZipCheckError, match="declared in the zip directory"):
        check_zip(z, MOD, VER, max_size=1000, gomod=None)


def test_zip_file_over_max_size_is_refused(tmp_path):
    z = make_zip(tmp_path, [(PREFIX + "a.go", bytes(range(256)) * 8)], compression=0)
    with pytest.raises(ZipCheckError, match="module zip file is too large"):
        check_zip(z, MOD, VER, max_size=1024, gomod=None)


def test_gomod_over_16_mib_is_refused(tmp_path):
    z = make_zip(tmp_path, [(PREFIX + "go.mod", b"\n" * (MAX_GOMOD + 1))])
    with pytest.raises(ZipCheckError, match="go.mod file too large"):
        check_zip(z, MOD, VER, max_size=LIMIT, gomod=None)


def _lie_about_size(path: str, declared: int) -> None:
    """Rewrite the uncompressed size in the local and central headers of a 1-entry zip."""
    data = bytearray(Path(path).read_bytes())
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<L", data, local + 22, declared)
    struct.pack_into("<L", data, central + 24, declared)
    Path(path).write_bytes(bytes(data))


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
def test_entry_larger_than_declared_is_refused_while_reading(tmp_path, compression):
    z = make_zip(tmp_path, [(PREFIX + "bomb.go", b"0" * 100_000)], compression=compression)
    _lie_about_size(z, 10)
    with pytest.raises(ZipCheckError, match="larger than declared size"):
        check_zip(z, MOD, VER, max_size=LIMIT, gomod=None)


def test_entry_smaller_than_declared_is_refused(tmp_path):
    z = make_zip(tmp_path, [(PREFIX + "a.go", b"0" * 100)])
    _lie_about_size(z, 200)
    with pytest.raises(ZipCheckError, match="is 100 bytes, declared 200"):
        check_zip(z, MOD, VER, max_size=LIMIT, gomod=None)


def test_corrupted_content_is_refused_by_crc(tmp_path):
    z = make_zip(tmp_path, [(PREFIX + "a.go", b"package a\n")], compression=zipfile.ZIP_STORED)
    data = bytearray(Path(z).read_bytes())
    at = data.index(b"package a")
    data[at] ^= 0x20
    Path(z).write_bytes(bytes(data))
    with pytest.raises(ZipCheckError, match="CRC-32 mismatch"):
        check_zip(z, MOD, VER, max_size=LIMIT, gomod=None)


def test_gomod_different_from_the_mod_file_is_refused(tmp_path):
    z = make_zip(tmp_path, [(PREFIX + "go.mod", GOMOD)])
    with pytest.raises(ZipCheckError, match="differs from example.com/m@v1.2.3.mod"):
        check_zip(z, MOD, VER, max_size=LIMIT, gomod=b"module example.com/other\n")


@pytest.mark.parametrize(
    "module,version,message",
    [("example.com/m", "v1.2", "not a canonical"), ("Example", "v1.0.0", "invalid module")],
)
def test_invalid_module_or_version_is_refused(tmp_path, module, version, message):
    z = make_zip(tmp_path, [(PREFIX + "a.go", b"x")])
    with pytest.raises(ZipCheckError, match=message):
        check_zip(z, module, version, max_size=LIMIT, gomod=None)


def test_not_a_zip_and_bad_max_size_are_refused(tmp_path):
    p = tmp_path / "x.zip"
    p.write_bytes(b"this is not a zip")
    with pytest.raises(ZipCheckError, match="not a readable zip"):
        check_zip(str(p), MOD, VER, max_size=LIMIT, gomod=None)
    with pytest.raises(ZipCheckError, match="max_size must be a positive"):
        check_zip(str(p), MOD, VER, max_size=0, gomod=None)


def test_compression_methods_go_cannot_read_are_refused(tmp_path):
    z = make_zip(tmp_path, [(PREFIX + "a.go", b"package a\n")], compression=zipfile.ZIP_BZIP2)
    with pytest.raises(ZipCheckError, match="unsupported compression method 12"):
        check_zip(z, MOD, VER, max_size=LIMIT, gomod=None)
