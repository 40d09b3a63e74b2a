"""The probe reaches an https edge by its address but speaks TLS as the mirror's name
(SNI and the certificate check), the way the GeoDNS checker probes region endpoints: a
real TLS server on loopback whose certificate names the mirror only."""

import http.server
import json
import ssl
import threading

import pytest
from module_utils import gomirror_probe as gp
from pki_testlib import TestCA

NAME = "goproxy.example.com"
MODULE, VERSION = "golang.org/x/text", "v0.14.0"


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    """(base URL by address, CA file, names the server was asked for by SNI)."""
    ca = TestCA(tmp_path_factory.mktemp("sni"), "test CA")
    cert, key = ca.issue(NAME, f"DNS:{NAME},DNS:*.{NAME}")
    asked = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            if self.path.endswith(".info"):
                body = json.dumps({"Version": VERSION}).encode()
            elif self.path.endswith(".mod"):
                body = f"module {MODULE}\n".encode()
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.sni_callback = lambda sock, name, _ctx: asked.append(name)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", str(ca.cert), asked
    server.shutdown()


def test_probing_the_address_with_the_mirror_name_is_healthy(edge):
    url, ca, asked = edge
    asked.clear()
    result = gp.probe(
        url, MODULE, VERSION, timeout=5, ca_path=ca, server_name=NAME, headers={"Host": NAME}
    )
    assert result["healthy"], result["failure_reason"]
    assert result["statuses"] == {"info": 200, "mod": 200}
    assert asked == [NAME, NAME]  # one TLS connection per step, each with the name as SNI


def test_probing_the_address_without_a_name_fails_the_certificate_check(edge):
    url, ca, asked = edge
    asked.clear()
    result = gp.probe(url, MODULE, VERSION, timeout=5, ca_path=ca)
    assert not result["healthy"]
    assert (
        "CERTIFICATE_VERIFY_FAILED" in result["failure_reason"]
        or "IP address mismatch" in result["failure_reason"]
    )
    assert asked == [None]  # no SNI for an address


def test_a_name_the_certificate_does_not_cover_is_refused(edge):
    url, ca, _asked = edge
    result = gp.probe(
        url, MODULE, VERSION, timeout=5, ca_path=ca, server_name="goproxy.other.example"
    )
    assert not result["healthy"]
    assert (
        "goproxy.other.example" in result["failure_reason"]
        or "mismatch" in result["failure_reason"]
    )
