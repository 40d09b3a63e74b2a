# Copyright: gomirror project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GOPROXY probing, stdlib only (urllib), reusable by a checker daemon and playbooks.

probe() fetches a canary module the way the go command does:
  GET <base>/<escaped module>/@v/<escaped version>.info   (JSON with "Version")
  GET <base>/<escaped module>/@v/<escaped version>.mod    (go.mod text)
  GET <base>/<escaped module>/@v/<escaped version>.zip    (optional, h1: checked)
and reports per-step status and latency.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.client
import io
import json
import ssl
import time
import urllib.error
import urllib.request
import zipfile

USER_AGENT = "gomirror-probe/1.0 (Go-http-client compatible)"


def escape_path(path):
    """Go module path/version escaping used by GOPROXY (module.EscapePath)."""
    out = []
    for ch in path:
        if "A" <= ch <= "Z":
            out.append("!" + ch.lower())
        elif ch == "!":
            raise ValueError(f"invalid character '!' in {path!r}")
        else:
            out.append(ch)
    return "".join(out)


def module_urls(base_url, module, version):
    base = base_url.rstrip("/")
    prefix = f"{base}/{escape_path(module)}/@v/{escape_path(version)}"
    return {
        "info": prefix + ".info",
        "mod": prefix + ".mod",
        "zip": prefix + ".zip",
    }


def dirhash_h1_files(files):
    """go dirhash.Hash1 over an iterable of (name, bytes).

    summary = sha256 of the lines "<sha256 hex>  <name>\\n" sorted by name;
    result = "h1:" + base64(summary)."""
    lines = []
    names = set()
    for name, data in files:
        if "\n" in name:
            raise ValueError(f"dirhash: filename with newline: {name!r}")
        if name in names:
            raise ValueError(f"dirhash: duplicate file {name!r}")
        names.add(name)
        lines.append((name, hashlib.sha256(data).hexdigest()))
    lines.sort(key=lambda item: item[0].encode("utf-8"))
    summary = hashlib.sha256()
    for name, digest in lines:
        summary.update((f"{digest}  {name}\n").encode())
    return "h1:" + base64.b64encode(summary.digest()).decode("ascii")


def dirhash_h1_zip(data):
    """go dirhash.HashZip for zip bytes (or a path): every file entry, by its zip name."""
    src = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    with zipfile.ZipFile(src) as zf:
        files = []
        for info in zf.infolist():
            if info.is_dir():
                # go module zips contain no directory entries; HashZip would hash them
                # as empty files, keep that behaviour for fidelity
                files.append((info.filename, b""))
                continue
            files.append((info.filename, zf.read(info)))
    return dirhash_h1_files(files)


def check_zip_layout(data, module, version):
    """Every file must be below '<module>@<version>/' (go module zip layout)."""
    prefix = f"{module}@{version}/"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        bad = [n for n in zf.namelist() if not n.startswith(prefix)]
    if bad:
        return f"zip file {bad[0]!r} is outside {prefix}"
    return None


class _NamedHTTPSConnection(http.client.HTTPSConnection):
    """Connects to the URL's address but speaks TLS as server_name: the name is sent as
    SNI and the certificate is checked against it (an edge's certificate names the
    mirror, not the address GeoDNS lists)."""

    def __init__(self, host, *, server_name, **kwargs):
        super().__init__(host, **kwargs)
        self._server_name = server_name

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._server_name)


class _NamedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, context, server_name):
        super().__init__(context=context)
        self._server_name = server_name

    def https_open(self, req):
        conn = functools.partial(_NamedHTTPSConnection, server_name=self._server_name)
        return self.do_open(conn, req, context=self._context)


