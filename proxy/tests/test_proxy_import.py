"""import-athens: an Athens disk store converted into the module-cache layout."""

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

from proxyhelpers import GO, ORIGIN_TREE, go_env, proxy_cmd

GOOD = [
    ("github.com/BurntSushi/toml", "github.com/!burnt!sushi/toml", "v1.3.2"),
    ("github.com/dgrijalva/jwt-go", "github.com/dgrijalva/jwt-go", "v3.2.0+incompatible"),
    ("github.com/go-playground/validator/v10", "github.com/go-playground/validator/v10",
     "v10.14.0"),
    ("github.com/chenzhuoyu/base64x", "github.com/chenzhuoyu/base64x",
     "v0.0.0-20221115062448-fe3a3abad311"),
]


def make_athens_store(root: Path) -> None:
    """Athens' disk layout: <module>/<version>/{go.mod,source.zip,<version>.info}."""
    for mod, esc, ver in GOOD:
        src = ORIGIN_TREE / esc / "@v"
        d = root / mod / ver
        d.mkdir(parents=True)
        shutil.copy(src / f"{ver}.mod", d / "go.mod")
        shutil.copy(src / f"{ver}.zip", d / "source.zip")
        shutil.copy(src / f"{ver}.info", d / f"{ver}.info")
    # invalid entries that must be skipped, not imported
    bad = root / "github.com/evil/x/v1.0"  # not a canonical version
    bad.mkdir(parents=True)
    (bad / "go.mod").write_text("module github.com/evil/x\n")
    (bad / "v1.0.info").write_text('{"Version":"v1.0"}')
    shutil.copy(root / GOOD[0][0] / GOOD[0][2] / "source.zip", bad / "source.zip")
    evil = root / "github.com/evil/y/v1.0.0"  # zip with an entry outside its prefix
    evil.mkdir(parents=True)
    (evil / "go.mod").write_text("module github.com/evil/y\n")
    (evil / "v1.0.0.info").write_text('{"Version":"v1.0.0"}')
    with zipfile.ZipFile(evil / "source.zip", "w") as z:
        z.writestr("github.com/evil/y@v1.0.0/../../../../etc/cron.d/x", "boom")
    # What the go command refuses (verify.check_zip) beyond the prefix and `..`.
    for name, entries in REFUSED.items():
        d = root / name / "v1.0.0"
        d.mkdir(parents=True)
        (d / "go.mod").write_text(f"module {name}\n")
        (d / "v1.0.0.info").write_text('{"Version":"v1.0.0"}')
        with zipfile.ZipFile(d / "source.zip", "w") as z:
            for entry, data in entries:
                z.writestr(f"{name}@v1.0.0/{entry}", data)


# module -> zip entries (under its prefix), each refused by the go command's zip rules
# (all were accepted by the import's earlier prefix-and-`..` check), and why.
REFUSED = {
    "github.com/evil/casefold": [("go.mod", "module github.com/evil/casefold\n"),
                                 ("a.go", "package a\n"), ("A.go", "package a\n")],
    "github.com/evil/gomod": [("go.mod", "module github.com/evil/other\n")],
    "github.com/evil/badname": [("go.mod", "module github.com/evil/badname\n"),
                                ("x:y.go", "package a\n")],
    "github.com/evil/nested": [("go.mod", "module github.com/evil/nested\n"),
                               ("sub/GO.MOD", "module x\n")],
}
REFUSED_WHY = {
    "github.com/evil/casefold": "case-insensitive file name collision",
    "github.com/evil/gomod": "go.mod in the zip differs",
    "github.com/evil/badname": "invalid char",
    "github.com/evil/nested": "go.mod file not in module root directory",
}


def test_import_athens(tmp_path):
    athens, store = tmp_path / "athens", tmp_path / "store"
    make_athens_store(athens)
    r = subprocess.run([*proxy_cmd(), "import-athens", str(athens), "--dest", str(store)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr  # invalid entries are reported
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary == {"msg": "import-athens done", "imported": 4, "already_present": 0,
                       "invalid": 2 + len(REFUSED)}
    skipped = {json.loads(line)["dir"]: json.loads(line)["error"]
               for line in r.stdout.splitlines() if '"skip invalid"' in line}
    for name, why in REFUSED_WHY.items():
        assert why in skipped[str(athens / name / "v1.0.0")], (name, skipped)
    for _, esc, ver in GOOD:
        for ext in ("info", "mod", "zip"):
            rel = f"{esc}/@v/{ver}.{ext}"
            assert (store / rel).read_bytes() == (ORIGIN_TREE / rel).read_bytes(), rel
    assert (store / "github.com/!burnt!sushi/toml/@v/list").read_text() == "v1.3.2\n"
    assert (store / "github.com/chenzhuoyu/base64x/@v/list").read_text() == ""
    assert not (store / "github.com/evil").exists()
    # idempotent
    r = subprocess.run([*proxy_cmd(), "import-athens", str(athens), "--dest", str(store)],
                       capture_output=True, text=True, timeout=120)
    assert json.loads(r.stdout.strip().splitlines()[-1])["already_present"] == 4
    # the result is a GOPROXY the go command accepts as it is
    for mod, _, ver in GOOD:
        res = subprocess.run([GO, "mod", "download", "-json", f"{mod}@{ver}"], cwd=tmp_path,
                             env=go_env(tmp_path, f"file://{store}", GOSUMDB="off",
                                        GOFLAGS="-modcacherw"),
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
