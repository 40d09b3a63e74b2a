"""The repository builds as the collection gomirror.network and works installed.

Built with ansible-galaxy from the tree, installed offline into an empty collections
path, then used the way a collection user uses it: from a directory outside the
repository, with no roles_path, library or module_utils pointing into it. Also runs
ansible-test sanity on the installed copy (what the artifact holds, without lab and test
files)."""

import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".cache" / "venv" / "bin"
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
FQCN = f"{GALAXY['namespace']}.{GALAXY['name']}"

# What a collection user never needs; none of it may be in the artifact.
EXCLUDED = [
    ".cache/",
    ".ci/",
    ".ansible/",
    "molecule/",
    "tests/",
    "harness/",
    "inventories/lab/",
    "proxy/",
    "requirements/",
    "playbooks/lab-up.yml",
    "playbooks/lab-down.yml",
    "playbooks/tasks/lab_routes.yml",
    "ansible.cfg",
    "Makefile",
]
# What it must hold for the roles, modules and playbooks to work.
SHIPPED = [
    "meta/runtime.yml",
    "README.md",
    "requirements.yml",
    "playbooks/site.yml",
    "inventories/example/hosts.yml",
    *(f"roles/{r.name}/tasks/main.yml" for r in sorted((REPO / "roles").iterdir())),
    *(f"roles/{r.name}/meta/argument_specs.yml" for r in sorted((REPO / "roles").iterdir())),
]
MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py"))
ROLES = sorted(r.name for r in (REPO / "roles").iterdir() if (r / "tasks" / "main.yml").is_file())


def _tool(name):
    path = VENV_BIN / name
    if not path.exists():
        pytest.fail(f"{path} missing: run `make setup`")
    return str(path)


def _run(cmd, *, env, cwd, timeout=300):
    proc = subprocess.run(
        cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    )
    return proc


