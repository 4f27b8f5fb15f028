"""The local AWS's RDS: every endpoint is the local PostgreSQL, and an instance or cluster
is a real master role and database there (created, re-created, re-passworded, dropped)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import psycopg
import pytest

pytestmark = pytest.mark.integration

PG_HOST = os.environ.get("SANDBOX_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SANDBOX_PG_PORT", "5432"))
PG_USER = os.environ.get("SANDBOX_PG_USER", "postgres")
# The AWS CLI installed beside the interpreter running the tests (the project venv).
VENV_BIN = Path(sys.executable).parent


def _rds(endpoint: str):
    return boto3.client(
        "rds",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
    )


def _admin() -> psycopg.Connection:
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
    )


def _login(user: str, password: str, dbname: str) -> psycopg.Connection:
    # The local server may trust local connections (no password asked): check through a
    # TCP connection that demands the password when the server is configured so, and in
    # any case check the stored verifier below.
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=user, password=password, dbname=dbname, connect_timeout=5
    )


def _password_matches(role: str, password: str) -> bool:
    """The role's stored SCRAM verifier was made from ``password`` (works under trust auth)."""
    import base64
    import hashlib
    import hmac

    with _admin() as conn:
        row = conn.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", [role]
        ).fetchone()
    if not row or not row[0]:
        return False
    # SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
    _, rest = row[0].split("$", 1)
    params, keys = rest.split("$")
    iterations, salt = params.split(":")
    stored_key, _server_key = keys.split(":")
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return base64.b64encode(hashlib.sha256(client_key).digest()).decode() == stored_key


def _role(name: str) -> dict | None:
    with _admin() as conn:
        row = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcanlogin FROM pg_roles WHERE rolname = %s", [name]
        ).fetchone()
    return None if row is None else {"super": row[0], "createdb": row[1], "login": row[2]}


def _database(name: str) -> dict | None:
    with _admin() as conn:
        row = conn.execute(
            "SELECT pg_get_userbyid(datdba), has_database_privilege('public', oid, 'CONNECT') "
            "FROM pg_database WHERE datname = %s",
            [name],
        ).fetchone()
    return None if row is None else {"owner": row[0], "public_connect": row[1]}


def _create_instance(rds, identifier: str, user: str, password: str, dbname: str) -> dict:
    return rds.create_db_instance(
        DBInstanceIdentifier=identifier,
        DBInstanceClass="db.t4g.micro",
        Engine="postgres",
        AllocatedStorage=20,
        MasterUsername=user,
        MasterUserPassword=password,
        DBName=dbname,
    )["DBInstance"]


@pytest.fixture
def names():
    suffix = uuid.uuid4().hex[:8]
    made = {"instance": f"rdsext-{suffix}", "user": f"rdsext_u_{suffix}", "db": f"rdsext_{suffix}"}
    yield made
    # Whatever a failed test left behind on the shared server.
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{made["db"]}" WITH (FORCE)')
        conn.execute(f'DROP ROLE IF EXISTS "{made["user"]}"')


def test_instance_endpoint_is_the_local_server_and_the_master_can_log_in(local_aws_server, names):
    rds = _rds(local_aws_server)
    created = _create_instance(
        rds, names["instance"], names["user"], "first-password-1", names["db"]
    )
    assert created["Endpoint"] == {"Address": PG_HOST, "Port": PG_PORT}
    described = rds.describe_db_instances(DBInstanceIdentifier=names["instance"])["DBInstances"][0]
    assert described["Endpoint"]["Address"] == PG_HOST
    assert described["Endpoint"]["Port"] == PG_PORT
    assert described["DbInstancePort"] == PG_PORT

    assert _role(names["user"]) == {"super": False, "createdb": True, "login": True}
    assert _password_matches(names["user"], "first-password-1")
    assert _database(names["db"]) == {"owner": names["user"], "public_connect": False}
    with _login(names["user"], "first-password-1", names["db"]) as conn:
        conn.execute("CREATE TABLE notes (body text)")
        conn.execute("INSERT INTO notes VALUES ('kept')")
        conn.commit()

    rds.modify_db_instance(
        DBInstanceIdentifier=names["instance"],
        MasterUserPassword="second-password-2",
        ApplyImmediately=True,
    )
    assert _password_matches(names["user"], "second-password-2")
    assert not _password_matches(names["user"], "first-password-1")

    rds.delete_db_instance(DBInstanceIdentifier=names["instance"], SkipFinalSnapshot=True)
    assert _role(names["user"]) is None
    assert _database(names["db"]) is None


def test_recreating_an_instance_keeps_the_data_and_sets_the_new_password(local_aws_server, names):
    """What a moto restart looks like from PostgreSQL: the same master and database asked
    for again, with the role and data already there."""
    rds = _rds(local_aws_server)
    _create_instance(rds, names["instance"], names["user"], "first-password-1", names["db"])
    with _login(names["user"], "first-password-1", names["db"]) as conn:
        conn.execute("CREATE TABLE notes (body text)")
        conn.execute("INSERT INTO notes VALUES ('kept')")
        conn.commit()
    again = names["instance"] + "-b"
    _create_instance(rds, again, names["user"], "other-password-3", names["db"])
    assert _password_matches(names["user"], "other-password-3")
    with _login(names["user"], "other-password-3", names["db"]) as conn:
        assert conn.execute("SELECT body FROM notes").fetchall() == [("kept",)]

    # The first one goes: the second still names the role and database, so they stay.
    rds.delete_db_instance(DBInstanceIdentifier=names["instance"], SkipFinalSnapshot=True)
    assert _role(names["user"]) is not None
    assert _database(names["db"]) is not None
    rds.delete_db_instance(DBInstanceIdentifier=again, SkipFinalSnapshot=True)
    assert _role(names["user"]) is None
    assert _database(names["db"]) is None


