import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from opsconsole.env import env_bool, env_int, env_list, env_str


def test_env_helpers(monkeypatch, tmp_path):
    monkeypatch.setenv("X_INT", "42")
    monkeypatch.setenv("X_BOOL", "no")
    monkeypatch.setenv("X_LIST", "a, b,,c")
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("X_SECRET_FILE", str(secret))
    assert env_int("X_INT", 1) == 42
    assert env_bool("X_BOOL", True) is False
    assert env_list("X_LIST", []) == ["a", "b", "c"]
    assert env_str("X_SECRET") == "from-a-file"
    assert env_str("X_UNSET", "fallback") == "fallback"


def test_bad_values_name_the_variable(monkeypatch):
    monkeypatch.setenv("X_INT", "many")
    with pytest.raises(ImproperlyConfigured, match="X_INT"):
        env_int("X_INT", 1)
    with pytest.raises(ImproperlyConfigured, match="X_REQUIRED"):
        env_str("X_REQUIRED", required=True)


def _start_production(extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "AWS_"))}
    env.pop("REDIS_URL", None)
    env.update({"OPSCONSOLE_SANDBOX": "0", **extra})
    return subprocess.run(
        [sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True
    )


def test_production_stops_on_missing_setting_with_its_name():
    result = _start_production({})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr

    result = _start_production(
        {
            "DJANGO_SECRET_KEY": "x" * 50,
            "DJANGO_ALLOWED_HOSTS": "console.example.com",
            "DATABASE_URL": os.environ.get("DATABASE_URL", "postgres://127.0.0.1/x"),
        }
    )
    assert result.returncode != 0
    assert "REDIS_URL" in result.stderr


def test_production_starts_when_everything_is_set():
    result = _start_production(
        {
            "DJANGO_SECRET_KEY": "x" * 50,
            "DJANGO_ALLOWED_HOSTS": "console.example.com",
            "DATABASE_URL": os.environ.get("DATABASE_URL", "postgres://127.0.0.1/x"),
            "REDIS_URL": "redis://127.0.0.1:6379/1",
            "AWS_DEFAULT_REGION": "eu-west-1",
        }
    )
    assert result.returncode == 0, result.stderr
