"""The tenant's resource records: what each step saw or made, by kind and name."""

from __future__ import annotations

from typing import Any

from tenants.models import ResourceStatus, Tenant, TenantResource

_CONSOLE = "https://{region}.console.aws.amazon.com"
_LINKS = {
    "network": "/vpcconsole/home?region={region}#VpcDetails:VpcId={identifier}",
    "function_sg": "/vpcconsole/home?region={region}#SecurityGroup:groupId={identifier}",
    "database": "/rds/home?region={region}#database:id={identifier}",
    "db_instance": "/rds/home?region={region}#database:id={identifier}",
    "db_cluster": "/rds/home?region={region}#database:id={identifier};is-cluster=true",
    "db_proxy": "/rds/home?region={region}#proxy:id={identifier}",
    "db_secret": "/secretsmanager/secret?name={name}&region={region}",
    "env_secret": "/secretsmanager/secret?name={name}&region={region}",
    "role": "/iam/home#/roles/details/{name}",
    "log_group": "/cloudwatch/home?region={region}#logsV2:log-groups/log-group/{name_enc}",
    "function": "/lambda/home?region={region}#/functions/{name}",
    "alias": "/lambda/home?region={region}#/functions/{identifier}",
    "api": "/apigateway/main/api-detail?api={identifier}&region={region}",
    "domain": "/apigateway/main/publish/domain-names?domain={name}&region={region}",
    "alarm": "/cloudwatch/home?region={region}#alarmsV2:alarm/{name}",
    "snapshot": "/rds/home?region={region}#snapshots-list:",
    "dump": "/s3/object/{bucket}?region={region}&prefix={identifier}",
}


def record(
    tenant: Tenant,
    *,
    kind: str,
    name: str,
    identifier: str = "",
    arn: str = "",
    details: dict[str, Any] | None = None,
    status: str = ResourceStatus.PRESENT,
) -> TenantResource:
    """Create or update the record of one resource (never a secret value in details)."""
    resource, _ = TenantResource.objects.update_or_create(
        tenant=tenant,
        kind=kind,
        name=name,
        defaults={
            "identifier": identifier,
            "arn": arn,
            "region": tenant.region,
            "details": details or {},
            "status": status,
        },
    )
    return resource


def mark(tenant: Tenant, *, kind: str, name: str, status: str) -> None:
    TenantResource.objects.filter(tenant=tenant, kind=kind, name=name).update(status=status)


def find(tenant: Tenant, *, kind: str, name: str | None = None) -> TenantResource | None:
    qs = TenantResource.objects.filter(tenant=tenant, kind=kind)
    if name is not None:
        qs = qs.filter(name=name)
    return qs.first()


def console_url(resource: TenantResource) -> str:
    pattern = _LINKS.get(resource.kind)
    if not pattern:
        return ""
    from urllib.parse import quote

    return (_CONSOLE + pattern).format(
        region=resource.region,
        identifier=resource.identifier,
        name=resource.name,
        name_enc=quote(quote(resource.name, safe=""), safe=""),
        bucket=resource.details.get("bucket", ""),
    )
