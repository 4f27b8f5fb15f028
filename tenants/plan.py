"""The onboarding plan: every AWS resource a tenant will get, by name, and what it costs.

Shown before anything is created; computed from the tenant's spec alone (no AWS call), so
an invalid form never reaches AWS.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings

from tenants import naming
from tenants.models import Isolation, Tenant

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


def planned_resources(tenant: Tenant) -> list[PlannedResource]:
    slug = tenant.slug
    base = settings.BASELINE
    items = [
        PlannedResource(
            "network",
            f"{base['vpc_name']} private subnets",
            f"security groups {base['function_sg_name']} and {base['database_sg_name']}",
        )
    ]
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
                + (", encrypted" if tenant.db_storage_encrypted else "")
                + (", deletion protection" if tenant.db_deletion_protection else ""),
            )
        )
    else:
        items.append(
            PlannedResource(
                "db_cluster",
                naming.db_cluster_id(slug),
                f"Aurora PostgreSQL Serverless v2, {tenant.serverless_min_acu}-"
                f"{tenant.serverless_max_acu} ACU"
                + (" (pauses when idle)" if tenant.serverless_min_acu == 0 else ""),
            )
        )
    if tenant.use_rds_proxy and tenant.isolation != Isolation.SHARED:
        items.append(PlannedResource("db_proxy", naming.db_proxy_name(slug)))
    items += [
        PlannedResource(
            "db_secret", naming.db_secret_name(slug), "host, port, database, user, password"
        ),
    ]
    if tenant.secret_env_names:
        items.append(
            PlannedResource(
                "env_secret", naming.env_secret_name(slug), ", ".join(tenant.secret_env_names)
            )
        )
    items += [
        PlannedResource(
            "role",
            naming.role_name(slug),
            "reads its own secrets, writes its own log group, VPC access",
        ),
        PlannedResource(
            "log_group",
            naming.log_group_name(slug),
            f"retention {settings.TENANT_LOG_RETENTION_DAYS} d",
        ),
        PlannedResource(
            "function",
            naming.function_name(slug),
            f"{tenant.lambda_memory_mb} MB, {tenant.lambda_timeout_s} s, alias "
            f"'{naming.ALIAS}', release {tenant.desired_release or 'newest'}",
        ),
        PlannedResource("schema", naming.db_name(slug), "the release's SQL migrations"),
        PlannedResource("api", naming.api_name(slug), "HTTP API, $default route and stage"),
    ]
    if tenant.custom_domain:
        items.append(PlannedResource("domain", tenant.custom_domain, "API mapping to $default"))
    for what in naming.ALARM_KINDS:
        items.append(PlannedResource("alarm", naming.alarm_name(slug, what)))
    return items


def estimate_cost(tenant: Tenant) -> list[CostLine]:
    prices = settings.PRICE_TABLE.get(tenant.region) or settings.PRICE_TABLE["us-east-1"]
    requests = settings.COST_ASSUMED_REQUESTS_MONTH
    lines: list[CostLine] = []
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
        lines.append(
            CostLine(
                f"RDS {tenant.db_instance_class}",
                _money(Decimal(str(hourly or 0)) * HOURS_PER_MONTH),
                f"${hourly}/h x 730 h" if hourly else "no price for this class",
            )
        )
        lines.append(
            CostLine(
                f"RDS storage {tenant.db_allocated_storage_gb} GB",
                _money(tenant.db_allocated_storage_gb * prices["rds_storage_gb_month"]),
                f"${prices['rds_storage_gb_month']}/GB-month",
            )
        )
    else:
        low = Decimal(tenant.serverless_min_acu) * HOURS_PER_MONTH
        lines.append(
            CostLine(
                "Aurora Serverless v2 (at minimum capacity)",
                _money(low * Decimal(str(prices["aurora_acu_hour"]))),
                f"{tenant.serverless_min_acu} ACU x 730 h x ${prices['aurora_acu_hour']}; "
                f"up to {tenant.serverless_max_acu} ACU under load",
            )
        )
    if tenant.use_rds_proxy and tenant.isolation != Isolation.SHARED:
        vcpus = prices["rds_instance_vcpus"].get(tenant.db_instance_class, 2)
        lines.append(
            CostLine(
                "RDS Proxy",
                _money(vcpus * prices["rds_proxy_vcpu_hour"] * 730),
                f"{vcpus} vCPU x ${prices['rds_proxy_vcpu_hour']}/h",
            )
        )
    gb_seconds = (
        requests * settings.COST_ASSUMED_DURATION_MS / 1000 * tenant.lambda_memory_mb / 1024
    )
    lines.append(
        CostLine(
            "Lambda",
            _money(
                requests / 1e6 * prices["lambda_request_million"]
                + gb_seconds * prices["lambda_gb_second"]
            ),
            f"{requests:,} requests x {settings.COST_ASSUMED_DURATION_MS} ms x "
            f"{tenant.lambda_memory_mb} MB",
        )
    )
    lines.append(
        CostLine(
            "HTTP API",
            _money(requests / 1e6 * prices["http_api_request_million"]),
            f"{requests:,} requests",
        )
    )
    secrets = 2 if tenant.secret_env_names else 1
    lines.append(
        CostLine(
            "Secrets Manager", _money(secrets * prices["secret_month"]), f"{secrets} secret(s)"
        )
    )
    lines.append(CostLine("CloudWatch alarms", _money(5 * prices["alarm_month"]), "5 alarms"))
    return lines


def total_cost(lines: list[CostLine]) -> Decimal:
    return sum((line.monthly_usd for line in lines), Decimal("0.00"))
