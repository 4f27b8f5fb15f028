"""docker-compose.yml: one image for every console process, start order by health, not
by sleeping; restarts for everything. (No Docker engine here: the file is checked as data,
and by `docker compose config` where the compose plugin exists.)"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
APP_SERVICES = {"aws", "web", "worker", "beat"}
# What `docker compose up` must be given: no password has a default in the file.
REQUIRED = {"POSTGRES_PASSWORD": "pg0secret0given", "OPSCONSOLE_ADMIN_PASSWORD": "admin-given"}
# Compose's interpolation: $$ is a dollar; ${NAME}, ${NAME:-default}, ${NAME-default},
# ${NAME:?message}, ${NAME?message}.
_REFERENCE = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_console_processes_share_the_one_image_the_dockerfile_builds():
    services = _compose()["services"]
    assert (ROOT / "Dockerfile").is_file()
    assert set(services) >= APP_SERVICES
    for name in APP_SERVICES:
        assert services[name].get("build") == ".", name
        assert services[name].get("image") == "opsconsole:local", name
    assert "opsconsole.sandbox.localaws" in services["aws"]["command"]


def test_start_order_follows_health_and_everything_restarts():
    services = _compose()["services"]
    for name, service in services.items():
        assert service.get("restart") in {"unless-stopped", "always"}, name
        command = service.get("command") or ""
        text = command if isinstance(command, str) else " ".join(command)
        assert "sleep" not in text, f"{name} waits by sleeping"
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert rule == {"condition": "service_healthy"}, (name, dependency)
            assert "healthcheck" in services[dependency], dependency
    # The migrations run in web before it is healthy, so the worker and beat never race
    # them.
    assert "migrate" in services["web"]["command"]
    assert set(services["worker"]["depends_on"]) == {"web"}
    assert set(services["beat"]["depends_on"]) == {"web"}


class MissingVariable(Exception):
    pass


def _interpolate(text: str, env: dict[str, str]) -> str:
    """The file as `docker compose config` reads it, refusing as compose does."""

    def value(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op") or "", match.group("arg")
        given = env.get(name)
        unset = given is None or (op.startswith(":") and given == "")
        if unset and op.endswith("?"):
            raise MissingVariable(f"{name}: {arg}")
        if unset and op.endswith("-"):
            return arg
        return given or ""

    return _REFERENCE.sub(value, text)


def _environments() -> list[tuple[str, dict]]:
    data = _compose()
    found = [("x-app", data["x-app"]["environment"])]
    for name, service in data["services"].items():
        environment = service.get("environment") or {}
        if isinstance(environment, dict):
            found.append((name, environment))
    return found


def test_no_password_has_a_default():
    text = (ROOT / "docker-compose.yml").read_text()
    for where, environment in _environments():
        for key, raw in environment.items():
            if "PASSWORD" not in key and key != "DATABASE_URL":
                continue
            # Every password is a required variable: ${NAME:?why}, never a literal or
            # a ${NAME:-default}.
            references = list(_REFERENCE.finditer(str(raw)))
            assert references, f"{where}.{key} is a literal: {raw}"
            for ref in references:
                assert ref.group("op") == ":?", f"{where}.{key} has a default: {raw}"
    for ref in _REFERENCE.finditer(text):
        if ref.group("name") and "PASSWORD" in ref.group("name"):
            assert ref.group("op") == ":?", ref.group(0)


def test_compose_refuses_to_start_without_the_passwords_and_uses_the_given_ones():
    text = (ROOT / "docker-compose.yml").read_text()
    for name in REQUIRED:
        env = {k: v for k, v in REQUIRED.items() if k != name}
        try:
            _interpolate(text, env)
        except MissingVariable as exc:
            assert str(exc).startswith(f"{name}: set {name}"), exc
        else:
            raise AssertionError(f"compose would start without {name}")
    data = yaml.safe_load(_interpolate(text, REQUIRED))
    app = data["x-app"]["environment"]
    assert app["DATABASE_URL"] == "postgres://opsconsole:pg0secret0given@postgres:5432/opsconsole"
    assert app["SANDBOX_PG_PASSWORD"] == "pg0secret0given"
    assert app["OPSCONSOLE_ADMIN_PASSWORD"] == "admin-given"
    assert data["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == "pg0secret0given"


def test_docker_compose_accepts_the_file_where_it_exists():
    docker = shutil.which("docker")
    has_plugin = (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    )
    if not has_plugin:
        # This machine has the docker client without the compose plugin; the data checks
        # above still hold the file to its rules.
        return
    bare = {k: v for k, v in os.environ.items() if k not in REQUIRED}
    result = subprocess.run(
        [docker, "compose", "config", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**bare, **REQUIRED},
    )
    assert result.returncode == 0, result.stderr
    refused = subprocess.run(
        [docker, "compose", "config", "--quiet"], cwd=ROOT, capture_output=True, text=True, env=bare
    )
    assert refused.returncode != 0 and "POSTGRES_PASSWORD" in refused.stderr
