"""RDS endpoints are the local PostgreSQL, and instances and clusters are real databases.

moto creates RDS instances, Aurora clusters and proxies as metadata with made-up host
names. Here every instance's ``Endpoint`` (and ``DbInstancePort``), every cluster's
``Endpoint`` / ``ReaderEndpoint`` / ``Port`` and every proxy's ``Endpoint`` is the one
local PostgreSQL server (``config.pg_host`` / ``config.pg_port``), patched on moto's models
so every protocol and every describe call says the same.

And what RDS does inside a new PostgreSQL instance or cluster happens on that server:

- the master user is a login role with the master password, CREATEDB like RDS's master
  (and CREATEROLE on PostgreSQL 16+, where it only governs roles it created; on older
  servers CREATEROLE would let one tenant's master take over every other tenant's role on
  this shared server, so it is left out there), never SUPERUSER;
- the initial database (``DBName`` / ``DatabaseName``) is owned by it, and CONNECT and
  TEMPORARY are revoked from PUBLIC, so tenants sharing this server cannot reach each
  other's data;
- a new ``MasterUserPassword`` (ModifyDBInstance / ModifyDBCluster) is set on the role;
- deleting the instance or cluster terminates its sessions and drops database and role.

Creating is idempotent: moto keeps no state across restarts, the seed and the console
re-create instances at each start while roles and databases survive in PostgreSQL, so a
re-create sets the password again and keeps the data. Roles that are superusers (the
``postgres`` a seed uses as the shared instance's master) or the user this process connects
as are never altered nor dropped; databases owned by such a role are never touched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from moto.rds import models
from moto.rds.exceptions import RDSClientError
from psycopg import sql
from werkzeug.wrappers import Request, Response

from opsconsole.sandbox.localaws.config import LocalAwsConfig
from opsconsole.sandbox.localaws.moto_state import backend, regions_with

logger = logging.getLogger(__name__)

POSTGRES_ENGINES = ("postgres", "aurora-postgresql")

_config: LocalAwsConfig | None = None
_installed = False


def install(config: LocalAwsConfig) -> None:
    global _config, _installed
    _config = config
    if _installed:
        return
    _installed = True
    _patch_endpoints(config)
    _patch_lifecycle()


def route(request: Request) -> Response | None:
    return None


# --- endpoints --------------------------------------------------------------------------


def _after_init(cls: type, fix: Callable[[Any], None]) -> None:
    original = cls.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        fix(self)

    cls.__init__ = init  # type: ignore[method-assign]


def _patch_endpoints(config: LocalAwsConfig) -> None:
    host, port = config.pg_host, config.pg_port

    def set_port(obj: Any) -> None:
        obj.port = port

    def fix_proxy(proxy: Any) -> None:
        proxy.endpoint = host

    def fix_target(target: Any) -> None:
        target.endpoint = host
        target.port = port

    _after_init(models.DBInstance, set_port)
    _after_init(models.DBCluster, set_port)
    _after_init(models.DBProxy, fix_proxy)
    _after_init(models.DBProxyTarget, fix_target)
    models.DBInstance.address = property(lambda self: host)  # type: ignore[assignment]
    models.DBInstance.endpoint = property(  # type: ignore[assignment]
        lambda self: {"Address": host, "Port": port}
    )
    models.DBInstance.db_instance_port = property(lambda self: port)  # type: ignore[assignment]
    models.DBCluster.endpoint = property(lambda self: host)  # type: ignore[assignment]
    models.DBCluster.reader_endpoint = property(lambda self: host)  # type: ignore[assignment]


# --- what RDS does inside the server ----------------------------------------------------


def _is_postgres(resource: Any) -> bool:
    return str(getattr(resource, "engine", "") or "").lower() in POSTGRES_ENGINES


def _password(resource: Any, given: str | None) -> str | None:
    """The master password RDS would set: the one given, else (ManageMasterUserPassword)
    the one in the secret RDS manages."""
    if given:
        return given
    secret = getattr(resource, "master_user_secret", None)
    if secret is not None:
        try:
            return json.loads(secret.secret.secret_string).get("password")
        except (AttributeError, TypeError, ValueError):
            return None
    return None


def _patch_lifecycle() -> None:
    backend_cls = models.RDSBackend
    create_instance = backend_cls.create_db_instance
    create_cluster = backend_cls.create_db_cluster
    modify_instance = backend_cls.modify_db_instance
    modify_cluster = backend_cls.modify_db_cluster
    delete_instance = backend_cls.delete_db_instance
    delete_cluster = backend_cls.delete_db_cluster

    def create_db_instance(self: Any, db_kwargs: dict[str, Any]) -> Any:
        database = create_instance(self, db_kwargs)
        # An instance in a cluster has no master user or database of its own.
        if _is_postgres(database) and not db_kwargs.get("db_cluster_identifier"):
            try:
                provision(
                    role=database.master_username,
                    password=_password(database, db_kwargs.get("master_user_password")),
                    dbname=database.db_name,
                )
            except Exception as exc:
                # Undone, so a retry creates it again and gets this far again.
                self.databases.pop(database.db_instance_identifier, None)
                raise _server_error(exc) from exc
        return database

    def create_db_cluster(self: Any, kwargs: dict[str, Any]) -> Any:
        cluster = create_cluster(self, kwargs)
        if _is_postgres(cluster):
            try:
                provision(
                    role=cluster.master_username,
                    password=_password(cluster, kwargs.get("master_user_password")),
                    dbname=cluster.database_name,
                )
            except Exception as exc:
                self.clusters.pop(cluster.db_cluster_identifier, None)
                raise _server_error(exc) from exc
        return cluster

    def modify_db_instance(self: Any, identifier: str, db_kwargs: dict[str, Any]) -> Any:
        database = modify_instance(self, identifier, db_kwargs)
        password = db_kwargs.get("master_user_password")
        if password and _is_postgres(database) and database.master_username:
            set_password(role=database.master_username, password=password)
        return database

    def modify_db_cluster(self: Any, kwargs: dict[str, Any]) -> Any:
        cluster = modify_cluster(self, kwargs)
        password = kwargs.get("master_user_password")
        if password and _is_postgres(cluster) and cluster.master_username:
            set_password(role=cluster.master_username, password=password)
        return cluster

    def delete_db_instance(self: Any, db_instance_identifier: str, *args: Any, **kw: Any) -> Any:
        database = delete_instance(self, db_instance_identifier, *args, **kw)
        if _is_postgres(database) and not getattr(database, "db_cluster_identifier", None):
            _drop_unless_still_used(database.db_name, database.master_username)
        return database

    def delete_db_cluster(self: Any, cluster_identifier: str, *args: Any, **kw: Any) -> Any:
        cluster = delete_cluster(self, cluster_identifier, *args, **kw)
        if _is_postgres(cluster):
            _drop_unless_still_used(cluster.database_name, cluster.master_username)
        return cluster

    backend_cls.create_db_instance = create_db_instance  # type: ignore[method-assign]
    backend_cls.create_db_cluster = create_db_cluster  # type: ignore[method-assign]
    backend_cls.modify_db_instance = modify_db_instance  # type: ignore[method-assign]
    backend_cls.modify_db_cluster = modify_db_cluster  # type: ignore[method-assign]
    backend_cls.delete_db_instance = delete_db_instance  # type: ignore[method-assign]
    backend_cls.delete_db_cluster = delete_db_cluster  # type: ignore[method-assign]


def _server_error(exc: Exception) -> RDSClientError:
    logger.exception("local PostgreSQL refused what RDS would have done")
    return RDSClientError(
        "InternalFailure",
        f"The sandbox's local AWS could not create the master user or database on the "
        f"local PostgreSQL: {exc}",
    )


def _drop_unless_still_used(dbname: str | None, role: str | None) -> None:
    """Instances and clusters in every region share the one local server: what another
    one still names as its database or master stays."""
    used_dbs, used_roles = set(), set()
    for region in regions_with("rds"):
        rds = backend("rds", region)
        for item in list(rds.databases.values()):
            if getattr(item, "db_cluster_identifier", None):
                continue
            used_dbs.add(item.db_name)
            used_roles.add(item.master_username)
        for item in list(rds.clusters.values()):
            used_dbs.add(item.database_name)
            used_roles.add(item.master_username)
    drop(
        dbname=dbname if dbname not in used_dbs else None,
        role=role if role not in used_roles else None,
    )


# --- PostgreSQL -------------------------------------------------------------------------


@contextmanager
def _server() -> Iterator[psycopg.Connection]:
    assert _config is not None, "rds_ext.install() was not called"
    kwargs: dict[str, Any] = {"password": _config.pg_password} if _config.pg_password else {}
    with psycopg.connect(
        host=_config.pg_host,
        port=_config.pg_port,
        user=_config.pg_user,
        dbname="postgres",
        autocommit=True,
        connect_timeout=5,
        application_name="opsconsole-localaws-rds",
        **kwargs,
    ) as conn:
        yield conn


def _untouchable(conn: psycopg.Connection, role: str) -> bool:
    """Superusers and the user we connect as keep their attributes and their password."""
    if _config is not None and role == _config.pg_user:
        return True
    row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [role]).fetchone()
    return bool(row and row[0])


def _verifier(conn: psycopg.Connection, role: str, password: str) -> str:
    # The server gets a SCRAM verifier, never the clear password, so it cannot show up in
    # the server's statement log.
    return conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()


def _role_options(conn: psycopg.Connection) -> sql.Composable:
    if conn.info.server_version >= 160000:
        return sql.SQL("LOGIN CREATEDB CREATEROLE NOSUPERUSER")
    return sql.SQL("LOGIN CREATEDB NOSUPERUSER")


def provision(*, role: str | None, password: str | None, dbname: str | None) -> None:
    """The master role with ``password`` and its database ``dbname`` exist (idempotent)."""
    if not role:
        return
    with _server() as conn:
        if _untouchable(conn, role):
            logger.info("RDS master user %s is a superuser or our own login: left as it is", role)
        else:
            _ensure_role(conn, role=role, password=password)
        if dbname:
            _ensure_database(conn, dbname=dbname, owner=role)


def _ensure_role(conn: psycopg.Connection, *, role: str, password: str | None) -> None:
    ident = sql.Identifier(role)
    options = _role_options(conn)
    if password:
        options = options + sql.SQL(" PASSWORD {}").format(
            sql.Literal(_verifier(conn, role, password))
        )
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
    if not exists:
        try:
            conn.execute(sql.SQL("CREATE ROLE {} WITH ").format(ident) + options)
            logger.info("Created login role %s (RDS master user)", role)
        except psycopg.errors.DuplicateObject:
            exists = True
    if exists:
        conn.execute(sql.SQL("ALTER ROLE {} WITH ").format(ident) + options)
    me = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    if not (me and me[0]):
        # Without superuser, this login must be a member of the role to make it a database
        # owner and to drop it again.
        conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(ident))


def _ensure_database(conn: psycopg.Connection, *, dbname: str, owner: str) -> None:
    row = conn.execute(
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [dbname]
    ).fetchone()
    if row is not None and row[0] != owner and _untouchable(conn, row[0]):
        # postgres, template1, the console's own database...: never given away.
        logger.warning("Database %s belongs to %s: not given to %s", dbname, row[0], owner)
        return
    ident = sql.Identifier(dbname)
    if row is None:
        try:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(ident, sql.Identifier(owner))
            )
            logger.info("Created database %s owned by %s", dbname, owner)
        except psycopg.errors.DuplicateDatabase:
            pass
    elif row[0] != owner:
        conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(ident, sql.Identifier(owner)))
    if _untouchable(conn, owner):
        return  # a superuser's database (the seed's shared instance): PUBLIC keeps CONNECT
    conn.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(ident))


def set_password(*, role: str, password: str) -> None:
    with _server() as conn:
        if _untouchable(conn, role):
            logger.info("Not changing the password of %s (superuser or our own login)", role)
            return
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
            logger.warning("RDS master user %s has no role on the local server", role)
            return
        conn.execute(
            sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(_verifier(conn, role, password))
            )
        )


def drop(*, dbname: str | None, role: str | None) -> list[str]:
    """Disconnect everyone, drop the database, then the role. Returns what was dropped."""
    dropped: list[str] = []
    with _server() as conn:
        if role and _untouchable(conn, role):
            logger.info("Not dropping %s (superuser or our own login)", role)
            role = None
        if dbname:
            row = conn.execute(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [dbname]
            ).fetchone()
            if row is not None and _untouchable(conn, row[0]):
                logger.info("Not dropping database %s owned by %s", dbname, row[0])
            elif row is not None:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    [dbname],
                )
                statement = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(dbname))
                if conn.info.server_version >= 130000:
                    statement = statement + sql.SQL(" WITH (FORCE)")
                conn.execute(statement)
                dropped.append(f"database {dbname}")
        if role and conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE usename = %s AND pid <> pg_backend_pid()",
                [role],
            )
            try:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
                dropped.append(f"role {role}")
            except psycopg.errors.DependentObjectsStillRemain as exc:
                # It still owns something elsewhere on this shared server: keep it.
                logger.warning("Role %s not dropped: %s", role, exc)
    if dropped:
        logger.info("RDS deletion dropped %s", ", ".join(dropped))
    return dropped
