#!/usr/bin/env python3
"""Print a role's variables as a Markdown table (name, default, meaning) from its
meta/argument_specs.yml, for the role's README.   variables_table.py ROLE_DIR"""

import json
import sys
from pathlib import Path

import yaml

spec = yaml.safe_load((Path(sys.argv[1]) / "meta" / "argument_specs.yml").read_text())
print("| Variable | Default | Meaning |\n|---|---|---|")
for name, opt in spec["argument_specs"]["main"]["options"].items():
    default = json.dumps(opt.get("default"))
    if opt.get("no_log"):
        default = '`""` (vault it)' if not opt.get("default") else default
    else:
        default = f"`{default}`"
    desc = opt.get("description", "")
    desc = " ".join(desc) if isinstance(desc, list) else desc
    if opt.get("choices"):
        desc += " One of: " + ", ".join(f"`{c}`" for c in opt["choices"]) + "."
    default = default.replace("|", "\\|")
    desc = desc.replace("|", "\\|")
    print(f"| `{name}` | {default} | {desc} |")
