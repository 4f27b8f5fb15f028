"""The five teams of ../shared/workloads/ move in unchanged.

Each test onboards a tenant shaped as that team's own document describes it (runtime,
package, memory and timeout, the environment names its code reads, the API shape, the
database, extra permissions, attached services) in the local AWS, where its code really
runs: a stand-in for the team's app (tests/workload_apps.py) that reads exactly the names
the team's code reads and connects to its database with them. Onboarding ends with the
release's health route, so a tenant only onboards when its app found what it needs and
its database answered. Then every resource is read back: the function's environment, the
API's payload format, stage and CORS, the role's statements, the security groups' ports.
"""

from __future__ import annotations

import hashlib

import pytest
import requests
from django.conf import settings

from deployments.models import Release
from deployments.releases import ReleaseInput, release_register
from opsconsole.aws import ecr, secrets
from opsconsole.aws.clients import client
from opsconsole.sandbox.demo_release import (
    DEMO_VERSION,
    build_image_config,
    build_layer_tar,
)
from tenants import drift
from tenants.models import Attachment, Isolation, Tenant
from tenants.provisioning.env_secret import write_env_secret
from tests import workload_apps
from tests.tenants.conftest import drop_tenant_databases, make_tenant, run_job

pytestmark = pytest.mark.usefixtures("live_workloads", "fast_budget")

ACCOUNT = "123456789012"
DB_NAMES = ["DB_HOST", "DB_PORT", "DB_USER", "DB_PASSWORD", "DB_NAME"]


@pytest.fixture
def live_workloads(live_aws, db):
    """The local AWS, emptied first, with the sandbox baseline; no tenant_wl databases."""
    from opsconsole.sandbox.seed import sandbox_seed

    requests.post(f"{live_aws}/moto-api/reset", timeout=30).raise_for_status()
    drop_tenant_databases("tenant_wl")
    sandbox_seed()
    yield
    drop_tenant_databases("tenant_wl")


def register(version: str, *, artifact: str = "zip", **changes) -> Release:
    demo = Release.objects.get(version=DEMO_VERSION)
    fields: dict = {
        "version": version,
        "artifact": artifact,
        "migration_files": [(m.name, m.sql) for m in demo.migrations.all()],
        **changes,
    }
    return release_register(ReleaseInput(**fields))


def push_python_image(tag: str, module: str, **app) -> str:
    """An image of a Python app (handler ``<module>.handler``) in the release repository."""
    layer = build_layer_tar(workload_apps.python_files(module, **app))
    config = build_image_config(
        version=tag,
        diff_ids=["sha256:" + hashlib.sha256(layer).hexdigest()],
        handler=f"{module}.handler",
    )
    repository = settings.BASELINE["release_repository"]
    ecr.push_image(repository=repository, tag=tag, config_blob=config, layers=[layer])
    return f"{repository}:{tag}"


def answers(tenant: Tenant, path: str) -> requests.Response:
    """The tenant's API, as a customer's browser calls it."""
    return requests.get(tenant.endpoint_url + path, timeout=30)


def onboard(tenant: Tenant, *, secret_values: dict | None = None) -> Tenant:
    if secret_values:
        tenant.secret_env_names = sorted(secret_values)
        tenant.save(update_fields=["secret_env_names"])
        write_env_secret(tenant, set_values=secret_values, remove=[])
    job = run_job("tenant_provision", tenant)
    assert job.status == "succeeded", job.error
    tenant.refresh_from_db()
    assert drift.tenant_drift(tenant) == []
    return tenant


def function_config(slug: str) -> dict:
    return client("lambda").get_function_configuration(FunctionName=f"opsconsole-{slug}")


def api_of(slug: str) -> dict:
    apigw = client("apigatewayv2")
    api = next(a for a in apigw.get_apis()["Items"] if a["Name"] == f"opsconsole-{slug}")
    integrations = apigw.get_integrations(ApiId=api["ApiId"])["Items"]
    stages = {s["StageName"]: s for s in apigw.get_stages(ApiId=api["ApiId"])["Items"]}
    return {"api": api, "integration": integrations[0], "stages": stages}


def role_statements(slug: str) -> list[dict]:
    return client("iam").get_role_policy(
        RoleName=f"opsconsole-{slug}", PolicyName="opsconsole-tenant"
    )["PolicyDocument"]["Statement"]


def declared_statements(slug: str) -> list[dict]:
    """The role's statements beyond the console's own (declared ones carry the App Sid
    prefix, which no console statement has)."""
    return [
        {k: v for k, v in s.items() if k != "Sid"}
        for s in role_statements(slug)
        if s.get("Sid", "").startswith("App")
    ]


