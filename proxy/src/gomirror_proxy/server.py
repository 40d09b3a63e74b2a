"""`gomirror-proxy serve`: listen, run until SIGTERM/SIGINT, drain. The GOPROXY protocol
is handler.py, what happens on a miss node.py, fetching fetch/, the checksum-database
proxy sumdbproxy.py, operations endpoints ops.py."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import ssl

from aiohttp import web

from . import __version__, hitlog
from .config import Config
from .handler import make_app
from .node import Node
from .storage import Store

lifecycle = logging.getLogger("gomirror_proxy.lifecycle")  # always at INFO


async def serve(cfg: Config, store: Store) -> None:
    node = Node(cfg, store)
    store.cleanup_tmp(older_than=0)
    app = make_app(node)
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           shutdown_timeout=float(cfg.shutdown_timeout))
    await runner.setup()
    sslctx = None
    if cfg.tls_cert_file:
        sslctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        sslctx.load_cert_chain(cfg.tls_cert_file, cfg.tls_key_file)
    site = web.TCPSite(runner, cfg.host or None, cfg.port, ssl_context=sslctx,
                       backlog=1024, reuse_address=True)
    await site.start()
    hits = None
    if cfg.hit_log_socket:
        # The nginx front's hits (hitlog.py), so eviction still sees every served version.
        hits, _ = await hitlog.listen(cfg.hit_log_socket, store, node.metrics)
    addrs = [s.getsockname() for s in site._server.sockets]
    lifecycle.info(json.dumps({"msg": "listening", "addresses": [list(a[:2]) for a in addrs],
                               "port": addrs[0][1], "tls": bool(sslctx), "storage": store.kind,
                               "hit_log_socket": cfg.hit_log_socket or None,
                               "version": __version__}))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    node.shutting_down = True
    lifecycle.info(json.dumps({"msg": "shutting down", "grace_seconds": cfg.shutdown_timeout}))
    await runner.cleanup()
    if hits is not None:
        hitlog.close(cfg.hit_log_socket, hits)
    lifecycle.info(json.dumps({"msg": "stopped"}))