def _user_env(collections_path, workdir):
    """A collection user's environment: no ANSIBLE_* setting of the repository (its
    ansible.cfg, roles_path, library, module_utils), only the installed collections."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    cfg = Path(workdir) / "ansible.cfg"
    cfg.write_text(f"[defaults]\ncollections_path = {collections_path}\n")
    env.update(
        ANSIBLE_CONFIG=str(cfg),
        ANSIBLE_LOCAL_TEMP=str(Path(workdir) / "ansible-local"),
        ANSIBLE_NOCOLOR="1",
        PATH=str(VENV_BIN) + os.pathsep + env.get("PATH", ""),
    )
    return env


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("collection-build")
    env = dict(os.environ, PATH=str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""))
    _run(
        [_tool("ansible-galaxy"), "collection", "build", "--output-path", str(out), str(REPO)],
        env=env,
        cwd=REPO,
    )
    built = out / f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"
    assert built.is_file(), sorted(out.iterdir())
    return built


@pytest.fixture(scope="module")
def installed(tarball, tmp_path_factory):
    """(collections path, a work directory outside the repository, environment)."""
    root = tmp_path_factory.mktemp("collection-user")
    collections = root / "collections"
    workdir = root / "work"
    workdir.mkdir()
    env = _user_env(collections, workdir)
    # Galaxy is not reachable: nothing may be fetched. The dependencies come from the
    # `ansible` bundle, which ansible always searches after the configured paths.
    _run(
        [_tool("ansible-galaxy"), "collection", "install", "--offline", "--no-deps", "--force",
         "-p", str(collections), str(tarball)],
        env=env,
        cwd=workdir,
    )
    tree = collections / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    assert (tree / "MANIFEST.json").is_file()
    return collections, workdir, env


def test_artifact_holds_the_toolkit_and_no_lab_or_test_files(tarball):
    with tarfile.open(tarball) as tar:
        members = {m.name.removeprefix("./") for m in tar.getmembers()}
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    for prefix in EXCLUDED:
        leaked = sorted(m for m in members if m == prefix.rstrip("/") or m.startswith(prefix))
        assert not leaked, f"{prefix} must not ship in the collection: {leaked[:5]}"
    assert not [m for m in members if "__pycache__" in m or m.endswith(".pyc")]
    missing = [path for path in SHIPPED if path not in members]
    assert not missing, f"the collection lacks {missing}"
    for module in MODULES:
        assert f"plugins/modules/{module}.py" in members
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"]) == (GALAXY["namespace"], GALAXY["name"])
    # The dependencies are requirements.yml's collections with the same ranges.
    requirements = yaml.safe_load((REPO / "requirements.yml").read_text())["collections"]
    assert info["dependencies"] == {c["name"]: c["version"] for c in requirements}


def test_requires_the_pinned_ansible_core():
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    pins = (REPO / "requirements" / "controller.txt").read_text()
    core = next(
        line.split("==")[1] for line in pins.splitlines() if line.startswith("ansible-core==")
    )
    major_minor = ".".join(core.split(".")[:2])
    assert runtime["requires_ansible"] == f">={major_minor}.0"


@pytest.mark.parametrize("module", MODULES)
def test_module_doc_renders_from_the_installed_collection(installed, module):
    _, workdir, env = installed
    source = (REPO / "plugins" / "modules" / f"{module}.py").read_text()
    documentation = source.split('DOCUMENTATION = r"""', 1)[1].split('"""', 1)[0]
    short = yaml.safe_load(documentation)["short_description"]
    text = _run([_tool("ansible-doc"), "-t", "module", f"{FQCN}.{module}"], env=env, cwd=workdir)
    assert f"{FQCN}.{module}" in text.stdout
    assert str(installed[0]) in text.stdout, "ansible-doc did not read the installed copy"
    assert "EXAMPLES" in text.stdout and "RETURN VALUES" in text.stdout
    listing = _run(
        [_tool("ansible-doc"), "-t", "module", "--list", "--json", FQCN], env=env, cwd=workdir
    )
    assert json.loads(listing.stdout)[f"{FQCN}.{module}"] == short


def test_every_listed_plugin_is_a_shipped_module_or_documented(installed):
    """No plugin type is listed without docs; modules listed are exactly the files."""
    _, workdir, env = installed
    listing = _run(
        [_tool("ansible-doc"), "-t", "module", "--list", "--json", FQCN], env=env, cwd=workdir
    )
    assert sorted(name.rsplit(".", 1)[1] for name in json.loads(listing.stdout)) == MODULES
    tree = installed[0] / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    for action in sorted((tree / "plugins" / "action").glob("*.py")):
        # An action plugin is documented by the module of the same name.
        assert action.stem in MODULES, f"action plugin {action.name} has no module doc"
    for kind in ("filter", "test", "lookup", "inventory", "callback"):
        files = sorted(p.name for p in (tree / "plugins" / kind).glob("*.py"))
        if not files:
            continue
        listed = json.loads(
            _run(
                [_tool("ansible-doc"), "-t", kind, "--list", "--json", FQCN], env=env, cwd=workdir
            ).stdout
        )
        assert listed, f"{kind} plugins {files} have no docs"
        for name, short in listed.items():
            rendered = _run(
                [_tool("ansible-doc"), "-t", kind, "--json", name], env=env, cwd=workdir
            )
            doc = json.loads(rendered.stdout)[name]["doc"]
            assert doc["short_description"] == short and doc["description"], name


@pytest.mark.parametrize("role", ROLES)
def test_role_argument_specs_render_by_fqcn(installed, role):
    _, workdir, env = installed
    spec = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
    short = spec["argument_specs"]["main"]["short_description"]
    text = _run([_tool("ansible-doc"), "-t", "role", f"{FQCN}.{role}"], env=env, cwd=workdir)
    assert f"{FQCN}.{role}" in text.stdout
    assert " ".join(short.split()) in " ".join(text.stdout.split())


def test_role_path_references_resolve_in_the_installed_collection(installed):
    """Paths a role builds from role_path (its files, the shared module_utils it copies to
    hosts) exist in the installed layout, not only in the repository."""
    tree = installed[0] / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    pattern = re.compile(r"\{\{\s*role_path\s*\}\}(/[^\"'\s{}]+)")
    checked = []
    for path in sorted((tree / "roles").rglob("*.yml")):
        role_dir = tree / "roles" / path.relative_to(tree / "roles").parts[0]
        for relative in pattern.findall(path.read_text()):
            target = Path(os.path.normpath(f"{role_dir}{relative}"))
            assert target.exists(), f"{path.relative_to(tree)}: {{{{ role_path }}}}{relative}"
            assert target.is_relative_to(tree), f"{path.relative_to(tree)} leaves the collection"
            checked.append(target)
    assert checked, "no role_path reference found: the pattern is stale"


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fqcn_playbook_runs_outside_the_repository(installed):
    """Modules (and their module_utils) and roles resolve from the installed copy only."""
    _, workdir, env = installed
    port = _closed_port()
    playbook = workdir / "uses-fqcn.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Modules by FQCN",
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Probe a closed loopback port",
                            f"{FQCN}.gomirror_proxy_probe": {
                                "url": f"http://127.0.0.1:{port}",
                                "timeout": 2,
                            },
                            "register": "probe",
                        },
                        {
                            "name": "Routing input the module refuses",
                            f"{FQCN}.gomirror_geo_routing": {
                                "provider": "rfc2136",
                                "service": "goproxy.example.com",
                                "zone": "example.com",
                                "default_region": "cn-north",
                                "regions": [{"name": "cn-north", "endpoints": ["192.0.2.1"]}],
                            },
                            "check_mode": True,
                            "register": "routing",
                            "ignore_errors": True,
                        },
                        {
                            "name": "Report",
                            "ansible.builtin.debug": {
                                "msg": "{{ {'probe': probe, 'routing': routing} | to_json }}"
                            },
                        },
                    ],
                },
                {
                    "name": "Roles by FQCN",
                    "hosts": "localhost",
                    "gather_facts": False,
                    "roles": [{"role": f"{FQCN}.{role}", "when": False} for role in ROLES],
                },
            ],
            sort_keys=False,
        )
    )
    base = [_tool("ansible-playbook"), "-i", "localhost,", str(playbook)]
    syntax = _run([*base, "--syntax-check"], env=env, cwd=workdir)
    assert f"playbook: {playbook}" in syntax.stdout
    run = _run(
        [*base, "-e", f"ansible_python_interpreter={VENV_BIN / 'python'}"],
        env=dict(env, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json"),
        cwd=workdir,
    )
    result = json.loads(run.stdout)
    report = next(
        task["hosts"]["localhost"]["msg"]
        for task in result["plays"][0]["tasks"]
        if task["task"]["name"] == "Report"
    )
    report = json.loads(report) if isinstance(report, str) else report
    assert report["probe"]["healthy"] is False
    assert "refused" in report["probe"]["failure_reason"].lower()
    # The routing module loaded its module_utils from the collection and validated.
    assert report["routing"]["failed"] is True
    assert "rfc2136.server is required" in report["routing"]["msg"]


PLAYBOOKS = sorted(
    p.stem
    for p in (REPO / "playbooks").glob("*.yml")
    if f"playbooks/{p.name}" not in GALAXY["build_ignore"]
)


def test_every_shipped_playbook_has_an_fqcn_name():
    """ansible-playbook finds a collection's playbook by FQCN only when its name is a Python
    identifier: a hyphen makes it unreachable for collection users."""
    unreachable = [f"playbooks/{name}.yml" for name in PLAYBOOKS if not name.isidentifier()]
    assert not unreachable, (
        f"{unreachable}: not addressable as {FQCN}.<name>; use letters, digits and underscores"
    )


@pytest.mark.parametrize("name", [n for n in PLAYBOOKS if n.isidentifier()])
def test_collection_playbook_syntax_checks_by_fqcn(installed, name):
    """A collection playbook's unqualified roles and modules resolve in its collection."""
    _, workdir, env = installed
    tree = installed[0] / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    proc = _run(
        [_tool("ansible-playbook"), "-i", "localhost,", "--syntax-check", f"{FQCN}.{name}"],
        env=env,
        cwd=workdir,
    )
    assert f"playbook: {tree / 'playbooks' / name}.yml" in proc.stdout


