"""Plain-SQL rows as model instances (the job runner's hot path)."""

from django.db import connection

from deployments.models import Deployment, Release, Rollout
from opsconsole.core import rows
from tenants.models import Tenant


def test_fetch_with_gives_the_instances_the_orm_would(db):
    release = Release.objects.create(version="r-rows", artifact_type="zip")
    tenant = Tenant.objects.create(
        name="Rows", slug="t-rows", tags={"team": "a"}, env_vars={"MODE": "x"}
    )
    rollout = Rollout.objects.create(release=release, target={"kind": "all"})
    dep = Deployment.objects.create(rollout=rollout, tenant=tenant, wave=1, from_release="r0")

    [got] = rows.fetch_with(Deployment, "tenant", "a.id = %s", [dep.pk])

    orm = Deployment.objects.select_related("tenant").get(pk=dep.pk)
    for field in Deployment._meta.concrete_fields:
        assert getattr(got, field.attname) == getattr(orm, field.attname), field.name
    for field in Tenant._meta.concrete_fields:
        assert getattr(got.tenant, field.attname) == getattr(orm.tenant, field.attname)
    assert got.tenant.tags == {"team": "a"}  # JSON decoded, not text
    # A saved change lands on the row, like any instance's.
    got.step = "code"
    got.save(update_fields=["step"])
    assert Deployment.objects.get(pk=dep.pk).step == "code"
    assert rows.fetch_with(Deployment, "tenant", "a.id = %s", [-1]) == []


def test_columns_and_width_line_up_with_from_row(db):
    tenant = Tenant.objects.create(name="Cols", slug="t-cols")
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT {rows.columns(Tenant, alias='t')} FROM tenants_tenant t WHERE t.id = %s",
            [tenant.pk],
        )
        row = cur.fetchone()
    assert len(row) == rows.width(Tenant)
    assert rows.from_row(Tenant, row).slug == "t-cols"
