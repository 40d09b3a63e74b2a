"""A throw-away PKI made with openssl for the certificate tests: a CA and certificates it
signs with the subjectAltNames a test needs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class TestCA:
    """A CA in `directory` whose subject CN is `cn`."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path, cn: str):
        if shutil.which("openssl") is None:
            pytest.fail("openssl is not on PATH")
        self.dir, self.label = directory, cn.replace(" ", "_")
        self.cert, self.key = directory / f"{self.label}.crt", directory / f"{self.label}.key"
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={cn}",
            "-keyout",
            str(self.key),
            "-out",
            str(self.cert),
        )

    def issue(self, cn: str, san: str) -> tuple[Path, Path]:
        """(certificate, key) for cn with subjectAltName san (e.g. "DNS:a,IP:192.0.2.1")."""
        name = f"{self.label}-{cn}"
        cert, key, csr = (self.dir / f"{name}.{ext}" for ext in ("crt", "key", "csr"))
        ext = self.dir / f"{name}.ext"
        ext.write_text(f"subjectAltName={san}\n")
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={cn}",
            "-keyout",
            str(key),
            "-out",
            str(csr),
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(self.cert),
            "-CAkey",
            str(self.key),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            str(ext),
            "-out",
            str(cert),
        )
        return cert, key
