"""Module path and version rules of the go command (golang.org/x/mod/module, semver).

Everything that arrives from a request goes through these checks before it touches
the store or an upstream: a string that passes cannot name a file outside the store
(no empty, "." or ".." elements, no leading dot, only [A-Za-z0-9._~/-] and, in the
escaped form, "!" before a lower-case letter).
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

MAX_PATH_LEN = 512  # whole module path; proxies in the wild use the same order of size
MAX_ELEM_LEN = 200  # one path element / a version: must stay a valid file name with suffix


class InvalidPathError(ValueError):
    """The request names no valid module path (HTTP 400)."""


class InvalidVersionError(ValueError):
    """The request names no valid version (HTTP 400 or 404)."""


_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(1, 10)} | {
    f"LPT{i}" for i in range(1, 10)
}


def _mod_path_ok(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c in "-._~")


def _file_path_ok(c: str) -> bool:
    # filePath kind in x/mod: a wider set, used for versions' file names.
    return c.isascii() and (c.isalnum() or c in "!#$%&()+,-.=@[]^_{}~ ")


def _check_elem(elem: str, kind: str) -> None:
    if elem == "":
        raise InvalidPathError("empty path element")
    if elem.strip(".") == "":
        raise InvalidPathError(f"invalid path element {elem!r}")
    if elem[0] == "." and kind == "module":
        raise InvalidPathError(f"leading dot in path element {elem!r}")
    if elem[-1] == ".":
        raise InvalidPathError(f"trailing dot in path element {elem!r}")
    if len(elem) > MAX_ELEM_LEN:
        raise InvalidPathError("path element too long")
    ok = _mod_path_ok if kind == "module" else _file_path_ok
    for c in elem:
        if not ok(c):
            raise InvalidPathError(f"invalid char {c!r}")
    short = elem.split(".", 1)[0]
    if short.upper() in _WINDOWS_RESERVED:
        raise InvalidPathError(f"{short!r} disallowed as path element component on Windows")
    tilde = short.rfind("~")
    if 0 <= tilde < len(short) - 1 and short[tilde + 1 :].isdigit():
        raise InvalidPathError(f"trailing tilde and digits in path element {elem!r}")


def split_path_version(path: str) -> tuple[str, str, bool]:
    """module.SplitPathVersion: (prefix, pathMajor, ok)."""
    if path.startswith("gopkg.in/"):
        return _split_gopkg_in(path)
    i = len(path)
    dot = False
    while i > 0 and (path[i - 1].isdigit() and path[i - 1].isascii() or path[i - 1] == "."):
        if path[i - 1] == ".":
            dot = True
        i -= 1
    if i <= 1 or i == len(path) or path[i - 1] != "v" or path[i - 2] != "/":
        return path, "", True
    prefix, major = path[: i - 2], path[i - 2 :]
    if dot or len(major) <= 2 or major[2] == "0" or major == "/v1":
        return path, "", False
    return prefix, major, True


def _split_gopkg_in(path: str) -> tuple[str, str, bool]:
    i = len(path)
    if path.endswith("-unstable"):
        i -= len("-unstable")
    while i > 0 and path[i - 1].isascii() and path[i - 1].isdigit():
        i -= 1
    if i <= 1 or path[i - 1] != "v" or path[i - 2] != ".":
        return path, "", False
    prefix, major = path[: i - 2], path[i - 2 :]
    if len(major) <= 2 or (major[2] == "0" and major != ".v0"):
        return path, "", False
    return prefix, major, True


def check_path(path: str) -> None:
    """module.CheckPath."""
    if not path:
        raise InvalidPathError("empty module path")
    if len(path) > MAX_PATH_LEN:
        raise InvalidPathError("module path too long")
    if not path.isascii():
        raise InvalidPathError("non-ASCII module path")
    if path.startswith("/") or path.endswith("/") or "//" in path:
        raise InvalidPathError("malformed module path: leading, trailing or double slash")
    for elem in path.split("/"):
        _check_elem(elem, "module")
    first = path.split("/", 1)[0]
    if "." not in first:
        raise InvalidPathError(f"missing dot in first path element {first!r}")
    if first[0] == "-":
        raise InvalidPathError("leading dash in first path element")
    for c in first:
        if not (c.islower() or c.isdigit() or c in ".-"):
            raise InvalidPathError(f"invalid char {c!r} in first path element")
    if not split_path_version(path)[2]:
        raise InvalidPathError("invalid major version suffix")


def _escape(s: str) -> str:
    out = []
    for c in s:
        if c == "!" or not c.isascii():
            raise ValueError(f"invalid char {c!r}")
        out.append("!" + c.lower() if "A" <= c <= "Z" else c)
    return "".join(out)


def _unescape(s: str) -> str:
    out = []
    bang = False
    for c in s:
        if not c.isascii():
            raise ValueError("non-ASCII")
        if bang:
            if not ("a" <= c <= "z"):
                raise ValueError("'!' must be followed by a lower-case letter")
            out.append(c.upper())
            bang = False
        elif c == "!":
            bang = True
        elif "A" <= c <= "Z":
            raise ValueError("unescaped upper-case letter")
        else:
            out.append(c)
    if bang:
        raise ValueError("trailing '!'")
    return "".join(out)


def escape_path(path: str) -> str:
    check_path(path)
    return _escape(path)


def unescape_path(escaped: str) -> str:
    try:
        path = _unescape(escaped)
    except ValueError as e:
        raise InvalidPathError(f"invalid escaped module path: {e}") from None
    check_path(path)
    return path


def escape_version(v: str) -> str:
    _check_elem(v, "file")
    return _escape(v)


def unescape_version(escaped: str) -> str:
    try:
        v = _unescape(escaped)
        _check_elem(v, "file")
    except ValueError as e:
        raise InvalidVersionError(f"invalid escaped version: {e}") from None
    return v


# --- semver (golang.org/x/mod/semver) ---------------------------------------------

_NUM = r"(?:0|[1-9][0-9]*)"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD_ID = r"[0-9A-Za-z-]+"
_SEMVER = re.compile(
    rf"^v(?P<major>{_NUM})(?:\.(?P<minor>{_NUM})(?:\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_PRE_ID}(?:\.{_PRE_ID})*))?"
    rf"(?:\+(?P<build>{_BUILD_ID}(?:\.{_BUILD_ID})*))?)?)?$"
)
_PSEUDO = re.compile(
    r"^v[0-9]+\.(0\.0-|\d+\.\d+-([^+]*\.)?0\.)\d{14}-[A-Za-z0-9]+(\+[0-9A-Za-z-.]+)?$"
)


def is_valid_semver(v: str) -> bool:
    return bool(_SEMVER.match(v))


def is_canonical(v: str) -> bool:
    """Canonical as the go command requires in go.mod: vX.Y.Z[-pre], build only +incompatible."""
    m = _SEMVER.match(v)
    if not m or m["minor"] is None or m["patch"] is None:
        return False
    return m["build"] in (None, "incompatible")


def is_pseudo(v: str) -> bool:
    return v.count("-") >= 1 and bool(_PSEUDO.match(v)) and is_valid_semver(v)


def major(v: str) -> str:
    m = _SEMVER.match(v)
    return f"v{m['major']}" if m else ""


def _cmp_pre(a: str | None, b: str | None) -> int:
    if a == b:
        return 0
    if a is None:
        return 1
    if b is None:
        return -1
    pa, pb = a.split("."), b.split(".")
    for x, y in zip(pa, pb, strict=False):
        if x == y:
            continue
        xd, yd = x.isdigit(), y.isdigit()
        if xd and yd:
            return -1 if int(x) < int(y) else 1
        if xd != yd:
            return -1 if xd else 1
        return -1 if x < y else 1
    return (len(pa) > len(pb)) - (len(pa) < len(pb))


def semver_key(v: str):
    """Sort key following semver.Compare (invalid versions sort first)."""
    import functools

    return functools.cmp_to_key(compare)(v)


def compare(a: str, b: str) -> int:
    ma, mb = _SEMVER.match(a), _SEMVER.match(b)
    if not ma or not mb:
        return (bool(ma) > bool(mb)) - (bool(ma) < bool(mb))
    for k in ("major", "minor", "patch"):
        x, y = int(ma[k] or 0), int(mb[k] or 0)
        if x != y:
            return -1 if x < y else 1
    return _cmp_pre(ma["pre"], mb["pre"])


def check_version(path: str, version: str) -> None:
    """module.Check plus the canonical form the proxy protocol serves files for."""
    if not is_canonical(version):
        raise InvalidVersionError(f"{version!r} is not a canonical semantic version")
    _, path_major, _ = split_path_version(path)
    m = major(version)
    incompatible = version.endswith("+incompatible")
    if incompatible:
        if path_major or m in ("v0", "v1"):
            raise InvalidVersionError("+incompatible only for v2+ versions without a /vN path")
        return
    pm = path_major
    if pm.startswith(".v") and pm.endswith("-unstable"):
        pm = pm[: -len("-unstable")]
    if version.startswith("v0.0.0-") and pm == ".v1":
        return
    if pm == "":
        if m not in ("v0", "v1"):
            raise InvalidVersionError(f"invalid version: should be v0 or v1, not {m}")
    elif pm[1:] != m:
        raise InvalidVersionError(f"invalid version: should be {pm[1:]}, not {m}")


def decode_request_path(raw: str) -> str:
    """Percent-decode a raw request path once; reject anything that is not ASCII/printable."""
    if "?" in raw:
        raw = raw.split("?", 1)[0]
    data = unquote_to_bytes(raw)
    try:
        s = data.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidPathError("non-ASCII request path") from None
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in s):
        raise InvalidPathError("control or space character in request path")
    if "\\" in s or "%" in s:
        raise InvalidPathError("invalid character in request path")
    return s
