"""Stand-ins for the five teams' apps, built as their documents describe them, that really
run in the local AWS: a Go binary is an executable ``bootstrap`` speaking the Lambda
Runtime API (here a Python script doing what aws-lambda-go does), a Python app is a
handler module. Each reads its configuration from the environment names its team's code
reads and, where it has the console's database, connects to it with them (pg8000, the
pure-Python driver the demo app packages): its health route answers 200 only when every
name it needs is there and the database answers.
"""

from __future__ import annotations

import json

from opsconsole.sandbox.demo_release import build_zip, vendored_files

# What the app does with one API Gateway event. ``FORMAT`` decides where it looks for
# the method and path, as the team's handler type does (APIGatewayProxyRequest: 1.0).
_APP = """
import json, os, urllib.parse

FORMAT = {payload_format!r}
HEALTH = {health_path!r}
NEEDS = {needs!r}
CONNECT = {connect!r}


def _dsn_fields():
    if CONNECT == "dsn":  # libpq key=value, as the Go team's DATABASE_DSN
        pairs = dict(p.split("=", 1) for p in os.environ["DATABASE_DSN"].split())
        return pairs["host"], pairs["port"], pairs["user"], pairs["password"], pairs["dbname"]
    return (os.environ["DB_HOST"], os.environ["DB_PORT"], os.environ["DB_USER"],
            os.environ["DB_PASSWORD"], os.environ["DB_NAME"])


def _database():
    import pg8000.native

    host, port, user, password, name = _dsn_fields()
    # The sandbox's PostgreSQL speaks no TLS; on AWS sslmode=require would add it.
    conn = pg8000.native.Connection(user, host=host, port=int(port), password=password,
                                    database=name, timeout=5)
    try:
        return conn.run("SELECT current_database()")[0][0]
    finally:
        conn.close()


def answer(event):
    if FORMAT == "1.0":
        method, path = event.get("httpMethod"), event.get("path")
    else:
        method = event.get("requestContext", {{}}).get("http", {{}}).get("method")
        path = event.get("rawPath")
    if (method, path) != ("GET", HEALTH):
        return {{"statusCode": 404, "body": json.dumps({{"no route": [method, path]}})}}
    missing = [n for n in NEEDS if not os.environ.get(n)]
    if missing:
        return {{"statusCode": 500, "body": json.dumps({{"missing": missing}})}}
    body = {{"status": "ok"}}
    if CONNECT:
        try:
            body["database"] = _database()
        except Exception as exc:
            return {{"statusCode": 500, "body": json.dumps({{"database": repr(exc)}})}}
    return {{"statusCode": 200, "body": json.dumps(body)}}


def handler(event, context):
    return answer(event)
"""

# A custom runtime's loop (what aws-lambda-go's lambda.Start does): next event, answer.
_BOOTSTRAP = """#!/usr/bin/env python3
import json, os, sys, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from app import answer

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
while True:
    with urllib.request.urlopen(API + "next") as response:
        request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(response.read())
    body = json.dumps(answer(event)).encode()
    urllib.request.urlopen(urllib.request.Request(API + request_id + "/response", data=body))
"""


def app_source(
    *, payload_format: str, health_path: str, needs: list[str], connect: str = ""
) -> str:
    """``connect``: "" (no database of the console's), "env" (DB_* names), "dsn"."""
    return _APP.format(
        payload_format=payload_format, health_path=health_path, needs=needs, connect=connect
    )


def go_zip(**app) -> bytes:
    """A provided.al2023 / provided.al2 package: an executable ``bootstrap``."""
    files = {
        **vendored_files(),
        "bootstrap": _BOOTSTRAP.encode(),
        "app.py": app_source(**app).encode(),
    }
    return build_zip(files, modes={"bootstrap": 0o755})


def python_files(module: str, **app) -> dict[str, bytes]:
    """A Python package whose handler is ``<module>.handler`` (dots are directories)."""
    path = module.replace(".", "/") + ".py"
    files = {**vendored_files(), path: app_source(**app).encode()}
    parts = module.split(".")[:-1]
    for depth in range(1, len(parts) + 1):
        files.setdefault("/".join(parts[:depth]) + "/__init__.py", b"")
    return files


def python_zip(module: str, **app) -> bytes:
    return build_zip(python_files(module, **app))


def describe(**app) -> str:
    return json.dumps(app, sort_keys=True)
