"""Attachments: a tenant's own function security group, the rules between it and the
services it was given (a shared Redis), their drift, removal and offboarding, and the
console's pages for them. In-process moto, real tenant databases (slugs ``hd-*``)."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from opsconsole.audit.models import AuditEvent
from opsconsole.aws import ec2
from opsconsole.aws.clients import client
from opsconsole.aws.errors import AwsError
from opsconsole.jobs.models import Job, JobStatus, JobStep
from opsconsole.jobs.registry import StepWait
from tenants import attachments
from tenants.attachment_services import AttachmentError, attachment_add
from tenants.models import Attachment, ResourceStatus, Tenant, TenantResource
from tests.tenants.conftest import drop_tenant_databases, make_tenant, run_job

REGION = "us-east-1"


@pytest.fixture
def hd_dbs():
    drop_tenant_databases("tenant_hd")
    yield
    drop_tenant_databases("tenant_hd")


@pytest.fixture
def services(seeded, hd_dbs):
    """Two services in the tenants' VPC, each behind its own group: a Redis and a search."""
    vpc = seeded["vpc_id"]

    def group(name: str) -> str:
        return ec2.create_security_group(
            vpc_id=vpc, name=name, description=name, tags={"Team": "anigmaa"}, region=REGION
        )["GroupId"]

    return {"redis": group("anigmaa-redis"), "search": group("anigmaa-search"), **seeded}


def fleet_redis(sg: str) -> Attachment:
    return Attachment.objects.create(
        name="redis",
        host="redis.anigmaa.internal",
        port=6379,
        security_group_id=sg,
        variables={"REDIS_HOST": "{host}", "REDIS_PORT": "{port}"},
    )


