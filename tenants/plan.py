"""The onboarding plan: every AWS resource a tenant will get, by name, and what it costs.

Shown before anything is created; computed from the tenant's spec and its release's
settings alone (no AWS call), so an invalid form never reaches AWS.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings

from tenants import naming
from tenants.app_settings import effective_alarms, effective_api, parse_overrides
from tenants.models import AlarmTopicChoice, Isolation, Tenant
from tenants.release_source import ReleaseArtifact

HOURS_PER_MONTH = Decimal(730)


@dataclass(frozen=True)
class PlannedResource:
    kind: str
    name: str
    note: str = ""


@dataclass(frozen=True)
class CostLine:
    item: str
    monthly_usd: Decimal
    basis: str


def _money(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def planned_resources(tenant: Tenant, artifact: ReleaseArtifact | None = None) -> list:
    slug = tenant.slug
    base = settings.BASELINE
    items = []
    if tenant.function_in_vpc:
        items.append(
            PlannedResource(
                "network",
                f"{base['vpc_name']} private subnets",
                f"security groups {base['function_sg_name']} and {base['database_sg_name']}",
            )
        )
    if tenant.isolation == Isolation.SHARED:
        items.append(
            PlannedResource(
                "database",
                f"{naming.db_name(slug)} on {base['shared_db_instance']}",
                f"login role {naming.db_user(slug)}",
            )
        )
    elif tenant.isolation == Isolation.DEDICATED:
        items.append(
            PlannedResource(
                "db_instance",
                naming.db_instance_id(slug),
                f"{tenant.db_instance_class}, {tenant.db_allocated_storage_gb} GB, backups "
                f"{tenant.db_backup_retention_days} d"
                + (", Multi-AZ" if tenant.db_multi_az else "")
                + (", encrypted" if tenant.db_storage_encrypted else "")
                + (", deletion protection" if tenant.db_deletion_protection else ""),
            )
        )
    elif tenant.isolation == Isolation.SERVERLESS:
        items.append(
            PlannedResource(
                "db_cluster",
                naming.db_cluster_id(slug),
                f"Aurora PostgreSQL Serverless v2, {tenant.serverless_min_acu}-"
                f"{tenant.serverless_max_acu} ACU"
                + (" (pauses when idle)" if tenant.serverless_min_acu == 0 else ""),
            )
        )
    database = tenant.isolation != Isolation.NONE
    if database and tenant.use_rds_proxy and tenant.isolation != Isolation.SHARED:
        items.append(PlannedResource("db_proxy", naming.db_proxy_name(slug)))
    if database:
        items.append(
            PlannedResource(
                "db_secret", naming.db_secret_name(slug), "host, port, database, user, password"
            )
        )
    if tenant.secret_env_names:
        items.append(
            PlannedResource(
                "env_secret", naming.env_secret_name(slug), ", ".join(tenant.secret_env_names)
            )
        )
    reach = [
        "reads its own secrets" if database or tenant.secret_env_names else "",
        "writes its own log group",
    ]
    if tenant.function_in_vpc:
        reach.append("VPC access")
    if artifact is not None and artifact.app_settings.permissions:
        reach.append(f"{len(artifact.app_settings.permissions)} statement(s) of the release")
    items += [
        PlannedResource("role", naming.role_name(slug), ", ".join(r for r in reach if r)),
        PlannedResource(
            "log_group",
            naming.log_group_name(slug),
            f"retention {tenant.log_retention_days or settings.TENANT_LOG_RETENTION_DAYS} d",
        ),
    ]
    if artifact is not None:
        memory = tenant.lambda_memory_mb or artifact.memory_mb
        timeout = tenant.lambda_timeout_s or artifact.timeout_s
        what = f"{memory} MB, {timeout} s, {artifact.architecture}, release {artifact.version}"
    else:
        what = "no release registered yet"
    items.append(
        PlannedResource("function", naming.function_name(slug), f"{what}, alias '{naming.ALIAS}'")
    )
    if database:
        items.append(
            PlannedResource("schema", naming.db_name(slug), "the release's SQL migrations")
        )
    api = None
    if artifact is not None:
        api = effective_api(artifact.app_settings, parse_overrides(tenant.app_overrides))
    stage = api.stage if api else "$default"
    items.append(
        PlannedResource(
            "api",
            naming.api_name(slug),
            f"HTTP API, payload {api.payload_format if api else '2.0'}, stage {stage}",
        )
    )
    if tenant.custom_domain:
        items.append(PlannedResource("domain", tenant.custom_domain, f"API mapping to {stage}"))
    rules = {}
    if artifact is not None:
        rules = effective_alarms(artifact.app_settings, parse_overrides(tenant.app_overrides))
    for what in naming.ALARM_KINDS:
        if not database and what.startswith("db-"):
            continue
        if not rules.get(what, {}).get("enabled", True):
            continue
        items.append(PlannedResource("alarm", naming.alarm_name(slug, what)))
    if tenant.alarm_topic == AlarmTopicChoice.TENANT:
        items.append(PlannedResource("alarm_topic", f"{naming.resource_prefix(slug)}-alarms"))
    return items


def estimate_cost(tenant: Tenant, artifact: ReleaseArtifact | None = None) -> list[CostLine]:
    """Every priced item, at the region's list prices; a region without prices says so
    instead of borrowing another region's."""
    prices = settings.PRICE_TABLE.get(tenant.region)
    if prices is None:
        return [
            CostLine(
                f"No prices for {tenant.region}",
                Decimal("0.00"),
                "add the region to OPSCONSOLE_PRICE_TABLE_FILE for an estimate",
            )
        ]
    requests = tenant.expected_requests_month
    if requests is None:
        requests = settings.COST_ASSUMED_REQUESTS_MONTH
    duration_ms = tenant.expected_duration_ms or settings.COST_ASSUMED_DURATION_MS
    traffic = (
        "as entered"
        if tenant.expected_requests_month is not None
        else "assumed: enter the tenant's traffic for a better estimate"
    )
    lines: list[CostLine] = _database_cost(tenant, prices)
    memory = tenant.lambda_memory_mb or (artifact.memory_mb if artifact else 256)
    arm = artifact is not None and artifact.architecture == "arm64"
    gb_second_price = prices["lambda_gb_second_arm64" if arm else "lambda_gb_second"]
    gb_seconds = requests * duration_ms / 1000 * memory / 1024
    lines.append(
        CostLine(
            "Lambda requests",
            _money(requests / 1e6 * prices["lambda_request_million"]),
            f"{requests:,} requests a month ({traffic}) x ${prices['lambda_request_million']}/M",
        )
    )
    lines.append(
        CostLine(
            "Lambda duration",
            _money(gb_seconds * gb_second_price),
            f"{duration_ms} ms x {memory} MB = {gb_seconds:,.0f} GB-s x ${gb_second_price}"
            + (" (arm64)" if arm else ""),
        )
    )
    lines.append(
        CostLine(
            "HTTP API",
            _money(requests / 1e6 * prices["http_api_request_million"]),
            f"{requests:,} requests x ${prices['http_api_request_million']}/M",
        )
    )
    log_gb = requests * settings.COST_ASSUMED_LOG_BYTES_PER_REQUEST / 1e9
    lines.append(
        CostLine(
            "CloudWatch Logs ingestion",
            _money(log_gb * prices["log_ingest_gb"]),
            f"{log_gb:,.2f} GB ({settings.COST_ASSUMED_LOG_BYTES_PER_REQUEST} bytes a request)"
            f" x ${prices['log_ingest_gb']}/GB",
        )
    )
    secrets = (1 if tenant.isolation != Isolation.NONE else 0) + (
        1 if tenant.secret_env_names else 0
    )
    if secrets:
        lines.append(
            CostLine(
                "Secrets Manager",
                _money(secrets * prices["secret_month"]),
                f"{secrets} secret(s) x ${prices['secret_month']}",
            )
        )
    alarms = len([r for r in planned_resources(tenant, artifact) if r.kind == "alarm"])
    lines.append(
        CostLine(
            "CloudWatch alarms",
            _money(alarms * prices["alarm_month"]),
            f"{alarms} alarms x ${prices['alarm_month']}",
        )
    )
    return lines


