"""The demo releases are real apps: each zip runs with nothing but the standard library,
boto3 and its own contents, reads its secret from the local AWS's Secrets Manager, and
answers HTTP API events from a real PostgreSQL database.

Two ways to run a zip: in a Python process whose import path holds only the unpacked zip
and boto3 (what Lambda's Python runtime offers), and as a Lambda function on the local
AWS, invoked through its API.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import boto3
import psycopg
import pytest
from django.conf import settings
from psycopg import sql

from opsconsole.sandbox import demo_release
from opsconsole.sandbox.endpoints import sandbox_server_connection

pytestmark = pytest.mark.integration

# boto3 and what it imports: Lambda's Python runtime has these and the standard library.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six")


def http_event(method: str, path: str, body: dict | str | None = None, **headers: str) -> dict:
    """An HTTP API event, payload format 2.0, as API Gateway sends it."""
    text = body if isinstance(body, str) or body is None else json.dumps(body)
    headers = {"user-agent": "test-demo-app", **headers}
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers["user-agent"],
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": "$default",
            "stage": "$default",
        },
        "body": text,
        "isBase64Encoded": False,
    }


def _aws(service: str, endpoint: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
    )


# --- a tenant's database and secret ----------------------------------------------------


@pytest.fixture
def tenant_db(db):
    """A database of its own on the local PostgreSQL, owned by a login role of its own."""
    name = f"demo_app_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    with sandbox_server_connection() as conn:
        verifier = conn.pgconn.encrypt_password(
            password.encode(), name.encode(), b"scram-sha-256"
        ).decode()
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(verifier)
            )
        )
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(*[sql.Identifier(name)] * 2))
    value = {
        "engine": "postgres",
        "host": settings.SANDBOX_PG_HOST,
        "port": settings.SANDBOX_PG_PORT,
        "dbname": name,
        "username": name,
        "password": password,
    }
    yield value
    with sandbox_server_connection() as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def migrate(credentials: dict, version: str) -> None:
    """Apply ``version``'s migrations that the database does not have yet, as its owner."""
    with psycopg.connect(
        host=credentials["host"],
        port=credentials["port"],
        user=credentials["username"],
        password=credentials["password"],
        dbname=credentials["dbname"],
        autocommit=True,
    ) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS applied (version int PRIMARY KEY)")
        done = {v for (v,) in conn.execute("SELECT version FROM applied")}
        for migration in demo_release.build_demo_release(version).migrations:
            if migration.version not in done:
                conn.execute(migration.sql)
                conn.execute("INSERT INTO applied VALUES (%s)", [migration.version])


@pytest.fixture
def secret_for(local_aws_server):
    sm = _aws("secretsmanager", local_aws_server)

    def make(value: dict) -> str:
        name = f"demo-app-test/{uuid.uuid4().hex[:8]}"
        return sm.create_secret(Name=name, SecretString=json.dumps(value))["ARN"]

    return make


# --- running a zip the way Lambda's Python runtime would --------------------------------


def _runtime_path(tmp_path: Path) -> Path:
    """A directory holding boto3 and its dependencies only (links into this venv)."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    for name in RUNTIME_PACKAGES:
        module = __import__(name)
        source = Path(module.__file__)
        source = source.parent if source.name == "__init__.py" else source
        (runtime / source.name).symlink_to(source)
    return runtime


_RUN = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import app
print("RESULT " + json.dumps(app.handler(json.loads(sys.stdin.read()), None)))
"""


@pytest.fixture
def run_zip(tmp_path, local_aws_server):
    """run(zip_bytes, event, secret_arn) -> (answer or None, the process's output).

    ``python -S``: no site-packages, so only the zip, boto3 and the standard library can
    be imported, as in Lambda.
    """
    runtime = _runtime_path(tmp_path)

    def run(zip_bytes: bytes, event: dict, secret_arn: str) -> tuple[dict | None, str]:
        task = tmp_path / f"task-{uuid.uuid4().hex[:6]}"
        zipfile.ZipFile(io.BytesIO(zip_bytes)).extractall(task)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_ENDPOINT_URL": local_aws_server,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "sandbox",
            "AWS_SECRET_ACCESS_KEY": "sandbox",
            "AWS_LAMBDA_FUNCTION_NAME": "demo-app-test",
            "DB_SECRET_ARN": secret_arn,
        }
        done = subprocess.run(
            [sys.executable, "-S", "-c", _RUN, str(task), str(runtime)],
            input=json.dumps(event),
            capture_output=True,
            text=True,
            env=env,
            cwd=task,
            timeout=60,
        )
        output = done.stdout + done.stderr
        for line in done.stdout.splitlines():
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT ") :]), output
        return None, output

    return run


