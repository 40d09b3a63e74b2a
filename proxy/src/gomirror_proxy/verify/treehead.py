"""The latest verified signed tree head of a checksum database, persisted across restarts.

Keeping it is what makes rollback and fork attacks visible: every later tree must extend
this one (the caller proves that with a consistency proof before calling advance()).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

from gomirror_proxy.verify.errors import VerificationError
from gomirror_proxy.verify.tlog import Tree

SECURITY_LOG = logging.getLogger("gomirror_proxy.security")


def security_event(error: VerificationError, **context: str) -> VerificationError:
    """Log a refused proof as one JSON line on the security logger; returns the error.

    An error is logged once, where it is first refused (with that place's context).
    """
    if getattr(error, "logged", False):
        return error
    error.logged = True
    SECURITY_LOG.warning(
        json.dumps(
            {"event": "checksumdb_refused", "kind": error.kind, "detail": error.msg, **context},
            sort_keys=True,
        )
    )
    return error


class TreeHeadState:
    """The latest verified signed tree note: in a file (atomic writes) or, with path None,
    in memory only.

    The file holds the signed note exactly as the database served it (the same format as
    the go command's $GOPATH/pkg/sumdb/<name>/latest), so it can be re-verified on load.
    """

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path is not None else None
        self._note: bytes | None = None
        self._tree: Tree | None = None
        if self.path is not None and self.path.exists():
            self._note = self.path.read_bytes()

    @property
    def note(self) -> bytes | None:
        """The stored signed note (not yet re-verified if it was just loaded)."""
        return self._note

    @property
    def tree(self) -> Tree | None:
        """The stored head, once its note was verified (see ChecksumDB)."""
        return self._tree

    def loaded(self, tree: Tree) -> None:
        """Record the tree of the stored note after the caller verified its signature."""
        self._tree = tree

    def advance(self, note: bytes, tree: Tree, *, database: str = "") -> bool:
        """Make (note, tree) the latest head; True if it changed.

        The caller must already have proved `tree` consistent with the current head.
        An older tree is refused ("rollback"), a different tree of the same size
        ("consistency": the database forked); both are logged as security events.
        """
        current = self._tree
        if current is not None:
            if tree.n < current.n:
                raise security_event(
                    VerificationError(
                        "rollback",
                        f"tree of size {tree.n} is older than the verified tree of size"
                        f" {current.n}",
                    ),
                    database=database,
                )
            if tree.n == current.n:
                if tree.hash != current.hash:
                    raise security_event(
                        VerificationError(
                            "consistency", f"two different signed trees of size {tree.n} (fork)"
                        ),
                        database=database,
                    )
                return False
        if self.path is not None:
            self._write(note)
        self._note, self._tree = note, tree
        return True

    def _write(self, note: bytes) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".latest.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(note)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)  # public data; mkstemp's 0600 would hide it from readers
            os.replace(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise
