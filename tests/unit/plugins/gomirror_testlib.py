"""Helpers and fixtures for the gomirror module tests: import path for module_utils,
running modules through real Ansible, a moto Route53 server, and a real BIND9
authoritative server on loopback.  (A uniquely named module rather than conftest.py so
`from gomirror_testlib import ...` never picks up another directory's conftest.)"""

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PLUGINS = REPO / "plugins"
VENV_BIN = REPO / ".cache" / "venv" / "bin"
sys.path.insert(0, str(PLUGINS))


def _missing(why: str) -> None:
    """Skip for a developer without the tool; under `make test` nothing may skip."""
    if os.environ.get("GOMIRROR_REQUIRE_ORIGIN"):
        pytest.fail(why)
    pytest.skip(why)


def _bin(name):
    cand = VENV_BIN / name
    if cand.exists():
        return str(cand)
    found = shutil.which(name)
    if not found:
        _missing(f"{name} not found")
    return found


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


def ansible_env(tmp):
    env = dict(os.environ)
    env.update(
        ANSIBLE_LIBRARY=str(PLUGINS / "modules"),
        ANSIBLE_MODULE_UTILS=str(PLUGINS / "module_utils"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_LOCAL_TEMP=str(Path(tmp) / "ansible-local"),
        ANSIBLE_REMOTE_TEMP=str(Path(tmp) / "ansible-remote"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_HOST_KEY_CHECKING="0",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_DEPRECATION_WARNINGS="0",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - moto accepts anything
        AWS_DEFAULT_REGION="us-east-1",
        PATH=str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""),
    )
    env.pop("ANSIBLE_CONFIG", None)
    return env


def run_module(module, args, check=False, diff=False):
    """Run a module as a real Ansible task (ansible-playbook, local connection) and
    return its result dict (with 'failed' when it failed)."""
    return run_tasks(module, [args], check=check, diff=diff)[0]


def _task(i, module, args):
    args = dict(args)
    task = {"name": f"run {i}", "ignore_errors": True}
    if "_check_mode" in args:  # per-task check mode
        task["check_mode"] = bool(args.pop("_check_mode"))
    task[module] = args
    return task


def run_tasks(module, args_list, check=False, diff=False):
    """Run several invocations of a module as tasks of one playbook; one result each."""
    with tempfile.TemporaryDirectory(prefix="gomirror-ansible-") as tmp:
        play = [
            {
                "hosts": "localhost",
                "gather_facts": False,
                "tasks": [_task(i, module, args) for i, args in enumerate(args_list)],
            }
        ]
        pb = Path(tmp) / "play.json"
        pb.write_text(json.dumps(play))
        cmd = [_bin("ansible-playbook"), "-i", "localhost,", "-c", "local", str(pb)]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        proc = subprocess.run(
            cmd, env=ansible_env(tmp), capture_output=True, text=True, timeout=120, cwd=tmp
        )
        try:
            out = json.loads(proc.stdout[proc.stdout.index("{") :])
        except ValueError:
            raise AssertionError(
                f"ansible-playbook output not JSON:\n{proc.stdout}\n{proc.stderr}"
            ) from None
        return [t["hosts"]["localhost"] for t in out["plays"][0]["tasks"]]


@pytest.fixture(scope="session")
def moto_endpoint():
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="gomirror-moto-"))
    env = dict(
        os.environ, MOTO_ENABLE_RECORDING="1", MOTO_RECORDER_FILEPATH=str(tmp / "recording.jsonl")
    )
    with open(tmp / "moto.log", "w") as log:
        proc = subprocess.Popen(
            [_bin("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            wait_port(port, proc=proc)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            shutil.rmtree(tmp, ignore_errors=True)


TSIG_SECRET = base64.b64encode(b"gomirror-test-tsig-secret-32byte").decode()
WRONG_SECRET = base64.b64encode(b"this-is-definitely-the-wrong-key").decode()

ZONE_TEMPLATE = """$TTL 300
@ IN SOA ns1.{zone}. hostmaster.{zone}. ( 1 3600 600 86400 60 )
@ IN NS ns1.{zone}.
ns1 IN A 127.0.0.1
foreign IN A 203.0.113.77
foreign IN TXT "not ours"
"""


@contextlib.contextmanager
def named_server(workdir, conf, port):
    """Start BIND9 in the foreground with the given named.conf text; yield when the
    port answers; stop it afterwards.  Logs go to <workdir>/named.log."""
    named = shutil.which("named") or "/usr/sbin/named"
    if not os.path.exists(named):
        _missing("BIND9 'named' not installed (apt-get install bind9)")
    conf_path = workdir / "named.conf"
    conf_path.write_text(conf)
    checkconf = shutil.which("named-checkconf") or "/usr/bin/named-checkconf"
    chk = subprocess.run([checkconf, str(conf_path)], capture_output=True, text=True, check=False)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    # as root named would switch to user 'bind'; stay root so it can write its journal
    user = ["-u", "root"] if os.geteuid() == 0 else []
    with open(workdir / "named.log", "w") as log:
        proc = subprocess.Popen(
            [named, "-g", "-c", str(conf_path), "-n", "1", *user],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_port(port, proc=proc)
            time.sleep(0.3)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def bind_server():
    """A real BIND9 on 127.0.0.1:<free port> with zone mirror.example.test and TSIG key
    'gomirror-key' (hmac-sha256) allowed to update and AXFR."""
    zone = "mirror.example.test"
    tmp = Path(tempfile.mkdtemp(prefix="gomirror-bind-"))
    port = free_port()
    (tmp / "db.zone").write_text(ZONE_TEMPLATE.format(zone=zone))
    conf = f"""
options {{
    directory "{tmp}";
    pid-file "{tmp}/named.pid";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    allow-transfer {{ none; }};
    notify no;
}};
controls {{ }};
key "gomirror-key" {{
    algorithm hmac-sha256;
    secret "{TSIG_SECRET}";
}};
zone "{zone}" {{
    type primary;
    file "{tmp}/db.zone";
    allow-update {{ key "gomirror-key"; }};
    allow-transfer {{ key "gomirror-key"; }};
}};
"""
    try:
        with named_server(tmp, conf, port):
            yield {
                "server": "127.0.0.1",
                "port": port,
                "zone": zone,
                "key_name": "gomirror-key",
                "key_secret": TSIG_SECRET,
                "dir": tmp,
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
