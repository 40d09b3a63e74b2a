"""Fixtures for tests/unit/plugins; the code lives in gomirror_testlib.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gomirror_testlib import bind_server, moto_endpoint  # noqa: E402, F401
