"""`gomirror-proxy import-athens SRC`: convert an Athens disk store into this layout.

Athens' disk storage keeps `<module>/<version>/{go.mod,source.zip,<version>.info}`
(module path and version as the go command spells them; an already-escaped `!` form is
accepted too). Each version is validated like a request, its zip checked by the go
command's rules (verify.check_zip: every entry under `<module>@<version>/`, valid file
names, no case-fold duplicates, size limits, its go.mod equal to the version's go.mod),
and written with the store's atomic put (info last).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from . import modpath
from .storage import Store
from .verify import ZipCheckError, check_zip

# The go command's bound on a module zip and its uncompressed contents (x/mod/zip).
MAX_ZIP = 500 << 20


def _module_from(rel: str) -> str:
    rel = rel.replace(os.sep, "/")
    if "!" in rel:
        return modpath.unescape_path(rel)
    modpath.check_path(rel)
    return rel


def scan(src: str):
    """Yield (module, version, dir) for every Athens version directory under src."""
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        if "go.mod" in filenames and "source.zip" in filenames:
            dirnames[:] = []
            rel = os.path.relpath(dirpath, src)
            mod_rel, ver = os.path.split(rel)
            yield mod_rel, ver, dirpath


async def import_athens(src: str, store: Store, out=sys.stdout) -> tuple[int, int, int]:
    imported = skipped = failed = 0
    for mod_rel, ver_raw, d in scan(src):
        try:
            module = _module_from(mod_rel)
            version = modpath.unescape_version(ver_raw) if "!" in ver_raw else ver_raw
            modpath.check_version(module, version)
            info = os.path.join(d, f"{ver_raw}.info")
            if not os.path.isfile(info):
                cands = [f for f in os.listdir(d) if f.endswith(".info")]
                if len(cands) != 1:
                    raise ValueError("no .info file")
                info = os.path.join(d, cands[0])
            with open(info, "rb") as f:  # noqa: ASYNC230 - a one-shot CLI
                meta = json.load(f)
            if meta.get("Version") != version:
                raise ValueError(f".info names version {meta.get('Version')!r}")
            with open(os.path.join(d, "go.mod"), "rb") as f:  # noqa: ASYNC230 - a one-shot CLI
                gomod = f.read()
            check_zip(os.path.join(d, "source.zip"), module, version, max_size=MAX_ZIP,
                      gomod=gomod)
        except (ValueError, OSError, ZipCheckError) as e:
            failed += 1
            print(json.dumps({"msg": "skip invalid", "dir": d, "error": str(e)}), file=out)
            continue
        em, ev = modpath.escape_path(module), modpath.escape_version(version)
        if await store.has_version(em, ev):
            skipped += 1
            continue
        await store.put_version(em, ev, {"info": info, "mod": os.path.join(d, "go.mod"),
                                         "zip": os.path.join(d, "source.zip")})
        imported += 1
    print(json.dumps({"msg": "import-athens done", "imported": imported,
                      "already_present": skipped, "invalid": failed}), file=out)
    return imported, skipped, failed


def run(src: str, store: Store) -> int:
    if not os.path.isdir(src):
        print(f"import-athens: {src}: not a directory", file=sys.stderr)
        return 2
    _, _, failed = asyncio.run(import_athens(src, store))
    return 1 if failed else 0
