"""The tenant's database: credentials from the secret named by ``DB_SECRET_ARN``, one
connection per execution environment (reused by every request it serves).

The secret is the JSON RDS writes for PostgreSQL credentials: engine, host, port, dbname,
username, password. The driver, pg8000, is pure Python and packaged with the app: Lambda's
Python runtime offers the standard library and boto3, nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl

import boto3
import pg8000.native
from pg8000.exceptions import DatabaseError, InterfaceError

CONNECT_TIMEOUT_S = 5

_credentials: dict | None = None
_connection: pg8000.native.Connection | None = None


class Unavailable(Exception):  # noqa: N818 - the database did not answer
    pass


def credentials() -> dict:
    global _credentials
    if _credentials is None:
        secrets = boto3.client("secretsmanager")
        answer = secrets.get_secret_value(SecretId=os.environ["DB_SECRET_ARN"])
        _credentials = json.loads(answer["SecretString"])
    return _credentials


def _ssl_context() -> ssl.SSLContext:
    # Encrypted like libpq's sslmode=prefer: the server's certificate is not checked
    # (the demo ships no CA bundle), and a server without TLS is spoken to in plain text.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _connect() -> pg8000.native.Connection:
    found = credentials()
    kwargs = {
        "user": found["username"],
        "password": found["password"],
        "host": found["host"],
        "port": int(found.get("port") or 5432),
        "database": found["dbname"],
        "timeout": CONNECT_TIMEOUT_S,
        "application_name": f"demo-app {os.environ.get('AWS_LAMBDA_FUNCTION_NAME', '')}",
    }
    try:
        return pg8000.native.Connection(ssl_context=_ssl_context(), **kwargs)
    except InterfaceError as exc:
        if "refuses SSL" not in str(exc):
            raise
    return pg8000.native.Connection(**kwargs)


def connection() -> pg8000.native.Connection:
    global _connection
    if _connection is None:
        try:
            _connection = _connect()
        except (InterfaceError, DatabaseError, OSError) as exc:
            raise Unavailable(f"cannot connect to the database: {exc}") from exc
    return _connection


def _forget() -> None:
    global _connection
    if _connection is not None:
        with contextlib.suppress(Exception):  # it is broken already
            _connection.close()
    _connection = None


def run(sql: str, *, retry: bool = True, **params) -> list[list]:
    """Rows of ``sql``. A connection that broke since the last request is replaced, and a
    read (``retry``) is tried once more on the new one."""
    reused = _connection is not None
    try:
        return connection().run(sql, **params)
    except (InterfaceError, OSError) as exc:
        _forget()
        if not (reused and retry):
            raise Unavailable(f"the database connection failed: {exc}") from exc
    try:
        return connection().run(sql, **params)
    except (InterfaceError, OSError) as exc:
        _forget()
        raise Unavailable(f"the database connection failed: {exc}") from exc
