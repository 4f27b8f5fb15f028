"""docker-compose.yml: one image for every console process, start order by health, not
by sleeping; restarts for everything. (No Docker engine here: the file is checked as data,
and by `docker compose config` where the compose plugin exists.)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
APP_SERVICES = {"aws", "web", "worker", "beat"}


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
    result = subprocess.run(
        [docker, "compose", "config", "--quiet"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
