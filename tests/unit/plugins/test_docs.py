"""ansible-doc renders both modules (text and JSON) from plugins/modules."""

import json
import os
import subprocess

import pytest
from gomirror_testlib import REPO

ANSIBLE_DOC = str(REPO / ".cache" / "venv" / "bin" / "ansible-doc")


@pytest.mark.parametrize("mod", ["gomirror_geo_routing", "gomirror_proxy_probe"])
def test_module_docs_render(mod):
    env = dict(os.environ, ANSIBLE_MODULE_UTILS=str(REPO / "plugins" / "module_utils"))
    cmd = [ANSIBLE_DOC, "-M", str(REPO / "plugins" / "modules")]
    proc = subprocess.run(
        [*cmd, "--json", mod], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)[mod]
    assert doc["doc"]["module"] == mod
    assert doc["doc"]["attributes"]["check_mode"]["support"] == "full"
    assert "diff_mode" in doc["doc"]["attributes"]
    assert doc["examples"] and doc["return"]
    text = subprocess.run(
        [*cmd, mod], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    assert text.returncode == 0, text.stderr
    assert "EXAMPLES" in text.stdout and "RETURN VALUES" in text.stdout
    assert "[WARNING]" not in text.stderr


def test_design_doc_exists():
    text = (REPO / "docs" / "dns-routing.md").read_text()
    assert "BIND" in text and "failover" in text
