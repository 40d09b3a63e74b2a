"""The error a request ends in: an HTTP status, a message for the client (free of
credentials) and the Cache-Control of the error answer."""

from __future__ import annotations

CC_ERROR = "public, max-age=10"
CC_NOSTORE = "no-store"


class HTTPError(Exception):
    def __init__(self, status: int, msg: str, cc: str | None = None):
        super().__init__(msg)
        self.status, self.msg = status, msg
        self.cc = cc or (CC_ERROR if status < 500 else CC_NOSTORE)
