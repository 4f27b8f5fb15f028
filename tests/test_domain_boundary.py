"""The domain does not know where it runs: nothing under ``tenants/`` or ``deployments/``
imports ``opsconsole.sandbox`` or reads ``settings.SANDBOX*``.

What differs between the sandbox and production is an endpoint, a credential or a setting
read at the edge (``opsconsole/aws/clients.py``, settings); the local AWS answers like AWS.
The scan reads each module's syntax tree, so imports inside functions, ``from opsconsole
import sandbox``, module paths given as strings (``importlib.import_module``,
``import_string``, ``mock.patch`` targets) and ``getattr(settings, "SANDBOX")`` count too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = ("tenants", "deployments")
FORBIDDEN_PACKAGE = "opsconsole.sandbox"
# A dotted module path naming the package or something in it.
_MODULE_PATH = re.compile(r"opsconsole\.sandbox(\.\w+)*")
# A setting or environment variable that says whether (or where) the sandbox runs.
_SANDBOX_NAME = re.compile(r"(OPSCONSOLE_)?SANDBOX\w*")


def _is_forbidden_module(name: str) -> bool:
    return name == FORBIDDEN_PACKAGE or name.startswith(FORBIDDEN_PACKAGE + ".")


def violations(source: str, filename: str = "<source>") -> list[str]:
    """Each place in ``source`` that reaches the sandbox, as ``file:line: what``."""
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        what = None
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names if _is_forbidden_module(a.name)]
            if names:
                what = f"import {', '.join(names)}"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if _is_forbidden_module(node.module):
                what = f"from {node.module} import ..."
            elif any(_is_forbidden_module(f"{node.module}.{a.name}") for a in node.names):
                what = f"from {node.module} import sandbox"
        elif isinstance(node, ast.Attribute) and node.attr.startswith("SANDBOX"):
            what = f"reads .{node.attr}"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if _MODULE_PATH.fullmatch(node.value):
                what = f"names module {node.value!r}"
            elif _SANDBOX_NAME.fullmatch(node.value):
                what = f"names setting {node.value!r}"
        if what:
            found.append(f"{filename}:{node.lineno}: {what}")
    return found


def domain_modules() -> list[Path]:
    return sorted(p for package in DOMAIN for p in (ROOT / package).rglob("*.py"))


def test_the_scan_sees_every_domain_module():
    modules = domain_modules()
    names = {str(p.relative_to(ROOT)) for p in modules}
    assert {"tenants/provisioning/database.py", "deployments/migration_runner.py"} <= names
    assert len(modules) > 40


def test_tenants_and_deployments_know_nothing_of_the_sandbox():
    found = []
    for path in domain_modules():
        found += violations(path.read_text(), str(path.relative_to(ROOT)))
    assert found == [], "domain code reaches the sandbox:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "import opsconsole.sandbox",
        "import opsconsole.sandbox.seed as seed",
        "import json, opsconsole.sandbox.endpoints",
        "from opsconsole.sandbox import seed",
        "from opsconsole.sandbox.localaws.config import LocalAwsConfig",
        "from opsconsole import sandbox",
        "from opsconsole import aws, sandbox",
        "def f():\n    from opsconsole.sandbox.seed import sandbox_seed\n    return sandbox_seed",
        "import importlib\nm = importlib.import_module('opsconsole.sandbox.seed')",
        "m = __import__('opsconsole.sandbox')",
        "from django.utils.module_loading import import_string\n"
        "f = import_string('opsconsole.sandbox.endpoints.sandbox_server_connection')",
        "from django.conf import settings\nif settings.SANDBOX:\n    pass",
        "from django.conf import settings\nhost = settings.SANDBOX_PG_HOST",
        "from django.conf import settings as s\nx = s.SANDBOX_AWS_PORT",
        "from django.conf import settings\nx = getattr(settings, 'SANDBOX', False)",
        "import os\nx = os.environ.get('OPSCONSOLE_SANDBOX')",
    ],
)
def test_each_way_of_reaching_the_sandbox_is_caught(source):
    assert violations(source)


@pytest.mark.parametrize(
    "source",
    [
        "from opsconsole.aws import rds",
        "import opsconsole.sandboxed_helpers",
        "from opsconsole import aws",
        "# the sandbox restarts: adopt what exists\nx = 1",
        "'''Works the same on the sandbox and on AWS.'''",
        "RESERVED = {'sandbox', 'admin'}",
        "from django.conf import settings\nx = settings.AWS_ENDPOINT_URL",
    ],
)
def test_what_is_not_the_sandbox_passes(source):
    assert violations(source) == []
