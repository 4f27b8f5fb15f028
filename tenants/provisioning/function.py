"""Step 6: the tenant's function from its release, a published version and the `live` alias.

The API integration points at the alias, so moving the alias is the only call a release
change needs on the traffic path.
"""

from __future__ import annotations

from typing import Any

from opsconsole.aws import lambda_
from opsconsole.aws.errors import AwsError, AwsNotFound
from opsconsole.jobs.registry import StepTransient, StepWait
from tenants import naming, release_source, resources
from tenants.models import Tenant, TenantStatus
from tenants.provisioning import function_config
from tenants.provisioning.common import Drift, tags_for, tenant_of
from tenants.release_source import ReleaseArtifact

# Lambda answers this while a just-created IAM role has not propagated yet.
_ROLE_NOT_READY = "cannot be assumed by Lambda"


def resolve_release(tenant: Tenant) -> str:
    """The version the tenant should run: its desired release, else the newest one."""
    if tenant.desired_release:
        return tenant.desired_release
    newest = release_source.get().newest_version()
    if not newest:
        raise RuntimeError("No release is registered yet: register one on the Releases page.")
    tenant.desired_release = newest
    tenant.save(update_fields=["desired_release", "updated_at"])
    return newest


def code_matches(configuration: dict[str, Any], code: dict[str, Any], artifact) -> bool:
    # The architecture is part of the code: it changes only with UpdateFunctionCode.
    if configuration.get("Architectures", ["x86_64"]) != [artifact.architecture]:
        return False
    if artifact.package_type == "Image":
        uri = (code or {}).get("ImageUri", "")
        return uri == artifact.image_uri
    return configuration.get("CodeSha256") == artifact.code_sha256


def code_argument(artifact: ReleaseArtifact) -> dict[str, Any]:
    arch = {"Architectures": [artifact.architecture]}
    if artifact.package_type == "Image":
        return {"ImageUri": artifact.image_uri, **arch}
    return {"S3Bucket": artifact.s3_bucket, "S3Key": artifact.s3_key, **arch}


def desired_configuration(tenant: Tenant, artifact: ReleaseArtifact) -> dict[str, Any]:
    return function_config.desired_configuration(tenant, artifact)[0]


_config_changes = function_config.config_changes


def _create(tenant: Tenant, name: str, artifact: ReleaseArtifact) -> dict[str, Any]:
    spec = {
        "FunctionName": name,
        "PackageType": artifact.package_type,
        "Code": {k: v for k, v in code_argument(artifact).items() if k != "Architectures"},
        "Architectures": [artifact.architecture],
        "Publish": False,
        "Tags": tags_for(tenant),
        "Description": f"opsconsole tenant {tenant.slug}",
        **desired_configuration(tenant, artifact),
    }
    try:
        return lambda_.create_function(spec=spec, region=tenant.region)
    except AwsError as exc:
        if _ROLE_NOT_READY in exc.message:
            raise StepWait("waiting for the new IAM role to propagate", retry_in=10) from exc
        raise


def _wait_ready(name: str, region: str, *, updated: bool) -> None:
    """Short in-worker wait; a slow first VPC attach (60-90 s) re-queues the step instead."""
    try:
        if updated:
            lambda_.wait_updated(name=name, region=region, max_attempts=5)
        else:
            lambda_.wait_active(name=name, region=region, max_attempts=5)
    except AwsError as exc:
        if exc.permanent:
            raise
        raise StepWait("waiting for Lambda (Pending)", retry_in=15) from exc


def ensure_version(name: str, region: str, *, code_sha256: str, release: str) -> str:
    """The published version of what $LATEST holds now, code and configuration.

    PublishVersion is idempotent on AWS: when nothing changed since the last version it
    answers that version, and after a configuration change (a repaired environment, an
    attachment gone) it publishes a new one, so the alias serves the repair. Reusing a
    version found by its code alone would leave the old configuration serving.
    ``CodeSha256`` makes AWS refuse if the code changed under us since we checked it.
    """
    published = lambda_.publish_version(
        name=name, code_sha256=code_sha256, description=f"release {release}", region=region
    )
    return published["Version"]


