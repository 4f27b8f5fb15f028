"""axe-core for the browser tests: from npm, pinned in tests/browser/package.json (and its
lock file), installed into tests/browser/node_modules the first time a test asks for it.

Served to the tests only: nothing under static/ or in the console's pages refers to it.
Outside CI a missing npm skips the accessibility checks loudly; under CI (CI=true) it
fails them, since .ci/run installs nodejs and npm first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
PACKAGE = HERE / "package.json"
INSTALLED = HERE / "node_modules" / "axe-core"
SCRIPT = INSTALLED / "axe.min.js"

# Violations of these impacts fail a page; "moderate" and "minor" are reported by axe but
# are not what WCAG 2.1 AA conformance of this console is judged on here.
FAILING_IMPACTS = ("serious", "critical")

# WCAG 2.0 and 2.1, levels A and AA: what issue 16 asks of every page.
TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")

# Runs in the page once axe.min.js is in it: the failing violations, each with the first
# few elements it was found on.
RUN = """async ({impacts, tags}) => {
  const result = await axe.run(document, {
    runOnly: {type: "tag", values: tags},
    resultTypes: ["violations"],
  });
  return result.violations
    .filter((v) => impacts.includes(v.impact))
    .map((v) => ({
      rule: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.slice(0, 4).map((n) => `${n.target.join(" ")}: ${n.failureSummary}`),
    }));
}"""


def axe_violations(page) -> list[str]:
    """The page's violations of serious or critical impact, one line each."""
    found = page.evaluate(RUN, {"impacts": list(FAILING_IMPACTS), "tags": list(TAGS)})
    return [
        f"axe {v['impact']} {v['rule']} ({v['help']}): " + " | ".join(v["nodes"]) for v in found
    ]


def _pinned() -> str:
    return json.loads(PACKAGE.read_text())["devDependencies"]["axe-core"]


def _installed() -> str | None:
    try:
        return json.loads((INSTALLED / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def axe_script() -> Path:
    """The path of axe.min.js at the pinned version, installing it with `npm ci` first
    when it is missing or another version."""
    if SCRIPT.is_file() and _installed() == _pinned():
        return SCRIPT
    npm = shutil.which("npm")
    if npm is None:
        message = "npm not found (apt-get install nodejs npm): axe-core cannot be installed"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (under CI the accessibility checks must run)")
        print(f"\n!!! ACCESSIBILITY CHECKS SKIPPED: {message} !!!\n", file=sys.stderr)
        # Deliberate, as for a missing Chromium (tests/browser/conftest.py): outside CI
        # only, and loudly; under CI (above) it fails, and .ci/run installs npm first.
        pytest.skip(message)
    # --include=dev: even where NODE_ENV=production. --ignore-scripts: axe-core needs no
    # install step, and no package script runs here.
    done = subprocess.run(
        [
            npm,
            "ci",
            "--prefix",
            str(HERE),
            "--include=dev",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0 or _installed() != _pinned():
        pytest.fail(
            f"npm ci --prefix {HERE} did not install axe-core {_pinned()} "
            f"(exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    return SCRIPT
