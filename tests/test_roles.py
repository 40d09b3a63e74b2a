"""Every role keeps meta/argument_specs.yml, defaults/main.yml and README.md in step."""

from __future__ import annotations

import pytest
import yaml

from conftest import REPO

ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "tasks").is_dir())


def _defaults(role: str) -> dict:
    path = REPO / "roles" / role / "defaults" / "main.yml"
    return yaml.safe_load(path.read_text()) or {} if path.exists() else {}


def _spec_options(role: str) -> dict:
    spec = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return spec["argument_specs"]["main"].get("options", {})


@pytest.mark.parametrize("role", ROLES)
def test_every_default_has_an_argument_spec_and_back(role):
    defaults, options = _defaults(role), _spec_options(role)
    assert sorted(set(defaults) - set(options)) == [], "defaults without argument_specs"
    assert sorted(set(options) - set(defaults)) == [], "argument_specs without defaults"


@pytest.mark.parametrize("role", ROLES)
def test_every_variable_is_prefixed_with_the_role_name(role):
    assert [k for k in _defaults(role) if not k.startswith(f"{role}_")] == []


@pytest.mark.parametrize("role", ROLES)
def test_the_readme_documents_every_variable(role):
    readme = (REPO / "roles" / role / "README.md").read_text()
    assert [k for k in _defaults(role) if f"`{k}`" not in readme] == []


@pytest.mark.parametrize("role", ROLES)
def test_spec_defaults_match_role_defaults(role):
    defaults, options = _defaults(role), _spec_options(role)
    mismatched = {
        k: (options[k]["default"], defaults[k])
        for k in defaults
        if k in options and "default" in options[k] and options[k]["default"] != defaults[k]
    }
    assert mismatched == {}