def test_a_superuser_master_is_left_alone(local_aws_server, names):
    """The seed's shared instance names the server's own superuser as its master."""
    rds = _rds(local_aws_server)
    with _admin() as conn:
        before = conn.execute(
            "SELECT rolpassword, rolsuper FROM pg_authid WHERE rolname = %s", [PG_USER]
        ).fetchone()
    rds.create_db_instance(
        DBInstanceIdentifier=names["instance"],
        DBInstanceClass="db.t4g.micro",
        Engine="postgres",
        AllocatedStorage=20,
        MasterUsername=PG_USER,
        MasterUserPassword="never-set-this-1",
    )
    rds.delete_db_instance(DBInstanceIdentifier=names["instance"], SkipFinalSnapshot=True)
    with _admin() as conn:
        after = conn.execute(
            "SELECT rolpassword, rolsuper FROM pg_authid WHERE rolname = %s", [PG_USER]
        ).fetchone()
    assert after == before


def test_cluster_and_proxy_endpoints_and_cluster_database(local_aws_server, names):
    rds = _rds(local_aws_server)
    cluster_id = names["instance"] + "-cluster"
    cluster = rds.create_db_cluster(
        DBClusterIdentifier=cluster_id,
        Engine="aurora-postgresql",
        EngineVersion="16.4",
        DatabaseName=names["db"],
        MasterUsername=names["user"],
        MasterUserPassword="cluster-password-1",
        ServerlessV2ScalingConfiguration={"MinCapacity": 0.5, "MaxCapacity": 2},
    )["DBCluster"]
    assert (cluster["Endpoint"], cluster["ReaderEndpoint"], cluster["Port"]) == (
        PG_HOST,
        PG_HOST,
        PG_PORT,
    )
    member = rds.create_db_instance(
        DBInstanceIdentifier=names["instance"] + "-member",
        DBClusterIdentifier=cluster_id,
        DBInstanceClass="db.serverless",
        Engine="aurora-postgresql",
    )["DBInstance"]
    assert member["Endpoint"]["Address"] == PG_HOST
    assert _password_matches(names["user"], "cluster-password-1")
    assert _database(names["db"]) == {"owner": names["user"], "public_connect": False}

    rds.modify_db_cluster(
        DBClusterIdentifier=cluster_id,
        MasterUserPassword="cluster-password-2",
        ApplyImmediately=True,
    )
    assert _password_matches(names["user"], "cluster-password-2")

    iam = boto3.client(
        "iam",
        endpoint_url=local_aws_server,
        region_name="us-east-1",
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
    )
    role_arn = iam.create_role(
        RoleName=f"{names['instance']}-proxy", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    ec2 = boto3.client(
        "ec2",
        endpoint_url=local_aws_server,
        region_name="us-east-1",
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
    )
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.77.{i}.0/24", AvailabilityZone=f"us-east-1{z}")[
            "Subnet"
        ]["SubnetId"]
        for i, z in ((1, "a"), (2, "b"))
    ]
    proxy = rds.create_db_proxy(
        DBProxyName=f"{names['instance']}-proxy",
        EngineFamily="POSTGRESQL",
        Auth=[
            {
                "AuthScheme": "SECRETS",
                "SecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:x",
            }
        ],
        RoleArn=role_arn,
        VpcSubnetIds=subnets,
    )["DBProxy"]
    assert proxy["Endpoint"] == PG_HOST
    described = rds.describe_db_proxies(DBProxyName=proxy["DBProxyName"])["DBProxies"][0]
    assert described["Endpoint"] == PG_HOST

    rds.delete_db_instance(DBInstanceIdentifier=member["DBInstanceIdentifier"])
    assert _role(names["user"]) is not None  # the cluster's member owns nothing
    rds.delete_db_cluster(DBClusterIdentifier=cluster_id, SkipFinalSnapshot=True)
    assert _role(names["user"]) is None
    assert _database(names["db"]) is None


def test_aws_cli_shows_the_local_address(local_aws_server, names):
    rds = _rds(local_aws_server)
    _create_instance(rds, names["instance"], names["user"], "cli-password-1", names["db"])
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "sandbox",
        "AWS_SECRET_ACCESS_KEY": "sandbox",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    out = subprocess.run(
        [
            str(VENV_BIN / "aws"),
            "--endpoint-url",
            local_aws_server,
            "rds",
            "describe-db-instances",
            "--db-instance-identifier",
            names["instance"],
            "--query",
            "DBInstances[0].Endpoint",
            "--output",
            "text",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    ).stdout.split()
    assert out == [PG_HOST, str(PG_PORT)]
    rds.delete_db_instance(DBInstanceIdentifier=names["instance"], SkipFinalSnapshot=True)


def test_managed_master_password_is_the_one_in_the_secret_rds_keeps(local_aws_server, names):
    rds = _rds(local_aws_server)
    created = rds.create_db_instance(
        DBInstanceIdentifier=names["instance"],
        DBInstanceClass="db.t4g.micro",
        Engine="postgres",
        AllocatedStorage=20,
        MasterUsername=names["user"],
        ManageMasterUserPassword=True,
        DBName=names["db"],
    )["DBInstance"]
    secrets = boto3.client(
        "secretsmanager",
        endpoint_url=local_aws_server,
        region_name="us-east-1",
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
    )
    secret = json.loads(
        secrets.get_secret_value(SecretId=created["MasterUserSecret"]["SecretArn"])["SecretString"]
    )
    assert _password_matches(names["user"], secret["password"])
    rds.delete_db_instance(DBInstanceIdentifier=names["instance"], SkipFinalSnapshot=True)
    assert _role(names["user"]) is None