def _sanity_venvs_ready():
    venvs = Path.home() / ".ansible" / "test" / "venv"
    return venvs.is_dir() and any(venvs.glob("sanity.validate-modules/3.11/*/marker.txt"))


def test_ansible_test_sanity_is_clean(installed, tmp_path):
    """ansible-test sanity of the pinned ansible-core on the installed copy."""
    if not _sanity_venvs_ready():
        pytest.fail("ansible-test's sanity virtual environments are missing: `make sanity-venvs`")
    tree = installed[0] / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    # A copy, so ansible-test's tests/output does not land in the shared installed tree.
    work = tmp_path / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    shutil.copytree(tree, work)
    # The ignore file lives with the tests, which the artifact leaves out; each line says
    # why its check does not apply.
    ignores = REPO / "tests" / "sanity" / "ignore-2.19.txt"
    (work / "tests" / "sanity").mkdir(parents=True)
    shutil.copy(ignores, work / "tests" / "sanity" / ignores.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    env["PATH"] = str(VENV_BIN) + os.pathsep + env.get("PATH", "")
    cmd = [_tool("ansible-test"), "sanity", "--local", "--python", "3.11", "--color", "no"]
    started = time.monotonic()
    proc = subprocess.run(
        cmd, env=env, cwd=work, capture_output=True, text=True, timeout=900, check=False
    )
    took = time.monotonic() - started
    assert proc.returncode == 0, f"sanity failed after {took:.0f}s:\n{proc.stdout}\n{proc.stderr}"
    assert 'Running sanity test "validate-modules"' in proc.stdout + proc.stderr
    assert 'Running sanity test "import"' in proc.stdout + proc.stderr