def ensure_alias(name: str, region: str, version: str, *, known_new: bool = False) -> dict:
    alias = (
        None if known_new else lambda_.get_alias(function=name, alias=naming.ALIAS, region=region)
    )
    if alias is None:
        return lambda_.create_alias(
            function=name, alias=naming.ALIAS, version=version, region=region
        )
    if alias["FunctionVersion"] != version or alias.get("RoutingConfig", {}).get(
        "AdditionalVersionWeights"
    ):
        return lambda_.update_alias(
            function=name, alias=naming.ALIAS, version=version, region=region
        )
    return alias


def apply_concurrency(tenant: Tenant, name: str, current: int | None) -> None:
    wanted = 0 if tenant.status == TenantStatus.SUSPENDED else tenant.reserved_concurrency
    if wanted == current:
        return
    if wanted is None:
        lambda_.delete_concurrency(name=name, region=tenant.region)
    else:
        lambda_.put_concurrency(name=name, reserved=wanted, region=tenant.region)


def step_function(job, step) -> dict:
    tenant = tenant_of(job)
    name = naming.function_name(tenant.slug)
    region = tenant.region
    version = resolve_release(tenant)
    # Lambda reads code only from its own region and account: copied there first if
    # this is the release's first tenant in them.
    release_source.get().ensure_artifact(version, region=region)
    artifact = release_source.get().artifact(version, region=region)
    existing = None
    if resources.find(tenant, kind="function") is not None:
        existing = lambda_.get_function(name=name, region=region)
    created = None
    if existing is None:
        # Never recorded (or gone): create first; a function left by a crash between the
        # create and its record is adopted below.
        try:
            created = _create(tenant, name, artifact)
        except AwsError as exc:
            if exc.code != "ResourceConflictException" or "exist" not in exc.message.lower():
                raise
            existing = lambda_.get_function(name=name, region=region)
            if existing is None:
                # Lambda says it exists and cannot show it: a create a moment ago (ours,
                # before a crash or a retry) that its read side does not know yet.
                raise StepTransient(f"{name} exists but Lambda cannot show it yet") from exc
    try:
        return _converge(tenant, name, region, version, artifact, existing, created)
    except AwsNotFound as exc:
        if created is None:
            raise
        # Just created: Lambda's read side may not know the function for a few seconds
        # (eventual consistency). The step runs again and adopts what it created.
        raise StepTransient(f"{exc} (created a moment ago; trying again)") from exc


def _converge(tenant, name, region, version, artifact, existing, created) -> dict:
    """Bring the function, its version and alias to the release (the rest of the step)."""
    if created is not None:
        if created.get("State") != "Active":  # in a VPC it starts Pending (60-90 s)
            _wait_ready(name, region, updated=False)
        configuration, concurrency = created, None
    else:
        configuration = existing["Configuration"]
        if (
            configuration.get("State") == "Pending"
            or configuration.get("LastUpdateStatus") == "InProgress"
        ):
            _wait_ready(name, region, updated=True)
        changed = False
        changes = _config_changes(configuration, desired_configuration(tenant, artifact))
        if changes:
            lambda_.update_configuration(name=name, changes=changes, region=region)
            _wait_ready(name, region, updated=True)
            changed = True
        if not code_matches(configuration, existing.get("Code", {}), artifact):
            lambda_.update_code(name=name, code=code_argument(artifact), region=region)
            _wait_ready(name, region, updated=True)
            changed = True
        if changed:
            existing = lambda_.get_function(name=name, region=region) or {}
        configuration = existing.get("Configuration", {})
        concurrency = existing.get("Concurrency", {}).get("ReservedConcurrentExecutions")
    if artifact.package_type == "Zip" and configuration.get("CodeSha256") != artifact.code_sha256:
        raise RuntimeError(
            f"{name} reports CodeSha256 {configuration.get('CodeSha256')}, the release's zip "
            f"is {artifact.code_sha256}: the code in S3 is not what was registered."
        )
    fresh = created is not None
    function_version = ensure_version(
        name, region, code_sha256=configuration["CodeSha256"], release=version
    )
    alias = ensure_alias(name, region, function_version, known_new=fresh)
    apply_concurrency(tenant, name, concurrency)
    resources.record(
        tenant,
        kind="function",
        name=name,
        arn=configuration["FunctionArn"],
        details={
            "memory_mb": configuration.get("MemorySize"),
            "timeout_s": configuration.get("Timeout"),
            "package_type": artifact.package_type,
        },
    )
    resources.record(
        tenant,
        kind="alias",
        name=f"{name}:{naming.ALIAS}",
        identifier=name,
        arn=alias["AliasArn"],
        details={"version": function_version, "release": version},
    )
    return {
        "function_version": function_version,
        "release": version,
        "alias_arn": alias["AliasArn"],
    }