def _database_cost(tenant: Tenant, prices: dict) -> list[CostLine]:
    lines = []
    if tenant.isolation == Isolation.SHARED:
        lines.append(
            CostLine(
                "Database (share of the shared instance)",
                _money(prices["shared_db_share_month"]),
                "flat share",
            )
        )
    elif tenant.isolation == Isolation.DEDICATED:
        hourly = prices["rds_instance_hour"].get(tenant.db_instance_class)
        copies = 2 if tenant.db_multi_az else 1
        lines.append(
            CostLine(
                f"RDS {tenant.db_instance_class}" + (" Multi-AZ" if copies == 2 else ""),
                _money(Decimal(str(hourly or 0)) * HOURS_PER_MONTH * copies),
                f"${hourly}/h x 730 h" + (" x 2 (standby)" if copies == 2 else "")
                if hourly
                else "no price for this class",
            )
        )
        lines.append(
            CostLine(
                f"RDS storage {tenant.db_allocated_storage_gb} GB",
                _money(tenant.db_allocated_storage_gb * prices["rds_storage_gb_month"] * copies),
                f"${prices['rds_storage_gb_month']}/GB-month"
                + (" x 2 (standby)" if copies == 2 else ""),
            )
        )
    elif tenant.isolation == Isolation.SERVERLESS:
        low = Decimal(tenant.serverless_min_acu) * HOURS_PER_MONTH
        lines.append(
            CostLine(
                "Aurora Serverless v2 (at minimum capacity)",
                _money(low * Decimal(str(prices["aurora_acu_hour"]))),
                f"{tenant.serverless_min_acu} ACU x 730 h x ${prices['aurora_acu_hour']}; "
                f"up to {tenant.serverless_max_acu} ACU under load"
                + ("; 0 while paused" if tenant.serverless_min_acu == 0 else ""),
            )
        )
    if tenant.use_rds_proxy and tenant.isolation in (Isolation.DEDICATED, Isolation.SERVERLESS):
        vcpus = prices["rds_instance_vcpus"].get(tenant.db_instance_class, 2)
        lines.append(
            CostLine(
                "RDS Proxy",
                _money(vcpus * prices["rds_proxy_vcpu_hour"] * 730),
                f"{vcpus} vCPU x ${prices['rds_proxy_vcpu_hour']}/h",
            )
        )
    return lines


def total_cost(lines: list[CostLine]) -> Decimal:
    return sum((line.monthly_usd for line in lines), Decimal("0.00"))
