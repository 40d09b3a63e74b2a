"""The one error every fetcher raises: an HTTP status for the client and a message that
is already free of credentials."""

from __future__ import annotations


class FetchError(Exception):
    def __init__(self, status: int, msg: str):
        super().__init__(msg)
        self.status = status


def classify(err: str) -> int:
    """HTTP status for a go command error message: 404 for "does not exist", 504 for
    timeouts, 502 for everything else."""
    e = err.lower()
    if "zip too large" in e:
        return 404
    for m in ("404 not found", "410 gone", "unknown revision", "invalid version",
              "no matching versions", "not found", "invalid pseudo-version",
              "malformed", "unrecognized import path", "disabled by goproxy=off",
              "retracted"):
        if m in e:
            return 404
    if "timeout" in e or "deadline" in e or "timed out" in e:
        return 504
    return 502
