"""Credentials never leave the node: strip `user:token@` from URLs in any text that is
logged or returned (error bodies, /readyz, the go command's stderr)."""

from __future__ import annotations

import re

# scheme://userinfo@host — the userinfo part is everything up to the last '@' before the
# host, without '/', whitespace or quotes (a token may itself contain ':').
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@'\"]+@")
REDACTED = "redacted@"


def redact(text: str) -> str:
    return _USERINFO.sub(lambda m: m["scheme"] + REDACTED, text)
