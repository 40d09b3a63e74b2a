#!/usr/bin/env python3
"""Draft a role's meta/argument_specs.yml from its defaults/main.yml: one option per
variable, type from the default, description from the comment lines above it. A
starting point a developer then edits (choices, element options); tests/test_roles.py
keeps the two in step afterwards.

    spec_from_defaults.py ROLE_DIR "short description" > ROLE_DIR/meta/argument_specs.yml
"""

import sys
from pathlib import Path

import yaml


class _IndentedDumper(yaml.SafeDumper):
    """Indent block sequences under their key, as yamllint's default config wants."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


TYPES = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}


def main() -> None:
    role, short = Path(sys.argv[1]), sys.argv[2]
    text = (role / "defaults" / "main.yml").read_text()
    values = yaml.safe_load(text) or {}
    comments: dict[str, str] = {}
    pending: list[str] = []
    for line in text.splitlines():
        if line.startswith("# ") and not line.startswith("# ----"):
            pending.append(line[2:].strip())
        elif line and not line.startswith((" ", "#", "-")) and ":" in line:
            comments[line.split(":", 1)[0]] = " ".join(pending)
            pending = []
        elif not line.strip():
            pending = []
    options = {}
    for key, value in values.items():
        opt = {"type": TYPES[type(value)] if value is not None else "raw"}
        if isinstance(value, list):
            elem = {type(v) for v in value}
            opt["elements"] = TYPES[elem.pop()] if len(elem) == 1 else "raw"
            if not value:
                opt["elements"] = "raw"
        opt["default"] = value
        opt["description"] = comments.get(key) or key
        options[key] = opt
    doc = {"argument_specs": {"main": {"short_description": short, "options": options}}}
    sys.stdout.write("---\n" + yaml.dump(doc, Dumper=_IndentedDumper, sort_keys=False, width=100))


if __name__ == "__main__":
    main()
