"""In-process verification of module files against the Go checksum database.

dirhash: the go command's h1 hashes; zipcheck: module zip rules; note and tlog: signed
notes and the transparent log (proofs from tiles); treehead: the latest verified tree
head; checksumdb: the client that ties them together for the node.
"""

from gomirror_proxy.verify.checksumdb import ChecksumDB
from gomirror_proxy.verify.dirhash import DirHashError, hash_gomod, hash_zip
from gomirror_proxy.verify.errors import NotFound, VerificationError
from gomirror_proxy.verify.treehead import TreeHeadState
from gomirror_proxy.verify.zipcheck import ZipCheckError, ZipFacts, check_zip, inspect_zip

__all__ = [
    "ChecksumDB",
    "DirHashError",
    "NotFound",
    "TreeHeadState",
    "VerificationError",
    "ZipCheckError",
    "ZipFacts",
    "check_zip",
    "hash_gomod",
    "hash_zip",
    "inspect_zip",
]