def _body(answer: dict) -> dict:
    return json.loads(answer["body"])


def test_the_first_release_serves_notes_from_its_database(tenant_db, secret_for, run_zip):
    migrate(tenant_db, demo_release.DEMO_VERSION)
    arn = secret_for(tenant_db)
    zip_bytes = demo_release.build_demo_release().zip_bytes

    health, output = run_zip(zip_bytes, http_event("GET", "/healthz"), arn)
    assert health is not None, output
    assert health["statusCode"] == 200
    assert _body(health) == {"ok": True, "release": "2026.11.0-demo", "database": "answered"}
    assert "INFO GET /healthz 200" in output and "ua=test-demo-app" in output

    added, output = run_zip(zip_bytes, http_event("POST", "/notes", {"text": "first"}), arn)
    assert added["statusCode"] == 201, output
    listed, _ = run_zip(zip_bytes, http_event("GET", "/notes"), arn)
    assert [n["text"] for n in _body(listed)["notes"]] == ["first"]
    with psycopg.connect(
        host=tenant_db["host"],
        port=tenant_db["port"],
        user=tenant_db["username"],
        password=tenant_db["password"],
        dbname=tenant_db["dbname"],
    ) as conn:
        assert conn.execute("SELECT text FROM notes").fetchall() == [("first",)]


def test_bad_requests_are_answered_and_an_overlong_note_is_an_unhandled_error(
    tenant_db, secret_for, run_zip
):
    migrate(tenant_db, demo_release.DEMO_VERSION)
    arn = secret_for(tenant_db)
    zip_bytes = demo_release.build_demo_release().zip_bytes

    bad, output = run_zip(zip_bytes, http_event("POST", "/notes", "{not json"), arn)
    assert bad["statusCode"] == 400 and "not JSON" in _body(bad)["message"]
    assert "WARN POST /notes 400" in output
    missing, _ = run_zip(zip_bytes, http_event("GET", "/nowhere"), arn)
    assert missing["statusCode"] == 404
    wrong, _ = run_zip(zip_bytes, http_event("DELETE", "/notes"), arn)
    assert wrong["statusCode"] == 405

    # The length check lives only in the database: the app lets its refusal through.
    raised, output = run_zip(zip_bytes, http_event("POST", "/notes", {"text": "x" * 1001}), arn)
    assert raised is None
    assert "notes_text_check" in output
    assert "ERROR POST /notes unhandled error" in output


def test_the_second_release_adds_an_author_and_the_first_still_works_on_its_schema(
    tenant_db, secret_for, run_zip
):
    migrate(tenant_db, demo_release.DEMO_VERSION)
    arn = secret_for(tenant_db)
    first = demo_release.build_demo_release(demo_release.DEMO_VERSION).zip_bytes
    second = demo_release.build_demo_release("2026.12.0-demo").zip_bytes
    run_zip(first, http_event("POST", "/notes", {"text": "before"}), arn)

    migrate(tenant_db, "2026.12.0-demo")
    added, output = run_zip(
        second, http_event("POST", "/notes", {"text": "t", "author": "ada"}), arn
    )
    assert added["statusCode"] == 201, output
    listed, _ = run_zip(second, http_event("GET", "/notes"), arn)
    assert [(n["text"], n["author"]) for n in _body(listed)["notes"]] == [
        ("t", "ada"),
        ("before", None),
    ]
    health, _ = run_zip(second, http_event("GET", "/healthz"), arn)
    assert _body(health)["release"] == "2026.12.0-demo"

    # Expand/contract: the previous release runs on the new schema (a rollback's case).
    again, output = run_zip(first, http_event("POST", "/notes", {"text": "after"}), arn)
    assert again["statusCode"] == 201, output
    listed, _ = run_zip(first, http_event("GET", "/notes"), arn)
    assert [n["text"] for n in _body(listed)["notes"]] == ["after", "t", "before"]


def test_the_broken_release_refuses_its_health_check_in_its_own_words(
    tenant_db, secret_for, run_zip
):
    migrate(tenant_db, "2026.12.1-demo-broken")
    arn = secret_for(tenant_db)
    zip_bytes = demo_release.build_demo_release("2026.12.1-demo-broken").zip_bytes

    health, output = run_zip(zip_bytes, http_event("GET", "/healthz"), arn)
    assert health["statusCode"] == 500, output
    body = _body(health)
    assert body["release"] == "2026.12.1-demo-broken"
    assert "refusing traffic" in body["error"]
    assert "ERROR GET /healthz 500" in output
    notes, _ = run_zip(zip_bytes, http_event("GET", "/notes"), arn)
    assert notes["statusCode"] == 200