def fetch(url, timeout, headers=None, context=None, max_bytes=512 * 1024 * 1024, server_name=None):
    """GET url. Returns (status, body bytes, latency_ms, error string or None).
    server_name: for https, the TLS name (SNI and certificate check) when the URL names
    an address."""
    req = urllib.request.Request(url, headers=dict({"User-Agent": USER_AGENT}, **(headers or {})))
    if server_name and url.startswith("https://"):
        handler = _NamedHTTPSHandler(context or ssl.create_default_context(), server_name)
        opener = urllib.request.build_opener(handler).open
    else:
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context)).open
    start = time.monotonic()
    try:
        with opener(req, timeout=timeout) as resp:
            body = resp.read(max_bytes + 1)
            status = resp.status
        err = None
        if len(body) > max_bytes:
            err = f"response larger than {max_bytes} bytes"
    except urllib.error.HTTPError as exc:
        status = exc.code
        try:
            body = exc.read()
        except Exception:
            body = b""
        err = None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        status = None
        body = b""
        reason = getattr(exc, "reason", exc)
        err = f"{type(reason).__name__}: {reason}"
    latency = round((time.monotonic() - start) * 1000.0, 3)
    return status, body, latency, err


def _ssl_context(validate_certs, ca_path):
    if not validate_certs:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if ca_path:
        return ssl.create_default_context(cafile=ca_path)
    return None


def _validate_step(step, body, module, version):
    if step == "info":
        try:
            info = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            return f"not JSON: {exc}"
        if not isinstance(info, dict) or info.get("Version") != version:
            got = info.get("Version") if isinstance(info, dict) else None
            return f"Version is {got!r}, expected {version!r}"
        return None
    if step == "mod":
        text = body.decode("utf-8", "replace")
        if "module" not in text.split():
            return "no module directive"
        return None
    return None


def probe(
    base_url,
    module,
    version,
    timeout=5.0,
    retries=0,
    retry_delay=0.5,
    expected_status=(200,),
    fetch_zip=False,
    expected_h1=None,
    validate_certs=True,
    ca_path=None,
    headers=None,
    sleep=time.sleep,
    server_name=None,
):
    """Probe one GOPROXY.  Never raises for network problems; returns a dict:

    healthy (bool), failure_reason (str or None), steps (list of dicts: step, url,
    status, latency_ms, attempts, bytes, error), statuses {step: status},
    latency_ms {step: ms}, h1 (computed zip hash or None), total_ms.
    server_name: the TLS name of an https base_url that names an address (see fetch).
    """
    if expected_h1 and not fetch_zip:
        fetch_zip = True
    urls = module_urls(base_url, module, version)
    order = ["info", "mod"] + (["zip"] if fetch_zip else [])
    ctx = _ssl_context(validate_certs, ca_path) if base_url.startswith("https") else None
    expected = tuple(int(s) for s in (expected_status or (200,)))
    result = {
        "url": base_url,
        "module": module,
        "version": version,
        "healthy": True,
        "failure_reason": None,
        "steps": [],
        "statuses": {},
        "latency_ms": {},
        "h1": None,
        "expected_h1": expected_h1,
    }
    total_start = time.monotonic()
    for step in order:
        attempts = 0
        while True:
            attempts += 1
            status, body, latency, err = fetch(
                urls[step], timeout, headers, ctx, server_name=server_name
            )
            problem = err
            if problem is None and status not in expected:
                problem = "HTTP {} (expected {})".format(status, ",".join(str(s) for s in expected))
            if problem is None and status == 200:
                problem = _validate_step(step, body, module, version)
            if problem is None or attempts > retries:
                break
            sleep(retry_delay)
        entry = {
            "step": step,
            "url": urls[step],
            "status": status,
            "latency_ms": latency,
            "attempts": attempts,
            "bytes": len(body),
            "error": problem,
        }
        result["steps"].append(entry)
        result["statuses"][step] = status
        result["latency_ms"][step] = latency
        if problem is None and step == "zip" and status == 200:
            try:
                layout = check_zip_layout(body, module, version)
                result["h1"] = dirhash_h1_zip(body)
            except (ValueError, zipfile.BadZipFile) as exc:
                layout = f"zip is unreadable: {exc}"
            if layout:
                problem = layout
            elif expected_h1 and result["h1"] != expected_h1:
                problem = "hash mismatch: got {}, expected {}".format(result["h1"], expected_h1)
            entry["error"] = problem
        if problem:
            result["healthy"] = False
            result["failure_reason"] = f"{step}: {problem}"
            break
    result["total_ms"] = round((time.monotonic() - total_start) * 1000.0, 3)
    return result
