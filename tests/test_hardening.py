"""Production settings (issue 13): Django's deployment checks pass, unsafe settings stop the
start with the variable's name, and every database connection checks the server's
certificate against the shipped RDS CA bundle."""

from __future__ import annotations

import os
import re
import runpy
import secrets
import ssl
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from django.core.exceptions import ImproperlyConfigured

ROOT = Path(__file__).resolve().parents[1]


def _production_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "AWS_", "SECURE_", "DB_SSL", "TENANT_DB_SSL"))
    }
    env.update(
        OPSCONSOLE_SANDBOX="0",
        # check --deploy wants a long, random key (W009).
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="console.example.com",
        DATABASE_URL=os.environ.get("DATABASE_URL", "postgres://127.0.0.1/x"),
        REDIS_URL="redis://127.0.0.1:6379/1",
        AWS_DEFAULT_REGION="eu-west-1",
    )
    env.update(extra or {})
    return env


def _manage(*args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env=_production_env(extra),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_deploy_checks_pass_with_production_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr


def _settings(extra: dict[str, str] | None = None) -> dict:
    """opsconsole/settings.py run afresh in this process against a production environment:
    what a production process would get, without starting one (fast)."""
    with mock.patch.dict(os.environ, _production_env(extra), clear=True):
        return runpy.run_path(str(ROOT / "opsconsole" / "settings.py"))


@pytest.mark.parametrize(
    ("variable", "value"),
    [("DJANGO_DEBUG", "1"), ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")],
)
def test_production_refuses_debug_and_a_custom_aws_endpoint(variable, value):
    with pytest.raises(ImproperlyConfigured, match=f"^{variable} is set"):
        _settings({variable: value})


def test_forwarded_for_without_trusted_proxies_is_refused():
    with pytest.raises(ImproperlyConfigured, match="needs TRUSTED_PROXIES"):
        _settings({"USE_X_FORWARDED_FOR": "1"})


def _certificates(path: str) -> list[bytes]:
    text = Path(path).read_text()
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.S)
    return [ssl.PEM_cert_to_DER_cert(block) for block in blocks]


def test_production_databases_verify_the_server_against_the_shipped_rds_bundle():
    found = _settings()
    options = found["DATABASES"]["default"]["OPTIONS"]
    assert options["sslmode"] == found["TENANT_DB_SSLMODE"] == "verify-full"
    assert options["sslrootcert"] == found["TENANT_DB_SSLROOTCERT"]
    bundle = options["sslrootcert"]
    assert Path(bundle).is_file() and Path(bundle).is_relative_to(ROOT / "opsconsole")
    # Every block is a certificate, and OpenSSL (libpq's loader) takes them all as CAs.
    ders = _certificates(bundle)
    assert len(ders) >= 100
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=bundle)
    assert context.cert_store_stats()["x509_ca"] == len(ders)
    names = {str(cert["subject"]) for cert in context.get_ca_certs()}
    assert any("Amazon RDS" in name and "Root CA RSA2048 G1" in name for name in names)
    # The rest of the hardened defaults.
    assert found["SECURE_HSTS_SECONDS"] >= 365 * 86400
    cookies = ["SESSION_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "CSRF_COOKIE_SECURE"]
    assert all(found[name] is True for name in [*cookies, "CSRF_COOKIE_HTTPONLY"])
    assert found["SESSION_COOKIE_AGE"] == 12 * 3600
    assert found["SECURE_PROXY_SSL_HEADER"] is None


def test_production_tls_and_proxy_settings_come_from_the_environment(tmp_path):
    own = tmp_path / "ca.pem"
    own.write_text("not checked here")
    found = _settings(
        {
            "TENANT_DB_SSLROOTCERT": str(own),
            "DATABASE_URL": "postgres://u@db.example:5432/console?sslmode=require",
            "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
            "SESSION_COOKIE_AGE": "3600",
        }
    )
    # A sslmode in DATABASE_URL wins; the CA bundle is still the shipped one.
    options = found["DATABASES"]["default"]["OPTIONS"]
    assert (options["sslmode"], options["sslrootcert"]) == ("require", found["RDS_CA_BUNDLE"])
    assert found["TENANT_DB_SSLROOTCERT"] == str(own)
    assert found["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")
    assert found["SESSION_COOKIE_AGE"] == 3600

    with pytest.raises(ImproperlyConfigured, match="TENANT_DB_SSLROOTCERT names .* not a file"):
        _settings({"TENANT_DB_SSLROOTCERT": str(tmp_path / "missing.pem")})


def test_the_sandbox_keeps_prefer(settings):
    assert settings.SANDBOX
    assert settings.TENANT_DB_SSLMODE == "prefer"
    assert settings.DATABASES["default"]["OPTIONS"]["sslmode"] == "prefer"


class _Connected(Exception):
    pass


def _refuse(kwargs_seen: list[dict]):
    def connect(*args, **kwargs):
        kwargs_seen.append(kwargs)
        raise _Connected

    return connect


def test_tenant_connections_pass_the_ca_bundle(settings, monkeypatch):
    settings.TENANT_DB_SSLMODE = "verify-full"
    settings.TENANT_DB_SSLROOTCERT = "/certs/rds.pem"
    seen: list[dict] = []

    from tenants.provisioning import database_common

    monkeypatch.setattr(database_common.psycopg, "connect", _refuse(seen))
    with (
        pytest.raises(_Connected),
        database_common.connect(host="db.example", port=5432, user="u", password="p", dbname="d"),
    ):
        pass

    from deployments import migration_runner

    monkeypatch.setattr(migration_runner, "_connect", _refuse(seen))
    creds = migration_runner._Credentials(
        host="db.example", port=5432, dbname="d", user="u", password="p"
    )
    with pytest.raises(_Connected):
        migration_runner._open(creds, lambda *a, **k: None)

    from tenants.health import shared_db

    monkeypatch.setattr(
        shared_db.secrets,
        "get_secret_json",
        lambda **kw: {"host": "db.example", "username": "master", "password": "p"},
    )
    monkeypatch.setattr(shared_db.psycopg, "connect", _refuse(seen))
    with pytest.raises(_Connected):
        shared_db._sample("eu-west-1")

    assert [(k["sslmode"], k["sslrootcert"]) for k in seen] == [
        ("verify-full", "/certs/rds.pem")
    ] * 3