def test_health_answers_500_when_the_database_is_unreachable(secret_for, run_zip):
    from opsconsole.sandbox.services import free_port

    arn = secret_for(
        {
            "engine": "postgres",
            "host": "127.0.0.1",
            "port": free_port(),  # nothing listens there
            "dbname": "nothing",
            "username": "nobody",
            "password": "x",
        }
    )
    zip_bytes = demo_release.build_demo_release().zip_bytes

    health, output = run_zip(zip_bytes, http_event("GET", "/healthz"), arn)
    assert health["statusCode"] == 500, output
    body = _body(health)
    assert body["ok"] is False and "cannot connect to the database" in body["database"]


def test_payload_format_1_is_read_too(tenant_db, secret_for, run_zip):
    migrate(tenant_db, demo_release.DEMO_VERSION)
    arn = secret_for(tenant_db)
    event = {
        "version": "1.0",
        "httpMethod": "GET",
        "path": "/healthz",
        "headers": {"User-Agent": "v1-client"},
        "body": None,
        "isBase64Encoded": False,
        "requestContext": {"stage": "$default"},
    }
    health, output = run_zip(demo_release.build_demo_release().zip_bytes, event, arn)
    assert health["statusCode"] == 200, output
    assert "ua=v1-client" in output


def test_a_zip_without_its_driver_fails_as_it_would_on_lambda(tenant_db, secret_for, run_zip):
    """The zip's pg8000 is what the app imports: the runtime path has none of its own."""
    files = {
        name: data
        for name, data in demo_release.build_demo_release().files.items()
        if not name.startswith("pg8000")
    }
    answer, output = run_zip(demo_release.build_zip(files), http_event("GET", "/healthz"), "x")
    assert answer is None
    assert "No module named 'pg8000'" in output


# --- the same zips as Lambda functions on the local AWS -------------------------------


@pytest.fixture
def lambda_aws(local_aws_server):
    from tests.sandbox.test_lambda_common import Aws

    return Aws(local_aws_server)


def _function(aws, zip_bytes: bytes, secret_arn: str) -> str:
    name = f"demo-app-{uuid.uuid4().hex[:8]}"
    aws.lam.create_function(
        FunctionName=name,
        Runtime=demo_release.DEMO_RUNTIME,
        Role=aws.role,
        Handler=demo_release.DEMO_HANDLER,
        Code={"ZipFile": zip_bytes},
        Timeout=30,
        Environment={"Variables": {"DB_SECRET_ARN": secret_arn}},
    )
    return name


def test_as_a_lambda_function_it_reads_its_secret_and_serves_its_database(
    tenant_db, secret_for, lambda_aws
):
    from tests.sandbox.test_lambda_common import wait_for

    migrate(tenant_db, demo_release.DEMO_VERSION)
    name = _function(lambda_aws, demo_release.build_demo_release().zip_bytes, secret_for(tenant_db))

    response, health = lambda_aws.invoke(name, http_event("GET", "/healthz"))
    assert "FunctionError" not in response, health
    assert health["statusCode"] == 200
    assert _body(health) == {"ok": True, "release": "2026.11.0-demo", "database": "answered"}
    _, added = lambda_aws.invoke(name, http_event("POST", "/notes", {"text": "via lambda"}))
    assert added["statusCode"] == 201
    _, listed = lambda_aws.invoke(name, http_event("GET", "/notes"))
    assert [n["text"] for n in _body(listed)["notes"]] == ["via lambda"]

    # An overlong note: the database refuses, the app does not catch it, Lambda says so.
    response, raised = lambda_aws.invoke(name, http_event("POST", "/notes", {"text": "x" * 1001}))
    assert response["FunctionError"] == "Unhandled"
    assert "notes_text_check" in raised["errorMessage"]

    def logged() -> list[str]:
        messages = lambda_aws.log_messages(name)
        return messages if any("ERROR POST /notes unhandled error" in m for m in messages) else []

    messages = wait_for(logged)
    assert any("INFO GET /healthz 200" in m and "ua=test-demo-app" in m for m in messages)
    assert any(m.startswith("REPORT RequestId:") for m in messages)


def test_as_a_lambda_function_the_broken_release_answers_500(tenant_db, secret_for, lambda_aws):
    migrate(tenant_db, "2026.12.1-demo-broken")
    zip_bytes = demo_release.build_demo_release("2026.12.1-demo-broken").zip_bytes
    name = _function(lambda_aws, zip_bytes, secret_for(tenant_db))

    response, health = lambda_aws.invoke(name, http_event("GET", "/healthz"))

    assert "FunctionError" not in response
    assert health["statusCode"] == 500
    assert "refusing traffic" in _body(health)["error"]
