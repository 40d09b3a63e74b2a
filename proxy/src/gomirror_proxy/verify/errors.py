"""Errors of the checksum-database verification path."""

from __future__ import annotations

VERIFICATION_KINDS = ("signature", "inclusion", "consistency", "rollback", "malformed", "mismatch")


class VerificationError(Exception):
    """Data from an upstream or the checksum database failed verification.

    `kind` says which proof failed: "signature" (note not signed by the configured key),
    "inclusion" (record or tile not in the signed tree), "consistency" (two signed trees
    that cannot both be true: a fork), "rollback" (an older tree offered after a newer one
    was verified), "malformed" (unparseable data), "mismatch" (downloaded bytes whose h1
    hash differs from the database's).
    """

    def __init__(self, kind: str, msg: str) -> None:
        if kind not in VERIFICATION_KINDS:
            raise ValueError(f"kind must be one of {VERIFICATION_KINDS}, not {kind!r}")
        super().__init__(f"{kind}: {msg}")
        self.kind = kind
        self.msg = msg


class NotFound(Exception):  # noqa: N818 - the name H2's fetcher and the node code against
    """The checksum database has no such record or file (HTTP 404/410)."""
