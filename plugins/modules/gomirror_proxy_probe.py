#!/usr/bin/python
# Copyright: gomirror project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)


DOCUMENTATION = r"""
---
module: gomirror_proxy_probe
short_description: Probe a GOPROXY endpoint the way the go command uses it
version_added: "1.0.0"
description:
  - Fetches a canary module's C(@v/<version>.info) and C(@v/<version>.mod) from a GOPROXY
    base URL and, optionally, the C(.zip), whose go C(h1:) directory hash is computed
    (sha256 over the sorted C("<sha256 hex>  <file name>\\n") lines of the zip's files,
    base64, C(h1:) prefix) and compared with O(expected_h1).
  - Reports health, per-step latency in milliseconds, HTTP statuses and a failure reason.
  - Never changes anything; C(changed) is always false. The probe logic lives in
    C(module_utils/gomirror_probe.py) (stdlib only) so a checker daemon can reuse it.
author:
  - gomirror project (@gomirror)
attributes:
  check_mode:
    support: full
    description: The probe only reads, so it runs unchanged in check mode.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no diff.
options:
  url:
    description: GOPROXY base URL, for example C(https://goproxy.mirror.example.com).
    type: str
    required: true
  module:
    description: Canary module path.
    type: str
    default: golang.org/x/text
  version:
    description: Canary module version.
    type: str
    default: v0.3.0
  timeout:
    description: Timeout in seconds of each HTTP request.
    type: float
    default: 10
  retries:
    description: Extra attempts for a failing step.
    type: int
    default: 0
  retry_delay:
    description: Seconds to wait between attempts.
    type: float
    default: 1
  expected_status:
    description: HTTP statuses counted as success.
    type: list
    elements: int
    default: [200]
  fetch_zip:
    description: Also download the C(.zip) and compute its C(h1:) hash. Implied by
      O(expected_h1).
    type: bool
    default: false
  expected_h1:
    description: Expected go.sum hash of the zip (C(h1:...)); a mismatch is unhealthy.
    type: str
  validate_certs:
    description: Verify TLS certificates.
    type: bool
    default: true
  ca_path:
    description: CA bundle used to verify the proxy's certificate.
    type: path
  headers:
    description: Extra request headers.
    type: dict
    default: {}
  fail_on_unhealthy:
    description: Fail the task when the proxy is unhealthy.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Probe the EU mirror with the canary module
  gomirror_proxy_probe:
    url: https://eu.goproxy.mirror.example.com
    module: golang.org/x/text
    version: v0.3.0
    expected_h1: "h1:g61tztE5qeGQ89tm6NTjjM9VPIm088od1l6aSorWRWg="
    retries: 2
    timeout: 5
  register: probe

- name: Fail when unhealthy
  gomirror_proxy_probe:
    url: "http://{{ inventory_hostname }}:8080"
    fail_on_unhealthy: true
"""

RETURN = r"""
changed:
  description: Always false.
  returned: always
  type: bool
healthy:
  description: Whether every step succeeded.
  returned: always
  type: bool
failure_reason:
  description: Why the proxy is unhealthy (first failing step), or null.
  returned: always
  type: str
statuses:
  description: HTTP status per step (C(info), C(mod), C(zip)); null when no response.
  returned: always
  type: dict
latency_ms:
  description: Latency in milliseconds per step (last attempt).
  returned: always
  type: dict
steps:
  description: Details per step (step, url, status, latency_ms, attempts, bytes, error).
  returned: always
  type: list
  elements: dict
h1:
  description: The computed C(h1:) hash of the zip, when fetched.
  returned: always
  type: str
total_ms:
  description: Wall time of the whole probe in milliseconds.
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

# Run from the repository (module_utils=./plugins/module_utils) the shared code is
# ansible.module_utils.*; installed as the collection gomirror.network it is the
# collection's module_utils. The repository's copy is tried first so that a copy of the
# collection installed elsewhere (ansible-lint installs one) never shadows the tree.
try:
    from ansible.module_utils.gomirror_probe import probe
except ImportError:
    from ansible_collections.gomirror.network.plugins.module_utils.gomirror_probe import probe


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            module=dict(type="str", default="golang.org/x/text"),
            version=dict(type="str", default="v0.3.0"),
            timeout=dict(type="float", default=10),
            retries=dict(type="int", default=0),
            retry_delay=dict(type="float", default=1),
            expected_status=dict(type="list", elements="int", default=[200]),
            fetch_zip=dict(type="bool", default=False),
            expected_h1=dict(type="str"),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path"),
            headers=dict(type="dict", default={}),
            fail_on_unhealthy=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not p["url"].startswith(("http://", "https://")):
        module.fail_json(msg="url must start with http:// or https://, got {!r}".format(p["url"]))
    if p["retries"] < 0 or p["timeout"] <= 0:
        module.fail_json(msg="retries must be >= 0 and timeout > 0")
    if p["expected_h1"] and not p["expected_h1"].startswith("h1:"):
        module.fail_json(msg="expected_h1 must start with 'h1:'")
    try:
        res = probe(
            p["url"],
            p["module"],
            p["version"],
            timeout=p["timeout"],
            retries=p["retries"],
            retry_delay=p["retry_delay"],
            expected_status=p["expected_status"],
            fetch_zip=p["fetch_zip"],
            expected_h1=p["expected_h1"],
            validate_certs=p["validate_certs"],
            ca_path=p["ca_path"],
            headers=p["headers"],
        )
    except ValueError as exc:
        module.fail_json(msg=f"invalid input: {exc}")
    res["changed"] = False
    if p["fail_on_unhealthy"] and not res["healthy"]:
        module.fail_json(
            msg="GOPROXY {} is unhealthy: {}".format(p["url"], res["failure_reason"]), **res
        )
    module.exit_json(**res)


if __name__ == "__main__":
    main()
