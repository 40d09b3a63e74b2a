"""Signed notes (golang.org/x/mod/sumdb/note): the format of the checksum database's
signed tree heads.

A note is UTF-8 text ending in "\\n", a blank line, then signature lines
"— <name> <base64(key hash (4 bytes, big-endian) || Ed25519 signature (64 bytes))>".
A verifier key is "<name>+<hex key hash>+<base64(0x01 || Ed25519 public key)>"; the key
hash is the first 4 bytes of sha256(name + "\\n" + 0x01 || public key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gomirror_proxy.verify.errors import VerificationError

ALG_ED25519 = 0x01
_SIG_PREFIX = "\u2014 ".encode()  # em dash, space
_MAX_SIGNATURES = 100  # the go command stops parsing a note with more


def _b64decode(s: str) -> bytes:
    return base64.b64decode(s.encode("ascii"), validate=True)


def _valid_name(name: str) -> bool:
    return name != "" and "+" not in name and not any(c.isspace() for c in name)


def key_hash(name: str, key: bytes) -> int:
    """The 32-bit id of a key: first 4 bytes of sha256(name "\\n" alg||public key)."""
    return int.from_bytes(hashlib.sha256(name.encode() + b"\n" + key).digest()[:4], "big")


@dataclass(frozen=True)
class Verifier:
    """A parsed verifier key: the name and key hash a signature line must carry."""

    name: str
    hash: int
    public_key: bytes  # 32 raw Ed25519 bytes

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """Parse "<name>+<8 hex digits>+<base64 key>", refusing any inconsistency."""
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise ValueError(f"verifier key {vkey!r}: want <name>+<hash>+<base64 key>")
        name, hash16, key64 = parts
        if not _valid_name(name):
            raise ValueError(f"verifier key {vkey!r}: invalid name {name!r}")
        if len(hash16) != 8 or any(c not in "0123456789abcdefABCDEF" for c in hash16):
            raise ValueError(f"verifier key {vkey!r}: key hash must be 8 hex digits")
        try:
            key = _b64decode(key64)
        except (binascii.Error, UnicodeEncodeError):
            raise ValueError(f"verifier key {vkey!r}: key is not base64") from None
        if len(key) != 33 or key[0] != ALG_ED25519:
            raise ValueError(f"verifier key {vkey!r}: want 0x01 (Ed25519) and 32 key bytes")
        if int(hash16, 16) != key_hash(name, key):
            raise ValueError(f"verifier key {vkey!r}: key hash does not match name and key")
        return cls(name, int(hash16, 16), key[1:])

    def verify(self, text: bytes, sig: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(sig, text)
        except InvalidSignature:
            return False
        return True


def open_note(msg: bytes, verifiers: list[Verifier]) -> bytes:
    """Verify a signed note and return its text (ending in "\\n").

    Signatures by keys not in `verifiers` are ignored (a database may add cosigners);
    a signature by a known key that does not verify is refused, and at least one known
    valid signature is required.
    """
    try:
        decoded = msg.decode("utf-8")
    except UnicodeDecodeError:
        raise VerificationError("malformed", "note is not valid UTF-8") from None
    if any(c < " " and c != "\n" for c in decoded):
        raise VerificationError("malformed", "note contains control characters")
    split = msg.rfind(b"\n\n")
    if split < 0:
        raise VerificationError("malformed", "note has no signature block")
    text, sigs = msg[: split + 1], msg[split + 2 :]
    if not sigs.endswith(b"\n"):
        raise VerificationError("malformed", "note's signature block does not end in a newline")
    known = {(v.name, v.hash): v for v in verifiers}
    verified = 0
    lines = sigs[:-1].split(b"\n")
    if len(lines) > _MAX_SIGNATURES:
        raise VerificationError("malformed", f"note has more than {_MAX_SIGNATURES} signatures")
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise VerificationError("malformed", f"bad signature line {line!r}")
        name, _, b64 = line[len(_SIG_PREFIX) :].decode().partition(" ")
        try:
            sig = _b64decode(b64)
        except (binascii.Error, UnicodeEncodeError):
            raise VerificationError("malformed", f"signature of {name!r} is not base64") from None
        if not _valid_name(name) or len(sig) < 5:
            raise VerificationError("malformed", f"bad signature line {line!r}")
        verifier = known.get((name, int.from_bytes(sig[:4], "big")))
        if verifier is None:
            continue
        if not verifier.verify(text, sig[4:]):
            raise VerificationError("signature", f"invalid signature by {name} on the note")
        verified += 1
    if verified == 0:
        names = ", ".join(sorted(v.name for v in verifiers)) or "none"
        raise VerificationError("signature", f"note has no valid signature by a known key: {names}")
    return text


@dataclass(frozen=True)
class Signer:
    """An Ed25519 note signer: what a checksum database (or a test's fake one) holds."""

    name: str
    seed: bytes  # 32 bytes

    @classmethod
    def generate(cls, name: str) -> Signer:
        if not _valid_name(name):
            raise ValueError(f"invalid signer name {name!r}")
        return cls(name, os.urandom(32))

    def _private(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    def verifier_key(self) -> str:
        raw = self._private().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        key = bytes([ALG_ED25519]) + raw
        return f"{self.name}+{key_hash(self.name, key):08x}+{base64.b64encode(key).decode()}"

    def sign(self, text: bytes) -> bytes:
        """The signed note for `text` (which must end in "\\n")."""
        if not text.endswith(b"\n"):
            raise ValueError("note text must end in a newline")
        key = Verifier.parse(self.verifier_key())
        sig = key.hash.to_bytes(4, "big") + self._private().sign(text)
        return text + b"\n" + _SIG_PREFIX + f"{self.name} ".encode() + base64.b64encode(sig) + b"\n"
