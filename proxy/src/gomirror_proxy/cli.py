"""Entry point: gomirror-proxy serve | check-config | import-athens | version."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from . import __version__
from .config import ConfigError, load


class JsonFormatter(logging.Formatter):
    """One JSON object per line: our own messages are JSON already; anything else
    (library warnings, tracebacks) is wrapped."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if msg.startswith("{") and not record.exc_info:
            return msg
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(),
               "logger": record.name, "msg": msg}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def _setup_logging(level: str) -> None:
    h = logging.StreamHandler(sys.stdout)
    h.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [h]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    # malformed requests (line too long, bad method...) are answered 400 by aiohttp; they
    # are the client's problem, not log-worthy tracebacks
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    logging.getLogger("gomirror_proxy.lifecycle").setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gomirror-proxy", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the GOPROXY node")
    s.add_argument("-c", "--config", "-config_file", dest="config", required=True)
    c = sub.add_parser("check-config", help="validate a config file and exit")
    c.add_argument("file")
    i = sub.add_parser("import-athens", help="convert an Athens disk store into the store")
    i.add_argument("src")
    g = i.add_mutually_exclusive_group(required=True)
    g.add_argument("-c", "--config", help="store from this config file")
    g.add_argument("--dest", help="a disk store root directory")
    sub.add_parser("version")
    a = p.parse_args(argv)

    if a.cmd == "version":
        print(__version__)
        return 0
    if a.cmd == "check-config":
        try:
            load(a.file)
        except ConfigError as e:
            print(e, file=sys.stderr)
            return 1
        print(f"{a.file}: ok")
        return 0

    from .storage import DiskStore, open_store

    if a.cmd == "import-athens":
        from .athens_import import run

        if a.dest:
            store = DiskStore(a.dest)
        else:
            try:
                cfg = load(a.config)
            except ConfigError as e:
                print(e, file=sys.stderr)
                return 1
            store = open_store(cfg)
        return run(a.src, store)

    try:
        cfg = load(a.config)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 1
    _setup_logging(cfg.log_level)
    try:
        store = open_store(cfg)
    except Exception as e:  # noqa: BLE001 - report and exit, nothing started
        print(f"storage error: {e}", file=sys.stderr)
        return 1
    from .server import serve

    asyncio.run(serve(cfg, store))
    return 0


if __name__ == "__main__":
    sys.exit(main())