def group(group_id: str) -> dict:
    return client("ec2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]


def ingress(group_id: str) -> set[tuple[str, int]]:
    """(source group, port) of every rule the group has, whatever its shape."""
    return {
        (pair["GroupId"], perm.get("FromPort"))
        for perm in group(group_id)["IpPermissions"]
        for pair in perm.get("UserIdGroupPairs", [])
    } | {
        (r["CidrIp"], perm.get("FromPort"))
        for perm in group(group_id)["IpPermissions"]
        for r in perm.get("IpRanges", [])
    }


def egress(group_id: str) -> set[tuple[str, object]]:
    out = set()
    for perm in group(group_id)["IpPermissionsEgress"]:
        port = perm.get("FromPort", "all")
        out |= {(p["GroupId"], port) for p in perm.get("UserIdGroupPairs", [])}
        out |= {(r["CidrIp"], port) for r in perm.get("IpRanges", [])}
    return out


def function_config(slug: str) -> dict:
    return client("lambda").get_function(FunctionName=f"opsconsole-{slug}")["Configuration"]


def drift(tenant: Tenant) -> list[dict]:
    job = run_job("tenant_drift_check", tenant)
    assert job.status == JobStatus.SUCCEEDED, job.error
    return job.steps.get().output["drift"]


def onboard(tenant: Tenant) -> Job:
    job = run_job("tenant_provision", tenant)
    assert job.status == JobStatus.SUCCEEDED, [(s.name, s.error) for s in job.steps.all()]
    return job


def test_onboarding_gives_the_tenant_its_group_and_exactly_the_declared_ports(services):
    redis, search = services["redis"], services["search"]
    fleet_redis(redis)
    tenant = make_tenant("hd-app")
    Attachment.objects.create(
        tenant=tenant,
        name="search",
        host="search.anigmaa.internal",
        port=9200,
        security_group_id=search,
        variables={"SEARCH_URL": "http://{host}:{port}/{tenant}"},
    )
    onboard(tenant)

    record = TenantResource.objects.get(tenant=tenant, kind="function_sg")
    own = record.identifier
    mine = group(own)
    assert mine["GroupName"] == "opsconsole-hd-app-fn"
    assert mine["VpcId"] == services["vpc_id"]
    assert {t["Key"]: t["Value"] for t in mine["Tags"]}["Tenant"] == "hd-app"
    # Each service admits exactly the tenant's group, on its port, and says whose it is.
    assert ingress(redis) == {(own, 6379)}
    assert ingress(search) == {(own, 9200)}
    [pair] = group(redis)["IpPermissions"][0]["UserIdGroupPairs"]
    assert pair["Description"] == "opsconsole tenant hd-app: redis"
    # The tenant's group goes out only to them: the default allow-all is gone.
    assert egress(own) == {(redis, 6379), (search, 9200)}

    config = function_config("hd-app")
    assert sorted(config["VpcConfig"]["SecurityGroupIds"]) == sorted(
        [services["function_sg_id"], own]
    )
    env = config["Environment"]["Variables"]
    assert env["REDIS_HOST"] == "redis.anigmaa.internal" and env["REDIS_PORT"] == "6379"
    assert env["SEARCH_URL"] == "http://search.anigmaa.internal:9200/hd-app"
    assert drift(tenant) == []


def test_a_rule_revoked_by_hand_is_drift_and_reconcile_puts_it_back(services):
    redis = services["redis"]
    fleet_redis(redis)
    tenant = make_tenant("hd-drift")
    onboard(tenant)
    own = attachments.tenant_security_group(tenant)
    # Someone revoked the rule by hand (as the console names it, with its description).
    ec2.revoke_ingress(
        group_id=redis,
        permissions=ec2.permissions_referencing(group(redis)["IpPermissions"], group_id=own),
        region=REGION,
    )
    assert ingress(redis) == set()
    # And someone opened the tenant's group to everything.
    ec2.authorize_all_egress(group_id=own, region=REGION)

    found = {(d["kind"], d["name"], d["field"], d["actual"]) for d in drift(tenant)}
    assert found == {
        ("service_sg", redis, f"ingress tcp/6379 from {own}", "missing"),
        ("function_sg", "opsconsole-hd-drift-fn", "egress", "all 0.0.0.0/0"),
    }

    assert run_job("tenant_reconcile", tenant).status == JobStatus.SUCCEEDED
    assert ingress(redis) == {(own, 6379)}
    assert egress(own) == {(redis, 6379)}
    assert drift(tenant) == []


def test_removing_an_attachment_removes_its_rule_on_reconcile(services):
    redis, search = services["redis"], services["search"]
    fleet_redis(redis)
    tenant = make_tenant("hd-less")
    attached = Attachment.objects.create(
        tenant=tenant,
        name="search",
        host="search.internal",
        port=9200,
        security_group_id=search,
        variables={"SEARCH_HOST": "{host}"},
    )
    onboard(tenant)
    own = attachments.tenant_security_group(tenant)
    assert ingress(search) == {(own, 9200)}

    attached.delete()
    # Until the reconcile, AWS still has the rule the deleted attachment asked for.
    assert ("service_sg", search) in {(d["kind"], d["name"]) for d in drift(tenant)}
    assert run_job("tenant_reconcile", tenant).status == JobStatus.SUCCEEDED

    assert ingress(search) == set()
    assert ingress(redis) == {(own, 6379)}
    assert egress(own) == {(redis, 6379)}
    assert "SEARCH_HOST" not in function_config("hd-less")["Environment"]["Variables"]
    assert drift(tenant) == []

    # The last one goes: so do the group and its place on the function.
    Attachment.objects.all().delete()
    assert run_job("tenant_reconcile", tenant).status == JobStatus.SUCCEEDED
    assert ingress(redis) == set()
    assert ec2.describe_security_group(group_id=own, region=REGION) is None
    assert function_config("hd-less")["VpcConfig"]["SecurityGroupIds"] == [
        services["function_sg_id"]
    ]
    assert drift(tenant) == []


def test_a_second_tenant_has_its_own_group_and_offboarding_one_leaves_the_other(services):
    redis = services["redis"]
    fleet_redis(redis)
    first, second = make_tenant("hd-one"), make_tenant("hd-two")
    onboard(first)
    onboard(second)
    one, two = attachments.tenant_security_group(first), attachments.tenant_security_group(second)
    assert one != two
    assert ingress(redis) == {(one, 6379), (two, 6379)}

    Tenant.objects.filter(pk=first.pk).update(status="offboarding")
    job = run_job("tenant_offboard", first)
    assert job.status == JobStatus.SUCCEEDED, [(s.name, s.error) for s in job.steps.all()]
    assert ingress(redis) == {(two, 6379)}
    assert ec2.describe_security_group(group_id=one, region=REGION) is None
    record = TenantResource.objects.get(tenant=first, kind="function_sg")
    assert record.status == ResourceStatus.DELETED
    second.refresh_from_db()
    assert drift(second) == []


def test_offboarding_waits_while_the_functions_network_interfaces_hold_the_group(
    services, monkeypatch
):
    fleet_redis(services["redis"])
    tenant = make_tenant("hd-eni")
    onboard(tenant)
    own = attachments.tenant_security_group(tenant)
    job = Job.objects.create(kind="tenant_offboard", subject_type="tenant", subject_id="hd-eni")
    step = JobStep.objects.create(job=job, position=1, name="attachments", label="x")
    real = ec2.delete_security_group

    def in_use(**kwargs):
        raise AwsError(
            "resource has a dependent object", code="DependencyViolation", permanent=True
        )

    monkeypatch.setattr(ec2, "delete_security_group", in_use)
    with pytest.raises(StepWait, match=f"network interfaces to release {own}") as waited:
        attachments.step_delete_attachments(job, step)
    assert waited.value.retry_in == attachments.ENI_RETRY_S
    # The rules went already; the group waits.
    assert ingress(services["redis"]) == set()
    monkeypatch.setattr(ec2, "delete_security_group", real)
    assert attachments.step_delete_attachments(job, step)["deleted"] is True
    assert ec2.describe_security_group(group_id=own, region=REGION) is None


def _request(user):
    request = RequestFactory().post("/")
    request.user = user
    return request


def test_a_bad_attachment_is_refused_before_aws_is_touched(services, admin_user, monkeypatch):
    tenant = make_tenant("hd-bad", status="active")

    def no_aws(**kwargs):
        raise AssertionError("AWS was asked")

    monkeypatch.setattr(ec2, "describe_security_group", no_aws)
    with pytest.raises(AttachmentError) as refused:
        attachment_add(
            tenant=tenant,
            name="Redis!",
            host="redis internal",
            port=0,
            security_group_id="sg-nope",
            variables={"AWS_REGION": "{host}", "REDIS_URL": "redis://{password}@{host}"},
            request=_request(admin_user),
        )
    problems = " | ".join(refused.value.problems)
    for expected in (
        "name 'Redis!'",
        "host 'redis internal'",
        "port 0",
        "AWS_REGION: Lambda sets it itself",
        "REDIS_URL: {password} is not one of",
        "security group 'sg-nope'",
    ):
        assert expected in problems
    assert not Attachment.objects.exists() and not Job.objects.exists()
    monkeypatch.undo()

    # Well-formed, so EC2 is asked (a read): a group that is not there, one in another VPC.
    def refused_for(sg: str) -> list[str]:
        with pytest.raises(AttachmentError) as refused:
            attachment_add(
                tenant=tenant,
                name="redis",
                host="redis.internal",
                port=6379,
                security_group_id=sg,
                variables={},
                request=_request(admin_user),
            )
        return refused.value.problems

    assert refused_for("sg-0123456789abcdef0") == [
        "security group sg-0123456789abcdef0 does not exist in us-east-1"
    ]
    elsewhere = client("ec2").create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    other = ec2.create_security_group(
        vpc_id=elsewhere, name="x", description="x", tags={}, region=REGION
    )["GroupId"]
    assert "not in the tenants' VPC" in refused_for(other)[0]
    assert "baseline groups" in refused_for(services["database_sg_id"])[0]
    assert not Attachment.objects.exists()
    assert not ec2.group_ports(group(services["database_sg_id"])["IpPermissions"]).keys() - {
        (services["function_sg_id"], 5432)
    }


def test_attachment_pages_roles_audit_and_reconcile(
    services, client_for, admin_user, operator_user, outsider_user
):
    tenant = make_tenant("hd-page", status="active")
    fields = {
        "name": "redis",
        "host": "redis.internal",
        "port": "6379",
        "security_group_id": services["redis"],
        "variables_text": "REDIS_HOST={host}\nREDIS_PORT={port}",
    }
    assert client_for(outsider_user).get("/tenants/attachments/").status_code == 404
    page = client_for(operator_user).get("/tenants/attachments/")
    assert page.status_code == 200 and b"Attach to the fleet" not in page.content
    assert client_for(operator_user).post("/tenants/attachments/", fields).status_code == 403
    assert (
        client_for(operator_user).post("/tenants/hd-page/attachments/", fields).status_code == 403
    )
    assert not Attachment.objects.exists()

    admin = client_for(admin_user)
    bad = admin.post(
        "/tenants/attachments/", {**fields, "port": "6379", "variables_text": "X={nope}"}
    )
    assert bad.status_code == 400 and b"{nope} is not one of" in bad.content

    assert admin.post("/tenants/attachments/", fields).status_code == 302
    fleet = Attachment.objects.get(tenant=None)
    assert fleet.variables == {"REDIS_HOST": "{host}", "REDIS_PORT": "{port}"}
    event = AuditEvent.objects.get(action="attachment.add")
    assert event.details["reconciling"] == ["hd-page"] and event.actor == admin_user
    [job] = Job.objects.filter(kind="tenant_reconcile", subject_id="hd-page")
    tenant.refresh_from_db()
    assert job.params == {"generation": tenant.config_generation} and tenant.config_generation == 2

    detail = admin.get("/tenants/hd-page/")
    assert b"redis.internal:6379" in detail.content and b"Attach a service" in detail.content
    response = admin.post(
        "/tenants/hd-page/attachments/",
        {**fields, "name": "search", "port": "9200", "variables_text": "SEARCH_HOST={host}"},
    )
    assert response.status_code == 302
    own = Attachment.objects.get(tenant=tenant)
    assert admin.post(f"/tenants/attachments/{own.pk}/remove/").status_code == 302
    assert admin.post(f"/tenants/attachments/{fleet.pk}/remove/").status_code == 302
    assert not Attachment.objects.exists()
    assert AuditEvent.objects.filter(action="attachment.remove").count() == 2