def db_secret(slug: str) -> dict:
    return secrets.get_secret_json(secret_id=f"opsconsole/tenants/{slug}/db")


def test_bp_tracker_go_zip_behind_an_rds_proxy_with_db_password():
    """000: Go on provided.al2023, reads DB_HOST/PORT/USER/PASSWORD/NAME/SSLMODE, a small
    RDS instance behind RDS Proxy, handlers on events.APIGatewayProxyRequest (1.0)."""
    release = register(
        "wl-bp-1",
        zip_bytes=workload_apps.go_zip(
            payload_format="1.0",
            health_path="/healthz",
            needs=[*DB_NAMES, "DB_SSLMODE"],
            connect="env",
        ),
        runtime="provided.al2023",
        handler="bootstrap",
        memory_mb=256,
        timeout_s=30,
        app_settings={
            "environment": {"DB_PASSWORD": "{db_password}"},
            "password_in_environment": True,
            "api": {"payload_format": "1.0"},
        },
    )
    tenant = onboard(
        make_tenant(
            "wl-bp",
            desired_release=release.version,
            isolation=Isolation.DEDICATED,
            db_instance_class="db.t4g.micro",
            use_rds_proxy=True,
            db_deletion_protection=False,
        )
    )
    config = function_config(tenant.slug)
    env = config["Environment"]["Variables"]
    db = db_secret(tenant.slug)
    assert (config["Runtime"], config["Handler"]) == ("provided.al2023", "bootstrap")
    proxy = client("rds").describe_db_proxies(DBProxyName="opsconsole-wl-bp")["DBProxies"][0]
    assert env["DB_HOST"] == db["host"] == proxy["Endpoint"]  # through the proxy
    assert env["DB_PORT"] == str(db["port"])
    assert (env["DB_USER"], env["DB_NAME"], env["DB_SSLMODE"]) == (
        db["username"],
        db["dbname"],
        "require",
    )
    assert env["DB_PASSWORD"] == db["password"]
    api = api_of(tenant.slug)
    assert api["integration"]["PayloadFormatVersion"] == "1.0"
    assert "$default" in api["stages"]
    assert declared_statements(tenant.slug) == []
    assert answers(tenant, "/healthz").json()["database"] == "tenant_wl_bp"