def function_drift(tenant: Tenant) -> list[Drift]:
    """The function as it serves (the alias's version) and as it stands ($LATEST),
    against the tenant's release.

    Traffic reaches the alias's version, so that is checked first; a change made to
    $LATEST alone (someone's edit in the AWS console) is drift too, since the next
    version would carry it. After a roll back that moved the alias, $LATEST still holds
    the release rolled back from (``latest_release`` on the alias's record): it is checked
    against that release, not reported as drift.
    """
    name = naming.function_name(tenant.slug)
    existing = lambda_.get_function(name=name, region=tenant.region)
    if existing is None:
        return [Drift("function", name, "exists", "present", "missing")]
    # GetFunction of the alias: outside the 15/s control budget, unlike GetAlias.
    served = lambda_.get_function_at(name=name, qualifier=naming.ALIAS, region=tenant.region)
    try:
        version = tenant.desired_release or tenant.current_release
        artifact = release_source.get().artifact(version, region=tenant.region)
        wanted = function_config.desired_configuration(tenant, artifact)
        ahead = _latest_release(tenant, existing)
        latest_wanted = (
            (ahead, function_config.desired_configuration(tenant, ahead)) if ahead else None
        )
    except (RuntimeError, LookupError) as exc:
        return [Drift("function", name, "configuration", "computable", str(exc))]
    latest = _drifts(name, existing, artifact, *wanted)
    if latest_wanted:
        latest = _drifts(name, existing, latest_wanted[0], *latest_wanted[1])
    if served is None:
        drifts = latest + [Drift("alias", naming.ALIAS, "exists", "present", "missing")]
    else:
        drifts = _drifts(name, served, artifact, *wanted)
        seen = {d.field for d in drifts}
        drifts += [d for d in latest if d.field not in seen]
    wanted_concurrency = (
        0 if tenant.status == TenantStatus.SUSPENDED else tenant.reserved_concurrency
    )
    have_concurrency = existing.get("Concurrency", {}).get("ReservedConcurrentExecutions")
    if wanted_concurrency != have_concurrency:
        drifts.append(
            Drift("function", name, "reserved concurrency", wanted_concurrency, have_concurrency)
        )
    return drifts


def _latest_release(tenant: Tenant, existing: dict) -> ReleaseArtifact | None:
    """The release a roll back left in $LATEST, when $LATEST still holds its code."""
    record = resources.find(tenant, kind="alias")
    ahead = (record.details or {}).get("latest_release", "") if record else ""
    if not ahead:
        return None
    artifact = release_source.get().artifact(ahead, region=tenant.region)
    if not code_matches(existing["Configuration"], existing.get("Code", {}), artifact):
        return None  # deployed over since: the plain rules apply
    return artifact


def _drifts(
    name: str, function: dict, artifact, wanted: dict, secret_names: set[str]
) -> list[Drift]:
    """How one version of the function (its GetFunction answer) differs from ``wanted``."""
    drifts = []
    configuration = function["Configuration"]
    for key, value in _config_changes(configuration, wanted).items():
        have = configuration.get(key)
        if key == "Environment":
            have_vars = (have or {}).get("Variables", {})
            want_vars = value["Variables"]
            for var in sorted(set(have_vars) | set(want_vars)):
                if have_vars.get(var) == want_vars.get(var):
                    continue
                if var in secret_names:
                    # A secret's value is never shown: a rotated password reads "differs"
                    # and repair re-applies it.
                    drifts.append(Drift("function", name, f"env {var}", "(secret)", "differs"))
                    continue
                drifts.append(
                    Drift("function", name, f"env {var}", want_vars.get(var), have_vars.get(var))
                )
        else:
            drifts.append(Drift("function", name, key, value, have))
    if not code_matches(configuration, function.get("Code", {}), artifact):
        drifts.append(Drift("function", name, "code", artifact.version, "other code"))
    return drifts


def step_delete_function(job, step) -> dict:
    tenant = tenant_of(job)
    name = naming.function_name(tenant.slug)
    deleted = lambda_.delete_function(name=name, region=tenant.region)
    resources.mark(tenant, kind="function", name=name, status="deleted")
    resources.mark(tenant, kind="alias", name=f"{name}:{naming.ALIAS}", status="deleted")
    return {"function": name, "deleted": deleted}
