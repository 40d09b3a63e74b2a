"""A loopback GOPROXY over the hermetic origin's tree with injectable faults (`Upstream`),
and its fixture `upstream` (every one started is closed after the test)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from proxyhelpers import ORIGIN_TREE


class Upstream:
    """A loopback GOPROXY serving the origin's tree, with faults: `override` (path ->
    bytes, or None for 404), `fail_first` (path -> statuses answered before the real
    file, e.g. [429, 503]), `status` (path -> a status always answered), `slow` (path ->
    bytes per second, sent without Content-Length so only the bytes themselves can tell
    the size). Records every path asked for."""

    def __init__(self, override=None, fail_first=None, status=None, slow=None):
        override, status, slow = override or {}, status or {}, slow or {}
        fail_first = {k: list(v) for k, v in (fail_first or {}).items()}
        self.paths: list[str] = []
        paths, lock = self.paths, threading.Lock()

        class H(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, code, body=b"", length=None):
                """Headers; Content-Length is len(body), or length, or absent (-1)."""
                self.send_response(code)
                n = len(body) if length is None else length
                if n >= 0:
                    self.send_header("Content-Length", str(n))
                self.end_headers()
                return body

            def do_GET(self):  # noqa: N802
                path = self.path.replace("%21", "!")
                with lock:
                    paths.append(path)
                    queued = fail_first.get(path)
                    early = queued.pop(0) if queued else None
                if early or path in status:
                    self.wfile.write(self.answer(early or status[path], b"upstream fault\n"))
                    return
                f = ORIGIN_TREE / path.lstrip("/")
                if path in override:
                    body = override[path]
                else:
                    body = f.read_bytes() if ".." not in path and f.is_file() else None
                if body is None:
                    self.answer(404)
                    return
                rate = slow.get(path)
                self.answer(200, length=-1 if rate else len(body))
                step = rate // 10 if rate else len(body) or 1
                for i in range(0, len(body), step):
                    try:
                        self.wfile.write(body[i:i + step])
                    except OSError:
                        return  # the node went away: what a refusal while streaming does
                    if rate:
                        time.sleep(0.1)

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.srv.server_port}"

    def asked(self, path: str) -> int:
        return self.paths.count(path)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def upstream():
    started = []

    def start(**kw) -> Upstream:
        u = Upstream(**kw)
        started.append(u)
        return u

    yield start
    for u in started:
        u.close()
