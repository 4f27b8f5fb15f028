"""Shared fixtures: a user of each role plus an outsider, and in-process moto.

The database is the real PostgreSQL named by DATABASE_URL (the test command resolves it:
the environment, the machine's server on 127.0.0.1:5432, or an embedded one).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import dj_database_url
import pytest

from opsconsole.accounts.models import Role, User
from opsconsole.sandbox import services

PASSWORD = "correct-horse-battery-staple"

# moto's EC2 loads thousands of AMIs for every fresh account (every test); no test uses
# one. The local AWS servers the tests start inherit it.
os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Production hashes with PBKDF2 at Django's cost (0.6 s a password on this machine);
    # every test that makes a user would pay it. Tests only need passwords to match.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _user(username: str, role: str) -> User:
    return User.objects.create_user(username=username, password=PASSWORD, role=role)


@pytest.fixture
def admin_user(db) -> User:
    return _user("ada", Role.ADMIN)


@pytest.fixture
def operator_user(db) -> User:
    return _user("otto", Role.OPERATOR)


@pytest.fixture
def viewer_user(db) -> User:
    return _user("vera", Role.VIEWER)


@pytest.fixture
def outsider_user(db) -> User:
    """Logged in, but given no role in the console."""
    return _user("olga", Role.NONE)


@pytest.fixture
def fast_budget(settings):
    """A Lambda rate budget of the test's own, generous enough not to slow it down."""
    from deployments import pipeline

    settings.RATE_BUDGET_PREFIX = f"test-budget-{uuid.uuid4().hex[:8]}"
    settings.LAMBDA_CONTROL_RATE = 10_000
    settings.LAMBDA_CONTROL_BURST = 10_000
    pipeline._budget.cache_clear()
    yield
    pipeline._budget.cache_clear()


@pytest.fixture
def client_for(client):
    def login(user: User):
        client.force_login(user)
        return client

    return login


@pytest.fixture
def aws(settings):
    """In-process moto for unit tests: every boto3 client built by opsconsole.aws hits it."""
    from moto import mock_aws

    from opsconsole.aws.clients import reset_clients
    from opsconsole.sandbox.localaws import (
        apigw_ext,
        lambda_architecture,
        lambda_revisions,
        lambda_versions,
        secrets_stages,
    )

    # What moto lacks, added as the local AWS adds it (the server installs the same).
    lambda_architecture.patch_moto()
    apigw_ext.patch_moto()
    secrets_stages.patch_moto()
    lambda_revisions.patch_moto()
    lambda_versions.patch_moto()
    settings.AWS_ENDPOINT_URL = ""
    for key in ("AWS_ENDPOINT_URL",):
        os.environ.pop(key, None)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    reset_clients()
    # Lambda without Docker: invoke then echoes the payload, as on the sandbox server.
    with mock_aws(config={"lambda": {"use_docker": False}}):
        yield
    reset_clients()


@pytest.fixture(autouse=True)
def health_apps(request, monkeypatch):
    """In-process moto runs no code (its invoke echoes): with it, health invokes reach a
    real app through Mangum, in process (tests/health_apps.py)."""
    from tests.health_apps import HealthApps

    apps = HealthApps()
    if "aws" in request.fixturenames:
        apps.start(monkeypatch)
    return apps


# --- real processes: the sandbox's local AWS and Celery workers ------------------------


@pytest.fixture(scope="session")
def local_aws_server(tmp_path_factory):
    """The sandbox's local AWS (moto plus what moto lacks) in its own process, as
    `make run` starts it; its log is printed when it fails to start."""
    port = services.free_port()
    log = tmp_path_factory.mktemp("localaws") / "localaws.log"
    proc = services.start_local_aws(port=port, log_path=log)
    proc.log_path = log
    yield f"http://127.0.0.1:{port}"
    services.stop_process(proc)


@pytest.fixture
def live_aws(settings, local_aws_server):
    from opsconsole.aws.clients import reset_clients

    settings.AWS_ENDPOINT_URL = local_aws_server
    reset_clients()
    yield local_aws_server
    reset_clients()


@pytest.fixture
def worker_factory(settings, live_aws, transactional_db, tmp_path, request):
    """Start real `celery worker` processes on a queue of their own, against the test DB.

    ``@pytest.mark.worker_region("eu-west-3")`` starts them in another AWS region; keyword
    arguments become environment variables of the worker.
    """
    from opsconsole.celery import app

    marker = request.node.get_closest_marker("worker_region")
    region = marker.args[0] if marker else settings.AWS_REGION
    queue = f"test-{uuid.uuid4().hex[:8]}"
    previous = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    db = settings.DATABASES["default"]
    url = dj_database_url.parse(os.environ["DATABASE_URL"])
    started: list[subprocess.Popen] = []

    def start(**extra_env: str) -> subprocess.Popen:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=(
                f"postgres://{url.get('USER') or 'postgres'}@{url.get('HOST') or '127.0.0.1'}:"
                f"{url.get('PORT') or 5432}/{db['NAME']}"
            ),
            OPSCONSOLE_QUEUE=queue,
            OPSCONSOLE_SANDBOX="1",
            AWS_ENDPOINT_URL=live_aws,
            AWS_DEFAULT_REGION=region,
        )
        env.update(extra_env)  # may replace any of those (a drill's DATABASE_URL)
        log = tmp_path / f"worker-{len(started)}.log"
        celery = Path(sys.executable).parent / "celery"
        proc = subprocess.Popen(
            [
                str(celery),
                "-A",
                "opsconsole",
                "worker",
                "-Q",
                queue,
                "-c",
                "1",
                "-l",
                "INFO",
                "-n",
                f"{queue}-{len(started)}@%h",
                "--without-gossip",
                "--without-mingle",
            ],
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc.log_path = log
        started.append(proc)
        return proc

    yield start
    for proc in started:
        services.stop_process(proc)
    app.conf.task_default_queue = previous


@pytest.fixture
def worker(worker_factory):
    return worker_factory()