def test_ai_fitness_coach_image_with_its_own_database_outside_the_vpc():
    """001: a Python 3.12 image (FastAPI + Mangum), 1 GB, 60 s, 10 reserved, Supabase
    (no RDS), S3 reads, a `production` stage, CORS open, secrets in its environment."""
    secret_names = [
        "SUPABASE_URL",
        "SUPABASE_KEY",
        "SUPABASE_SERVICE_ROLE_KEY",
        "DATABASE_URL",
        "OPENAI_API_KEY",
        "CHROMA_CLOUD_API_KEY",
    ]
    image = push_python_image(
        "wl-fit-1",
        "lambda_handler",
        payload_format="1.0",
        health_path="/api/v1/health/",
        needs=[*secret_names, "S3_BUCKET_NAME", "AWS_REGION_NAME", "OPENAI_MODEL"],
    )
    release = register(
        "wl-fit-1",
        artifact="image",
        image=image,
        memory_mb=1024,
        timeout_s=60,
        health_path="/api/v1/health/",
        app_settings={
            "secrets_in_environment": True,
            "api": {
                # Mangum under a REST API's stage sees no stage in the path; an HTTP API
                # puts a named stage in it (/production/...), so this app, unchanged,
                # is served on $default (docs/app-contract.md, "API shape").
                "payload_format": "1.0",
                "cors": {"allow_origins": ["*"]},
                "access_logs": True,
            },
            "permissions": [
                {
                    # The exercise videos are the same for every customer.
                    "Effect": "Allow",
                    "Action": ["s3:GetObject"],
                    "Resource": ["arn:aws:s3:::ai-fitness-coach/*"],
                    "Shared": True,
                }
            ],
        },
    )
    tenant = make_tenant(
        "wl-fit",
        desired_release=release.version,
        isolation=Isolation.NONE,
        function_in_vpc=False,
        reserved_concurrency=10,
        env_vars={
            "OPENAI_MODEL": "gpt-4",
            "OPENAI_EMBEDDING_MODEL": "text-embedding-3-small",
            "CHROMA_CLOUD_HOST": "api.trychroma.com",
            "S3_BUCKET_NAME": "ai-fitness-coach",
            "AWS_REGION_NAME": "us-east-1",
            "DEBUG": "false",
        },
    )
    onboard(
        tenant,
        secret_values={
            "SUPABASE_URL": "https://x.supabase.co",
            "SUPABASE_KEY": "anon",
            "SUPABASE_SERVICE_ROLE_KEY": "service",
            "DATABASE_URL": "postgresql+asyncpg://u:p@db.x.supabase.co:5432/postgres",
            "OPENAI_API_KEY": "sk-test",
            "CHROMA_CLOUD_API_KEY": "ck-test",
        },
    )
    config = function_config(tenant.slug)
    env = config["Environment"]["Variables"]
    assert config["PackageType"] == "Image"
    assert (config["MemorySize"], config["Timeout"]) == (1024, 60)
    assert not config.get("VpcConfig", {}).get("SubnetIds")
    assert env["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert env["AWS_REGION_NAME"] == "us-east-1" and env["S3_BUCKET_NAME"] == "ai-fitness-coach"
    assert not [name for name in env if name.startswith("DB_")]
    concurrency = client("lambda").get_function_concurrency(FunctionName="opsconsole-wl-fit")
    assert concurrency["ReservedConcurrentExecutions"] == 10
    assert not client("rds").describe_db_instances()["DBInstances"] or all(
        "wl-fit" not in i["DBInstanceIdentifier"]
        for i in client("rds").describe_db_instances()["DBInstances"]
    )
    api = api_of(tenant.slug)
    assert api["integration"]["PayloadFormatVersion"] == "1.0"
    assert set(api["stages"]) == {"$default"}
    assert api["stages"]["$default"].get("AccessLogSettings", {}).get("DestinationArn")
    assert api["api"]["CorsConfiguration"]["AllowOrigins"] == ["*"]
    assert answers(tenant, "/api/v1/health/").status_code == 200
    assert declared_statements(tenant.slug) == [
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": ["arn:aws:s3:::ai-fitness-coach/*"],
        }
    ]


def test_multi_tenant_go_app_dsn_cors_alarms_and_its_own_instance():
    """002: Go bootstrap, DATABASE_DSN with the password, TENANT_NAME/API_PORT, a
    dedicated Multi-AZ instance with backup and maintenance windows, CORS for the
    customer's domain, a `prod` stage, errors above 10 in 5 minutes, RDS CPU above 80 %
    for 10 minutes, 14 days of logs."""
    dsn = (
        "host={db_host} port={db_port} user={db_user} password={db_password} "
        "dbname={db_name} sslmode=require"
    )
    release = register(
        "wl-shop-1",
        zip_bytes=workload_apps.go_zip(
            payload_format="1.0",
            # Its HTTP API's `prod` stage is in every path the app sees, on AWS as here.
            health_path="/prod/healthz",
            needs=["DATABASE_DSN", "TENANT_NAME", "API_PORT"],
            connect="dsn",
        ),
        runtime="provided.al2023",
        handler="bootstrap",
        memory_mb=512,
        timeout_s=30,
        app_settings={
            "environment": {"DATABASE_DSN": dsn},
            "password_in_environment": True,
            "api": {
                "payload_format": "1.0",
                "stage": "prod",
                "cors": {
                    "allow_origins": ["https://buildingshop.com"],
                    "allow_methods": ["GET", "POST", "PUT", "DELETE", "OPTIONS"],
                    "allow_headers": ["content-type", "authorization"],
                },
            },
            "alarms": {
                "errors": {"threshold": 10, "period_s": 300, "evaluation_periods": 1},
                "db-cpu": {"threshold": 80, "period_s": 300, "evaluation_periods": 2},
            },
        },
    )
    tenant = onboard(
        make_tenant(
            "wl-shop",
            desired_release=release.version,
            isolation=Isolation.DEDICATED,
            db_multi_az=True,
            db_backup_window="03:00-04:00",
            db_maintenance_window="mon:04:00-mon:05:00",
            log_retention_days=14,
            db_deletion_protection=False,
            env_vars={"TENANT_NAME": "building_shop", "API_PORT": "4001"},
        )
    )
    env = function_config(tenant.slug)["Environment"]["Variables"]
    db = db_secret(tenant.slug)
    assert env["DATABASE_DSN"] == dsn.format(
        db_host=db["host"],
        db_port=db["port"],
        db_user=db["username"],
        db_password=db["password"],
        db_name=db["dbname"],
    )
    assert (env["TENANT_NAME"], env["API_PORT"]) == ("building_shop", "4001")
    instance = client("rds").describe_db_instances(DBInstanceIdentifier="opsconsole-wl-shop")[
        "DBInstances"
    ][0]
    assert instance["MultiAZ"] is True
    assert instance["PreferredBackupWindow"] == "03:00-04:00"
    assert instance["PreferredMaintenanceWindow"] == "mon:04:00-mon:05:00"
    api = api_of(tenant.slug)
    cors = api["api"]["CorsConfiguration"]
    assert cors["AllowOrigins"] == ["https://buildingshop.com"]
    assert set(cors["AllowMethods"]) == {"GET", "POST", "PUT", "DELETE", "OPTIONS"}
    assert set(cors["AllowHeaders"]) == {"content-type", "authorization"}
    assert set(api["stages"]) == {"prod"}
    assert answers(tenant, "/healthz").json()["database"] == "tenant_wl_shop"
    alarms = {
        a["AlarmName"]: a
        for a in client("cloudwatch").describe_alarms(AlarmNamePrefix="opsconsole-wl-shop-")[
            "MetricAlarms"
        ]
    }
    errors, cpu = alarms["opsconsole-wl-shop-errors"], alarms["opsconsole-wl-shop-db-cpu"]
    assert (errors["Threshold"], errors["Period"], errors["EvaluationPeriods"]) == (10, 300, 1)
    assert (cpu["Threshold"], cpu["Period"], cpu["EvaluationPeriods"]) == (80, 300, 2)
    group = client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/opsconsole-wl-shop")
    assert group["logGroups"][0]["retentionInDays"] == 14


def test_meal_planner_flask_on_aurora_serverless_that_pauses():
    """003: Flask on python3.11 (handler app.handlers.api_handler.handler), Aurora
    Serverless v2 PostgreSQL 15 at 0-1 ACU pausing after 15 idle minutes, DB_HOST/PORT/
    NAME/USER/PASSWORD, served under `dev` (the Serverless Framework's stage)."""
    release = register(
        "wl-meal-1",
        zip_bytes=workload_apps.python_zip(
            "app.handlers.api_handler",
            payload_format="1.0",
            health_path="/api/health",
            needs=DB_NAMES,
            connect="env",
        ),
        runtime="python3.11",
        handler="app.handlers.api_handler.handler",
        timeout_s=30,
        memory_mb=512,
        health_path="/api/health",
        app_settings={
            "environment": {"DB_PASSWORD": "{db_password}"},
            "password_in_environment": True,
            # Serverless Framework http events are a REST API, whose stage never reaches
            # the path: on an HTTP API the same code is served on $default.
            "api": {"payload_format": "1.0"},
        },
    )
    tenant = onboard(
        make_tenant(
            "wl-meal",
            desired_release=release.version,
            isolation=Isolation.SERVERLESS,
            serverless_min_acu=0,
            serverless_max_acu=1,
            serverless_seconds_until_auto_pause=900,
            db_deletion_protection=False,
        )
    )
    config = function_config(tenant.slug)
    assert (config["Runtime"], config["Handler"]) == (
        "python3.11",
        "app.handlers.api_handler.handler",
    )
    env = config["Environment"]["Variables"]
    db = db_secret(tenant.slug)
    for name, key in (
        ("DB_HOST", "host"),
        ("DB_NAME", "dbname"),
        ("DB_USER", "username"),
        ("DB_PASSWORD", "password"),
    ):
        assert env[name] == str(db[key]), name
    cluster = client("rds").describe_db_clusters(DBClusterIdentifier="opsconsole-wl-meal")[
        "DBClusters"
    ][0]
    scaling = cluster["ServerlessV2ScalingConfiguration"]
    assert (scaling["MinCapacity"], scaling["MaxCapacity"]) == (0, 1)
    assert scaling["SecondsUntilAutoPause"] == 900
    api = api_of(tenant.slug)
    assert set(api["stages"]) == {"$default"}
    assert answers(tenant, "/api/health").json()["database"] == "tenant_wl_meal"


def test_anigmaa_go_with_a_shared_redis_ssm_secrets_and_s3():
    """004: Go bootstrap on HTTP API v2 (2.0), DB_* with DB_SSLMODE=require, a shared
    ElastiCache Redis on 6379 (REDIS_HOST/REDIS_PORT), JWT_SECRET, REDIS_PASSWORD and
    MIDTRANS_SERVER_KEY from SSM Parameter Store, its S3 bucket."""
    ssm = client("ssm")
    for name in ("jwt_secret", "redis_password", "midtrans_server_key"):
        ssm.put_parameter(Name=f"/anigmaa/wl-ani/{name}", Value=f"v-{name}", Type="SecureString")
    ec2 = client("ec2")
    vpc = ec2.describe_vpcs(
        Filters=[{"Name": "tag:Name", "Values": [settings.BASELINE["vpc_name"]]}]
    )
    redis_sg = ec2.create_security_group(
        GroupName="anigmaa-redis", Description="ElastiCache", VpcId=vpc["Vpcs"][0]["VpcId"]
    )["GroupId"]
    Attachment.objects.create(
        name="redis",
        host="anigmaa.abc123.cache.amazonaws.com",
        port=6379,
        security_group_id=redis_sg,
        variables={"REDIS_HOST": "{host}", "REDIS_PORT": "{port}"},
    )
    release = register(
        "wl-ani-1",
        zip_bytes=workload_apps.go_zip(
            payload_format="2.0",
            health_path="/healthz",
            needs=[
                *DB_NAMES,
                "DB_SSLMODE",
                "REDIS_HOST",
                "REDIS_PORT",
                "JWT_SECRET",
                "REDIS_PASSWORD",
                "MIDTRANS_SERVER_KEY",
                "AWS_BUCKET",
                "AWS_REGION",  # Lambda's own: the team's code reads it, the console sets none
            ],
            connect="env",
        ),
        runtime="provided.al2",
        handler="bootstrap",
        memory_mb=512,
        timeout_s=30,
        app_settings={
            "environment": {"DB_PASSWORD": "{db_password}", "PORT": "8080", "ENV": "prod"},
            "password_in_environment": True,
            "secrets_in_environment": True,
            "ssm_variables": {
                "JWT_SECRET": "/anigmaa/{tenant}/jwt_secret",
                "REDIS_PASSWORD": "/anigmaa/{tenant}/redis_password",
                "MIDTRANS_SERVER_KEY": "/anigmaa/{tenant}/midtrans_server_key",
            },
            "permissions": [
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:PutObject"],
                    "Resource": ["arn:aws:s3:::anigmaa-uploads/{tenant}/*"],
                }
            ],
        },
    )
    tenant = onboard(
        make_tenant(
            "wl-ani",
            desired_release=release.version,
            env_vars={
                "STORAGE_TYPE": "s3",
                "AWS_BUCKET": "anigmaa-uploads",
                "ALLOWED_ORIGINS": "https://anigmaa.com",
                "MIDTRANS_IS_PRODUCTION": "true",
            },
        )
    )
    config = function_config(tenant.slug)
    env = config["Environment"]["Variables"]
    assert env["DB_SSLMODE"] == "require" and env["PORT"] == "8080"
    assert env["REDIS_HOST"] == "anigmaa.abc123.cache.amazonaws.com"
    assert env["REDIS_PORT"] == "6379"
    assert env["JWT_SECRET"] == "v-jwt_secret"
    assert env["MIDTRANS_SERVER_KEY"] == "v-midtrans_server_key"
    assert env["AWS_BUCKET"] == "anigmaa-uploads"
    api = api_of(tenant.slug)
    assert api["integration"]["PayloadFormatVersion"] == "2.0"
    assert set(api["stages"]) == {"$default"}
    assert answers(tenant, "/healthz").json()["database"] == "tenant_wl_ani"
    statements = declared_statements(tenant.slug)
    assert statements == [
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": ["arn:aws:s3:::anigmaa-uploads/wl-ani/*"],
        }
    ]
    parameters = [
        s for s in role_statements(tenant.slug) if any(a.startswith("ssm:") for a in s["Action"])
    ]
    assert sorted(r for s in parameters for r in s["Resource"]) == sorted(
        f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/anigmaa/wl-ani/{name}"
        for name in ("jwt_secret", "midtrans_server_key", "redis_password")
    )
    # The Redis group admits exactly this tenant's own function group, on 6379 only.
    groups = config["VpcConfig"]["SecurityGroupIds"]
    own = ec2.describe_security_groups(GroupIds=groups)["SecurityGroups"]
    tenant_group = next(g for g in own if g["GroupName"] == "opsconsole-wl-ani-fn")
    rules = ec2.describe_security_groups(GroupIds=[redis_sg])["SecurityGroups"][0]
    admitted = [
        (p["FromPort"], p["ToPort"], pair["GroupId"])
        for p in rules["IpPermissions"]
        for pair in p.get("UserIdGroupPairs", [])
    ]
    assert admitted == [(6379, 6379, tenant_group["GroupId"])]
